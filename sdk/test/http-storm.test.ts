import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { eventually, freshDatabase } from "../../test/support.js";
import { createHttpApi, type HttpServer } from "../src/http/index.js";
import { createWeft, defineTask, type Weft } from "../src/index.js";

// A request storm during a running workload: 2,000 requests from 50
// concurrent clients while 2,000 tasks run (and the storm schedules more).
// No error response, and every task finishes exactly once.

const TOKEN = "storm-token-0123456789abcdef";
const executions = new Map<string, number>();

const work = defineTask({
  name: "s.work",
  input: z.object({ i: z.number().int() }),
  output: z.number(),
  run: async (ctx) => {
    executions.set(ctx.taskId, (executions.get(ctx.taskId) ?? 0) + 1);
    await new Promise((r) => setTimeout(r, 60));
    return ctx.input.i;
  },
});

describe("HTTP API under a request storm", () => {
  let weft: Weft;
  let server: HttpServer;
  let url: string;

  beforeAll(async () => {
    url = await freshDatabase();
    weft = createWeft({
      connectionString: url,
      tasks: [work],
      node: { maxParallelTasksInNode: 50 },
      taskDefaults: { retry: { mode: "OFF" } },
    });
    await weft.start();
    server = await createHttpApi(weft, { tokens: [{ token: TOKEN, scope: "write" }] }).serve({ port: 0 });
  });
  afterAll(async () => {
    await server?.close();
    await weft?.stop();
  });

  it("answers 2,000 requests from 50 clients with no error while 2,000 tasks run, each exactly once", async () => {
    const refs = [];
    const inputs = Array.from({ length: 2_000 }, (_, i) => ({ i }));
    for (let i = 0; i < inputs.length; i += 500)
      refs.push(...(await weft.client.scheduleMany(work, inputs.slice(i, i + 500))));
    const ids = refs.map((r) => r.taskId);
    const scheduled = new Set(ids);
    const statuses = new Map<number, number>();
    const failures: string[] = [];
    const headers = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
    const pick = () => ids[Math.floor(Math.random() * ids.length)] as string;
    let finishedAtStart = -1;

    const request = async (n: number): Promise<void> => {
      const kind = n % 8;
      const [method, path, body]: [string, string, unknown] =
        kind === 0
          ? ["POST", "/v1/tasks/s.work", { input: { i: n }, options: { priority: n % 3 } }]
          : kind === 1
            ? ["GET", "/v1/workflows?limit=20", undefined]
            : kind === 2
              ? ["GET", `/v1/tasks/${pick()}`, undefined]
              : kind === 3
                ? ["GET", `/v1/workflows/${pick()}`, undefined]
                : kind === 4
                  ? ["GET", "/v1/queues", undefined]
                  : kind === 5
                    ? ["GET", "/v1/nodes", undefined]
                    : kind === 6
                      ? ["GET", `/v1/workflows/${pick()}/tasks`, undefined]
                      : ["GET", "/v1/health", undefined];
      const res = await fetch(`${server.url}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      const json = (await res.json()) as { taskId?: string; error?: unknown };
      if (res.status >= 300) failures.push(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
      if (method === "POST" && json.taskId) scheduled.add(json.taskId);
    };

    const pool = new pg.Pool({ connectionString: url, max: 1 });
    const finished = async () =>
      (
        await pool.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM weft.tasks WHERE task_name = 's.work' AND state = 'COMPLETED'",
        )
      ).rows[0]?.n ?? 0;
    try {
      finishedAtStart = await finished();
      let next = 0;
      await Promise.all(
        Array.from({ length: 50 }, async () => {
          for (let n = next++; n < 2_000; n = next++) await request(n);
        }),
      );
      const finishedAtEnd = await finished();
      expect(failures).toEqual([]);
      expect([...statuses.values()].reduce((a, b) => a + b, 0)).toBe(2_000);
      expect(statuses.get(201)).toBe(250);
      // The storm ran during the workload, not after it.
      expect(finishedAtStart).toBeLessThan(2_000);
      expect(finishedAtEnd).toBeGreaterThan(finishedAtStart);

      expect(scheduled.size).toBe(2_250);
      await eventually(async () => ((await finished()) === scheduled.size ? true : undefined), 120_000, 200);
      for (const id of scheduled) expect(executions.get(id), id).toBe(1);
      expect(executions.size).toBe(scheduled.size);
    } finally {
      await pool.end();
    }
  });
});
