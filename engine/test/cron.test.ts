import type pg from "pg";
import { beforeEach, describe, expect, it } from "vitest";
import { freshDatabase, poolFor } from "../../test/support.js";
import { CronService } from "../src/services/cron.js";
import type { PublishedCron } from "../src/store/cron.js";
import { Store } from "../src/store/index.js";
import { memoryLogger } from "./helpers.js";

/** The cron service alone, against a node row that publishes schedules. */
describe("cron service", () => {
  const store = new Store("weft");
  let pool: pg.Pool;

  const publish = async (crons: Record<string, PublishedCron>) => {
    await pool.query("DELETE FROM weft.nodes");
    await pool.query(
      `INSERT INTO weft.nodes (id, app_name, host, pid, capacity, task_names, task_crons)
       VALUES ('N1', 'a', 'h', 1, 10, $1::text[], $2::jsonb)`,
      [Object.keys(crons), JSON.stringify(crons)],
    );
  };
  const service = (epoch = 0) => {
    const deposed: string[] = [];
    const s = new CronService(
      store,
      pool,
      { nodeDeadAfterMs: 60_000, misfireGraceMs: 5_000 },
      epoch,
      memoryLogger().logger,
      () => deposed.push("deposed"),
    );
    return { s, deposed };
  };
  const ticks = async (name: string) =>
    (
      await pool.query<{ tick_at: Date; task_id: string | null }>(
        "SELECT tick_at, task_id FROM weft.cron_ticks WHERE task_name = $1 ORDER BY tick_at",
        [name],
      )
    ).rows;
  const minute = (missed: "skip" | "catch-up", maxCatchUp = 3): PublishedCron => ({
    expression: "* * * * *",
    timeZone: "UTC",
    missed,
    maxCatchUp,
  });

  beforeEach(async () => {
    pool = poolFor(await freshDatabase());
  });

  it("records a baseline at first sight, then fires each due tick once with its task", async () => {
    await publish({ m: minute("skip") });
    const { s } = service();
    await s.cycle();
    const [baseline] = await ticks("m");
    expect(baseline?.task_id).toBeNull();
    // Move the baseline back past the start of the previous minute: one or two minute ticks are
    // due now, some older than the 5 s grace (missed, skipped), one perhaps within it (fired).
    await pool.query(
      "UPDATE weft.cron_ticks SET tick_at = date_trunc('minute', now()) - interval '1 minute' - interval '1 second'",
    );
    await s.cycle();
    await s.cycle();
    const rows = await ticks("m");
    // Every tick is recorded once, and every tick that fired has exactly one task.
    const withTasks = rows.filter((r) => r.task_id !== null);
    const tasks = await pool.query("SELECT input FROM weft.tasks WHERE task_name = 'm'");
    expect(tasks.rows).toHaveLength(withTasks.length);
    expect(new Set(rows.map((r) => r.tick_at.getTime())).size).toBe(rows.length);
  });

  it("missed ticks: skip fires none of them; catch-up fires the most recent maxCatchUp", async () => {
    await publish({ skipper: minute("skip"), catcher: minute("catch-up", 3) });
    // Both were last seen 10 minutes ago.
    await pool.query(
      `INSERT INTO weft.cron_ticks (task_name, tick_at) VALUES
         ('skipper', date_trunc('minute', now()) - interval '10 minutes'),
         ('catcher', date_trunc('minute', now()) - interval '10 minutes')`,
    );
    const { s } = service();
    await s.cycle();
    const skipped = await ticks("skipper");
    // 10 ticks were due; the ones older than the 5 s grace are missed. At most the current
    // minute's tick (if within the grace) fires; the newest missed one is recorded without a task.
    expect(skipped.filter((r) => r.task_id !== null).length).toBeLessThanOrEqual(1);
    expect(skipped.at(-1)?.tick_at.getTime()).toBeGreaterThan(Date.now() - 70_000);
    const caught = await ticks("catcher");
    const fired = caught.filter((r) => r.task_id !== null);
    expect(fired.length).toBeGreaterThanOrEqual(3);
    expect(fired.length).toBeLessThanOrEqual(4);
    // A second cycle fires nothing more until the next tick.
    const before = (await ticks("catcher")).length;
    await s.cycle();
    expect((await ticks("catcher")).length).toBe(before);
  });

  it("a deposed leader's cron writes nothing and steps down (epoch fence)", async () => {
    await publish({ m: minute("skip") });
    await pool.query("UPDATE weft.leader SET epoch = 7");
    const { s, deposed } = service(6);
    await s.cycle();
    expect(await ticks("m")).toEqual([]);
    expect(deposed).toEqual(["deposed"]);
  });

  it("a slot cron ensures the slots that closed since the previous tick, and no task of its own", async () => {
    await publish({
      hourly: { ...minute("skip"), slot: { every: "1m", timeZone: "UTC", ordered: false } },
    });
    await pool.query(
      "INSERT INTO weft.cron_ticks (task_name, tick_at) VALUES ('hourly', date_trunc('minute', now()) - interval '3 minutes')",
    );
    const { s } = service();
    await s.cycle();
    const slots = await pool.query<{ slot_start: Date; slot_end: Date }>(
      "SELECT slot_start, slot_end FROM weft.slots WHERE task_name = 'hourly' ORDER BY slot_start",
    );
    // Every slot is closed (ends before now), and they are contiguous from the previous tick's minute on.
    const now = Date.now();
    for (const r of slots.rows) expect(r.slot_end.getTime()).toBeLessThanOrEqual(now);
    for (let i = 1; i < slots.rows.length; i++) {
      expect(slots.rows[i]?.slot_start.getTime()).toBe(slots.rows[i - 1]?.slot_end.getTime());
    }
    const tasks = await pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM weft.tasks WHERE task_name = 'hourly'",
    );
    expect(tasks.rows[0]?.n).toBe(slots.rows.length);
  });
});
