// Tasks of the CLI test: a parent with children and a join, a task that always
// fails (a dead letter), one that waits to be cancelled, an ordered slot series
// and a cron schedule.
import type pg from "pg";
import { z } from "zod";
import { defineCronTask, defineJoin, defineSlotTask, defineTask, NonRetryableError } from "../../src/index.js";

/** Slots whose start is listed here fail (the test removes the row before re-opening them). */
export const SLOT_FAIL_DDL = "CREATE TABLE IF NOT EXISTS public.cli_slot_fail (start_at timestamptz PRIMARY KEY)";

/** Also what `weft serve --tasks` imports from this module in the test (its only definition export). */
export const item = defineTask({
  name: "item",
  input: z.object({ n: z.number().int() }),
  output: z.object({ doubled: z.number().int() }),
  run: (ctx) => ({ doubled: ctx.input.n * 2 }),
});

export function cliTasks(pool: pg.Pool) {
  const summary = defineJoin({
    name: "summary",
    input: z.object({}),
    output: z.object({ total: z.number().int() }),
    upstream: item,
    run: (ctx) => ({
      total: ctx.upstream.reduce((sum, u) => sum + (u.status === "COMPLETED" ? u.result.doubled : 0), 0),
    }),
  });
  /** Two children and a join over them. */
  const order = defineTask({
    name: "order",
    input: z.object({ items: z.array(z.number().int()) }),
    output: z.null(),
    run: (ctx) => {
      const refs = ctx.input.items.map((n) => ctx.schedule(item, { n }));
      ctx.scheduleJoin(summary, {}, refs);
      return null;
    },
  });
  const boom = defineTask({
    name: "boom",
    input: z.object({ why: z.string() }),
    output: z.null(),
    retry: { mode: "OFF" },
    run: (ctx) => {
      throw new NonRetryableError(`boom: ${ctx.input.why}`);
    },
  });
  /** Runs until its signal aborts (a cancel). */
  const slow = defineTask({
    name: "slow",
    input: z.object({}),
    output: z.null(),
    run: (ctx) =>
      new Promise<null>((resolve) => {
        if (ctx.signal.aborted) resolve(null);
        ctx.signal.addEventListener("abort", () => resolve(null), { once: true });
      }),
  });
  const hourly = defineSlotTask({
    name: "hourly",
    every: "1h",
    ordered: true,
    output: z.null(),
    retry: { mode: "OFF" },
    run: async (ctx) => {
      const { rows } = await pool.query("SELECT 1 FROM public.cli_slot_fail WHERE start_at = $1", [ctx.input.start]);
      if (rows.length > 0) throw new NonRetryableError(`slot ${ctx.input.start.toISOString()} is marked to fail`);
      return null;
    },
  });
  /** Published by the node, never due during the test (noon on the 1st of January). */
  const yearly = defineCronTask({
    name: "yearly",
    cron: { expression: "0 12 1 1 *", timeZone: "Europe/Paris" },
    output: z.null(),
    run: () => null,
  });
  return { item, summary, order, boom, slow, hourly, yearly };
}
