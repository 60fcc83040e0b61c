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
  const service = (epoch = 0, misfireGraceMs = 5_000) => {
    const deposed: string[] = [];
    const s = new CronService(
      store,
      pool,
      { nodeDeadAfterMs: 60_000, misfireGraceMs },
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
    // A grace of 10 minutes: every tick due below is on time and must fire.
    const { s } = service(0, 600_000);
    await s.cycle();
    const [baseline, ...more] = await ticks("m");
    expect(baseline?.task_id).toBeNull();
    expect(more).toEqual([]);
    // Move the baseline back before the start of the minute two minutes ago: the ticks of two
    // minutes ago, one minute ago and this minute are due (a fourth if the minute turns meanwhile).
    await pool.query(
      "UPDATE weft.cron_ticks SET tick_at = date_trunc('minute', now()) - interval '2 minutes' - interval '1 second'",
    );
    await s.cycle();
    const rows = await ticks("m");
    const fired = rows.slice(1);
    expect(fired.length).toBeGreaterThanOrEqual(3);
    expect(fired.length).toBeLessThanOrEqual(4);
    // One minute apart, the newest at most a minute old, each with exactly one task.
    for (let i = 1; i < fired.length; i++) {
      expect((fired[i]?.tick_at.getTime() ?? 0) - (fired[i - 1]?.tick_at.getTime() ?? 0)).toBe(60_000);
    }
    expect(fired.at(-1)?.tick_at.getTime()).toBeGreaterThan(Date.now() - 61_000);
    const tasks = await pool.query<{ id: string }>("SELECT id FROM weft.tasks WHERE task_name = 'm' ORDER BY id");
    expect(tasks.rows.map((r) => r.id).sort()).toEqual(fired.map((r) => r.task_id).sort());
    // A second cycle fires nothing more until the next tick.
    await s.cycle();
    const again = await ticks("m");
    expect(again.length - rows.length).toBeLessThanOrEqual(1);
    const after = await pool.query("SELECT id FROM weft.tasks WHERE task_name = 'm'");
    expect(after.rows.length - tasks.rows.length).toBe(again.length - rows.length);
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
    // The minutes three, two and one ago (and this one if the minute turned meanwhile).
    expect(slots.rows.length).toBeGreaterThanOrEqual(3);
    expect(slots.rows.length).toBeLessThanOrEqual(4);
    const now = Date.now();
    for (const r of slots.rows) expect(r.slot_end.getTime()).toBeLessThanOrEqual(now);
    expect(slots.rows.at(-1)?.slot_end.getTime()).toBeGreaterThan(now - 61_000);
    for (let i = 1; i < slots.rows.length; i++) {
      expect(slots.rows[i]?.slot_start.getTime()).toBe(slots.rows[i - 1]?.slot_end.getTime());
    }
    const tasks = await pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM weft.tasks WHERE task_name = 'hourly'",
    );
    expect(tasks.rows[0]?.n).toBe(slots.rows.length);
  });
});
