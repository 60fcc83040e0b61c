// Random DAG shapes for the `dag` ledger task, and their reference outcome
// computed in plain TypeScript: what every task ends as, what every join
// receives, and the workflow's status.
import type { ExpectedJoin, ExpectedTask, FinalState } from "./checker.js";
import type { DagSpec } from "./tasks.js";

/** A small seeded generator (mulberry32), so a failing shape can be replayed from its seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface DagOptions {
  /** Levels below the root (≤ 5). */
  readonly depth: number;
  /** Most children of one task (≤ 50). */
  readonly fanOut: number;
  /** Chance that a leaf fails (NonRetryableError). */
  readonly failRate: number;
  /** Chance that a task with children has a join over them. */
  readonly joinRate: number;
  /** Most tasks in the DAG: keeps a random shape within the scenario's budget. */
  readonly maxTasks: number;
  readonly maxSleepMs: number;
}

export function randomDag(random: () => number, rootKey: string, options: DagOptions): DagSpec {
  let budget = options.maxTasks - 1;
  const build = (key: string, level: number): DagSpec => {
    const sleepMs = Math.floor(random() * options.maxSleepMs);
    const wantChildren = level < options.depth && budget > 0 && (level === 0 || random() < 0.6);
    if (!wantChildren) return random() < options.failRate ? { key, sleepMs, fail: true } : { key, sleepMs };
    const n = Math.min(budget, 1 + Math.floor(random() * options.fanOut));
    budget -= n;
    const withJoin = budget > 0 && random() < options.joinRate;
    if (withJoin) budget -= 1;
    const children = Array.from({ length: n }, (_, i) => build(`${key}.${i}`, level + 1));
    return { key, sleepMs, children, ...(withJoin ? { join: `${key}.join` } : {}) };
  };
  return build(rootKey, 0);
}

export interface DagReference {
  readonly tasks: ExpectedTask[];
  readonly joins: ExpectedJoin[];
  readonly workflowStatus: FinalState;
}

/**
 * The reference: a task fails exactly when its spec says so (and then schedules
 * nothing); a join receives its children's own outcomes in order; a failure is
 * handled when a join receives it (our joins always complete), and any
 * unhandled failure makes the workflow FAILED.
 */
export function dagReference(root: DagSpec): DagReference {
  const tasks: ExpectedTask[] = [];
  const joins: ExpectedJoin[] = [];
  let unhandled = 0;
  const visit = (spec: DagSpec, listedByJoin: boolean) => {
    tasks.push({ key: spec.key, state: spec.fail ? "FAILED" : "COMPLETED" });
    if (spec.fail) {
      if (!listedByJoin) unhandled++;
      return;
    }
    const children = spec.children ?? [];
    for (const child of children) visit(child, spec.join !== undefined);
    if (spec.join) {
      joins.push({
        key: spec.join,
        received: children.map((c) => (c.fail ? (["FAILED", null] as const) : (["COMPLETED", c.key] as const))),
      });
    }
  };
  visit(root, false);
  return { tasks, joins, workflowStatus: unhandled > 0 ? "FAILED" : "COMPLETED" };
}
