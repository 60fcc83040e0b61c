// The checker: from what a scenario expected and what the database and the
// side-effect ledger hold, counts every broken promise. Pure functions over
// plain rows (unit-tested on hand-made bad ledgers), plus a loader.
import type pg from "pg";

export type FinalState = "COMPLETED" | "FAILED" | "CANCELLED";
const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

export interface ExpectedTask {
  /** The task's logical key (its input's `key`, or `spec.key` for a DAG task). */
  readonly key: string;
  readonly state: FinalState;
  /** Its effect goes through ctx.tx: exactly one `eo` ledger row if COMPLETED, none otherwise. */
  readonly exactlyOnce?: boolean;
}

export interface ExpectedJoin {
  readonly key: string;
  /** What the join must receive: [status, upstream key or null], in the order given (the reference). */
  readonly received: readonly (readonly [string, string | null])[];
}

export interface Expectation {
  readonly tasks: readonly ExpectedTask[];
  readonly joins?: readonly ExpectedJoin[];
  /** Expected workflow status by the key of its root task (default: every workflow terminal). */
  readonly workflowStatus?: Readonly<Record<string, FinalState>>;
  /** Affinity: per key, the root keys of its workflows in creation order; their runs must not overlap and keep that order. */
  readonly affinity?: Readonly<Record<string, readonly string[]>>;
  /** Most attempts of a task name running at once in the cluster. */
  readonly clusterLimits?: Readonly<Record<string, number>>;
  /** Most attempts running at once on one node (by node label). */
  readonly nodeCapacity?: number;
}

export interface TaskRow {
  readonly id: string;
  readonly key: string;
  readonly taskName: string;
  readonly workflowId: string;
  readonly parentId: string | null;
  readonly state: string;
  readonly attempt: number;
}

export interface WorkflowRow {
  readonly id: string;
  readonly status: string;
}

export interface LedgerRow {
  readonly kind: "effect" | "eo" | "join";
  readonly key: string;
  readonly taskId: string;
  readonly workflowId: string;
  readonly attempt: number;
  readonly node: string;
  readonly startedAt: number;
  readonly endedAt: number;
  readonly data: unknown;
}

export interface Observed {
  readonly tasks: readonly TaskRow[];
  /** Rows of `workflows` (single-task workflows have none: their status is their task's). */
  readonly workflows: readonly WorkflowRow[];
  readonly ledger: readonly LedgerRow[];
}

export interface Report {
  readonly expected: number;
  /** Expected tasks never finished (no row, or a row not terminal). */
  readonly lost: string[];
  /** Tasks that finished in another state than expected. */
  readonly wrongState: string[];
  /** Keys with more than one task row (an outcome applied twice: its children or joins written twice). */
  readonly finishedTwice: string[];
  /** Exactly-once tasks whose effect was applied a number of times other than 1 (0 if not completed). */
  readonly exactlyOnceViolations: string[];
  /** Effects of tasks the scenario never expected (children of a refused outcome, say). */
  readonly unexpected: string[];
  /** Workflows still RUNNING, or ended with another status than expected. */
  readonly workflowsNotTerminal: string[];
  readonly workflowStatusWrong: string[];
  /** Joins that never ran, or received something other than the reference. */
  readonly joinMismatches: string[];
  /** Workflows of one affinity key that ran at the same time or out of creation order. */
  readonly affinityViolations: string[];
  /** Limits exceeded: more attempts at once than allowed. */
  readonly limitsExceeded: string[];
  /** Tasks whose recorded attempt left no effect in the ledger (an outcome recorded for an attempt that never ran). */
  readonly recordedWithoutEffect: string[];
  /** How many effects ran more than once (at-least-once re-runs: allowed, reported). */
  readonly reRuns: number;
}

/** Every problem in one list of readable lines (empty when every promise held). */
export function problems(report: Report): string[] {
  const out: string[] = [];
  const add = (name: string, items: readonly string[]) => {
    if (items.length > 0)
      out.push(`${name} (${items.length}): ${items.slice(0, 10).join("; ")}${items.length > 10 ? "; ..." : ""}`);
  };
  add("lost", report.lost);
  add("wrong state", report.wrongState);
  add("finished twice", report.finishedTwice);
  add("exactly-once applied != 1", report.exactlyOnceViolations);
  add("unexpected effects", report.unexpected);
  add("workflows not terminal", report.workflowsNotTerminal);
  add("workflow status wrong", report.workflowStatusWrong);
  add("join inputs differ from the reference", report.joinMismatches);
  add("affinity order violated", report.affinityViolations);
  add("limits exceeded", report.limitsExceeded);
  add("recorded without effect", report.recordedWithoutEffect);
  return out;
}

/** Highest number of overlapping [start, end) intervals. */
export function maxOverlap(intervals: readonly { startedAt: number; endedAt: number }[]): number {
  const events = intervals.flatMap((r) => [
    { t: r.startedAt, d: 1 },
    { t: r.endedAt, d: -1 },
  ]);
  events.sort((a, b) => a.t - b.t || a.d - b.d);
  let cur = 0;
  let max = 0;
  for (const e of events) {
    cur += e.d;
    max = Math.max(max, cur);
  }
  return max;
}

export function check(expected: Expectation, observed: Observed): Report {
  const byKey = new Map<string, TaskRow[]>();
  for (const t of observed.tasks) byKey.set(t.key, [...(byKey.get(t.key) ?? []), t]);
  const taskById = new Map(observed.tasks.map((t) => [t.id, t]));
  const ledgerByKey = new Map<string, LedgerRow[]>();
  for (const l of observed.ledger) ledgerByKey.set(l.key, [...(ledgerByKey.get(l.key) ?? []), l]);

  const lost: string[] = [];
  const wrongState: string[] = [];
  const finishedTwice: string[] = [];
  const exactlyOnceViolations: string[] = [];
  const recordedWithoutEffect: string[] = [];
  const expectedKeys = new Set<string>();
  for (const e of [
    ...expected.tasks,
    ...(expected.joins ?? []).map((j) => ({ key: j.key, state: "COMPLETED" as const })),
  ]) {
    expectedKeys.add(e.key);
    const rows = byKey.get(e.key) ?? [];
    if (rows.length > 1) finishedTwice.push(`${e.key}: ${rows.length} task rows`);
    const row = rows[0];
    if (!row || !TERMINAL.has(row.state)) {
      lost.push(`${e.key}: ${row ? row.state : "no task row"}`);
      continue;
    }
    if (row.state !== e.state) wrongState.push(`${e.key}: ${row.state}, expected ${e.state}`);
    const effects = (ledgerByKey.get(e.key) ?? []).filter((l) => l.taskId === row.id);
    if ("exactlyOnce" in e && e.exactlyOnce) {
      const applied = effects.filter((l) => l.kind === "eo").length;
      const want = row.state === "COMPLETED" ? 1 : 0;
      if (applied !== want) exactlyOnceViolations.push(`${e.key}: applied ${applied} times, expected ${want}`);
    }
    if (row.state === "COMPLETED" && !effects.some((l) => l.attempt === row.attempt)) {
      recordedWithoutEffect.push(`${e.key}: attempt ${row.attempt} recorded, no effect of it`);
    }
  }
  const unexpected = [...new Set(observed.ledger.filter((l) => !expectedKeys.has(l.key)).map((l) => l.key))].map(
    (k) => `${k}: not expected`,
  );

  // Workflows: a workflows row when it has more than one task, else its task's state.
  const workflowRows = new Map(observed.workflows.map((w) => [w.id, w.status]));
  const statusOf = (workflowId: string): string => {
    const row = workflowRows.get(workflowId);
    if (row) return row;
    const task = observed.tasks.find((t) => t.workflowId === workflowId);
    return task && TERMINAL.has(task.state) ? task.state : "RUNNING";
  };
  const workflowsNotTerminal: string[] = [];
  const workflowStatusWrong: string[] = [];
  const roots = observed.tasks.filter((t) => t.parentId === null);
  for (const root of roots) {
    const status = statusOf(root.workflowId);
    if (!TERMINAL.has(status)) workflowsNotTerminal.push(`${root.key}: ${status}`);
    const want = expected.workflowStatus?.[root.key];
    if (want && status !== want && TERMINAL.has(status))
      workflowStatusWrong.push(`${root.key}: ${status}, expected ${want}`);
  }

  const joinMismatches: string[] = [];
  for (const j of expected.joins ?? []) {
    const rows = (ledgerByKey.get(j.key) ?? []).filter((l) => l.kind === "join");
    if (rows.length === 0) {
      joinMismatches.push(`${j.key}: never ran`);
      continue;
    }
    const want = JSON.stringify(j.received);
    for (const r of rows) {
      const got = JSON.stringify(r.data);
      if (got !== want) joinMismatches.push(`${j.key} (attempt ${r.attempt}): received ${got}, expected ${want}`);
    }
  }

  // The effects of the attempts whose outcome was recorded.
  const recorded = observed.ledger.filter((l) => taskById.get(l.taskId)?.attempt === l.attempt);
  const affinityViolations: string[] = [];
  for (const [affinityKey, rootKeys] of Object.entries(expected.affinity ?? {})) {
    const spans = rootKeys.map((rootKey) => {
      const root = byKey.get(rootKey)?.[0];
      const rows = root ? recorded.filter((l) => l.workflowId === root.workflowId) : [];
      return {
        rootKey,
        start: Math.min(...rows.map((r) => r.startedAt)),
        end: Math.max(...rows.map((r) => r.endedAt)),
        n: rows.length,
      };
    });
    for (let i = 1; i < spans.length; i++) {
      const prev = spans[i - 1];
      const cur = spans[i];
      if (!prev || !cur || prev.n === 0 || cur.n === 0) continue;
      if (cur.start < prev.end) {
        affinityViolations.push(
          `${affinityKey}: ${cur.rootKey} started ${prev.end - cur.start} ms before ${prev.rootKey} (created before it) ended`,
        );
      }
    }
  }

  const limitsExceeded: string[] = [];
  for (const [taskName, max] of Object.entries(expected.clusterLimits ?? {})) {
    const rows = observed.ledger.filter((l) => taskById.get(l.taskId)?.taskName === taskName);
    const peak = maxOverlap(rows);
    if (peak > max) limitsExceeded.push(`${taskName}: ${peak} at once, limit ${max}`);
  }
  if (expected.nodeCapacity !== undefined) {
    const nodes = new Set(observed.ledger.map((l) => l.node));
    for (const node of nodes) {
      const peak = maxOverlap(observed.ledger.filter((l) => l.node === node));
      if (peak > expected.nodeCapacity)
        limitsExceeded.push(`node ${node}: ${peak} at once, capacity ${expected.nodeCapacity}`);
    }
  }

  const effectsPerKey = new Map<string, number>();
  for (const l of observed.ledger) if (l.kind !== "join") effectsPerKey.set(l.key, (effectsPerKey.get(l.key) ?? 0) + 1);
  const reRuns = [...effectsPerKey.values()].filter((n) => n > 1).length;

  return {
    expected: expected.tasks.length + (expected.joins?.length ?? 0),
    lost,
    wrongState,
    finishedTwice,
    exactlyOnceViolations,
    unexpected,
    workflowsNotTerminal,
    workflowStatusWrong,
    joinMismatches,
    affinityViolations,
    limitsExceeded,
    recordedWithoutEffect,
    reRuns,
  };
}

/** Reads the scenario's tasks (keys starting with `prefix`), their workflows and ledger rows. */
export async function observe(pool: pg.Pool, prefix: string): Promise<Observed> {
  const like = `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
  const tasks = await pool.query<{
    id: string;
    key: string;
    task_name: string;
    workflow_id: string;
    parent_id: string | null;
    state: string;
    attempt: number;
  }>(
    `SELECT id, coalesce(input->>'key', input->'spec'->>'key') AS key, task_name, workflow_id, parent_id, state, attempt
       FROM weft.tasks WHERE coalesce(input->>'key', input->'spec'->>'key') LIKE $1`,
    [like],
  );
  const workflows = await pool.query<WorkflowRow>("SELECT id, status FROM weft.workflows WHERE id = ANY($1::text[])", [
    [...new Set(tasks.rows.map((t) => t.workflow_id))],
  ]);
  const ledger = await pool.query<{
    kind: LedgerRow["kind"];
    key: string;
    task_id: string;
    workflow_id: string;
    attempt: number;
    node: string;
    started_at: Date;
    ended_at: Date;
    data: unknown;
  }>(
    "SELECT kind, key, task_id, workflow_id, attempt, node, started_at, ended_at, data FROM public.chaos_ledger WHERE key LIKE $1",
    [like],
  );
  return {
    tasks: tasks.rows.map((t) => ({
      id: t.id,
      key: t.key,
      taskName: t.task_name,
      workflowId: t.workflow_id,
      parentId: t.parent_id,
      state: t.state,
      attempt: t.attempt,
    })),
    workflows: workflows.rows,
    ledger: ledger.rows.map((l) => ({
      kind: l.kind,
      key: l.key,
      taskId: l.task_id,
      workflowId: l.workflow_id,
      attempt: l.attempt,
      node: l.node,
      startedAt: l.started_at.getTime(),
      endedAt: l.ended_at.getTime(),
      data: l.data,
    })),
  };
}
