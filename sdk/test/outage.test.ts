import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDatabase, type RestartableDatabase, startRestartableDatabase } from "../../engine/src/testing/index.js";
import { EXEC_LOG_DDL, fixtureTasks } from "../../test/fixtures/tasks.js";
import { eventually, type NodeProcess, ROOT, spawnNode } from "../../test/support.js";
import { createClient, type Weft } from "../src/index.js";

const NODE_SCRIPT = join(ROOT, "test/fixtures/node.ts");
const OUTAGE_MS = 5_000;

/** A database outage mid-run, on a server of its own that the test stops and starts again. */
describe("database outage", () => {
  let server: RestartableDatabase;
  let url: string;
  let pool: pg.Pool;
  let client: Weft;
  const nodes: NodeProcess[] = [];

  beforeAll(async () => {
    server = await startRestartableDatabase();
    url = await createDatabase(server.url, "outage");
    pool = new pg.Pool({ connectionString: url, max: 2 });
    pool.on("error", () => undefined);
    await pool.query(EXEC_LOG_DDL);
    client = createClient({ connectionString: url, tasks: Object.values(fixtureTasks(pool, "client")) });
    await client.start();
  }, 120_000);
  afterAll(async () => {
    for (const n of nodes) {
      n.send({ type: "stop" });
      await Promise.race([n.exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (n.child.exitCode === null) n.child.kill("SIGKILL");
    }
    await client?.stop().catch(() => undefined);
    await pool?.end().catch(() => undefined);
    await server?.stop();
  });

  const count = async (sql: string) => (await pool.query<{ n: number }>(sql)).rows[0]?.n ?? 0;

  it("stopped for 5 s mid-run: nodes reconnect by themselves, nothing is lost, errors are logged once per outage", async () => {
    for (const label of ["o1", "o2"]) {
      const node = spawnNode(
        NODE_SCRIPT,
        {
          DATABASE_URL: url,
          NODE_LABEL: label,
          TASKS: "work",
          CAPACITY: "20",
          DEAD_AFTER_MS: "20000",
          WEFT_LOG_LEVEL: "info",
        },
        { capture: true },
      );
      await node.waitFor((m) => m.type === "ready", 60_000);
      nodes.push(node);
    }
    const total = 3_000;
    const refs = await client.client.scheduleMany(
      fixtureTasks(pool, "client").work,
      Array.from({ length: total }, () => ({ sleepMs: 5 })),
    );
    await eventually(async () =>
      (await count("SELECT count(*)::int AS n FROM public.exec_log")) >= 300 ? true : undefined,
    );
    await server.pause();
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    await server.resume();
    await eventually(
      async () =>
        (await count("SELECT count(*)::int AS n FROM weft.tasks WHERE task_name = 'work' AND state = 'COMPLETED'")) ===
        total
          ? true
          : undefined,
      120_000,
      200,
    );
    // Every task ran to its end at least once (at-least-once: an attempt whose
    // outcome was lost with the connection may have run twice).
    const ran = await count("SELECT count(DISTINCT task_id)::int AS n FROM public.exec_log");
    expect(ran).toBe(total);
    const failed = await count("SELECT count(*)::int AS n FROM weft.tasks WHERE state = 'FAILED'");
    expect(failed).toBe(0);
    expect(refs).toHaveLength(total);
    for (const node of nodes) {
      const lines = node.output().split("\n");
      const failures = lines.filter((l) => l.includes("retrying until the database answers")).length;
      const recoveries = lines.filter((l) => l.includes("recovered")).length;
      // One warning per service that noticed the outage, not one per task.
      expect(failures).toBeGreaterThan(0);
      expect(failures).toBeLessThanOrEqual(10);
      expect(recoveries).toBeGreaterThan(0);
    }
  }, 240_000);
});
