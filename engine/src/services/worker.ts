import type { Span } from "@opentelemetry/api";
import type pg from "pg";
import type { NodeConfig } from "../config.js";
import { connectClient, isConnectionError, isTransientError, type Queryable } from "../db/pg.js";
import {
  AttemptsExhaustedError,
  InvalidArgumentError,
  isNonRetryable,
  type TaskErrorInfo,
  TaskTimeoutError,
  toTaskErrorInfo,
  UnknownTaskError,
} from "../errors.js";
import type { ChildSpec, TaskExecution, TaskHandler, UpstreamOutcome } from "../handler.js";
import type { LocalWorker } from "../handoff.js";
import { newId } from "../ids.js";
import { type EventLogger, type Logger, RateLimitedLog } from "../logger.js";
import { encodePayload } from "../payload.js";
import { maxAttempts, retryDelayMs } from "../retry.js";
import type { AffinityHolder } from "../store/affinity.js";
import type { Store } from "../store/index.js";
import type { LocalNode } from "../store/planner.js";
import type { AssignedTaskRow, NewJoinEdges, NewTaskRow, OutcomeRow, UpstreamRow } from "../store/types.js";
import type { ResolvedTaskSettings } from "../task-settings.js";
import { count, type Metrics, ulidTime } from "../telemetry/metrics.js";
import {
  abortAttemptSpan,
  encodeSpanContext,
  endAttemptSpan,
  scheduledTimeAttributes,
  type Tracing,
} from "../telemetry/traces.js";
import type { Listener } from "./listener.js";
import type { NodeRegistry } from "./node-registry.js";
import { backoffMs, OutageLog, type Service, Sleeps, Wakeup } from "./service.js";

/**
 * One attempt running here. Its AbortController is made only when the task
 * reads \`signal\`: creating one per task was a visible share of the worker's CPU.
 */
class Running {
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

/**
 * The transaction of an exactly-once attempt, as its task sees it: queries are
 * refused once the attempt has ended (a task that timed out may still be
 * running, and the connection goes back to the pool).
 */
class AttemptTransaction implements Queryable {
  open = true;
  constructor(readonly client: pg.PoolClient) {}

  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    if (!this.open) return Promise.reject(new Error("this attempt has ended; its transaction is closed"));
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

/** Completion batches recorded at the same time by one node. */
const FLUSHES_IN_FLIGHT = 2;
/** Affinity keys per release statement, and releases running at once. */
const RELEASE_CHUNK = 250;
const RELEASES_IN_FLIGHT = 2;

/** The children of an attempt that scheduled none (never written to). */
const NONE: NewTaskRow[] = [];

/** An assignment waiting for room (see Worker.launch). */
interface Waiting {
  readonly row: AssignedTaskRow;
  readonly entry: Running;
  readonly upstream: UpstreamOutcome[] | undefined;
  readonly messages: unknown[] | undefined;
}

/** What every attempt of one worker shares (one object per worker, not per task). */
interface ExecutionHost {
  readonly nodeId: string;
  readonly log: Logger;
  /** Weft's spans, when a tracer provider is in use. */
  readonly tracing: Tracing | undefined;
  /** Saves an attempt's state, fenced by its token. */
  saveAttemptState(row: AssignedTaskRow, state: string): Promise<void>;
}

/**
 * One attempt as its handler sees it. A class, not a literal with closures:
 * one is made per task, so it holds references only (the row's fields are
 * read through getters, the worker's through its host).
 */
class Execution implements TaskExecution {
  // Made on first use: most attempts schedule nothing (one allocation fewer per task each).
  children: NewTaskRow[] = NONE;
  edges: NewJoinEdges[] | undefined;
  outbox: { joinName: string; message: string }[] | undefined;
  /** Children by id, to attach the joins that list them. */
  private byId: Map<string, { ownJoins: string[] }> | undefined;
  /** The attempt's logger, made when the task first uses it (a pino child per task costs). */
  private logger: Logger | undefined;

  constructor(
    private readonly row: AssignedTaskRow,
    private readonly entry: Running,
    private readonly host: ExecutionHost,
    readonly upstream: readonly UpstreamOutcome[] | undefined,
    readonly messages: readonly unknown[] | undefined,
    readonly tx: Queryable | undefined,
  ) {}

  get taskId(): string {
    return this.row.id;
  }

  get workflowId(): string {
    return this.row.workflow_id;
  }

  get parentId(): string | null {
    return this.row.parent_id;
  }

  get taskName(): string {
    return this.row.task_name;
  }

  get attempt(): number {
    return this.row.attempt;
  }

  get input(): unknown {
    return this.row.input;
  }

  get nodeId(): string {
    return this.host.nodeId;
  }

  get log(): Logger {
    const span = this.entry.span;
    this.logger ??= this.host.log.child({
      taskId: this.row.id,
      workflowId: this.row.workflow_id,
      taskName: this.row.task_name,
      attempt: this.row.attempt,
      ...(span ? { trace_id: span.spanContext().traceId, span_id: span.spanContext().spanId } : {}),
    });
    return this.logger;
  }

  get signal(): AbortSignal {
    return this.entry.signal;
  }

  get savedState(): unknown {
    return this.row.saved_state ?? undefined;
  }

  saveState(state: string): Promise<void> {
    return this.host.saveAttemptState(this.row, state);
  }

  spawn(child: ChildSpec): string {
    return this.add(child, null).id;
  }

  sendToJoin(joinName: string, message: string): void {
    this.outbox ??= [];
    this.outbox.push({ joinName, message });
  }

  spawnJoin(join: ChildSpec, upstream: readonly string[]): string {
    if (!Array.isArray(upstream) || upstream.length === 0) {
      throw new InvalidArgumentError("upstream", "a join needs at least one upstream task");
    }
    const listed = new Set<string>();
    for (const id of upstream) {
      if (listed.has(id)) throw new InvalidArgumentError("upstream", `task ${id} is listed twice`);
      if (!this.byId?.has(id)) {
        throw new InvalidArgumentError(
          "upstream",
          `task ${id} was not scheduled by this attempt; a join inside a task lists the tasks it scheduled (join existing tasks from the client)`,
        );
      }
      listed.add(id);
    }
    const row = this.add(join, upstream.length);
    for (const id of upstream) this.byId?.get(id)?.ownJoins.push(row.id);
    this.edges ??= [];
    this.edges.push({ joinId: row.id, upstream: [...upstream], parentId: this.row.id });
    return row.id;
  }

  private add(child: ChildSpec, joinPending: number | null): NewTaskRow & { ownJoins: string[] } {
    const row = this.row;
    const created = {
      id: newId(),
      workflowId: row.workflow_id,
      parentId: row.id,
      taskName: child.taskName,
      input: child.input,
      priority: child.priority ?? 0,
      runAfter: child.runAfter ?? null,
      delayMs: child.delayMs ?? null,
      affinityGroup: child.affinityGroup === undefined ? row.affinity_group : child.affinityGroup,
      affinity: child.affinity === undefined ? row.affinity : child.affinity,
      isFork: child.fork ?? false,
      joinPending,
      ownJoins: [] as string[],
      traceContext: null as string | null,
    };
    const tracing = this.host.tracing;
    if (tracing !== undefined) {
      // Written with the attempt's outcome: the publish span ends here, when scheduled.
      const published = tracing.publish(created, this.entry.span);
      created.traceContext = published.traceContext;
      published.span.end();
    }
    if (this.children === NONE) this.children = [];
    this.children.push(created);
    this.byId ??= new Map();
    this.byId.set(created.id, created);
    return created;
  }
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
function completedOutcome(
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

/** Adds \`value\` to the list of \`key\`. */
function appendTo<T>(lists: Map<string, T[]>, key: string, value: T): void {
  const list = lists.get(key);
  if (list) list.push(value);
  else lists.set(key, [value]);
}

function toUpstreamOutcome(u: UpstreamRow): UpstreamOutcome {
  return {
    taskId: u.id,
    status: (u.state ?? "PURGED") as UpstreamOutcome["status"],
    result: u.state === "COMPLETED" ? u.result : null,
    error: (u.error as TaskErrorInfo | null) ?? null,
  };
}

/**
 * The worker: fetches the tasks the planner assigned to this node, runs them
 * concurrently (never more than the node's capacity), and records outcomes in
 * batches.
 *
 * Fetching is by fencing token: the planner draws tokens from one sequence and
 * commits its cycles one after another, so `token > cursor` returns exactly the
 * assignments not yet seen. A periodic reconcile compares the node's assignments
 * in the database with what runs here: missed ones are fetched, revoked ones
 * (cancelled, re-planned) are aborted.
 *
 * Completion batching: up to two batches in flight; outcomes that arrive while
 * they run form the next ones. A batch is one statement (fenced, idempotent), so
 * when the connection fails mid-flush the same batch is simply sent again.
 */
export class Worker implements Service, LocalWorker {
  readonly name = "worker";
  private readonly running = new Map<string, Running>();
  /** Spans of the upstream tasks of joins about to start, for their links (tracing only). */
  private readonly upstreamSpans = new Map<string, (string | null)[]>();
  private cursor = 0;
  /** Attempts of a batch whose launch waits for its joins' upstream outcomes (see launchAll). */
  private readonly launching = new Set<string>();
  private stopping = true;
  private fetchLoop: Promise<void> | undefined;
  private reconcileLoop: Promise<void> | undefined;
  private readonly fetchWakeup = new Wakeup();
  /**
   * The last fetch may have left assignments behind for want of room (it
   * filled the free capacity, or there was none): a recorded batch, which
   * frees room, wakes the fetch loop then.
   */
  private roomBound = false;
  private readonly reconcileWakeup = new Wakeup();
  private outcomes: OutcomeRow[] = [];
  private flushesInFlight = 0;
  /** Outcomes in the completion batches in flight. */
  private recording = 0;
  /** Attempts whose handler runs (see room). */
  private executing = 0;
  /**
   * Assignments that arrived while the node ran at capacity: they start, in
   * order, as running attempts end (see launch). Each has its entry in
   * \`running\` already, so the reconcile and the stop treat it as this node's.
   */
  private waiting: Waiting[] = [];
  private waitingHead = 0;
  /** Told when attempts ended and the node has room again (see LocalWorker). */
  private roomListener: (() => void) | undefined;
  private flushPending = false;
  private readonly drainWaiters: (() => void)[] = [];
  private readonly fetchOutage: OutageLog;
  /** Failed attempts, retries and dead letters: at info/warn, but never a flood (see RateLimitedLog). */
  private readonly failureLog: RateLimitedLog;
  /** The grace periods and backoffs of stop() and the flushes: cleared when the worker stops. */
  private readonly sleeps = new Sleeps();
  private readonly flushOutage: OutageLog;
  private readonly unsubscribe: (() => void)[] = [];
  private idleWaiters: (() => void)[] = [];
  private abandonFlush = false;
  /** Affinity keys to release (see queueRelease), and the release running. */
  private readonly keysToRelease = new Map<string, AffinityHolder>();
  private readonly releases = new Set<Promise<void>>();
  /** After stop(): attempts that end now were released; their outcomes are dropped. */
  private closed = false;
  /** Attempts started since start (for tests and the bench). */
  started = 0;
  /**
   * Exactly-once attempts hold a pooled connection for their whole run; a few
   * connections stay free for heartbeats, fetching and recording outcomes.
   */
  private readonly exactlyOnceSlots: Semaphore;
  /** Shared by every attempt of this worker (see ExecutionHost). */
  private readonly executionHost: ExecutionHost;

  constructor(
    private readonly store: Store,
    private readonly pool: pg.Pool,
    /** For fetches, completion batches and affinity releases (generic plans; see Engine). */
    private readonly hotPool: pg.Pool,
    private readonly config: NodeConfig,
    private readonly maxPayloadBytes: number,
    private readonly handlers: ReadonlyMap<string, TaskHandler>,
    private readonly settings: ReadonlyMap<string, ResolvedTaskSettings>,
    private readonly registry: NodeRegistry,
    private readonly listener: Listener,
    private readonly log: EventLogger,
    private readonly tracing?: Tracing,
    private readonly metrics?: Metrics,
  ) {
    this.exactlyOnceSlots = new Semaphore(Math.max(1, (pool.options.max ?? 10) - 4));
    this.executionHost = {
      // Read when asked: the node id is known once the registry has started.
      get nodeId() {
        return registry.nodeId;
      },
      log,
      tracing,
      saveAttemptState: (row, state) => this.saveState(row, state),
    };
    this.failureLog = new RateLimitedLog(log);
    this.fetchOutage = new OutageLog(log, "fetching assignments");
    this.flushOutage = new OutageLog(log, "recording outcomes");
  }

  get activeCount(): number {
    return this.running.size;
  }

  async start(): Promise<void> {
    if (!this.stopping) return;
    this.stopping = false;
    this.closed = false;
    this.abandonFlush = false;
    this.unsubscribe.push(
      this.listener.on("nodes", (ids) => {
        if (ids.includes(this.registry.nodeId)) this.fetchWakeup.wake();
      }),
      this.listener.on("reconcile", (ids) => {
        if (ids.includes(this.registry.nodeId)) this.reconcileWakeup.wake();
      }),
      // A notification may have been lost while disconnected (a cancellation among
      // them): re-read everything.
      this.listener.onReconnect(() => {
        this.fetchWakeup.wake();
        this.reconcileWakeup.wake();
      }),
    );
    this.fetchLoop = this.runFetchLoop();
    this.reconcileLoop = this.runReconcileLoop();
  }

  /**
   * Graceful stop: take no new work, give running tasks `graceMs`, record what
   * finished, release the rest to the planner (fenced, so their late outcomes are
   * refused) and abort them.
   */
  async stop(graceMs = this.config.shutdownGraceMs): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    // Assignments still waiting for room do not start now: the release below returns them.
    this.dropWaiting();
    this.upstreamSpans.clear();
    for (const u of this.unsubscribe.splice(0)) u();
    this.fetchWakeup.wake();
    this.reconcileWakeup.wake();
    await Promise.all([this.fetchLoop, this.reconcileLoop]);
    await this.waitForIdle(graceMs);
    // Outcomes that cannot be recorded (database unreachable) within the grace
    // period are given up: their tasks are re-planned when the node is declared dead.
    const drained = await Promise.race([
      this.drainOutcomes()
        .then(() => this.releasesSettled())
        .then(() => true),
      this.sleeps.sleep(Math.max(graceMs, 1_000)).then(() => false),
    ]);
    if (!drained) {
      this.abandonFlush = true;
      this.log.warn(
        { event: "node.outcomes_abandoned", outcomes: this.outcomes.length },
        "could not record outcomes before stopping",
      );
    }
    // The grace timers (and the backoffs of flushes just abandoned) end now:
    // a timer left running kept the process alive for the grace period after stop().
    this.sleeps.cancelAll();
    this.failureLog.close();
    // Release everything still assigned to this node, including assignments it
    // never fetched (made by a planner cycle that had not yet seen the drain).
    const unfinished = [...this.running.entries()].filter(([, r]) => !r.finishing).map(([id]) => id);
    try {
      const released = await this.store.worker.release(this.pool, this.registry.nodeId, null);
      if (released.length > 0)
        this.log.info(
          { event: "node.released", released: released.length },
          "released unfinished tasks for re-planning",
        );
    } catch (error) {
      this.log.warn(
        { event: "node.release_failed", err: error },
        "could not release unfinished tasks; the planner re-plans them once this node is gone",
      );
    }
    this.closed = true;
    for (const id of unfinished) this.running.get(id)?.abort(new Error("node is shutting down"));
    this.running.clear();
    this.outcomes = [];
  }

  /** Called when the node was declared dead: its assignments are void. */
  async abandonAll(): Promise<void> {
    this.dropWaiting();
    for (const r of this.running.values()) {
      r.abort(new Error("node was declared dead; assignment revoked"));
      // Its end no longer frees room: the count starts again from nothing.
      r.counted = false;
    }
    this.executing = 0;
    this.running.clear();
    this.outcomes = [];
    this.cursor = 0;
  }

  private async waitForIdle(graceMs: number): Promise<void> {
    if ([...this.running.values()].every((r) => r.finishing)) return;
    await Promise.race([new Promise<void>((resolve) => this.idleWaiters.push(resolve)), this.sleeps.sleep(graceMs)]);
  }

  private checkIdle(): void {
    if (this.idleWaiters.length > 0 && [...this.running.values()].every((r) => r.finishing)) {
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private async runFetchLoop(): Promise<void> {
    while (!this.stopping) {
      const free = this.room();
      let full = false;
      this.roomBound = free <= 0;
      if (free > 0) {
        try {
          const rows = await this.store.worker.fetch(this.hotPool, this.registry.nodeId, this.cursor, free);
          this.fetchOutage.success();
          full = rows.length === free;
          this.roomBound = full;
          // Rows handed over by this node's planner while the fetch ran are
          // already running (see handOver).
          await this.launchAll(this.unseen(rows));
        } catch (error) {
          this.fetchOutage.failure(error);
        }
      }
      if (this.stopping) return;
      // Full batch: there may be more. Otherwise wait for a notification; poll
      // once a second in case one was lost.
      await this.fetchWakeup.wait(full ? 0 : 1_000);
    }
  }

  private async runReconcileLoop(): Promise<void> {
    while (!this.stopping) {
      await this.reconcileWakeup.wait(this.config.reconcileIntervalMs);
      if (this.stopping) return;
      try {
        await this.reconcile();
      } catch (error) {
        if (!isConnectionError(error))
          this.log.warn({ event: "worker.reconcile_failed", err: error }, "reconcile failed");
      }
    }
  }

  /**
   * The rows not launched yet: fetched ones the node's planner has not handed
   * over meanwhile, and the reverse. Launched ones are at or below the cursor,
   * or still waiting for their joins' upstream outcomes (launching).
   */
  private unseen(rows: readonly AssignedTaskRow[]): readonly AssignedTaskRow[] {
    const cursor = this.cursor;
    // Both ways in deliver rows in token order: the usual batch is all new.
    const first = rows[0];
    if (first === undefined || (first.token > cursor && this.launching.size === 0)) return rows;
    return rows.filter((r) => r.token > cursor && !this.launching.has(r.id));
  }

  /**
   * Attempts this node can take now: its capacity less the attempts running
   * and waiting to start. An attempt that has ended counts no more, though its
   * outcome may not be recorded yet: the planner of this node fills the room
   * while the completion batch runs, instead of after it. Outcomes beyond the
   * completion batches in flight count again, so a database slower to record
   * than the tasks are to run holds the node back rather than its memory growing.
   */
  room(): number {
    const unrecorded = this.outcomes.length + this.recording;
    const backlog = Math.max(0, unrecorded - FLUSHES_IN_FLIGHT * this.config.completionBatchSize);
    return Math.max(0, this.config.maxParallelTasksInNode - this.executing - this.waitingCount - backlog);
  }

  /** Forgets the assignments waiting for room (they stay assigned in the database). */
  private dropWaiting(): void {
    for (let i = this.waitingHead; i < this.waiting.length; i++) {
      const w = this.waiting[i] as Waiting;
      if (this.running.get(w.row.id) === w.entry) this.running.delete(w.row.id);
    }
    this.waiting = [];
    this.waitingHead = 0;
  }

  /** See LocalWorker. */
  onRoom(listener: () => void): void {
    this.roomListener = listener;
  }

  private get waitingCount(): number {
    return this.waiting.length - this.waitingHead;
  }

  /** See LocalWorker: the cursor tells the apply whether every earlier assignment was fetched. */
  handoffTarget(): LocalNode | null {
    return this.stopping ? null : { id: this.registry.nodeId, cursor: this.cursor };
  }

  /**
   * Runs assignments handed over by this node's planner (see LocalWorker). A
   * worker that began to stop meanwhile leaves them to its release, as it
   * does assignments it never fetched.
   */
  handOver(rows: readonly AssignedTaskRow[]): void {
    if (this.stopping) return;
    const fresh = this.unseen(rows);
    if (fresh.length === 0) return;
    this.launchAll(fresh).catch((error: unknown) => this.fetchOutage.failure(error));
  }

  /** Compares this node's assignments in the database with what runs here. */
  async reconcile(): Promise<void> {
    const nodeId = this.registry.nodeId;
    const cursorAtStart = this.cursor;
    const assigned = await this.store.worker.listAssigned(this.pool, nodeId);
    const inDb = new Map(assigned.map((a) => [a.id, a.token]));
    const missed = assigned
      .filter((a) => a.token <= cursorAtStart && !this.running.has(a.id) && !this.launching.has(a.id))
      .map((a) => a.id);
    for (const [id, r] of this.running) {
      if (r.finishing || r.token > cursorAtStart) continue;
      if (inDb.get(id) !== r.token) {
        this.log.debug({ event: "task.revoked", taskId: id }, "assignment revoked; aborting the attempt");
        r.abort(new Error("assignment revoked"));
        const instruments = this.metrics?.instruments;
        if (instruments !== undefined) count(instruments.cancelled, r.taskName);
      }
    }
    if (missed.length > 0 && !this.stopping) {
      const rows = await this.store.worker.fetchByIds(this.pool, nodeId, missed);
      await this.launchAll(rows.filter((row) => !this.running.has(row.id)));
    }
  }

  /** Starts fetched attempts; joins first get their upstream outcomes (one query per batch). */
  private async launchAll(rows: readonly AssignedTaskRow[]): Promise<void> {
    let upstream: Map<string, UpstreamOutcome[]> | undefined;
    let messages: Map<string, unknown[]> | undefined;
    const joinIds = rows.filter((r) => r.is_join).map((r) => r.id);
    if (joinIds.length > 0) {
      // The other ways in (a fetch, a hand-over, the reconcile) must not take
      // these rows while the upstream outcomes are read.
      for (const r of rows) this.launching.add(r.id);
      try {
        ({ upstream, messages } = await this.joinInputs(joinIds));
      } finally {
        for (const r of rows) this.launching.delete(r.id);
      }
    }
    for (const row of rows) {
      if (row.is_join) this.launch(row, upstream?.get(row.id) ?? [], messages?.get(row.id) ?? []);
      else this.launch(row, undefined, undefined);
    }
  }

  /** The upstream outcomes and messages of the given joins, by join. */
  private async joinInputs(
    joinIds: readonly string[],
  ): Promise<{ upstream: Map<string, UpstreamOutcome[]>; messages: Map<string, unknown[]> }> {
    const upstream = new Map<string, UpstreamOutcome[]>();
    const messages = new Map<string, unknown[]>();
    for (const m of await this.store.worker.joinMessages(this.pool, joinIds))
      appendTo(messages, m.join_task_id, m.message);
    for (const u of await this.store.worker.upstreams(this.pool, joinIds)) {
      appendTo(upstream, u.join_task_id, toUpstreamOutcome(u));
      if (this.tracing !== undefined) appendTo(this.upstreamSpans, u.join_task_id, u.span);
    }
    return { upstream, messages };
  }

  private launch(row: AssignedTaskRow, upstream: UpstreamOutcome[] | undefined, messages: unknown[] | undefined): void {
    if (row.token > this.cursor) this.cursor = row.token;
    const entry = new Running(row.token, row.task_name);
    this.running.set(row.id, entry);
    // The planner keeps within the room, but counts from what it read: an
    // assignment it could not see as started (an earlier leader's, one fetched
    // meanwhile) may arrive at a full node, and waits here.
    if (this.executing >= this.config.maxParallelTasksInNode) {
      this.waiting.push({ row, entry, upstream, messages });
      return;
    }
    this.startAttempt(row, entry, upstream, messages);
  }

  /** An attempt ended: starts the next waiting one, if any. */
  private attemptEnded(): void {
    this.executing--;
    while (this.waitingHead < this.waiting.length && this.executing < this.config.maxParallelTasksInNode) {
      const next = this.waiting[this.waitingHead++] as Waiting;
      // Revoked while waiting (the reconcile aborted it), or replaced by a newer assignment.
      if (next.entry.isAborted || this.running.get(next.row.id) !== next.entry) {
        if (this.running.get(next.row.id) === next.entry) this.running.delete(next.row.id);
        continue;
      }
      this.startAttempt(next.row, next.entry, next.upstream, next.messages);
    }
    if (this.waitingHead === this.waiting.length) {
      this.waiting = [];
      this.waitingHead = 0;
    }
  }

  private startAttempt(
    row: AssignedTaskRow,
    entry: Running,
    upstream: UpstreamOutcome[] | undefined,
    messages: unknown[] | undefined,
  ): void {
    entry.counted = true;
    this.executing++;
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
      const span = this.tracing.attempt(row, this.registry.nodeId, this.upstreamSpans.get(row.id));
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
      void this.execute(row, entry, upstream, messages);
    }
  }

  /** An attempt on the usual path (see launch): its outcome is queued when the handler returns or settles. */
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
      this.withTimeout(Promise.resolve(value), entry, row.task_name, settings.timeoutMs).then(
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

  private newExecution(
    row: AssignedTaskRow,
    entry: Running,
    upstream: UpstreamOutcome[] | undefined,
    messages: unknown[] | undefined,
    tx: AttemptTransaction | undefined,
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
      this.queueOutcome(row, entry, await this.failureOutcome(row, handler, settings, error));
    } catch (err) {
      // Not expected (the failure hook's errors are caught); logged rather
      // than left as an unhandled rejection that would end the process.
      this.log.error({ event: "task.record_failed", err, taskId: row.id }, "could not record a failed attempt");
      if (entry.end()) this.attemptEnded();
      entry.span?.end();
      entry.span = undefined;
    }
  }

  /** Queues an attempt's outcome for the next completion batch, unless the attempt was revoked or the worker closed. */
  private queueOutcome(row: AssignedTaskRow, entry: Running, outcome: OutcomeRow): void {
    if (entry.end()) this.attemptEnded();
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
    if (this.closed || this.running.get(row.id) !== entry) return;
    // A revoked attempt's failure (aborted by a cancel or a re-plan) is refused when recorded: not logged.
    if (outcome.state === "FAILED" && !entry.isRevoked) this.logFailure(row, outcome);
    this.outcomes.push(outcome);
    this.checkIdle();
    this.scheduleFlush();
  }

  private async execute(
    row: AssignedTaskRow,
    entry: Running,
    upstream: UpstreamOutcome[] | undefined,
    messages: unknown[] | undefined,
  ): Promise<void> {
    const handler = this.handlers.get(row.task_name);
    const settings = this.settings.get(row.task_name);
    let outcome: OutcomeRow;
    let tx: AttemptTransaction | undefined;
    try {
      if (!handler || !settings) throw new UnknownTaskError(row.task_name, [...this.handlers.keys()]);
      // An attempt beyond the policy's last: the previous one was lost (node
      // died, deadline passed) after using the last attempt.
      const allowed = maxAttempts(settings.retry);
      if (row.attempt > allowed) throw new AttemptsExhaustedError(row.task_name, allowed);
      if (handler.guarantee === "exactly-once") {
        await this.exactlyOnceSlots.acquire();
        let client: pg.PoolClient;
        try {
          client = await connectClient(this.pool);
        } catch (error) {
          this.exactlyOnceSlots.release();
          throw error;
        }
        tx = new AttemptTransaction(client);
        try {
          await client.query("BEGIN");
        } catch (error) {
          tx = undefined;
          client.release(true);
          this.exactlyOnceSlots.release();
          throw error;
        }
      }
      const execution = this.newExecution(row, entry, upstream, messages, tx);
      const value = await this.withTimeout(
        Promise.resolve(handler.execute(execution)),
        entry,
        row.task_name,
        settings.timeoutMs,
      );
      const result = encodePayload(row.task_name, "result", value, this.maxPayloadBytes);
      outcome = completedOutcome(row, handler, execution, result);
      if (tx) {
        const client = tx.client;
        tx.open = false;
        tx = undefined;
        if (entry.end()) this.attemptEnded();
        const span = entry.span;
        if (span !== undefined && row.awaited) outcome.span = encodeSpanContext(span.spanContext());
        const done = await this.commitExactlyOnce(client, outcome).finally(() => this.exactlyOnceSlots.release());
        if (done) {
          if (span !== undefined) endAttemptSpan(span, outcome);
          this.metrics?.instruments?.recorded([outcome], { refused: [], retried: 0 });
          entry.span = undefined;
          this.running.delete(row.id);
          this.checkIdle();
          this.fetchWakeup.wake();
          return;
        }
        // Not committed (refused, or the commit failed): nothing of the attempt
        // is stored; record it as a failure so the policy decides.
        outcome = await this.failureOutcome(
          row,
          handler,
          settings,
          new Error("the attempt's transaction did not commit"),
        );
      }
    } catch (error) {
      if (tx) {
        tx.open = false;
        await this.rollback(tx.client);
        this.exactlyOnceSlots.release();
      }
      outcome = await this.failureOutcome(row, handler, settings, error);
    }
    this.queueOutcome(row, entry, outcome);
  }

  /** Races the attempt against its timeout: at the timeout the signal aborts and the attempt fails. */
  private withTimeout<T>(
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

  /** The outcome of a failed attempt: a retry after the policy's delay, or a final failure. */
  private async failureOutcome(
    row: AssignedTaskRow,
    handler: TaskHandler | undefined,
    settings: ResolvedTaskSettings | undefined,
    error: unknown,
  ): Promise<OutcomeRow> {
    const info = toTaskErrorInfo(error);
    let delayMs = settings && !isNonRetryable(error) ? retryDelayMs(settings.retry, row.attempt) : null;
    if (handler?.onFailure) {
      let stop = false;
      try {
        await handler.onFailure({
          taskId: row.id,
          workflowId: row.workflow_id,
          taskName: row.task_name,
          input: row.input,
          attempt: row.attempt,
          error,
          willRetry: delayMs !== null,
          stopRetrying: () => {
            stop = true;
          },
        });
      } catch (hookError) {
        this.log.warn(
          { event: "task.on_failure_threw", err: hookError, taskId: row.id },
          "onFailure threw; the retry policy applies unchanged",
        );
      }
      if (stop) delayMs = null;
    }
    const retry =
      delayMs !== null && settings && settings.retry.mode !== "OFF"
        ? { delayMs, maxIntervalMs: settings.retry.maxIntervalMs }
        : undefined;
    return {
      id: row.id,
      workflowId: row.workflow_id,
      taskName: row.task_name,
      token: row.token,
      span: undefined,
      state: "FAILED",
      result: null,
      error: JSON.stringify(info),
      children: [],
      retry,
      deadLetter: settings?.deadLetter ?? true,
      slot: handler?.slot !== undefined,
    };
  }

  /**
   * One line per failed attempt whose outcome is queued: \`task.retried\`
   * (info) when another attempt follows, else \`task.dead_lettered\` or
   * \`task.failed\` (warn). Rate-limited; the error's stack is in the task's
   * attempt log and dead letter, not here.
   */
  private logFailure(row: AssignedTaskRow, outcome: OutcomeRow): void {
    let info: TaskErrorInfo;
    try {
      info = JSON.parse(outcome.error ?? "null") as TaskErrorInfo;
    } catch {
      info = { name: "Error", message: String(outcome.error) };
    }
    const retryInMs = outcome.retry?.delayMs;
    const fields = {
      taskId: row.id,
      workflowId: row.workflow_id,
      taskName: row.task_name,
      attempt: row.attempt,
      error: { name: info.name, message: info.message, ...(info.code !== undefined ? { code: info.code } : {}) },
    };
    if (retryInMs !== undefined) {
      this.failureLog.write("info", { event: "task.retried", ...fields, retryInMs }, "attempt failed; retrying");
    } else if (outcome.deadLetter) {
      this.failureLog.write("warn", { event: "task.dead_lettered", ...fields }, "task failed; dead-lettered");
    } else {
      this.failureLog.write("warn", { event: "task.failed", ...fields }, "task failed");
    }
  }

  private async saveState(row: AssignedTaskRow, state: string): Promise<void> {
    const saved = await this.store.worker.saveState(this.pool, row.id, row.token, state);
    if (!saved) throw new Error(`task ${row.id}: this attempt was revoked; its state was not saved`);
  }

  /**
   * Records an exactly-once attempt's outcome in its own transaction, then
   * commits. Returns true when nothing more is to be recorded (committed, or
   * refused because the assignment was revoked), false when the attempt must be
   * recorded as failed. A connection lost during COMMIT is
   * resolved by reading the task back, never by guessing.
   */
  private async commitExactlyOnce(client: pg.PoolClient, outcome: OutcomeRow): Promise<boolean> {
    let res: Awaited<ReturnType<Store["worker"]["complete"]>>;
    try {
      res = await this.store.worker.complete(client, [outcome]);
    } catch (error) {
      await this.rollback(client);
      this.log.warn(
        { event: "task.exactly_once_rolled_back", err: error, taskId: outcome.id },
        "could not record an exactly-once outcome; rolled back",
      );
      return false;
    }
    if (res.recorded === 0) {
      await this.rollback(client);
      this.log.info(
        { event: "task.exactly_once_refused", taskId: outcome.id },
        "exactly-once outcome refused (assignment revoked); its work was rolled back",
      );
      return true;
    }
    try {
      await client.query("COMMIT");
      client.release();
      this.queueRelease(res.heldKeys);
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
        const recorded = await this.store.worker.isRecorded(this.pool, outcome.id, outcome.token);
        this.log.warn(
          { event: "task.commit_read_back", taskId: outcome.id, recorded },
          "COMMIT failed; outcome read back",
        );
        return recorded;
      } catch (error) {
        this.flushOutage.failure(error);
        if (this.abandonFlush) return true;
        await this.sleeps.sleep(backoffMs(attempt));
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
      // Attempts ended since the last turn: their room is free (see room).
      this.roomListener?.();
      if (this.roomBound) this.fetchWakeup.wake();
      while (this.flushesInFlight < FLUSHES_IN_FLIGHT && this.outcomes.length > 0) {
        const batch = this.outcomes.splice(0, this.config.completionBatchSize);
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
  private drainOutcomes(): Promise<void> {
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
        this.flushOutage.success();
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
        this.flushOutage.failure(error, startedAt);
        if (this.abandonFlush) return;
        await this.sleeps.sleep(backoffMs(attempt));
      }
    }
    for (const o of batch) this.running.delete(o.id);
    this.checkIdle();
    if (this.roomBound) this.fetchWakeup.wake();
  }

  private async record(batch: readonly OutcomeRow[]): Promise<void> {
    const startedAt = this.metrics?.instruments !== undefined ? performance.now() : 0;
    const res = await this.store.worker.complete(this.hotPool, batch);
    const instruments = this.metrics?.instruments;
    if (instruments !== undefined) {
      instruments.completionBatch.record(batch.length);
      if (startedAt > 0) instruments.completionDuration.record((performance.now() - startedAt) / 1000);
      instruments.recorded(batch, res);
    }
    if (res.refused.length > 0) {
      this.log.info(
        { event: "task.outcomes_refused", tasks: res.refused },
        "outcomes refused: their assignments were revoked (fencing token changed)",
      );
    }
    this.queueRelease(res.heldKeys);
  }

  /**
   * After a commit that finished tasks with affinity keys: queues the keys for
   * a release. Releases run beside the completion batches (which go on
   * meanwhile), a few at a time, each taking the keys queued so far.
   */
  private queueRelease(keys: readonly AffinityHolder[]): void {
    if (keys.length === 0) return;
    for (const k of keys) {
      const id = `${k.affinity_group}\u0000${k.affinity}\u0000${k.workflow_id}`;
      // Queued twice (two batches of one workflow): finished if either says so.
      if (!k.finished && this.keysToRelease.get(id)?.finished) continue;
      this.keysToRelease.set(id, k);
    }
    this.pumpReleases();
  }

  /** Starts releases, up to RELEASES_IN_FLIGHT, of up to RELEASE_CHUNK keys each. */
  private pumpReleases(): void {
    while (this.releases.size < RELEASES_IN_FLIGHT && this.keysToRelease.size > 0) {
      // In chunks: the planner places the tasks of one while the next is released.
      const keys: AffinityHolder[] = [];
      for (const [id, key] of this.keysToRelease) {
        keys.push(key);
        this.keysToRelease.delete(id);
        if (keys.length >= RELEASE_CHUNK) break;
      }
      const release: Promise<void> = this.releaseKeys(keys).finally(() => {
        this.releases.delete(release);
        this.pumpReleases();
      });
      this.releases.add(release);
    }
  }

  /** Resolves when no release is queued or running. */
  private async releasesSettled(): Promise<void> {
    while (this.releases.size > 0) await Promise.all(this.releases);
  }

  /**
   * Hands on the keys their workflows are done with. Best effort: a release
   * that fails is done by the planner's sweep instead.
   */
  private async releaseKeys(keys: readonly AffinityHolder[]): Promise<void> {
    try {
      await this.store.affinity.release(this.hotPool, keys);
    } catch (error) {
      // A lock timeout means a caller's open transaction scheduled with the key.
      const level = (error as { code?: string }).code === "55P03" ? "debug" : "warn";
      this.log[level](
        { event: "affinity.release_failed", err: error, keys: keys.length },
        "could not release affinity keys; the planner's sweep will",
      );
    }
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
      this.log.error(
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
        this.log.error({ event: "task.record_failed", err: again, taskId: o.id }, "could not record failure");
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
        this.flushOutage.success();
        return undefined;
      } catch (error) {
        if (!isTransientError(error)) return error;
        this.flushOutage.failure(error, startedAt);
        if (this.abandonFlush) return undefined;
        await this.sleeps.sleep(backoffMs(attempt));
      }
    }
  }
}
