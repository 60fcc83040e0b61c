import type { PlannerConfig } from "../config.js";
import type { Queryable } from "../db/pg.js";
import type { Store } from "../store/index.js";

/**
 * Due promotion, inside the leader's cycle (on its connection, fenced by its
 * epoch): moves PARKED tasks whose run_after passed (retries, delays) to READY,
 * and keeps when the earliest of the others is due, so that the planner sleeps
 * no longer than that and looks again then.
 */
export class DuePromotion {
  /** When (local monotonic ms) the earliest PARKED run_after is due; Infinity if unknown or none. */
  private nextDueAt = Number.POSITIVE_INFINITY;

  constructor(
    private readonly store: Store,
    private readonly config: Pick<PlannerConfig, "batchSize">,
  ) {}

  /**
   * Whether cycle number \`cycle\` (from 1) looks for due tasks: with every sweep
   * (\`swept\`), and otherwise when the earliest is due. A new leader looks in
   * its second cycle (the first places what is ready), then when the earliest
   * is due.
   */
  due(cycle: number, swept: boolean): boolean {
    return swept || cycle === 2 || performance.now() >= this.nextDueAt;
  }

  /** Promotes up to a batch of due tasks; returns how many. */
  async run(db: Queryable, epoch: number): Promise<number> {
    const { batchSize } = this.config;
    const due = await this.store.planner.promoteDue(db, batchSize, epoch);
    // More due than one batch: go again at once.
    this.nextDueAt =
      due.promoted >= batchSize
        ? performance.now()
        : due.nextDueMs === null
          ? Number.POSITIVE_INFINITY
          : performance.now() + due.nextDueMs;
    return due.promoted;
  }

  /** A retry was recorded that is due in \`ms\`; returns whether that is sooner than known (the planner wakes). */
  dueIn(ms: number): boolean {
    const at = performance.now() + Math.max(0, ms);
    if (at >= this.nextDueAt) return false;
    this.nextDueAt = at;
    return true;
  }

  /** Milliseconds until the earliest known PARKED task is due: 0 if due now, Infinity if none is known. */
  untilDue(): number {
    return Math.max(0, Math.ceil(this.nextDueAt - performance.now()));
  }
}
