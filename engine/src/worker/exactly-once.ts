import type pg from "pg";
import { connectClient, isConnectionError, type Queryable } from "../db/pg.js";
import { AttemptEndedError, AttemptNotCommittedError, AttemptsExhaustedError, UnknownTaskError } from "../errors.js";
import type { UpstreamOutcome } from "../handler.js";
import { encodePayload } from "../payload.js";
import { maxAttempts } from "../retry.js";
import { backoffMs } from "../services/service.js";
import type { Store } from "../store/index.js";
import type { AssignedTaskRow, OutcomeRow } from "../store/types.js";
import { encodeSpanContext, endAttemptSpan } from "../telemetry/traces.js";
import { type Attempts, completedOutcome, type Running, type Waiting, withTimeout } from "./attempt.js";
import type { WorkerContext } from "./context.js";
import { failureOutcome } from "./failure.js";
import type { KeyReleases } from "./key-releases.js";
import type { CompletionBatcher } from "./outcomes.js";
import type { Room } from "./room.js";

/**
 * The transaction of an exactly-once attempt, as its task sees it: queries are
 * refused once the attempt has ended (a task that timed out may still be
 * running, and the connection goes back to the pool).
 */
export class AttemptTransaction implements Queryable {
  open = true;
  constructor(readonly client: pg.PoolClient) {}

  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    if (!this.open) return Promise.reject(new AttemptEndedError("this attempt has ended; its transaction is closed"));
    return this.client.query<R>(text, values);
  }
}

/** A counting semaphore (FIFO). */
class Semaphore {
  private readonly waiting: (() => void)[] = [];
  constructor(private free: number) {}

  acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

/**
 * The attempts off the usual path (see Attempts.dispatch): exactly-once ones,
 * whose handler works and whose outcome is recorded in one transaction, and
 * attempts of an unknown task or past its last attempt, which fail at once.
 */
export class ExactlyOnce {
  /**
   * Exactly-once attempts hold a pooled connection for their whole run; a few
   * connections stay free for heartbeats, fetching and recording outcomes.
   */
  private readonly slots: Semaphore;

  constructor(
    private readonly ctx: WorkerContext,
    private readonly attempts: Attempts,
    private readonly room: Room<Waiting>,
    private readonly batcher: CompletionBatcher,
    private readonly releases: KeyReleases,
    /** An exactly-once attempt's outcome is committed (or refused): the attempt is done here. */
    private readonly done: (id: string) => void,
  ) {
    this.slots = new Semaphore(Math.max(1, (ctx.pool.options.max ?? 10) - 4));
  }

  async execute(
    row: AssignedTaskRow,
    entry: Running,
    upstream: UpstreamOutcome[] | undefined,
    messages: unknown[] | undefined,
  ): Promise<void> {
    const { attempts } = this;
    const handler = attempts.handlers.get(row.task_name);
    const settings = attempts.settings.get(row.task_name);
    let outcome: OutcomeRow;
    let tx: AttemptTransaction | undefined;
    try {
      if (!handler || !settings) throw new UnknownTaskError(row.task_name, [...attempts.handlers.keys()]);
      // An attempt beyond the policy's last: the previous one was lost (node
      // died, deadline passed) after using the last attempt.
      const allowed = maxAttempts(settings.retry);
      if (row.attempt > allowed) throw new AttemptsExhaustedError(row.task_name, allowed);
      if (handler.guarantee === "exactly-once") {
        await this.slots.acquire();
        let client: pg.PoolClient;
        try {
          client = await connectClient(this.ctx.pool);
        } catch (error) {
          this.slots.release();
          throw error;
        }
        tx = new AttemptTransaction(client);
        try {
          await client.query("BEGIN");
        } catch (error) {
          tx = undefined;
          client.release(true);
          this.slots.release();
          throw error;
        }
      }
      const execution = attempts.newExecution(row, entry, upstream, messages, tx);
      const value = await withTimeout(
        Promise.resolve(handler.execute(execution)),
        entry,
        row.task_name,
        settings.timeoutMs,
      );
      const result = encodePayload(row.task_name, "result", value, attempts.maxPayloadBytes);
      outcome = completedOutcome(row, handler, execution, result);
      if (tx) {
        const client = tx.client;
        tx.open = false;
        tx = undefined;
        if (entry.end()) this.room.ended();
        const span = entry.span;
        if (span !== undefined && row.awaited) outcome.span = encodeSpanContext(span.spanContext());
        const done = await this.commit(client, outcome).finally(() => this.slots.release());
        if (done) {
          if (span !== undefined) endAttemptSpan(span, outcome);
          this.ctx.metrics?.instruments?.recorded([outcome], { refused: [], retried: 0 });
          entry.span = undefined;
          this.done(row.id);
          return;
        }
        // Not committed (refused, or the commit failed): nothing of the attempt
        // is stored; record it as a failure so the policy decides.
        outcome = await failureOutcome(
          row,
          handler,
          settings,
          new AttemptNotCommittedError("the attempt's transaction did not commit"),
          this.ctx.log,
        );
      }
    } catch (error) {
      if (tx) {
        tx.open = false;
        await this.rollback(tx.client);
        this.slots.release();
      }
      outcome = await failureOutcome(row, handler, settings, error, this.ctx.log);
    }
    attempts.queueOutcome(row, entry, outcome);
  }

  /**
   * Records an exactly-once attempt's outcome in its own transaction, then
   * commits. Returns true when nothing more is to be recorded (committed, or
   * refused because the assignment was revoked), false when the attempt must be
   * recorded as failed. A connection lost during COMMIT is
   * resolved by reading the task back, never by guessing.
   */
  private async commit(client: pg.PoolClient, outcome: OutcomeRow): Promise<boolean> {
    let res: Awaited<ReturnType<Store["worker"]["complete"]>>;
    try {
      res = await this.ctx.store.worker.complete(client, [outcome]);
    } catch (error) {
      await this.rollback(client);
      this.ctx.log.warn(
        { event: "task.exactly_once_rolled_back", err: error, taskId: outcome.id },
        "could not record an exactly-once outcome; rolled back",
      );
      return false;
    }
    if (res.recorded === 0) {
      await this.rollback(client);
      this.ctx.log.info(
        { event: "task.exactly_once_refused", taskId: outcome.id },
        "exactly-once outcome refused (assignment revoked); its work was rolled back",
      );
      return true;
    }
    try {
      await client.query("COMMIT");
      client.release();
      this.releases.queue(res.heldKeys);
      return true;
    } catch (error) {
      client.release(error instanceof Error ? error : true);
      if (!isConnectionError(error)) return false;
      return this.committed(outcome);
    }
  }

  /** After a failed COMMIT: whether the outcome is in the database (read until the database answers). */
  private async committed(outcome: OutcomeRow): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      try {
        const recorded = await this.ctx.store.worker.isRecorded(this.ctx.pool, outcome.id, outcome.token);
        this.ctx.log.warn(
          { event: "task.commit_read_back", taskId: outcome.id, recorded },
          "COMMIT failed; outcome read back",
        );
        return recorded;
      } catch (error) {
        this.batcher.outage.failure(error);
        if (this.batcher.isAbandoned) return true;
        await this.ctx.sleeps.sleep(backoffMs(attempt));
      }
    }
  }

  private async rollback(client: pg.PoolClient): Promise<void> {
    try {
      await client.query("ROLLBACK");
      client.release();
    } catch (error) {
      client.release(error instanceof Error ? error : true);
    }
  }
}
