import type { PlannerConfig } from "../config.js";
import type { Queryable } from "../db/pg.js";
import type { EventLogger } from "../logger.js";
import type { Store } from "../store/index.js";
import type { TableSize } from "../store/planner.js";

/**
 * Statistics refreshed on growth. A connection plans a hot statement once and
 * keeps the plan (generic plans, see the engine) until the statistics of its
 * tables change. A plan made while the task table held a handful of rows scans
 * it whole: at 10,000 rows one apply took 810 ms instead of a few. So once the
 * table has grown past GROWTH_FACTOR times the size the plans were made at, the
 * leader takes fresh statistics before it applies, and every connection
 * re-plans. The size plans were made at is taken as the larger of the table's
 * size when this leader started (or last refreshed) and the size its current
 * statistics were taken at (pg_class.relpages, which autovacuum's ANALYZE
 * moves too). Four times, not two: the updates of a task's life alone about
 * double the table's pages (old row versions) without adding a row, and the
 * choice that matters (a scan or an index) does not turn on a factor of two.
 * Below GROWTH_MIN_PAGES of growth (about 2,000 tasks) a scan costs less than
 * the refresh.
 */
export const GROWTH_FACTOR = 4;
const GROWTH_MIN_PAGES = 64;

/** Whether the task table has outgrown the size its cached plans were made at (see GROWTH_FACTOR). */
export function outgrewPlans(table: TableSize, plannedAtPages: number): boolean {
  const basis = Math.max(plannedAtPages, table.statsPages);
  return table.pages > GROWTH_FACTOR * basis && table.pages - basis >= GROWTH_MIN_PAGES;
}

/** Keeps the task table's statistics as fresh as the leader's cached plans need (see GROWTH_FACTOR). */
export class PlanStatistics {
  /** The task table's size when this leader's plans were made; unknown before the first read. */
  private plannedAtPages: number | undefined;

  constructor(
    private readonly store: Store,
    /** The leader connection: the refresh runs where the plans it renews are cached. */
    private readonly db: Queryable,
    private readonly config: Pick<PlannerConfig, "refreshStatisticsOnGrowth">,
    private readonly log: EventLogger,
  ) {}

  /** Refreshes the task table's statistics if it outgrew its plans (see GROWTH_FACTOR). */
  async keepStatisticsFresh(table: TableSize): Promise<void> {
    if (this.plannedAtPages === undefined) {
      this.plannedAtPages = table.pages;
      return;
    }
    if (!this.config.refreshStatisticsOnGrowth || !outgrewPlans(table, this.plannedAtPages)) return;
    this.plannedAtPages = table.pages;
    const started = performance.now();
    await this.store.planner.refreshStatistics(this.db);
    this.log.debug(
      {
        event: "planner.statistics_refreshed",
        pages: table.pages,
        statsPages: table.statsPages,
        ms: Math.round(performance.now() - started),
      },
      "the task table outgrew its plans; refreshed its statistics",
    );
  }
}
