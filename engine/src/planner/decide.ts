/**
 * The planner's decisions, in memory: which candidate goes to which node, and
 * the bookkeeping they rest on. No I/O: everything here takes what a cycle
 * read and returns what it will apply.
 */
import type { LiveNode } from "../store/planner.js";
import type { Candidate, PlanDecision } from "../store/types.js";

/**
 * The decisions assigned per node. Loops over a batch live in small functions
 * of their own: V8 optimises the function whose loop runs hot, and with the
 * loop in \`read\` it compiled all of that async function (30-75 ms of a
 * background thread, in the first seconds of a leader).
 */
export function countPerNode(decisions: readonly PlanDecision[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const d of decisions) {
    if (d.node !== null) counts.set(d.node, (counts.get(d.node) ?? 0) + 1);
  }
  return counts;
}

/** The decisions assigned per task name (see countPerNode). */
export function countPerName(decisions: readonly PlanDecision[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const d of decisions) {
    if (d.taskName !== undefined) counts.set(d.taskName, (counts.get(d.taskName) ?? 0) + 1);
  }
  return counts;
}

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

/**
 * The fairness memory across cycles (decide's \`served\`): counts this cycle's
 * assignments per name, then rebases so the least-served waiting name is at 0.
 */
export function recordServed(
  served: Map<string, number>,
  candidates: readonly Candidate[],
  assigned: ReadonlyMap<string, number>,
): void {
  // A cycle that read no candidates (no room) saw nobody waiting, which is
  // not to say nobody waits: the counts stay as they are.
  if (candidates.length === 0) return;
  for (const [name, n] of assigned) served.set(name, (served.get(name) ?? 0) + n);
  const waiting = new Set<string>();
  for (const c of candidates) waiting.add(c.task_name);
  let min = Number.POSITIVE_INFINITY;
  for (const name of waiting) min = Math.min(min, served.get(name) ?? 0);
  for (const [name, n] of served) {
    if (!waiting.has(name)) served.delete(name);
    else served.set(name, n - min);
  }
}

/**
 * The database deadline of each task name with a timeout (the apply stores it
 * with each assignment): the largest published timeout, plus the grace.
 */
export function timeouts(nodes: readonly LiveNode[], timeoutGraceMs: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const n of nodes) {
    for (const [name, ms] of Object.entries(n.task_timeouts ?? {})) {
      const withGrace = ms + timeoutGraceMs;
      if ((out[name] ?? 0) < withGrace) out[name] = withGrace;
    }
  }
  return out;
}

/** A key's entry in the holders map of parkUnheld. */
export function affinityKeyOf(group: string, affinity: string): string {
  return `${group}\u0000${affinity}`;
}

/**
 * Affinity: a candidate with a key may run only in the workflow holding the
 * key (\`holders\`: workflow id by affinityKeyOf). The others are parked for
 * AFFINITY with their key, until the key is handed to their workflow; the
 * rest go on to decide, in their order.
 */
export function parkUnheld(
  fetched: readonly Candidate[],
  holders: ReadonlyMap<string, string>,
): { candidates: Candidate[]; parked: PlanDecision[] } {
  const candidates: Candidate[] = [];
  const parked: PlanDecision[] = [];
  for (const c of fetched) {
    if (c.affinity === null || c.affinity === undefined) candidates.push(c);
    else if (holders.get(affinityKeyOf(c.affinity_group as string, c.affinity)) === c.workflow_id) candidates.push(c);
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
