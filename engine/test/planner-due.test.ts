import type pg from "pg";
import { beforeEach, describe, expect, it } from "vitest";
import { freshDatabase, poolFor } from "../../test/support.js";
import { DuePromotion } from "../src/planner/due.js";
import { Store } from "../src/store/index.js";
import { newTask } from "./helpers.js";

/** The planner's due promotion on its own: PARKED (RUN_AFTER) tasks released when due. */
describe("due promotion", () => {
  const store = new Store("weft");
  const url = freshDatabase();
  let pool: pg.Pool;
  let epoch: number;

  /** A task PARKED for RUN_AFTER, due \`inMs\` from now on the database clock (negative: overdue). */
  const parked = async (inMs: number) => {
    const t = newTask();
    await store.schedule.insert(pool, [t], new Set([t.id]));
    await pool.query(
      `UPDATE weft.tasks SET queue = 'PARKED', park_reason = 'RUN_AFTER', run_after = now() + $2 * interval '1 ms' WHERE id = $1`,
      [t.id, inMs],
    );
    return t.id;
  };
  const queueOf = async (id: string) =>
    (
      await pool.query<{ queue: string; park_reason: string | null }>(
        "SELECT queue, park_reason FROM weft.tasks WHERE id = $1",
        [id],
      )
    ).rows[0];

  beforeEach(async () => {
    pool ??= poolFor(await url);
    await pool.query("TRUNCATE weft.tasks, weft.workflows, weft.nodes, weft.affinity_holders CASCADE");
    epoch = await store.planner.takeLeadership(pool, "leader");
  });

  it("promotes a due PARKED task, leaves one not yet due, and reports when that one is due", async () => {
    const due = await parked(-1_000);
    const later = await parked(5_000);
    const promotion = new DuePromotion(store, { batchSize: 100 });
    expect(promotion.untilDue()).toBe(Number.POSITIVE_INFINITY);

    expect(await promotion.run(pool, epoch)).toBe(1);
    expect(await queueOf(due)).toEqual({ queue: "READY", park_reason: null });
    expect(await queueOf(later)).toEqual({ queue: "PARKED", park_reason: "RUN_AFTER" });
    const untilDue = promotion.untilDue();
    expect(untilDue).toBeGreaterThan(3_000);
    expect(untilDue).toBeLessThanOrEqual(5_000);
    // Nothing else is due: the cycles that follow do not look until then.
    expect(promotion.due(3, false)).toBe(false);
  });

  it("a new leader looks in its second cycle and with every sweep; otherwise when the earliest is due", async () => {
    const promotion = new DuePromotion(store, { batchSize: 100 });
    expect(promotion.due(1, false)).toBe(false);
    expect(promotion.due(2, false)).toBe(true);
    expect(promotion.due(3, false)).toBe(false);
    expect(promotion.due(1, true)).toBe(true);
    // A retry recorded elsewhere (a `d:` notification) is due now: sooner than known, so the planner wakes.
    expect(promotion.dueIn(0)).toBe(true);
    expect(promotion.due(3, false)).toBe(true);
    expect(promotion.dueIn(60_000)).toBe(false);

    // Nothing parked: none is due, and none will be.
    expect(await promotion.run(pool, epoch)).toBe(0);
    expect(promotion.due(4, false)).toBe(false);
    expect(promotion.untilDue()).toBe(Number.POSITIVE_INFINITY);
  });

  it("more due than a batch: promotes a batch and is due again at once", async () => {
    const ids = [await parked(-3_000), await parked(-2_000), await parked(-1_000)];
    const promotion = new DuePromotion(store, { batchSize: 2 });
    expect(await promotion.run(pool, epoch)).toBe(2);
    expect(promotion.untilDue()).toBe(0);
    expect(promotion.due(5, false)).toBe(true);
    // Oldest run_after first.
    expect((await queueOf(ids[2] as string))?.queue).toBe("PARKED");
    expect(await promotion.run(pool, epoch)).toBe(1);
    expect((await queueOf(ids[2] as string))?.queue).toBe("READY");
  });

  it("with a stale epoch promotes nothing", async () => {
    const due = await parked(-1_000);
    await store.planner.takeLeadership(pool, "newer-leader");
    expect(await new DuePromotion(store, { batchSize: 100 }).run(pool, epoch)).toBe(0);
    expect(await queueOf(due)).toEqual({ queue: "PARKED", park_reason: "RUN_AFTER" });
  });
});
