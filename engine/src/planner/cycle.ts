import type { PlannerConfig } from "../config.js";
import { pollingDelayFor } from "../config.js";
import type { Queryable } from "../db/pg.js";
import { isConnectionError } from "../db/pg.js";
import type { LocalWorker } from "../handoff.js";
import type { EventLogger } from "../logger.js";
import { LoopService, OutageLog } from "../services/service.js";
import type { Store } from "../store/index.js";
import type { ApplyResult } from "../store/planner.js";
import type { Metrics } from "../telemetry/metrics.js";
import { holdAffinity } from "./affinity.js";
import { decide, recordServed, timeouts } from "./decide.js";
import { DuePromotion } from "./due.js";
import { ReadAhead } from "./read-ahead.js";
import { type Reading, read } from "./reading.js";
import { DeadNodeRescue } from "./rescue.js";
import { PlanStatistics } from "./statistics.js";

/**
 * The planner: runs on the leader only, on the leader's connection. One cycle
 * (1) every `deadNodeSweepMs`, declares nodes with a stale heartbeat dead and
 * returns their tasks to READY, and releases PARKED tasks whose run_after has
 * passed; (2) reads the live nodes and their free capacity; (3) reads, per task
 * name, the unassigned NEW and READY tasks that the free capacity able to run
 * that name can take; (4) decides each task's node (or parks it); (5) applies
 * all decisions in one guarded UPDATE that also notifies the chosen nodes (one
 * NOTIFY per cycle). It wakes on notifications and otherwise polls with
 * `pollingDelay`.
 *
 * A task waiting for capacity is not written until it is placed: the backlog
 * stays in NEW (never planned) or READY (planned before and returned) and costs
 * no planner writes.
 */
export class Planner extends LoopService {
  readonly name = "planner";
  /** Step 1: dead nodes, lost attempts, affinity keys left held (see DeadNodeRescue). */
  private readonly rescue: DeadNodeRescue;
  /** Step 1: due PARKED tasks (see DuePromotion). */
  private readonly due: DuePromotion;
  /** Tasks given to each task name, relative to the least-served name that had candidates. */
  private readonly served = new Map<string, number>();
  private readonly statistics: PlanStatistics;
  /** Steps 2 and 3 of the next cycle, read while this one applies (see ReadAhead). */
  private readonly ahead: ReadAhead;
  private readonly outage: OutageLog;
  /** Cycles run since start; tests and the bench read it. */
  cycles = 0;
  private firstApplySent: () => void = () => undefined;
  /**
   * Resolves when the first cycle has sent its apply, or ended without one, or
   * the planner stopped: the engine opens the read connection then, so that
   * opening it does not compete with the first cycle's reads.
   */
  readonly started: Promise<void> = new Promise((resolve) => {
    this.firstApplySent = resolve;
  });
  /** The worker of this node, if it has one (see LocalWorker). */
  private local: LocalWorker | undefined;

  constructor(
    private readonly store: Store,
    private readonly db: Queryable,
    private readonly config: PlannerConfig,
    private readonly log: EventLogger,
    /** The leader connection is gone, or the epoch moved on: leadership is over. */
    private readonly onConnectionLost: () => void,
    /** The leader epoch this planner took over with; every write is fenced by it. */
    private readonly epoch: number = 0,
    /**
     * A second connection for reads. With one, the next cycle's nodes and
     * candidates are read while this cycle's apply runs on the leader
     * connection, so a cycle costs about its apply rather than all of its
     * statements one after another.
     */
    reader: Queryable | undefined = undefined,
    /** The engine's metrics (cycle duration, batch size), when a meter provider is in use. */
    private readonly metrics?: Metrics,
  ) {
    super();
    this.outage = new OutageLog(log, "planner");
    this.rescue = new DeadNodeRescue(store, config, log);
    this.due = new DuePromotion(store, config);
    this.statistics = new PlanStatistics(store, db, config, log);
    this.ahead = new ReadAhead(
      (q, inFlight) => read(store, config, this.local, q, inFlight),
      log,
      config.batchSize,
      reader,
    );
  }

  /** Gives the planner its read connection (see the constructor's \`reader\` and ReadAhead.attach). */
  attachReader(reader: Queryable): void {
    this.ahead.attach(reader);
  }

  /** Wakes the loop; a wake while an apply runs also has the next cycle read again (see ReadAhead.wake). */
  override wake(): void {
    super.wake();
    this.ahead.wake();
  }

  /** Hands this node's own assignments to \`local\` (see LocalWorker). */
  handOffTo(local: LocalWorker): void {
    this.local = local;
    local.onRoom(() => this.wake());
  }

  /** Whether reads overlap applies on a second connection (see the constructor's \`reader\`). */
  get readsOnSecondConnection(): boolean {
    return this.ahead.readsOnSecondConnection;
  }

  /** Stops the loop, then waits for a read still in flight (its connection closes next). */
  override async stop(): Promise<void> {
    this.firstApplySent();
    await super.stop();
    await this.ahead.stop();
  }

  /** A retry was recorded that is due in \`ms\` (from a \`d:\` notification). */
  dueIn(ms: number): void {
    if (this.due.dueIn(ms)) this.wake();
  }

  /** This planner's epoch is over (another leader took over): stop writing at once. */
  private deposed(): number {
    this.log.warn({ event: "leader.deposed", epoch: this.epoch }, "a newer planner leader took over; this one stops");
    this.stopped = true;
    this.onConnectionLost();
    return 0;
  }

  protected async tick(): Promise<number> {
    try {
      const startedAt = performance.now();
      const handled = await this.cycle().finally(() => this.firstApplySent());
      const instruments = this.metrics?.instruments;
      if (instruments !== undefined) {
        instruments.plannerCycle.record((performance.now() - startedAt) / 1000);
        if (handled > 0) instruments.plannerBatch.record(handled);
      }
      if (this.stopped) return 0;
      this.outage.success();
      if (handled >= this.config.batchSize) return 0;
      return Math.min(pollingDelayFor(this.config.pollingDelay, handled), this.due.untilDue());
    } catch (error) {
      if (isConnectionError(error)) {
        // The leader's connection is gone, and with it the lock: stop planning.
        this.stopped = true;
        this.onConnectionLost();
        return 0;
      }
      this.outage.failure(error);
      return 1_000;
    }
  }

  /** One planning cycle; returns how many tasks it moved. */
  async cycle(): Promise<number> {
    this.cycles++;
    const { store, db, config } = this;
    let handled = 0;
    /** Nodes or candidates changed in this cycle's sweep or promotion. */
    let changed = false;
    const now = Date.now();
    const sweep = this.rescue.due(now);
    if (sweep) {
      const rescued = await this.rescue.run(db, this.epoch, now);
      if (rescued.fenced) return this.deposed();
      handled += rescued.handled;
      changed = rescued.changed;
    }
    if (this.due.due(this.cycles, sweep)) handled += await this.due.run(db, this.epoch);

    // A reading taken during the last apply, if it is fresh, found work, and
    // this cycle's sweep and promotion changed nothing (a node declared dead,
    // or tasks released or promoted, would be missing from it). One that found
    // no room is not used: this cycle usually runs because room was freed since.
    changed ||= handled > 0;
    const prefetched = this.ahead.take(changed);
    let reading: Reading | undefined;
    if (prefetched) {
      reading = await prefetched;
      if (reading?.fetched.length === 0) reading = undefined;
    }
    reading ??= await read(store, config, this.local, db, []);
    const { nodes, free, allowance } = reading;
    if (reading.fetched.length > 0 && reading.table) await this.statistics.keepStatisticsFresh(reading.table);
    const { candidates, parked } = await holdAffinity(store, db, this.epoch, reading.fetched);
    const assigned = new Map<string, number>();
    const decisions = [...parked, ...decide(candidates, nodes, free, allowance, this.served, assigned)];
    recordServed(this.served, candidates, assigned);
    const local = this.local;
    const applying = store.planner.apply(
      db,
      decisions,
      this.epoch,
      timeouts(nodes, config.timeoutGraceMs),
      local?.handoffTarget() ?? null,
    );
    this.firstApplySent();
    this.ahead.applying(decisions.filter((d) => d.node !== null));
    let result: ApplyResult;
    try {
      result = await applying;
    } catch (error) {
      this.ahead.discard();
      throw error;
    } finally {
      this.ahead.applied();
    }
    if (result.fenced) {
      this.ahead.discard();
      return this.deposed();
    }
    if (result.handedOver.length > 0) local?.handOver(result.handedOver);
    handled += result.applied;
    if (result.applied > 0)
      this.log.debug({ event: "planner.planned", applied: result.applied, candidates: candidates.length }, "planned");
    return handled;
  }
}
