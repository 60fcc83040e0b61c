import type { PlannerConfig } from "../config.js";
import type { Queryable } from "../db/pg.js";
import type { LocalWorker } from "../handoff.js";
import type { Store } from "../store/index.js";
import type { LiveNode, TableSize } from "../store/planner.js";
import type { Candidate, PlanDecision } from "../store/types.js";
import { countPerName, countPerNode } from "./decide.js";

/** What one cycle reads before it decides: the live nodes, their room, the candidates. */
export interface Reading {
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
 * No ids to leave out: one array for every such read, so that the candidates
 * query's callers see the same two array shapes in every node (a fresh empty
 * array per call had V8 drop the planner's optimised read in a new node).
 */
const NO_IDS: readonly string[] = [];

/**
 * Reads the live nodes, their free slots, the cluster allowances and the
 * candidates. \`inFlight\`: assignments of an apply not committed yet, which
 * the read cannot see. \`local\`: the worker of the leader's own node, if any.
 */
export async function read(
  store: Store,
  config: PlannerConfig,
  local: LocalWorker | undefined,
  q: Queryable,
  inFlight: readonly PlanDecision[],
): Promise<Reading> {
  const pendingPerNode = countPerNode(inFlight);
  const nodes = await store.planner.liveNodes(q, config.nodeDeadAfterMs);
  const localId = local?.handoffTarget()?.id;
  const free = new Map<string, number>();
  const cpuLimit = config.nodeCpuLoadingLimit;
  for (const n of nodes) {
    // A node over the CPU limit gets no new tasks (its running ones go on).
    const overloaded =
      cpuLimit !== undefined && n.cpu_load !== null && n.cpu_load !== undefined && n.cpu_load > cpuLimit;
    // This node's own room is what its worker counts (see LocalWorker.room).
    const room = n.id === localId ? (local?.room() ?? 0) : n.capacity - n.active;
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
