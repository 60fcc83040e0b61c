import type pg from "pg";
import type { NodeConfig } from "../config.js";
import { isConnectionError } from "../db/pg.js";
import { AttemptRevokedError } from "../errors.js";
import type { TaskHandler, UpstreamOutcome } from "../handler.js";
import type { LocalWorker } from "../handoff.js";
import type { EventLogger } from "../logger.js";
import type { Listener } from "../services/listener.js";
import type { NodeRegistry } from "../services/node-registry.js";
import { OutageLog, type Service, Sleeps, Wakeup } from "../services/service.js";
import type { Store } from "../store/index.js";
import type { AssignedTaskRow, LocalNode } from "../store/types.js";
import type { ResolvedTaskSettings } from "../task-settings.js";
import { count, type Metrics } from "../telemetry/metrics.js";
import type { Tracing } from "../telemetry/traces.js";
import { Attempts, Running, type Waiting } from "./attempt.js";
import type { WorkerContext } from "./context.js";
import { ExactlyOnce } from "./exactly-once.js";
import { joinInputs } from "./joins.js";
import { KeyReleases } from "./key-releases.js";
import { CompletionBatcher, FLUSHES_IN_FLIGHT } from "./outcomes.js";
import { Room } from "./room.js";

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
 *
 * Its parts: the room's accounting (room.ts), the attempts (attempt.ts, and
 * exactly-once.ts off the usual path), the completion batcher (outcomes.ts) and
 * the affinity key releases (key-releases.ts).
 */
export class Worker implements Service, LocalWorker {
  readonly name = "worker";
  /**
   * The attempts of this node: running, ended with their outcome not recorded
   * yet, and waiting for room (each has its entry here already, so the
   * reconcile and the stop treat it as this node's).
   */
  private readonly running = new Map<string, Running>();
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
  private readonly fetchOutage: OutageLog;
  /** The grace periods and backoffs of stop() and the flushes: cleared when the worker stops. */
  private readonly sleeps = new Sleeps();
  private readonly unsubscribe: (() => void)[] = [];
  private idleWaiters: (() => void)[] = [];
  /** After stop(): attempts that end now were released; their outcomes are dropped. */
  private closed = false;
  private readonly ledger: Room<Waiting>;
  private readonly batcher: CompletionBatcher;
  private readonly releases: KeyReleases;
  private readonly attempts: Attempts;
  private readonly exactlyOnce: ExactlyOnce;

  constructor(
    private readonly store: Store,
    private readonly pool: pg.Pool,
    /** For fetches, completion batches and affinity releases (generic plans; see Engine). */
    private readonly hotPool: pg.Pool,
    private readonly config: NodeConfig,
    maxPayloadBytes: number,
    handlers: ReadonlyMap<string, TaskHandler>,
    settings: ReadonlyMap<string, ResolvedTaskSettings>,
    private readonly registry: NodeRegistry,
    private readonly listener: Listener,
    private readonly log: EventLogger,
    private readonly tracing?: Tracing,
    private readonly metrics?: Metrics,
  ) {
    const ctx: WorkerContext = { store, pool, hotPool, log, sleeps: this.sleeps, tracing, metrics };
    this.releases = new KeyReleases(ctx);
    this.batcher = new CompletionBatcher(ctx, config.completionBatchSize, this.releases, {
      roomFreed: () => {
        this.ledger.announce();
        if (this.roomBound) this.fetchWakeup.wake();
      },
      recorded: (batch) => {
        for (const o of batch) this.running.delete(o.id);
        this.checkIdle();
        if (this.roomBound) this.fetchWakeup.wake();
      },
    });
    this.ledger = new Room<Waiting>(
      config.maxParallelTasksInNode,
      FLUSHES_IN_FLIGHT * config.completionBatchSize,
      () => this.batcher.unrecorded,
      (next) => this.startWaiting(next),
    );
    this.attempts = new Attempts(ctx, registry, handlers, settings, maxPayloadBytes, this.ledger, this.batcher, {
      isCurrent: (id, entry) => !this.closed && this.running.get(id) === entry,
      checkIdle: () => this.checkIdle(),
      execute: (row, entry, upstream, messages) => this.exactlyOnce.execute(row, entry, upstream, messages),
    });
    this.exactlyOnce = new ExactlyOnce(ctx, this.attempts, this.ledger, this.batcher, this.releases, (id) => {
      this.running.delete(id);
      this.checkIdle();
      this.fetchWakeup.wake();
    });
    this.fetchOutage = new OutageLog(log, "fetching assignments");
  }

  get activeCount(): number {
    return this.running.size;
  }

  /** Attempts started since start (for tests and the bench). */
  get started(): number {
    return this.attempts.started;
  }

  async start(): Promise<void> {
    if (!this.stopping) return;
    this.stopping = false;
    this.closed = false;
    this.batcher.start();
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
    this.attempts.upstreamSpans.clear();
    for (const u of this.unsubscribe.splice(0)) u();
    this.fetchWakeup.wake();
    this.reconcileWakeup.wake();
    await Promise.all([this.fetchLoop, this.reconcileLoop]);
    await this.waitForIdle(graceMs);
    await this.batcher.settle(graceMs);
    // The grace timers (and the backoffs of flushes just abandoned) end now:
    // a timer left running kept the process alive for the grace period after stop().
    this.sleeps.cancelAll();
    this.attempts.failureLog.close();
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
    for (const id of unfinished) this.running.get(id)?.abort(new AttemptRevokedError("node is shutting down"));
    this.running.clear();
    this.batcher.clear();
  }

  /** Called when the node was declared dead: its assignments are void. */
  async abandonAll(): Promise<void> {
    this.dropWaiting();
    for (const r of this.running.values()) {
      r.abort(new AttemptRevokedError("node was declared dead; assignment revoked"));
      // Its end no longer frees room: the count starts again from nothing.
      r.counted = false;
    }
    this.ledger.reset();
    this.running.clear();
    this.batcher.clear();
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

  /** See Room.room and LocalWorker. */
  room(): number {
    return this.ledger.room();
  }

  /** See LocalWorker. */
  onRoom(listener: () => void): void {
    this.ledger.onRoom(listener);
  }

  /** Forgets the assignments waiting for room (they stay assigned in the database). */
  private dropWaiting(): void {
    for (const w of this.ledger.dropWaiting()) {
      if (this.running.get(w.row.id) === w.entry) this.running.delete(w.row.id);
    }
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
        r.abort(new AttemptRevokedError("assignment revoked"));
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
        ({ upstream, messages } = await joinInputs(
          this.store,
          this.pool,
          joinIds,
          this.tracing !== undefined ? this.attempts.upstreamSpans : undefined,
        ));
      } finally {
        for (const r of rows) this.launching.delete(r.id);
      }
    }
    for (const row of rows) {
      if (row.is_join) this.launch(row, upstream?.get(row.id) ?? [], messages?.get(row.id) ?? []);
      else this.launch(row, undefined, undefined);
    }
  }

  private launch(row: AssignedTaskRow, upstream: UpstreamOutcome[] | undefined, messages: unknown[] | undefined): void {
    if (row.token > this.cursor) this.cursor = row.token;
    const entry = new Running(row.token, row.task_name);
    this.running.set(row.id, entry);
    // The planner keeps within the room, but counts from what it read: an
    // assignment it could not see as started (an earlier leader's, one fetched
    // meanwhile) may arrive at a full node, and waits here.
    if (this.ledger.isFull) {
      this.ledger.wait({ row, entry, upstream, messages });
      return;
    }
    this.attempts.start(row, entry, upstream, messages);
  }

  /** A waiting assignment's turn (see Room.ended): started unless it is void by now. */
  private startWaiting(next: Waiting): void {
    // Revoked while waiting (the reconcile aborted it), or replaced by a newer assignment.
    if (next.entry.isAborted || this.running.get(next.row.id) !== next.entry) {
      if (this.running.get(next.row.id) === next.entry) this.running.delete(next.row.id);
      return;
    }
    this.attempts.start(next.row, next.entry, next.upstream, next.messages);
  }
}
