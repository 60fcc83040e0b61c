import type { PlannerConfig } from "../config.js";
import { pollingDelayFor } from "../config.js";
import type { Queryable } from "../db/pg.js";
import { isConnectionError } from "../db/pg.js";
import type { LocalWorker } from "../handoff.js";
import type { EventLogger } from "../logger.js";
import type { Store } from "../store/index.js";
import type { ApplyResult, Candidate, LiveNode, PlanDecision, TableSize } from "../store/planner.js";
import type { Metrics } from "../telemetry/metrics.js";
import { LoopService, OutageLog } from "./service.js";

/** What one cycle reads before it decides: the live nodes, their room, the candidates. */
interface Reading {
  readonly nodes: LiveNode[];
  /** Free slots per node. */
  readonly free: Map<string, number>;
  /** Tasks each cluster-limited name may still start. */
  readonly allowance: Map<string, number>;
  readonly fetched: Candidate[];
  /** The task table's size, read with the candidates (none read: undefined). */
  readonly table: TableSize | undefined;
}

/**
 * The next cycle's reading, taken on the reader connection while this cycle's
 * apply runs. It is used only if the next cycle starts within this long after
 * the read began: an older one would hide tasks scheduled since (a higher
 * priority among them) and the room freed since, for longer than a cycle.
 */
const PREFETCH_FRESH_MS = 100;

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
const GROWTH_FACTOR = 4;
const GROWTH_MIN_PAGES = 64;

/** Whether the task table has outgrown the size its cached plans were made at (see GROWTH_FACTOR). */
export function outgrewPlans(table: TableSize, plannedAtPages: number): boolean {
  const basis = Math.max(plannedAtPages, table.statsPages);
  return table.pages > GROWTH_FACTOR * basis && table.pages - basis >= GROWTH_MIN_PAGES;
}

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
  /**
   * When the last sweep ran. A new leader sweeps one interval after it took
   * over, not at once: its first cycles place the backlog, and a node that died
   * with the old leader is declared dead only once its heartbeat is
   * \`nodeDeadAfterMs\` old anyway.
   */
  private lastSweep = Date.now();
  /** When (local monotonic ms) the earliest PARKED run_after is due; Infinity if unknown or none. */
  private nextDueAt = Number.POSITIVE_INFINITY;
  /** Tasks given to each task name, relative to the least-served name that had candidates. */
  private readonly served = new Map<string, number>();
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
  /** The task table's size when this leader's plans were made (see GROWTH_FACTOR); unknown before the first read. */
  private plannedAtPages: number | undefined;
  /** The assignments of the apply in flight, if any (see attachReader). */
  private applyInFlight: readonly PlanDecision[] | undefined;
  /** The worker of this node, if it has one (see LocalWorker). */
  private local: LocalWorker | undefined;
  /** The next cycle's reading, in flight or done (see PREFETCH_FRESH_MS). */
  private prefetch:
    | {
        startedAt: number;
        /** A read again after a wake waits for this one (see wake); more wakes meanwhile add none. */
        rereadQueued: boolean;
        readonly reading: Promise<Reading | undefined>;
      }
    | undefined;

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
    private reader: Queryable | undefined = undefined,
    /** The engine's metrics (cycle duration, batch size), when a meter provider is in use. */
    private readonly metrics?: Metrics,
  ) {
    super();
    this.outage = new OutageLog(log, "planner");
  }

  /**
   * Affinity: a candidate with a key may run only in the workflow holding the
   * key. Free keys are first given to the oldest workflow waiting for them (which
   * may not be the candidate's); candidates of other workflows are parked until
   * the key is handed to theirs.
   */
  private async holdAffinity(
    fetched: readonly Candidate[],
  ): Promise<{ candidates: Candidate[]; parked: PlanDecision[] }> {
    const keyed = fetched.filter((c) => c.affinity !== null && c.affinity !== undefined);
    if (keyed.length === 0) return { candidates: [...fetched], parked: [] };
    const keyOf = (g: string, a: string) => `${g}\u0000${a}`;
    // Holders as the candidates query read them; keys nobody holds (rare:
    // schedules claim theirs) are handed over first, and read again.
    const holders = new Map<string, string>();
    const free = new Map<string, { affinity_group: string; affinity: string }>();
    for (const c of keyed) {
      const g = c.affinity_group as string;
      const a = c.affinity as string;
      if (c.holder !== null && c.holder !== undefined) holders.set(keyOf(g, a), c.holder);
      else free.set(keyOf(g, a), { affinity_group: g, affinity: a });
    }
    if (free.size > 0) {
      await this.store.affinity.handOver(this.db, [...free.values()], this.epoch);
      for (const h of await this.store.affinity.holders(this.db, [...free.values()])) {
        holders.set(keyOf(h.affinity_group, h.affinity), h.workflow_id);
      }
    }
    const candidates: Candidate[] = [];
    const parked: PlanDecision[] = [];
    for (const c of fetched) {
      if (c.affinity === null || c.affinity === undefined) candidates.push(c);
      else if (holders.get(keyOf(c.affinity_group as string, c.affinity)) === c.workflow_id) candidates.push(c);
      else
        parked.push({
          id: c.id,
          queue: "PARKED",
          node: null,
          parkReason: "AFFINITY",
          affinityKey: { group: c.affinity_group as string, affinity: c.affinity },
        });
    }
    return { candidates, parked };
  }

  /** The database deadline of each task name with a timeout: the largest published timeout, plus the grace. */
  private timeouts(nodes: readonly LiveNode[]): Record<string, number> {
    const out: Record<string, number> = {};
    for (const n of nodes) {
      for (const [name, ms] of Object.entries(n.task_timeouts ?? {})) {
        const withGrace = ms + this.config.timeoutGraceMs;
        if ((out[name] ?? 0) < withGrace) out[name] = withGrace;
      }
    }
    return out;
  }

  /** Counts this cycle's assignments per name, then rebases so the least-served waiting name is at 0. */
  private recordServed(candidates: readonly Candidate[], assigned: ReadonlyMap<string, number>): void {
    // A cycle that read no candidates (no room) saw nobody waiting, which is
    // not to say nobody waits: the counts stay as they are.
    if (candidates.length === 0) return;
    for (const [name, n] of assigned) this.served.set(name, (this.served.get(name) ?? 0) + n);
    const waiting = new Set<string>();
    for (const c of candidates) waiting.add(c.task_name);
    let min = Number.POSITIVE_INFINITY;
    for (const name of waiting) min = Math.min(min, this.served.get(name) ?? 0);
    for (const [name, n] of this.served) {
      if (!waiting.has(name)) this.served.delete(name);
      else this.served.set(name, n - min);
    }
  }

  /**
   * Gives the planner its read connection (see the constructor's \`reader\`).
   * One that arrives while an apply runs (the first cycle's, as the engine
   * opens it) reads the next cycle at once: without it, the second cycle read
   * on the leader connection after the first apply, ~25 ms at a start.
   */
  attachReader(reader: Queryable): void {
    this.reader = reader;
    if (this.applyInFlight !== undefined && this.prefetch === undefined) this.readAhead(reader, this.applyInFlight);
  }

  /** Starts reading the next cycle on the read connection while \`placed\` are applied (see PREFETCH_FRESH_MS). */
  private readAhead(reader: Queryable, placed: readonly PlanDecision[]): void {
    // Taken now, it cannot see the apply: its tasks are left out and its
    // assignments counted against their nodes and names by hand.
    this.prefetch = {
      startedAt: performance.now(),
      rereadQueued: false,
      reading: this.readOn(reader, placed, undefined),
    };
  }

  /** A read on the read connection; if that fails, the planner reads on the leader connection from now on. */
  private readOn(
    reader: Queryable,
    placed: readonly PlanDecision[],
    onFailure: Reading | undefined,
  ): Promise<Reading | undefined> {
    return this.read(reader, placed).catch((error: unknown) => {
      this.log.warn(
        { event: "planner.reader_failed", err: error },
        "planner read connection failed; reading on the leader connection",
      );
      if (this.reader === reader) this.reader = undefined;
      return onFailure;
    });
  }

  /**
   * Wakes the loop. A wake while an apply runs (a completion freed room, or
   * tasks arrived) also has the next cycle read again once the reading in
   * flight is done: taken at the apply's start, that reading found room only
   * as it was then, and in a busy cluster it is often none. The next cycle then
   * starts its apply as soon as this one's returns, instead of reading first.
   */
  override wake(): void {
    super.wake();
    const placed = this.applyInFlight;
    const reader = this.reader;
    const previous = this.prefetch;
    if (placed === undefined || reader === undefined || previous === undefined || previous.rereadQueued) return;
    const next = {
      startedAt: performance.now(),
      rereadQueued: true,
      reading: previous.reading.then((reading) => {
        next.rereadQueued = false;
        // A full batch needs no second look.
        if (reading === undefined || reading.fetched.length >= this.config.batchSize) return reading;
        if (this.applyInFlight !== placed || this.reader !== reader) return reading;
        next.startedAt = performance.now();
        return this.readOn(reader, placed, reading);
      }),
    };
    this.prefetch = next;
  }

  /** Hands this node's own assignments to \`local\` (see LocalWorker). */
  handOffTo(local: LocalWorker): void {
    this.local = local;
    local.onRoom(() => this.wake());
  }

  /** Whether reads overlap applies on a second connection (see the constructor's \`reader\`). */
  get readsOnSecondConnection(): boolean {
    return this.reader !== undefined;
  }

  /** Stops the loop, then waits for a read still in flight (its connection closes next). */
  override async stop(): Promise<void> {
    this.firstApplySent();
    await super.stop();
    const prefetch = this.prefetch;
    this.prefetch = undefined;
    await prefetch?.reading;
  }

  /** A retry was recorded that is due in \`ms\` (from a \`d:\` notification). */
  dueIn(ms: number): void {
    const at = performance.now() + Math.max(0, ms);
    if (at < this.nextDueAt) {
      this.nextDueAt = at;
      this.wake();
    }
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
      const untilDue = Math.max(0, Math.ceil(this.nextDueAt - performance.now()));
      return Math.min(pollingDelayFor(this.config.pollingDelay, handled), untilDue);
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
    const sweep = now - this.lastSweep >= config.deadNodeSweepMs;
    if (sweep) {
      this.lastSweep = now;
      const swept = await store.planner.sweepDeadNodes(db, config.nodeDeadAfterMs, this.epoch);
      if (swept.fenced) return this.deposed();
      if (swept.dead_nodes.length > 0) {
        this.log.warn(
          { event: "planner.nodes_dead", nodes: swept.dead_nodes, released: swept.released },
          "declared nodes dead; re-planning their tasks",
        );
      }
      if (swept.overdue > 0) {
        this.log.warn(
          { event: "planner.attempts_overdue", tasks: swept.overdue },
          "attempts passed their deadline; re-planning them",
        );
      }
      handled += swept.released;
      // Keys are released by whoever finishes their holder's last task; this
      // catches a release that never ran (a node that died right after its commit).
      const keys = await store.affinity.releaseFinished(db, this.epoch);
      if (keys.freed > 0)
        this.log.debug({ event: "planner.keys_freed", keys: keys.freed }, "freed affinity keys left held");
      handled += keys.unparked;
      changed = swept.dead_nodes.length > 0 || swept.gone_nodes.length > 0 || keys.freed > 0;
    }
    // A new leader looks for due PARKED tasks in its second cycle (the first
    // places what is ready), then when the earliest is due.
    const promote = sweep || this.cycles === 2 || performance.now() >= this.nextDueAt;
    if (promote) {
      const due = await store.planner.promoteDue(db, config.batchSize, this.epoch);
      handled += due.promoted;
      // More due than one batch: go again at once.
      this.nextDueAt =
        due.promoted >= config.batchSize
          ? performance.now()
          : due.nextDueMs === null
            ? Number.POSITIVE_INFINITY
            : performance.now() + due.nextDueMs;
    }

    // A reading taken during the last apply, if it is fresh, found work, and
    // this cycle's sweep and promotion changed nothing (a node declared dead,
    // or tasks released or promoted, would be missing from it). One that found
    // no room is not used: this cycle usually runs because room was freed since.
    changed ||= handled > 0;
    const prefetch = this.prefetch;
    this.prefetch = undefined;
    let reading: Reading | undefined;
    if (prefetch && !changed && performance.now() - prefetch.startedAt <= PREFETCH_FRESH_MS) {
      reading = await prefetch.reading;
      if (reading?.fetched.length === 0) reading = undefined;
    }
    reading ??= await this.read(db, []);
    const { nodes, free, allowance } = reading;
    if (reading.fetched.length > 0 && reading.table) await this.keepStatisticsFresh(reading.table);
    const { candidates, parked } = await this.holdAffinity(reading.fetched);
    const assigned = new Map<string, number>();
    const decisions = [...parked, ...decide(candidates, nodes, free, allowance, this.served, assigned)];
    this.recordServed(candidates, assigned);
    const local = this.local;
    const applying = store.planner.apply(
      db,
      decisions,
      this.epoch,
      this.timeouts(nodes),
      local?.handoffTarget() ?? null,
    );
    this.firstApplySent();
    const placed = decisions.filter((d) => d.node !== null);
    if (placed.length > 0) {
      this.applyInFlight = placed;
      if (this.reader) this.readAhead(this.reader, placed);
    }
    let result: ApplyResult;
    try {
      result = await applying;
    } catch (error) {
      this.prefetch = undefined;
      throw error;
    } finally {
      this.applyInFlight = undefined;
    }
    if (result.fenced) {
      this.prefetch = undefined;
      return this.deposed();
    }
    if (result.handedOver.length > 0) local?.handOver(result.handedOver);
    handled += result.applied;
    if (result.applied > 0)
      this.log.debug({ event: "planner.planned", applied: result.applied, candidates: candidates.length }, "planned");
    return handled;
  }

  /** Refreshes the task table's statistics if it outgrew its plans (see GROWTH_FACTOR). */
  private async keepStatisticsFresh(table: TableSize): Promise<void> {
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

  /**
   * Reads the live nodes, their free slots, the cluster allowances and the
   * candidates. \`inFlight\`: assignments of an apply not committed yet, which
   * the read cannot see.
   */
  private async read(q: Queryable, inFlight: readonly PlanDecision[]): Promise<Reading> {
    const { store, config } = this;
    const pendingPerNode = countPerNode(inFlight);
    const nodes = await store.planner.liveNodes(q, config.nodeDeadAfterMs);
    const localId = this.local?.handoffTarget()?.id;
    const free = new Map<string, number>();
    const cpuLimit = config.nodeCpuLoadingLimit;
    for (const n of nodes) {
      // A node over the CPU limit gets no new tasks (its running ones go on).
      const overloaded =
        cpuLimit !== undefined && n.cpu_load !== null && n.cpu_load !== undefined && n.cpu_load > cpuLimit;
      // This node's own room is what its worker counts (see LocalWorker.room).
      const room = n.id === localId ? (this.local?.room() ?? 0) : n.capacity - n.active;
      free.set(n.id, overloaded ? 0 : Math.max(0, room - (pendingPerNode.get(n.id) ?? 0)));
    }

    // Cluster limits: the smallest maxParallelInCluster any live node publishes
    // for a name, less what already runs of it anywhere.
    const clusterLimits = new Map<string, number>();
    for (const n of nodes) {
      for (const [name, limit] of Object.entries(n.task_limits ?? {})) {
        clusterLimits.set(name, Math.min(limit, clusterLimits.get(name) ?? Number.POSITIVE_INFINITY));
      }
    }
    const allowance = new Map<string, number>();
    if (clusterLimits.size > 0) {
      const running = await store.planner.runningByName(q, [...clusterLimits.keys()]);
      const pendingPerName = countPerName(inFlight);
      for (const [name, limit] of clusterLimits) {
        allowance.set(name, Math.max(0, limit - (running.get(name) ?? 0) - (pendingPerName.get(name) ?? 0)));
      }
    }

    // Candidates per task name, limited by the free capacity that can run it and
    // by the name's cluster allowance.
    const limits = new Map<string, number>();
    for (const n of nodes) {
      const f = free.get(n.id) ?? 0;
      if (f === 0) continue;
      for (const name of n.task_names) limits.set(name, Math.min(config.batchSize, (limits.get(name) ?? 0) + f));
    }
    for (const [name, left] of allowance) {
      if (!limits.has(name)) continue;
      if (left === 0) limits.delete(name);
      else limits.set(name, Math.min(left, limits.get(name) ?? 0));
    }
    if (limits.size === 0) return { nodes, free, allowance, fetched: [], table: undefined };
    const read = await store.planner.candidates(q, limits, inFlight.length === 0 ? NO_IDS : inFlight.map((d) => d.id));
    return { nodes, free, allowance, fetched: read.candidates, table: read.table };
  }
}

/**
 * The decisions assigned per node. Loops over a batch live in small functions
 * of their own: V8 optimises the function whose loop runs hot, and with the
 * loop in \`read\` it compiled all of that async function (30-75 ms of a
 * background thread, in the first seconds of a leader).
 */
function countPerNode(decisions: readonly PlanDecision[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const d of decisions) {
    if (d.node !== null) counts.set(d.node, (counts.get(d.node) ?? 0) + 1);
  }
  return counts;
}

/** The decisions assigned per task name (see countPerNode). */
function countPerName(decisions: readonly PlanDecision[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const d of decisions) {
    if (d.taskName !== undefined) counts.set(d.taskName, (counts.get(d.taskName) ?? 0) + 1);
  }
  return counts;
}

/**
 * No ids to leave out: one array for every such read, so that the candidates
 * query's callers see the same two array shapes in every node (a fresh empty
 * array per call had V8 drop the planner's optimised read in a new node).
 */
const NO_IDS: readonly string[] = [];

/**
 * Chooses a node for as many candidates as free capacity allows, and parks the
 * delayed ones. Order: higher priority first; among equal priority, task names
 * take turns (fair share, so a flood of one name cannot starve the others),
 * oldest first within a name. Each task goes to the capable node with the most
 * free slots. Candidates that get no node are left as they are (no write).
 */
export function decide(
  candidates: readonly Candidate[],
  nodes: readonly LiveNode[],
  free: Map<string, number>,
  /** Tasks each cluster-limited name may still start; names absent are unlimited. */
  allowance: Map<string, number> = new Map(),
  /**
   * Tasks recently given to each name. Among equal priority and turn, the
   * least-served name goes first, so names take turns across cycles too: with
   * one free slot per cycle, an older flood of one name would otherwise hold
   * every later name back until it drained.
   */
  served: ReadonlyMap<string, number> = new Map(),
  /** Filled with the number of tasks assigned per task name. */
  assignedPerName?: Map<string, number>,
): PlanDecision[] {
  const decisions: PlanDecision[] = [];
  let runnable: Candidate[] = [];
  for (const c of candidates) {
    if (c.delayed) decisions.push({ id: c.id, queue: "PARKED", node: null, parkReason: "RUN_AFTER" });
    else runnable.push(c);
  }
  // One name at one priority, already oldest first (as the candidates query
  // returns them): that is the order; fairOrder would only confirm it.
  if (!singleRunOldestFirst(runnable)) runnable = fairOrder(runnable, served);

  const capable = new Map<string, LiveNode[]>();
  for (const n of nodes) {
    for (const name of n.task_names) {
      let list = capable.get(name);
      if (!list) {
        list = [];
        capable.set(name, list);
      }
      list.push(n);
    }
  }
  let totalFree = 0;
  for (const f of free.values()) totalFree += f;

  for (const c of runnable) {
    if (totalFree === 0) break;
    const left = allowance.get(c.task_name);
    if (left === 0) continue;
    let node: string | null = null;
    let best = 0;
    for (const n of capable.get(c.task_name) ?? []) {
      const f = free.get(n.id) ?? 0;
      if (f > best) {
        best = f;
        node = n.id;
      }
    }
    if (node === null) continue;
    free.set(node, best - 1);
    totalFree--;
    if (left !== undefined) allowance.set(c.task_name, left - 1);
    if (assignedPerName) assignedPerName.set(c.task_name, (assignedPerName.get(c.task_name) ?? 0) + 1);
    decisions.push({ id: c.id, queue: "READY", node, parkReason: null, taskName: c.task_name });
  }
  return decisions;
}

/**
 * Higher priority first; among equal priority, task names take turns (rank
 * within name and priority by id), the least-served name first, then oldest.
 */
function fairOrder(runnable: readonly Candidate[], served: ReadonlyMap<string, number>): Candidate[] {
  const ranked = runnable.map((c) => ({ c, rank: 0 }));
  ranked.sort((a, b) => b.c.priority - a.c.priority || cmp(a.c.task_name, b.c.task_name) || cmp(a.c.id, b.c.id));
  let prevKey = "";
  let rank = 0;
  for (const r of ranked) {
    const key = `${r.c.priority}\u0000${r.c.task_name}`;
    rank = key === prevKey ? rank + 1 : 0;
    prevKey = key;
    r.rank = rank;
  }
  ranked.sort(
    (a, b) =>
      b.c.priority - a.c.priority ||
      a.rank - b.rank ||
      (served.get(a.c.task_name) ?? 0) - (served.get(b.c.task_name) ?? 0) ||
      cmp(a.c.id, b.c.id),
  );
  return ranked.map((r) => r.c);
}

/** Whether every candidate has the first one's name and priority, and ids ascend. */
function singleRunOldestFirst(runnable: readonly Candidate[]): boolean {
  const first = runnable[0];
  if (!first) return true;
  let prev = "";
  for (const c of runnable) {
    if (c.task_name !== first.task_name || c.priority !== first.priority || c.id <= prev) return false;
    prev = c.id;
  }
  return true;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
