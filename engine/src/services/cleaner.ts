import type pg from "pg";
import type { CleanerConfig } from "../config.js";
import type { EventLogger } from "../logger.js";
import type { Store } from "../store/index.js";
import { LoopService, OutageLog } from "./service.js";

const FIRST_PASS_MAX_DELAY_MS = 10_000;

/**
 * Purges finished tasks (virtual queue DELETED) and finished workflows once they
 * are older than the retention, dead letters older than theirs, and expired
 * idempotency keys, in batches so no statement holds many locks.
 * Runs on the leader; running it twice at once would only skip locked rows.
 */
export class Cleaner extends LoopService {
  readonly name = "cleaner";
  private readonly outage: OutageLog;

  constructor(
    private readonly store: Store,
    private readonly pool: pg.Pool,
    private readonly config: CleanerConfig,
    private readonly log: EventLogger,
  ) {
    super();
    this.outage = new OutageLog(log, "cleaner");
  }

  /** One full pass; returns the number of tasks, workflows, dead letters and idempotency keys purged. */
  async clean(): Promise<{ tasks: number; workflows: number; deadLetters: number; idempotencyKeys: number }> {
    const { retentionMs, batchSize } = this.config;
    let tasks = 0;
    let workflows = 0;
    for (;;) {
      const n = await this.store.cleaner.purgeTasks(this.pool, retentionMs, batchSize);
      tasks += n;
      if (n < batchSize || this.stopping) break;
    }
    for (;;) {
      const n = await this.store.cleaner.purgeWorkflows(this.pool, retentionMs, batchSize);
      workflows += n;
      if (n < batchSize || this.stopping) break;
    }
    // Cron ticks older than the retention, except each task's newest.
    await this.store.cron.prune(this.pool, retentionMs);
    let deadLetters = 0;
    for (;;) {
      const n = await this.store.deadLetters.expire(this.pool, this.config.deadLetterRetentionMs, batchSize);
      deadLetters += n;
      if (n < batchSize || this.stopping) break;
    }
    let idempotencyKeys = 0;
    for (;;) {
      const n = await this.store.cleaner.purgeIdempotencyKeys(this.pool, batchSize);
      idempotencyKeys += n;
      if (n < batchSize || this.stopping) break;
    }
    if (tasks + workflows + deadLetters + idempotencyKeys > 0)
      this.log.debug(
        { event: "cleaner.purged", tasks, workflows, deadLetters, idempotencyKeys },
        "purged finished work",
      );
    return { tasks, workflows, deadLetters, idempotencyKeys };
  }

  /** True while stop() is under way, so a long purge ends early. */
  private stopping = false;

  override async stop(): Promise<void> {
    this.stopping = true;
    await super.stop();
    this.stopping = false;
  }

  /**
   * The first pass waits one interval (at most 10 s): a leader that just took
   * over places work first, and purging can wait.
   */
  protected override firstDelayMs(): number {
    return Math.min(this.config.intervalMs, FIRST_PASS_MAX_DELAY_MS);
  }

  protected async tick(): Promise<number> {
    try {
      await this.clean();
      this.outage.success();
    } catch (error) {
      this.outage.failure(error);
    }
    return this.config.intervalMs;
  }
}
