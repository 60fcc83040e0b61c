import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { freshDatabase, poolFor } from "../../test/support.js";
import { createHttpApi, type HttpApi } from "../src/http/index.js";
import { ConfigError, createWeft, defineTask, type Weft } from "../src/index.js";

// Weft's metrics through the HTTP API's /metrics (Prometheus text), checked
// against the database's own counts.

const READ = "read-token-0123456789abcdef";

/** Retries \`check\` (an assertion) until it passes, for at most 30 s. */
async function eventually(check: () => unknown | Promise<unknown>): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await check();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** The samples of a Prometheus text exposition: name{labels} -> value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/** The value of \`name\` with label task_name=\`task\` (and \`extra\` labels), 0 when absent. */
function sampleOf(s: Map<string, number>, name: string, task: string, extra = ""): number {
  for (const [key, v] of s) {
    if (!key.startsWith(`${name}{`)) continue;
    if (key.includes(`task_name="${task}"`) && key.includes(extra)) return v;
  }
  return 0;
}

describe("metrics and /metrics", () => {
  let weft: Weft;
  let pool: pg.Pool;
  let api: HttpApi;
  const flakyRuns = new Map<number, number>();

  const ok = defineTask({
    name: "m.ok",
    input: z.object({ i: z.number() }),
    output: z.number(),
    run: (c) => c.input.i,
  });
  const fails = defineTask({
    name: "m.fails",
    input: z.object({ i: z.number() }),
    output: z.null(),
    retry: { mode: "OFF" },
    run: () => {
      throw new Error("always");
    },
  });
  const flaky = defineTask({
    name: "m.flaky",
    input: z.object({ i: z.number() }),
    output: z.number(),
    retry: { mode: "FIXED", delayMs: 20, maxRetries: 3 },
    run: ({ input }) => {
      const n = (flakyRuns.get(input.i) ?? 0) + 1;
      flakyRuns.set(input.i, n);
      if (n < 3) throw new Error(`run ${n} fails`);
      return n;
    },
  });
  const later = defineTask({ name: "m.later", input: z.object({}), output: z.null(), run: () => null });

  beforeAll(async () => {
    const url = await freshDatabase();
    pool = poolFor(url);
    weft = createWeft({ connectionString: url, tasks: [ok, fails, flaky, later] });
    await weft.start();
    api = createHttpApi(weft, { tokens: [{ token: READ, scope: "read" }], metrics: true });
  });

  afterAll(async () => {
    await weft?.stop();
  });

  const scrape = async (token: string | null = READ) =>
    api.fetch(
      new Request("http://weft.test/metrics", token ? { headers: { authorization: `Bearer ${token}` } } : undefined),
    );
  const scraped = async () => {
    const res = await scrape();
    expect(res.status).toBe(200);
    return samples(await res.text());
  };

  it("needs a read token unless public; a second provider of its own is refused", async () => {
    expect((await scrape(null)).status).toBe(401);
    expect((await scrape("wrong")).status).toBe(401);
    expect((await scrape()).status).toBe(200);
    expect(() => createHttpApi(weft, { auth: "none", metrics: true })).toThrow(ConfigError);
    expect(() => createHttpApi(weft, { auth: "none", metrics: { public: "yes" as never } })).toThrow(ConfigError);
  });

  it("counts what the database counts: completed, failed, retried, dead-lettered; histograms observe", async () => {
    const refs = [
      ...(await weft.client.scheduleMany(
        ok,
        Array.from({ length: 300 }, (_, i) => ({ i })),
      )),
      ...(await weft.client.scheduleMany(
        fails,
        Array.from({ length: 7 }, (_, i) => ({ i })),
      )),
      ...(await weft.client.scheduleMany(
        flaky,
        Array.from({ length: 4 }, (_, i) => ({ i })),
      )),
    ];
    await weft.client.schedule(later, {}, { delayMs: 600_000 });
    // A scrape while the run goes on answers (and must not disturb it).
    expect((await scrape()).status).toBe(200);
    for (const r of refs) await weft.client.waitForWorkflow(r.workflowId, { timeoutMs: 60_000 });

    const { rows } = await pool.query<{ task_name: string; state: string; n: number; failed_attempts: number }>(
      `SELECT task_name, state, count(*)::int AS n, sum(coalesce(jsonb_array_length(attempt_log), 0))::int AS failed_attempts
         FROM weft.tasks WHERE queue = 'DELETED' GROUP BY task_name, state`,
    );
    const db = (task: string, state: string) => rows.find((r) => r.task_name === task && r.state === state);
    const letters = await pool.query<{ task_name: string; n: number }>(
      "SELECT task_name, count(*)::int AS n FROM weft.dead_letters GROUP BY task_name",
    );
    expect(db("m.ok", "COMPLETED")?.n).toBe(300);
    expect(db("m.fails", "FAILED")?.n).toBe(7);
    expect(db("m.flaky", "COMPLETED")?.n).toBe(4);

    await eventually(async () => {
      const s = await scraped();
      for (const task of ["m.ok", "m.fails", "m.flaky"]) {
        expect(sampleOf(s, "weft_tasks_completed_total", task)).toBe(db(task, "COMPLETED")?.n ?? 0);
        expect(sampleOf(s, "weft_tasks_failed_total", task)).toBe(db(task, "FAILED")?.n ?? 0);
        // Every failed attempt is in the attempt log; the last one of a failed task is its final failure.
        const failedAttempts =
          (db(task, "COMPLETED")?.failed_attempts ?? 0) + (db(task, "FAILED")?.failed_attempts ?? 0);
        expect(sampleOf(s, "weft_tasks_retried_total", task)).toBe(failedAttempts - (db(task, "FAILED")?.n ?? 0));
        expect(sampleOf(s, "weft_tasks_dead_lettered_total", task)).toBe(
          letters.rows.find((r) => r.task_name === task)?.n ?? 0,
        );
      }
      expect(sampleOf(s, "weft_tasks_started_total", "m.flaky")).toBe(12);
      expect(sampleOf(s, "weft_task_duration_count", "m.ok", 'outcome="completed"')).toBe(300);
      expect(sampleOf(s, "weft_task_duration_count", "m.fails", 'outcome="failed"')).toBe(7);
      expect(sampleOf(s, "weft_task_schedule_to_start_count", "m.ok")).toBe(300);
      expect(sampleOf(s, "weft_queue_depth", "m.later", 'queue="delayed"')).toBe(1);
      expect(sampleOf(s, "weft_queue_depth", "m.later", 'queue="ready"')).toBe(0);
      expect([...s.keys()].some((k) => k.startsWith("weft_completion_batch_size_count"))).toBe(true);
      expect([...s.keys()].some((k) => k.startsWith("weft_planner_cycle_duration_count"))).toBe(true);
      expect([...s].find(([k]) => k.startsWith("weft_node_capacity{"))?.[1]).toBe(100);
    });
    const s = await scraped();
    expect([...s.keys()].some((k) => k.startsWith('weft_log_events_total{event="leader.elected"'))).toBe(true);
  });

  it("keeps label cardinality bounded: 10,000 workflows add no series", async () => {
    const before = await scraped();
    const refs = await weft.client.scheduleMany(
      ok,
      Array.from({ length: 10_000 }, (_, i) => ({ i })),
    );
    expect(new Set(refs.map((r) => r.workflowId)).size).toBe(10_000);
    await eventually(async () => {
      const s = await scraped();
      expect(sampleOf(s, "weft_tasks_completed_total", "m.ok")).toBe(10_300);
    });
    const after = await scraped();
    const series = (m: Map<string, number>) => new Set([...m.keys()].filter((k) => !k.startsWith("weft_log_events")));
    // The same series as before (histogram buckets and task names fixed), and no id anywhere.
    expect([...series(after)].filter((k) => !series(before).has(k))).toEqual([]);
    expect(after.size).toBeLessThan(400);
    const text = await (await scrape()).text();
    expect(text).not.toMatch(/[0-9A-HJKMNP-TV-Z]{26}/);
  });
});
