/**
 * The completion batcher: records the outcomes of ended attempts in batches,
 * one statement per batch (fenced by token, idempotent), up to
 * FLUSHES_IN_FLIGHT batches at once. Its states:
 *
 * - IDLE: nothing queued, no batch in flight. `queue()` moves it to SCHEDULED.
 * - SCHEDULED (`flushPending`): a flush runs in the next turn of the event
 *   loop, so the attempts that end in the same tick share a batch. That turn
 *   tells the worker that room was freed and starts batches while fewer than
 *   FLUSHES_IN_FLIGHT are in flight: FLUSHING (IDLE if nothing was queued).
 * - FLUSHING (`flushesInFlight > 0`): batches of up to `completionBatchSize`
 *   outcomes are recorded; a batch that fails is sent again after a backoff
 *   (one outcome at a time after three failures not caused by the database's
 *   state). Outcomes queued meanwhile wait for the next batches. A batch that
 *   ends moves it to SCHEDULED if outcomes are queued, else, with no batch in
 *   flight, to IDLE (resolving `drain()`).
 * - ABANDONED (`abandoned`): set by `settle()` when the outcomes could not be
 *   recorded within stop()'s grace period; a batch that fails now gives up
 *   instead of waiting (its tasks are re-planned once the node is declared
 *   dead). `start()` clears it.
 *
 * What stop() does in each (`settle()`, then `clear()`): IDLE, `settle()`
 * waits only for the key releases; SCHEDULED and FLUSHING, it waits for IDLE
 * and the key releases for the grace period (at least 1 s), else the batcher
 * is ABANDONED; then `clear()` drops the outcomes still queued. Outcomes that
 * end after that are dropped before they reach the batcher (the worker is
 * closed).
 */
import { isTransientError } from "../db/pg.js";
import { toTaskErrorInfo } from "../errors.js";
import { backoffMs, OutageLog } from "../services/service.js";
import type { OutcomeRow } from "../store/types.js";
import type { WorkerContext } from "./context.js";
import type { KeyReleases } from "./key-releases.js";

/** Completion batches recorded at the same time by one node. */
export const FLUSHES_IN_FLIGHT = 2;

/** What the batcher tells its worker. */
export interface BatcherHost {
  /** In the turn after attempts ended: their room is free (see Room). */
  roomFreed(): void;
  /** A batch was recorded (or given up): its attempts are done here. */
  recorded(batch: readonly OutcomeRow[]): void;
}

export class CompletionBatcher {
  private outcomes: OutcomeRow[] = [];
  private flushesInFlight = 0;
  /** Outcomes in the completion batches in flight. */
  private recording = 0;
  private flushPending = false;
  private readonly drainWaiters: (() => void)[] = [];
  private abandoned = false;
  /** Outcomes that cannot be recorded (shared with the exactly-once read-back). */
  readonly outage: OutageLog;

  constructor(
    private readonly ctx: WorkerContext,
    private readonly batchSize: number,
    private readonly releases: KeyReleases,
    private readonly host: BatcherHost,
  ) {
    this.outage = new OutageLog(ctx.log, "recording outcomes");
  }

  /** Outcomes queued, not in a batch yet. */
  get queued(): number {
    return this.outcomes.length;
  }

  /** Outcomes queued or in the batches in flight (see Room). */
  get unrecorded(): number {
    return this.outcomes.length + this.recording;
  }

  /** Whether settle() gave up on the outcomes not recorded yet. */
  get isAbandoned(): boolean {
    return this.abandoned;
  }

  start(): void {
    this.abandoned = false;
  }

  /**
   * At stop: records the outcomes queued and waits for the key releases.
   * Outcomes that cannot be recorded (database unreachable) within the grace
   * period are given up: their tasks are re-planned when the node is declared dead.
   */
  async settle(graceMs: number): Promise<void> {
    const drained = await Promise.race([
      this.drain()
        .then(() => this.releases.settled())
        .then(() => true),
      this.ctx.sleeps.sleep(Math.max(graceMs, 1_000)).then(() => false),
    ]);
    if (!drained) {
      this.abandoned = true;
      this.ctx.log.warn(
        { event: "node.outcomes_abandoned", outcomes: this.outcomes.length },
        "could not record outcomes before stopping",
      );
    }
  }

  /** Drops the outcomes queued (the node stopped, or its assignments are void). */
  clear(): void {
    this.outcomes = [];
  }

  /** Queues an outcome for the next completion batch. */
  queue(outcome: OutcomeRow): void {
    this.outcomes.push(outcome);
    this.scheduleFlush();
  }

  /**
   * Starts completion batches: up to FLUSHES_IN_FLIGHT at once, each taking up
   * to \`completionBatchSize\` outcomes. Two in flight keep the database busy
   * while the planner reacts to the previous batch (one at a time left it idle
   * between stages). A batch started in the next turn of the event loop collects
   * the attempts that finish in the same tick.
   */
  private scheduleFlush(): void {
    if (this.flushPending) return;
    this.flushPending = true;
    setImmediate(() => {
      this.flushPending = false;
      // Attempts ended since the last turn: their room is free (see Room.room).
      this.host.roomFreed();
      while (this.flushesInFlight < FLUSHES_IN_FLIGHT && this.outcomes.length > 0) {
        const batch = this.outcomes.splice(0, this.batchSize);
        this.flushesInFlight++;
        this.recording += batch.length;
        void this.flushBatch(batch).finally(() => {
          this.flushesInFlight--;
          this.recording -= batch.length;
          if (this.outcomes.length > 0) this.scheduleFlush();
          else if (this.flushesInFlight === 0) for (const w of this.drainWaiters.splice(0)) w();
        });
      }
    });
  }

  /** Resolves when every outcome queued so far is recorded (or given up). */
  private drain(): Promise<void> {
    if (this.outcomes.length === 0 && this.flushesInFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.drainWaiters.push(resolve);
      this.scheduleFlush();
    });
  }

  private async flushBatch(batch: readonly OutcomeRow[]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const startedAt = Date.now();
      try {
        await this.record(batch);
        this.outage.success();
        break;
      } catch (error) {
        // A read-only server or a lost connection fails every batch alike: wait
        // for it. Anything else (a statement timeout included: the batch may be
        // too long for it) goes outcome by outcome after three tries.
        const waitForDatabase = isTransientError(error) && (error as { code?: string }).code !== "57014";
        if (!waitForDatabase && attempt >= 2) {
          await this.recordOneByOne(batch);
          break;
        }
        this.outage.failure(error, startedAt);
        if (this.abandoned) return;
        await this.ctx.sleeps.sleep(backoffMs(attempt));
      }
    }
    this.host.recorded(batch);
  }

  private async record(batch: readonly OutcomeRow[]): Promise<void> {
    const { metrics, store, hotPool, log } = this.ctx;
    const startedAt = metrics?.instruments !== undefined ? performance.now() : 0;
    const res = await store.worker.complete(hotPool, batch);
    const instruments = metrics?.instruments;
    if (instruments !== undefined) {
      instruments.completionBatch.record(batch.length);
      if (startedAt > 0) instruments.completionDuration.record((performance.now() - startedAt) / 1000);
      instruments.recorded(batch, res);
    }
    if (res.refused.length > 0) {
      log.info(
        { event: "task.outcomes_refused", tasks: res.refused },
        "outcomes refused: their assignments were revoked (fencing token changed)",
      );
    }
    this.releases.queue(res.heldKeys);
  }

  /**
   * A batch that keeps failing for a reason other than the connection: record
   * each outcome alone, and an outcome that cannot be stored as a failure
   * without its children, so one bad row cannot block the node.
   */
  private async recordOneByOne(batch: readonly OutcomeRow[]): Promise<void> {
    for (const o of batch) {
      const error = await this.recordAlone(o);
      if (error === undefined) continue;
      this.ctx.log.error(
        { event: "task.record_failed", err: error, taskId: o.id },
        "could not record outcome; recording it as a failure",
      );
      const failed: OutcomeRow = {
        ...o,
        state: "FAILED",
        result: null,
        error: JSON.stringify(toTaskErrorInfo(error)),
        children: [],
        edges: [],
        messages: [],
        retry: undefined,
      };
      const again = await this.recordAlone(failed);
      if (again !== undefined)
        this.ctx.log.error({ event: "task.record_failed", err: again, taskId: o.id }, "could not record failure");
    }
  }

  /**
   * Records one outcome; retries while the error is the database's state
   * (read-only, a timeout, the connection), never turning that into the
   * task's failure. Returns the error that belongs to the outcome itself.
   */
  private async recordAlone(o: OutcomeRow): Promise<unknown> {
    for (let attempt = 0; ; attempt++) {
      const startedAt = Date.now();
      try {
        await this.record([o]);
        this.outage.success();
        return undefined;
      } catch (error) {
        if (!isTransientError(error)) return error;
        this.outage.failure(error, startedAt);
        if (this.abandoned) return undefined;
        await this.ctx.sleeps.sleep(backoffMs(attempt));
      }
    }
  }
}
