import type { Span } from "@opentelemetry/api";
import type { Queryable } from "../db/pg.js";
import { AttemptRevokedError, TaskTimeoutError } from "../errors.js";
import type { TaskHandler, UpstreamOutcome } from "../handler.js";
import { type EventLogger, RateLimitedLog } from "../logger.js";
import { encodePayload } from "../payload.js";
import { maxAttempts } from "../retry.js";
import type { AssignedTaskRow, OutcomeRow } from "../store/types.js";
import type { ResolvedTaskSettings } from "../task-settings.js";
import { count, type Metrics, ulidTime } from "../telemetry/metrics.js";
import {
  abortAttemptSpan,
  encodeSpanContext,
  endAttemptSpan,
  scheduledTimeAttributes,
  type Tracing,
} from "../telemetry/traces.js";
import type { WorkerContext } from "./context.js";
import { Execution, type ExecutionHost } from "./execution.js";
import { failureOutcome, logFailure } from "./failure.js";
import type { CompletionBatcher } from "./outcomes.js";
import type { Room } from "./room.js";

/**
 * One attempt running here. Its AbortController is made only when the task
 * reads \`signal\`: creating one per task was a visible share of the worker's CPU.
 */
export class Running {
  /** The attempt ended; its outcome waits for (or is in) a completion batch. */
  finishing = false;
  /** Its handler was started, and counts against the node's capacity until it ends. */
  counted = false;
  /** The attempt's span, while it is open (tracing only; see telemetry/traces.ts). */
  span: Span | undefined;
  private controller: AbortController | undefined;
  private abortReason: unknown;
  private aborted = false;

  /** When the attempt started (performance.now()), with metrics on. */
  startedAt = 0;

  constructor(
    readonly token: number,
    readonly taskName: string,
  ) {}

  /** Marks the attempt ended; true the first time for an attempt that counted against the capacity. */
  end(): boolean {
    this.finishing = true;
    const counted = this.counted;
    this.counted = false;
    return counted;
  }

  get isAborted(): boolean {
    return this.aborted;
  }

  /** Aborted for a reason other than its timeout: revoked, or the node stops. Its outcome will not count. */
  get isRevoked(): boolean {
    return this.aborted && !(this.abortReason instanceof TaskTimeoutError);
  }

  get signal(): AbortSignal {
    if (this.aborted && !this.controller) return AbortSignal.abort(this.abortReason);
    this.controller ??= new AbortController();
    return this.controller.signal;
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.abortReason = reason;
    if (this.span !== undefined) {
      const timedOut = reason instanceof TaskTimeoutError;
      abortAttemptSpan(this.span, reason, timedOut);
      if (!timedOut) this.span = undefined;
    }
    this.controller?.abort(reason);
  }
}

/** An assignment waiting for room (see Worker.launch). */
export interface Waiting {
  readonly row: AssignedTaskRow;
  readonly entry: Running;
  readonly upstream: UpstreamOutcome[] | undefined;
  readonly messages: unknown[] | undefined;
}

/** Whether a handler returned a promise (or any thenable) rather than its result. */
function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === "object" || typeof value === "function") &&
    typeof (value as { then?: unknown }).then === "function"
  );
}

/** A successful attempt's outcome, with what it scheduled; \`result\` is JSON text. */
export function completedOutcome(
  row: AssignedTaskRow,
  handler: TaskHandler,
  execution: Execution,
  result: string,
): OutcomeRow {
  return {
    id: row.id,
    workflowId: row.workflow_id,
    taskName: row.task_name,
    token: row.token,
    span: undefined,
    state: "COMPLETED",
    result,
    error: null,
    children: execution.children,
    edges: execution.edges,
    messages: execution.outbox,
    slot: handler.slot !== undefined,
  };
}

/** Races the attempt against its timeout: at the timeout the signal aborts and the attempt fails. */
export function withTimeout<T>(
  work: Promise<T>,
  entry: Running,
  taskName: string,
  timeoutMs: number | undefined,
): Promise<T> {
  if (timeoutMs === undefined) return work;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new TaskTimeoutError(taskName, timeoutMs);
      entry.abort(error);
      reject(error);
    }, timeoutMs);
    // An attempt that never settles (aborted at stop, say) must not keep the process alive.
    timer.unref();
  });
  // The attempt may still settle after the timeout; its result is ignored.
  work.catch(() => undefined);
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** What the attempts ask of their worker. */
export interface AttemptHost {
  /** Whether the attempt is still this node's (not replaced, the worker not closed): its outcome is queued. */
  isCurrent(id: string, entry: Running): boolean;
  /** An attempt ended: wakes stop() once every attempt has. */
  checkIdle(): void;
  /** Runs an attempt off the usual path (see dispatch): exactly-once, unknown, or past its last attempt. */
  execute(
    row: AssignedTaskRow,
    entry: Running,
    upstream: UpstreamOutcome[] | undefined,
    messages: unknown[] | undefined,
  ): Promise<void>;
}

/** Starts attempts, runs them on the usual path, and queues their outcomes. */
export class Attempts {
  /** Spans of the upstream tasks of joins about to start, for their links (tracing only). */
  readonly upstreamSpans = new Map<string, (string | null)[]>();
  /** Attempts started since start (for tests and the bench). */
  started = 0;
  /** Failed attempts, retries and dead letters: at info/warn, but never a flood (see RateLimitedLog). */
  readonly failureLog: RateLimitedLog;

  private readonly log: EventLogger;
  private readonly tracing: Tracing | undefined;
  private readonly metrics: Metrics | undefined;
  /** Shared by every attempt of this worker (see ExecutionHost). */
  private readonly executionHost: ExecutionHost;

  constructor(
    ctx: WorkerContext,
    node: { readonly nodeId: string },
    readonly handlers: ReadonlyMap<string, TaskHandler>,
    readonly settings: ReadonlyMap<string, ResolvedTaskSettings>,
    readonly maxPayloadBytes: number,
    private readonly room: Room<Waiting>,
    private readonly batcher: CompletionBatcher,
    private readonly host: AttemptHost,
  ) {
    const { store, pool, log, tracing } = ctx;
    this.log = log;
    this.tracing = tracing;
    this.metrics = ctx.metrics;
    this.failureLog = new RateLimitedLog(log);
    this.executionHost = {
      // Read when asked: the node id is known once the registry has started.
      get nodeId() {
        return node.nodeId;
      },
      log,
      tracing,
      saveAttemptState: async (row, state) => {
        const saved = await store.worker.saveState(pool, row.id, row.token, state);
        if (!saved) throw new AttemptRevokedError(`task ${row.id}: this attempt was revoked; its state was not saved`);
      },
    };
  }

  start(
    row: AssignedTaskRow,
    entry: Running,
    upstream: UpstreamOutcome[] | undefined,
    messages: unknown[] | undefined,
  ): void {
    entry.counted = true;
    this.room.started();
    this.started++;
    const instruments = this.metrics?.instruments;
    if (instruments !== undefined) {
      entry.startedAt = performance.now();
      count(instruments.started, row.task_name);
      if (row.attempt === 1) {
        instruments.scheduleToStart.record(
          Math.max(0, Date.now() - ulidTime(row.id)) / 1000,
          instruments.task(row.task_name),
        );
      }
    }
    if (this.tracing !== undefined) {
      const span = this.tracing.attempt(row, this.executionHost.nodeId, this.upstreamSpans.get(row.id));
      this.upstreamSpans.delete(row.id);
      const handler = this.handlers.get(row.task_name);
      if (handler?.slot !== undefined || handler?.cron !== undefined) scheduledTimeAttributes(span, row.input);
      entry.span = span;
      this.tracing.within(span, () => this.dispatch(row, entry, upstream, messages));
    } else {
      this.dispatch(row, entry, upstream, messages);
    }
  }

  private dispatch(
    row: AssignedTaskRow,
    entry: Running,
    upstream: UpstreamOutcome[] | undefined,
    messages: unknown[] | undefined,
  ): void {
    const handler = this.handlers.get(row.task_name);
    const settings = this.settings.get(row.task_name);
    // The usual attempt (a known task with attempts left, no transaction) runs
    // without an async frame of its own: per task, the frame and its promises
    // were a third of what the worker allocated (sampling heap profile), and a
    // busy node spent the difference in the garbage collector.
    if (
      handler !== undefined &&
      settings !== undefined &&
      handler.guarantee !== "exactly-once" &&
      row.attempt <= maxAttempts(settings.retry)
    ) {
      this.run(row, entry, handler, settings, upstream, messages);
    } else {
      void this.host.execute(row, entry, upstream, messages);
    }
  }

  /** An attempt on the usual path (see dispatch): its outcome is queued when the handler returns or settles. */
  private run(
    row: AssignedTaskRow,
    entry: Running,
    handler: TaskHandler,
    settings: ResolvedTaskSettings,
    upstream: UpstreamOutcome[] | undefined,
    messages: unknown[] | undefined,
  ): void {
    const execution = this.newExecution(row, entry, upstream, messages, undefined);
    let value: unknown;
    try {
      value = handler.execute(execution);
    } catch (error) {
      void this.fail(row, entry, handler, settings, error);
      return;
    }
    if (isThenable(value)) {
      withTimeout(Promise.resolve(value), entry, row.task_name, settings.timeoutMs).then(
        (result) => this.succeed(row, entry, handler, settings, execution, result),
        (error: unknown) => this.fail(row, entry, handler, settings, error),
      );
    } else {
      this.succeed(row, entry, handler, settings, execution, value);
    }
  }

  private succeed(
    row: AssignedTaskRow,
    entry: Running,
    handler: TaskHandler,
    settings: ResolvedTaskSettings,
    execution: Execution,
    value: unknown,
  ): void {
    let result: string;
    try {
      result = encodePayload(row.task_name, "result", value, this.maxPayloadBytes);
    } catch (error) {
      void this.fail(row, entry, handler, settings, error);
      return;
    }
    this.queueOutcome(row, entry, completedOutcome(row, handler, execution, result));
  }

  newExecution(
    row: AssignedTaskRow,
    entry: Running,
    upstream: UpstreamOutcome[] | undefined,
    messages: unknown[] | undefined,
    tx: Queryable | undefined,
  ): Execution {
    return new Execution(row, entry, this.executionHost, upstream, messages, tx);
  }

  private async fail(
    row: AssignedTaskRow,
    entry: Running,
    handler: TaskHandler,
    settings: ResolvedTaskSettings,
    error: unknown,
  ): Promise<void> {
    try {
      this.queueOutcome(row, entry, await failureOutcome(row, handler, settings, error, this.log));
    } catch (err) {
      // Not expected (the failure hook's errors are caught); logged rather
      // than left as an unhandled rejection that would end the process.
      this.log.error({ event: "task.record_failed", err, taskId: row.id }, "could not record a failed attempt");
      if (entry.end()) this.room.ended();
      entry.span?.end();
      entry.span = undefined;
    }
  }

  /** Queues an attempt's outcome for the next completion batch, unless the attempt was revoked or the worker closed. */
  queueOutcome(row: AssignedTaskRow, entry: Running, outcome: OutcomeRow): void {
    if (entry.end()) this.room.ended();
    const instruments = this.metrics?.instruments;
    if (instruments !== undefined && entry.startedAt > 0) {
      const a = instruments.taskOutcome(row.task_name, outcome.state === "COMPLETED" ? "completed" : "failed");
      instruments.duration.record((performance.now() - entry.startedAt) / 1000, a);
    }
    if (entry.span !== undefined) {
      endAttemptSpan(entry.span, outcome);
      // Stored only where something links to it: the next attempt, or a join.
      if (outcome.retry !== undefined || row.awaited) outcome.span = encodeSpanContext(entry.span.spanContext());
      entry.span = undefined;
    }
    if (!this.host.isCurrent(row.id, entry)) return;
    // A revoked attempt's failure (aborted by a cancel or a re-plan) is refused when recorded: not logged.
    if (outcome.state === "FAILED" && !entry.isRevoked) logFailure(row, outcome, this.failureLog);
    this.host.checkIdle();
    this.batcher.queue(outcome);
  }
}
