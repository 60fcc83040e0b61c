import { join } from "node:path";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixtureTasks, SLOT_CRON_DDL } from "../../test/fixtures/tasks.js";
import { eventually, freshDatabase, type NodeProcess, poolFor, ROOT, spawnNode } from "../../test/support.js";
import { createClient, type Weft } from "../src/index.js";

const NODE_SCRIPT = join(ROOT, "test/fixtures/node.ts");
const PULL_WORKER = join(ROOT, "test/fixtures/pull-worker.ts");
const H = 3_600_000;
const WEEK_START = Date.parse("2026-11-02T00:00:00Z");

/** Slots and cron across node processes. */
describe("slots and cron on a cluster", () => {
  let url: string;
  let pool: pg.Pool;
  let client: Weft;
  let tasks: ReturnType<typeof fixtureTasks>;
  const nodes: NodeProcess[] = [];

  const start = async (label: string, env: Record<string, string>) => {
    const node = spawnNode(NODE_SCRIPT, { DATABASE_URL: url, NODE_LABEL: label, HEARTBEAT_MS: "200", ...env });
    await node.waitFor((m) => m.type === "ready", 60_000);
    nodes.push(node);
    return node;
  };
  const stopAll = async () => {
    for (const node of nodes.splice(0)) {
      if (node.child.exitCode !== null || node.child.signalCode !== null) continue;
      node.send({ type: "stop" });
      await Promise.race([node.exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (node.child.exitCode === null) node.child.kill("SIGKILL");
    }
  };

  beforeAll(async () => {
    url = await freshDatabase();
    pool = poolFor(url);
    await pool.query(SLOT_CRON_DDL);
    tasks = fixtureTasks(pool, "client");
    client = createClient({ connectionString: url, tasks: Object.values(tasks) });
    await client.start();
  });
  afterAll(async () => {
    await stopAll();
    await client.stop();
  });

  it("3 node processes run 24 × 7 hourly slots, each exactly once; ensure raced from 3 processes creates no duplicate", async () => {
    const three = await Promise.all(["s1", "s2", "s3"].map((l) => start(l, { TASKS: "hourSlot" })));
    const week = { from: new Date(WEEK_START).toISOString(), to: new Date(WEEK_START + 168 * H).toISOString() };
    for (const n of three) n.send({ type: "ensure", ...week });
    const created = await Promise.all(three.map((n) => n.waitFor((m) => m.type === "ensured", 30_000)));
    expect(created.reduce((sum, m) => sum + Number(m.created), 0)).toBe(168);
    const series = client.client.slots(tasks.hourSlot);
    const range = { from: new Date(WEEK_START), to: new Date(WEEK_START + 168 * H) };
    await eventually(async () => ((await series.coverage(range)).counts.complete === 168 ? true : undefined), 60_000);
    const { rows } = await pool.query<{ n: number; distinct: number; nodes: number }>(
      "SELECT count(*)::int AS n, count(DISTINCT start_at)::int AS distinct, count(DISTINCT node)::int AS nodes FROM public.slot_log",
    );
    expect(rows[0]).toEqual({ n: 168, distinct: 168, nodes: 3 });
    const { rows: tasksRows } = await pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM weft.tasks WHERE task_name = 'hourSlot'",
    );
    expect(tasksRows[0]?.n).toBe(168);
    // Re-opening one day runs exactly its 24 slots again.
    const day3 = { from: new Date(WEEK_START + 48 * H), to: new Date(WEEK_START + 72 * H) };
    expect(await series.reopen(day3)).toBe(24);
    await eventually(async () => {
      const c = await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM public.slot_log");
      return c.rows[0]?.n === 192 ? true : undefined;
    }, 60_000);
    await eventually(async () => ((await series.coverage(range)).counts.complete === 168 ? true : undefined), 30_000);
    const rerun = await pool.query<{ start_at: Date }>(
      "SELECT start_at FROM public.slot_log GROUP BY start_at HAVING count(*) = 2 ORDER BY start_at",
    );
    expect(rerun.rows.map((r) => r.start_at.getTime())).toEqual(
      Array.from({ length: 24 }, (_, h) => WEEK_START + (48 + h) * H),
    );
    const generations = (await series.coverage(range)).slots.map((x) => x.generation);
    expect(generations.filter((g) => g === 2)).toHaveLength(24);
    // Raced again on a pull series: still one row per slot.
    for (const n of three) n.send({ type: "ensure", series: "raced", ...week });
    const again = await Promise.all(
      three.map((n) => n.waitFor((m) => m.type === "ensured" && m !== created.find((c) => c === m), 30_000)),
    );
    expect(again).toHaveLength(3);
    await eventually(async () => {
      const c = await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM weft.slots WHERE task_name = 'raced'");
      return c.rows[0]?.n === 168 ? true : undefined;
    });
    await stopAll();
  });

  it("a pull-mode worker killed mid-slot releases it: the transaction's end frees the slot", async () => {
    const series = client.client.slots("killed", { every: "1h" });
    const range = { from: new Date(WEEK_START), to: new Date(WEEK_START + 2 * H) };
    await series.ensure(range);
    const worker = spawnNode(PULL_WORKER, {
      DATABASE_URL: url,
      SERIES: "killed",
      FROM: range.from.toISOString(),
      TO: range.to.toISOString(),
    });
    const acquired = await worker.waitFor((m) => m.type === "acquired", 60_000);
    expect(acquired.start).toBe(range.from.toISOString());
    expect((await series.coverage(range)).grid).toBe(">.");
    // While it holds the first slot, others get the second.
    expect(await series.process({ range }, async () => undefined)).toEqual(new Date(WEEK_START + H));
    worker.child.kill("SIGKILL");
    await worker.exited;
    const taken = await eventually(
      async () => (await series.process({ range }, async () => undefined)) ?? undefined,
      10_000,
    );
    expect(taken).toEqual(range.from);
    expect((await series.coverage(range)).grid).toBe("##");
  });

  it("a cron every second on 3 node processes fires once per tick; killing the leader loses and doubles none", async () => {
    const env = { TASKS: "everySecond", DEAD_AFTER_MS: "1500" };
    const three = [await start("c1", env), await start("c2", env), await start("c3", env)];
    const alive = (n: NodeProcess) => n.child.exitCode === null && n.child.signalCode === null;
    /** The node whose latest status says it leads, among the running ones. */
    const leading = (among: readonly NodeProcess[]) =>
      eventually(
        async () =>
          among.find((n) => alive(n) && n.messages.filter((m) => m.type === "status").at(-1)?.isLeader === true),
        20_000,
      );
    const firedTicks = async () =>
      (
        await pool.query<{ tick_at: Date }>(
          "SELECT tick_at FROM weft.cron_ticks WHERE task_name = 'everySecond' AND task_id IS NOT NULL ORDER BY tick_at",
        )
      ).rows.map((r) => r.tick_at.getTime());
    // A few ticks fire before the failover...
    await eventually(async () => ((await firedTicks()).length >= 3 ? true : undefined), 30_000);
    const leader = await leading(three);
    leader.child.kill("SIGKILL");
    await leader.exited;
    const killedAt = (await pool.query<{ now: Date }>("SELECT clock_timestamp() AS now")).rows[0]?.now.getTime() ?? 0;
    // ...another node takes the lead, and ticks go on firing after it.
    await leading(three.filter((n) => n !== leader));
    await eventually(async () => {
      const ticks = await firedTicks();
      return ticks.length >= 8 && ticks.some((t) => t >= killedAt + 3_000) ? true : undefined;
    }, 30_000);
    const { rows } = await pool.query<{ tick: Date; n: number }>(
      "SELECT tick, count(*)::int AS n FROM public.cron_log GROUP BY tick ORDER BY tick",
    );
    // Ticks still queued or running at the end are not counted: look at the recorded ticks.
    const recorded = await pool.query<{ tick_at: Date }>(
      "SELECT tick_at FROM weft.cron_ticks WHERE task_name = 'everySecond' AND task_id IS NOT NULL ORDER BY tick_at",
    );
    const ticks = recorded.rows.map((r) => r.tick_at.getTime());
    expect(ticks.length).toBeGreaterThanOrEqual(8);
    // Consecutive seconds: no tick lost across the failover.
    for (let i = 1; i < ticks.length; i++) expect((ticks[i] as number) - (ticks[i - 1] as number)).toBe(1_000);
    // Each tick's task ran once (the killed leader may also have been running one: at-least-once
    // allows a re-run of that attempt, but no tick has two tasks).
    const perTick = await pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM weft.tasks WHERE task_name = 'everySecond' GROUP BY input ->> 'tick' HAVING count(*) > 1",
    );
    expect(perTick.rows).toEqual([]);
    const doubled = rows.filter((r) => r.n > 1);
    expect(doubled.length).toBeLessThanOrEqual(1);
    await stopAll();
  }, 60_000);
});
