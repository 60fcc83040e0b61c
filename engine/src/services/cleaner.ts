import type pg from "pg";
import type { CleanerConfig } from "../config.js";
import type { Logger } from "../logger.js";
import type { Store } from "../store/index.js";
import { OutageLog, type Service, Wakeup } from "./service.js";

/**
 * Purges finished tasks (virtual queue DELETED) and finished workflows once they
 * are older than the retention, in batches so no statement holds many locks.
 * Runs on the leader; running it twice at once would only skip locked rows.
 */
export class Cleaner implements Service {
  readonly name = "cleaner";
  private stopped = true;
  private stopRequested = false;
  private loop: Promise<void> | undefined;
  private readonly wakeup = new Wakeup();
  private readonly outage: OutageLog;

  constructor(
    private readonly store: Store,
    private readonly pool: pg.Pool,
    private readonly config: CleanerConfig,
    private readonly log: Logger,
  ) {
    this.outage = new OutageLog(log, "cleaner");
  }

  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    this.stopRequested = false;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopRequested = true;
    this.wakeup.wake();
    await this.loop;
  }

  /** One full pass; returns the number of tasks and workflows purged. */
  async clean(): Promise<{ tasks: number; workflows: number }> {
    const { retentionMs, batchSize } = this.config;
    let tasks = 0;
    let workflows = 0;
    for (;;) {
      const n = await this.store.cleaner.purgeTasks(this.pool, retentionMs, batchSize);
      tasks += n;
      if (n < batchSize || this.stopRequested) break;
    }
    for (;;) {
      const n = await this.store.cleaner.purgeWorkflows(this.pool, retentionMs, batchSize);
      workflows += n;
      if (n < batchSize || this.stopRequested) break;
    }
    if (tasks + workflows > 0) this.log.debug({ tasks, workflows }, "purged finished work");
    return { tasks, workflows };
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.clean();
        this.outage.success();
      } catch (error) {
        this.outage.failure(error);
      }
      await this.wakeup.wait(this.config.intervalMs);
    }
  }
}
