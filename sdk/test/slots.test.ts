import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { CronSchedule } from "../../engine/src/cron.js";
import { eventually, freshDatabase, maxOverlap, poolFor } from "../../test/support.js";
import {
  createWeft,
  defineCronTask,
  defineSlotTask,
  InvalidCronError,
  InvalidIntervalError,
  InvalidRangeError,
  SlotNotAcquiredError,
  type Weft,
} from "../src/index.js";

const H = 3_600_000;
const DAY = Date.parse("2026-11-02T00:00:00Z");

describe("time slots", () => {
  let weft: Weft;
  let pool: pg.Pool;

  const hourly = defineSlotTask({
    name: "hourly",
    every: "1h",
    output: z.object({ hour: z.number() }),
    retry: { mode: "FIXED", delayMs: 20, maxRetries: 2 },
    run: async (ctx) => {
      const hour = ctx.input.start.getUTCHours();
      const { rows } = await pool.query<{ n: number }>(
        `INSERT INTO public.slot_runs (start_at, end_at, attempt) VALUES ($1, $2, $3)
         RETURNING (SELECT count(*)::int FROM public.slot_runs WHERE start_at = $1) AS n`,
        [ctx.input.start, ctx.input.end, ctx.attempt],
      );
      // Hour 5 fails its first attempt; hour 7 always fails.
      if (hour === 7 || (hour === 5 && (rows[0]?.n ?? 0) === 0)) throw new Error(`hour ${hour} is broken`);
      return { hour };
    },
  });
  const ordered = defineSlotTask({
    name: "ordered",
    every: "15m",
    ordered: true,
    output: z.null(),
    run: async (ctx) => {
      const started = new Date();
      await new Promise((r) => setTimeout(r, 5));
      await pool.query(
        "INSERT INTO public.ordered_runs (start_at, started_at, ended_at) VALUES ($1, $2, clock_timestamp())",
        [ctx.input.start, started],
      );
      return null;
    },
  });

  /** Fails while public.flaky_switch says so: a slot task that exhausts its attempts, then is mended. */
  const flaky = defineSlotTask({
    name: "flaky",
    every: "1h",
    output: z.object({ attempt: z.number() }),
    retry: { mode: "FIXED", delayMs: 10, maxRetries: 1 },
    run: async (ctx) => {
      const { rows } = await pool.query<{ broken: boolean }>("SELECT broken FROM public.flaky_switch");
      if (rows[0]?.broken) throw new Error(`slot ${ctx.input.start.toISOString()} is broken`);
      return { attempt: ctx.attempt };
    },
  });

  beforeAll(async () => {
    const url = await freshDatabase();
    pool = poolFor(url);
    await pool.query(`CREATE TABLE public.slot_runs (start_at timestamptz, end_at timestamptz, attempt int);
      CREATE TABLE public.ordered_runs (start_at timestamptz, started_at timestamptz, ended_at timestamptz);
      CREATE TABLE public.flaky_switch (broken boolean NOT NULL); INSERT INTO public.flaky_switch VALUES (true)`);
    weft = createWeft({ connectionString: url, tasks: [hourly, ordered, flaky] });
    await weft.start();
  });
  afterAll(() => weft.stop());

  it("validates intervals, ranges and cron expressions with typed errors", async () => {
    const base = { name: "x", output: z.null(), run: () => null };
    expect(() => defineSlotTask({ ...base, every: "7m" })).toThrow(InvalidIntervalError);
    expect(() => defineSlotTask({ ...base, every: "2d" })).toThrow(InvalidIntervalError);
    expect(() => defineSlotTask({ ...base, every: "soon" })).toThrow(/<number><s\|m\|h\|d\|w>/);
    expect(() => defineSlotTask({ ...base, every: "1d", timeZone: "Mars/Olympus" })).toThrow(/unknown time zone/);
    expect(() => defineCronTask({ ...base, cron: "61 * * * *" })).toThrow(InvalidCronError);
    expect(() => defineCronTask({ ...base, cron: "* * *" })).toThrow(/5 fields/);
    expect(() => defineCronTask({ ...base, cron: { expression: "* * * * *", missed: "never" as never } })).toThrow(
      /cron\.missed/,
    );
    const series = weft.client.slots(hourly);
    await expect(series.ensure({ from: new Date(DAY), to: new Date(DAY - H) })).rejects.toThrow(InvalidRangeError);
    await expect(series.ensure({ from: new Date(DAY), to: new Date(DAY + 200_000 * H) })).rejects.toThrow(
      /at most 100000/,
    );
    await expect(series.coverage({ from: new Date(Number.NaN), to: new Date(DAY) })).rejects.toThrow(/valid Date/);
    expect(() => weft.client.slots("pull", { every: "13m" })).toThrow(InvalidIntervalError);
  });

  it("ensure creates each slot once (idempotent); the planner runs them; a failure is retried and shows in coverage", async () => {
    const series = weft.client.slots(hourly);
    const day = { from: new Date(DAY), to: new Date(DAY + 24 * H) };
    // An unaligned range is aligned to the interval.
    expect(await series.ensure({ from: new Date(DAY + 30 * 60_000), to: new Date(DAY + 12 * H) })).toBe(12);
    expect(await series.ensure(day)).toBe(12);
    expect(await series.ensure(day)).toBe(0);
    await eventually(async () => {
      const c = await series.coverage(day);
      return c.counts.complete === 23 && c.counts.failed === 1 ? c : undefined;
    }, 20_000);
    const c = await series.coverage(day);
    expect(c.counts).toEqual({ total: 24, complete: 23, skipped: 0, pending: 0, acquired: 0, failed: 1, missing: 0 });
    expect(c.grid).toBe(`${"#".repeat(7)}x${"#".repeat(16)}`);
    expect(c.gaps).toEqual([{ from: new Date(DAY + 7 * H), to: new Date(DAY + 8 * H) }]);
    const five = c.slots[5];
    expect(five?.attempts).toBe(1);
    expect(five?.message).toBe("hour 5 is broken");
    const seven = c.slots[7];
    expect(seven?.attempts).toBe(3);
    expect(seven?.status).toBe("FAILED");
    expect(await weft.client.deadLetters.list({ taskName: "hourly" })).toHaveLength(1);
    // Each slot's task ran with its own start and end; hour 5 twice (a retry), hour 7 three times.
    const { rows } = await pool.query<{ start_at: Date; end_at: Date; n: number }>(
      "SELECT start_at, end_at, count(*)::int AS n FROM public.slot_runs GROUP BY 1, 2 ORDER BY 1",
    );
    expect(rows).toHaveLength(24);
    for (const r of rows) expect(r.end_at.getTime() - r.start_at.getTime()).toBe(H);
    expect(rows.map((r) => r.n)).toEqual(rows.map((_, h) => (h === 5 ? 2 : h === 7 ? 3 : 1)));
    // The day before: missing.
    const before = await series.coverage({ from: new Date(DAY - 2 * H), to: new Date(DAY + H) });
    expect(before.grid).toBe("??#");
    expect(before.counts.missing).toBe(2);
  });

  it("re-opening a range runs exactly those slots again, with a new generation and the old one in history", async () => {
    const series = weft.client.slots(hourly);
    await pool.query("TRUNCATE public.slot_runs");
    const range = { from: new Date(DAY + 10 * H), to: new Date(DAY + 13 * H) };
    expect(await series.reopen(range)).toBe(3);
    await eventually(async () => ((await series.coverage(range)).counts.complete === 3 ? true : undefined), 20_000);
    const c = await series.coverage(range);
    expect(c.slots.map((s) => s.generation)).toEqual([2, 2, 2]);
    expect(c.slots[0]?.history[0]).toMatchObject({ generation: 1, status: "COMPLETE" });
    const { rows } = await pool.query<{ start_at: Date }>("SELECT start_at FROM public.slot_runs ORDER BY 1");
    expect(rows.map((r) => r.start_at.getTime())).toEqual([10, 11, 12].map((h) => DAY + h * H));
    // Only finished slots are re-opened: nothing in a range without slots.
    expect(await series.reopen({ from: new Date(DAY - 5 * H), to: new Date(DAY - H) })).toBe(0);
  });

  it("a requeued slot task finishes its slot: FAILED, requeued to AVAILABLE, then COMPLETE; a re-opened slot is not the old task's", async () => {
    const series = weft.client.slots(flaky);
    const range = { from: new Date(DAY), to: new Date(DAY + 2 * H) };
    const deadLetters = async () =>
      (await weft.client.deadLetters.list({ taskName: "flaky" })).sort((a, b) =>
        a.slot && b.slot ? a.slot.start.getTime() - b.slot.start.getTime() : 0,
      );
    expect(await series.ensure(range)).toBe(2);
    await eventually(async () => ((await deadLetters()).length === 2 ? true : undefined), 20_000);
    expect((await series.coverage(range)).grid).toBe("xx");
    const first = await deadLetters();
    // The dead letter names its slot: the series and the start.
    expect(first.map((d) => d.slot)).toEqual([
      { taskName: "flaky", every: "1h", start: new Date(DAY) },
      { taskName: "flaky", every: "1h", start: new Date(DAY + H) },
    ]);
    const [zero, one] = first as [(typeof first)[0], (typeof first)[0]];
    // Slot 1 is re-opened while still broken: generation 2 with a task of its own, which fails too.
    expect(await series.reopen({ from: new Date(DAY + H), to: new Date(DAY + 2 * H) })).toBe(1);
    await eventually(async () => {
      const c = await series.coverage(range);
      return c.slots[1]?.generation === 2 && c.slots[1].status === "FAILED" ? true : undefined;
    }, 20_000);
    const gen2 = (await deadLetters()).find((d) => d.taskId !== zero.taskId && d.taskId !== one.taskId);
    expect(gen2?.slot).toEqual({ taskName: "flaky", every: "1h", start: new Date(DAY + H) });
    await pool.query("UPDATE public.flaky_switch SET broken = false");

    // Slot 0's task requeued: the slot is AVAILABLE again (its attempts kept) until the task succeeds.
    expect(await weft.client.deadLetters.requeue([zero.taskId])).toEqual([zero.taskId]);
    // Generation 1's task of slot 1 requeued: it runs, but the slot now belongs to generation 2.
    expect(await weft.client.deadLetters.requeue([one.taskId])).toEqual([one.taskId]);
    for (const ref of [zero, one]) await weft.client.workflow(ref.workflowId).wait({ timeoutMs: 20_000 });
    let c = await series.coverage(range);
    expect(c.grid).toBe("#x");
    expect(c.slots[0]).toMatchObject({ status: "COMPLETE", generation: 1, attempts: 2, completedBy: zero.taskId });
    expect(c.slots[0]?.message).toMatch(/is broken/);
    expect(c.slots[1]).toMatchObject({ status: "FAILED", generation: 2, attempts: 2, completedBy: null });
    expect(await weft.client.getTask(zero.taskId)).toMatchObject({ state: "COMPLETED", result: { attempt: 1 } });
    expect(await weft.client.getTask(one.taskId)).toMatchObject({ state: "COMPLETED" });

    // Generation 2's own task requeued: that one completes slot 1.
    await weft.client.deadLetters.requeue([gen2?.taskId as string]);
    await weft.client.workflow(gen2?.workflowId as string).wait({ timeoutMs: 20_000 });
    c = await series.coverage(range);
    expect(c.grid).toBe("##");
    expect(c.slots[1]).toMatchObject({ status: "COMPLETE", generation: 2, completedBy: gen2?.taskId });
    expect(await deadLetters()).toEqual([]);
  });

  it("ordered: a series' slots run one at a time in time order, even when ensured out of order", async () => {
    const series = weft.client.slots(ordered);
    await series.ensure({ from: new Date(DAY + 4 * H), to: new Date(DAY + 6 * H) });
    await series.ensure({ from: new Date(DAY), to: new Date(DAY + 4 * H) });
    const range = { from: new Date(DAY), to: new Date(DAY + 6 * H) };
    await eventually(async () => ((await series.coverage(range)).counts.complete === 24 ? true : undefined), 30_000);
    const { rows } = await pool.query<{ start_at: Date; started_at: Date; ended_at: Date }>(
      "SELECT start_at, started_at, ended_at FROM public.ordered_runs ORDER BY started_at",
    );
    expect(maxOverlap(rows)).toBe(1);
    // The later range was ensured first and ran first (it held the series); after it, time order.
    const starts = rows.map((r) => r.start_at.getTime());
    const firstEarly = starts.findIndex((t) => t < DAY + 4 * H);
    const rest = starts.slice(firstEarly);
    expect(rest).toEqual([...rest].sort((a, b) => a - b));
  });

  it("calendar days in a time zone are 23 and 25 hours long across daylight-saving changes", async () => {
    const berlin = weft.client.slots("berlin-daily", { every: "1d", timeZone: "Europe/Berlin" });
    await berlin.ensure({ from: new Date("2026-03-28T12:00:00Z"), to: new Date("2026-03-31T00:00:00Z") });
    await berlin.ensure({ from: new Date("2026-10-24T12:00:00Z"), to: new Date("2026-10-27T00:00:00Z") });
    const spring = await berlin.coverage({
      from: new Date("2026-03-28T00:00:00Z"),
      to: new Date("2026-03-31T00:00:00Z"),
    });
    expect(spring.slots.map((s) => [s.start.toISOString(), (s.end.getTime() - s.start.getTime()) / H])).toEqual([
      ["2026-03-27T23:00:00.000Z", 24],
      ["2026-03-28T23:00:00.000Z", 23],
      ["2026-03-29T22:00:00.000Z", 24],
      ["2026-03-30T22:00:00.000Z", 24],
    ]);
    const autumn = await berlin.coverage({
      from: new Date("2026-10-25T00:00:00Z"),
      to: new Date("2026-10-26T12:00:00Z"),
    });
    // From 02:00 local on 25 October: aligned down to that local midnight (22:00Z the day before).
    expect(autumn.slots.map((s) => [s.start.toISOString(), (s.end.getTime() - s.start.getTime()) / H])).toEqual([
      ["2026-10-24T22:00:00.000Z", 25],
      ["2026-10-25T23:00:00.000Z", 24],
    ]);
  });

  it("pull mode: acquire in the caller's transaction, complete / fail / skip; coverage sees what is held", async () => {
    const pull = weft.client.slots("pull-hourly", { every: "1h", maxAttempts: 2 });
    const range = { from: new Date(DAY), to: new Date(DAY + 4 * H) };
    expect(await pull.ensure(range)).toBe(4);
    const a = await pool.connect();
    const b = await pool.connect();
    try {
      await a.query("BEGIN");
      await b.query("BEGIN");
      const first = await pull.acquire(a, { range, worker: "a" });
      const second = await pull.acquire(b, { range, worker: "b" });
      expect(first?.start).toEqual(new Date(DAY));
      // SKIP LOCKED: b gets the next slot, not a's.
      expect(second?.start).toEqual(new Date(DAY + H));
      const held = await pull.coverage(range);
      expect(held.grid).toBe(">>..");
      await first?.complete();
      await expect(first?.complete()).rejects.toBeInstanceOf(SlotNotAcquiredError);
      await second?.fail("source not reachable");
      await a.query("COMMIT");
      await b.query("COMMIT");
      const newest = await pull.acquire(a, { range, order: "newest" });
      expect(newest?.start).toEqual(new Date(DAY + 3 * H));
    } finally {
      await a.query("ROLLBACK").catch(() => undefined);
      a.release();
      b.release();
    }
    // process(): the transaction managed; a throw fails the slot (its writes undone), "skip" skips.
    expect(await pull.process({ range }, async () => undefined)).toEqual(new Date(DAY + H));
    expect(await pull.process({ range }, async () => "skip")).toEqual(new Date(DAY + 2 * H));
    const failed = await pull.process({ range }, async (_slot, tx) => {
      await tx.query("INSERT INTO public.slot_runs (start_at) VALUES (now())");
      throw new Error("boom");
    });
    expect(failed).toEqual(new Date(DAY + 3 * H));
    // The retry of a failed slot: its attempt count is 1; a second failure makes it FAILED (maxAttempts 2).
    await pull.process({ range }, async (slot) => {
      expect(slot.attempts).toBe(1);
      expect(slot.message).toBe("boom");
      throw new Error("boom again");
    });
    expect(await pull.process({ range }, async () => undefined)).toBeNull();
    const c = await pull.coverage(range);
    expect(c.grid).toBe("##-x");
    expect(c.slots[1]?.attempts).toBe(1);
    expect(c.slots[1]?.completedBy).toBeNull();
    expect(c.slots[0]?.completedBy).toBe("a");
    const { rows } = await pool.query("SELECT 1 FROM public.slot_runs WHERE end_at IS NULL");
    expect(rows).toEqual([]);
    // A FAILED slot can be taken again on request.
    expect(await pull.process({ range, status: ["FAILED"] }, async () => undefined)).toEqual(new Date(DAY + 3 * H));
    expect((await pull.coverage(range)).grid).toBe("##-#");
    await expect(weft.client.slots(hourly).acquire(pool, { range })).rejects.toThrow(/run by the engine/);
  });

  it("cron ticks: once per day across both daylight-saving changes, with the documented rule", () => {
    const daily = new CronSchedule("30 2 * * *", "Europe/Berlin");
    const ticks = daily.between(new Date("2026-03-01T00:00:00Z"), new Date("2026-12-01T00:00:00Z"), 1_000);
    const days = new Set(ticks.map((t) => t.toLocaleDateString("en-CA", { timeZone: "Europe/Berlin" })));
    expect(ticks).toHaveLength(275);
    expect(days.size).toBe(275);
    // Spring forward: 02:30 does not exist on 29 March; it fires at 03:00 local (01:00Z).
    expect(ticks.find((t) => t.toISOString().startsWith("2026-03-29"))?.toISOString()).toBe("2026-03-29T01:00:00.000Z");
    // Fall back: 02:30 happens twice on 25 October; it fires once, at the first (CEST, 00:30Z).
    expect(ticks.filter((t) => t.toISOString().startsWith("2026-10-25")).map((t) => t.toISOString())).toEqual([
      "2026-10-25T00:30:00.000Z",
    ]);
    const seconds = new CronSchedule("*/2 * * * * *");
    expect(seconds.between(new Date("2026-01-01T00:00:00Z"), new Date("2026-01-01T00:00:10Z"), 100)).toHaveLength(5);
  });
});
