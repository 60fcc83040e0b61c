import type { PlannerConfig } from "../config.js";
import { pollingDelayFor } from "../config.js";
import type { Queryable } from "../db/pg.js";
import { isConnectionError } from "../db/pg.js";
import type { Logger } from "../logger.js";
import type { Store } from "../store/index.js";
import type { LiveNode, PlanDecision, ReadyCandidate } from "../store/planner.js";
import { LoopService, OutageLog } from "./service.js";

interface Candidate {
  readonly id: string;
  readonly taskName: string;
  readonly priority: number;
  readonly isNew: boolean;
  rank: number;
}

/**
 * The planner: runs on the leader only, on the leader's connection. One cycle
 * (1) every `deadNodeSweepMs`, declares nodes with a stale heartbeat dead and
 * returns their tasks to READY, and releases PARKED tasks whose run_after has
 * passed; (2) takes a batch of NEW tasks; (3) reads READY tasks per task name up
 * to the free capacity of the live nodes that can run them; (4) decides, for
 * each task, READY / PARKED and the node it runs on; (5) applies all decisions
 * in one guarded UPDATE that also notifies the chosen nodes (one NOTIFY per
 * cycle). It wakes on notifications and otherwise polls with `pollingDelay`.
 */
export class Planner extends LoopService {
  readonly name = "planner";
  private lastSweep = 0;
  private readonly outage: OutageLog;
  /** Cycles run since start; tests and the bench read it. */
  cycles = 0;

  constructor(
    private readonly store: Store,
    private readonly db: Queryable,
    private readonly config: PlannerConfig,
    private readonly log: Logger,
    private readonly onConnectionLost: () => void,
  ) {
    super();
    this.outage = new OutageLog(log, "planner");
  }

  protected async tick(): Promise<number> {
    try {
      const handled = await this.cycle();
      this.outage.success();
      return handled >= this.config.batchSize ? 0 : pollingDelayFor(this.config.pollingDelay, handled);
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
    const now = Date.now();
    if (now - this.lastSweep >= config.deadNodeSweepMs) {
      this.lastSweep = now;
      const swept = await store.planner.sweepDeadNodes(db, config.nodeDeadAfterMs);
      if (swept.dead_nodes.length > 0) {
        this.log.warn(
          { nodes: swept.dead_nodes, released: swept.released },
          "declared nodes dead; re-planning their tasks",
        );
      }
      handled += await store.planner.promoteDue(db, config.batchSize);
    }

    const nodes = await store.planner.liveNodes(db, config.nodeDeadAfterMs);
    const newTasks = await store.planner.newTasks(db, config.batchSize);
    const free = new Map<string, number>();
    for (const n of nodes) free.set(n.id, Math.max(0, n.capacity - n.active));

    // READY candidates per task name, limited by the free capacity that can run it.
    const limits = new Map<string, number>();
    for (const n of nodes) {
      const f = free.get(n.id) ?? 0;
      if (f === 0) continue;
      for (const name of n.task_names) limits.set(name, Math.min(config.batchSize, (limits.get(name) ?? 0) + f));
    }
    const ready: ReadyCandidate[] = limits.size > 0 ? await store.planner.readyTasks(db, limits) : [];

    const decisions = decide(newTasks, ready, nodes, free);
    const applied = await store.planner.apply(db, decisions);
    handled += applied;
    if (applied > 0) this.log.debug({ applied, new: newTasks.length, ready: ready.length }, "planned");
    return handled;
  }
}

/**
 * Chooses a node for as many candidates as free capacity allows. Order: higher
 * priority first; among equal priority, task names take turns (fair share, so a
 * flood of one name cannot starve the others), oldest first within a name.
 * Each task goes to the capable node with the most free slots.
 */
export function decide(
  newTasks: readonly { id: string; task_name: string; priority: number; delayed: boolean }[],
  ready: readonly ReadyCandidate[],
  nodes: readonly LiveNode[],
  free: Map<string, number>,
): PlanDecision[] {
  const decisions: PlanDecision[] = [];
  const candidates: Candidate[] = [];
  for (const r of ready)
    candidates.push({ id: r.id, taskName: r.task_name, priority: r.priority, isNew: false, rank: 0 });
  for (const t of newTasks) {
    if (t.delayed) decisions.push({ id: t.id, queue: "PARKED", node: null, parkReason: "RUN_AFTER" });
    else candidates.push({ id: t.id, taskName: t.task_name, priority: t.priority, isNew: true, rank: 0 });
  }
  // Rank within (task name, priority) by id, then interleave names.
  candidates.sort((a, b) => b.priority - a.priority || cmp(a.taskName, b.taskName) || cmp(a.id, b.id));
  let prevKey = "";
  let rank = 0;
  for (const c of candidates) {
    const key = `${c.priority}\u0000${c.taskName}`;
    rank = key === prevKey ? rank + 1 : 0;
    prevKey = key;
    c.rank = rank;
  }
  candidates.sort((a, b) => b.priority - a.priority || a.rank - b.rank || cmp(a.id, b.id));

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

  for (const c of candidates) {
    let node: string | null = null;
    if (totalFree > 0) {
      let best = 0;
      for (const n of capable.get(c.taskName) ?? []) {
        const f = free.get(n.id) ?? 0;
        if (f > best) {
          best = f;
          node = n.id;
        }
      }
      if (node !== null) {
        free.set(node, best - 1);
        totalFree--;
      }
    }
    if (node !== null || c.isNew) decisions.push({ id: c.id, queue: "READY", node, parkReason: null });
  }
  return decisions;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
