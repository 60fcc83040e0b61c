/** A task row about to be inserted. `input` is already JSON text (size-checked). */
export interface NewTaskRow {
  readonly id: string;
  readonly workflowId: string;
  readonly parentId: string | null;
  readonly taskName: string;
  readonly input: string;
  readonly priority: number;
  readonly runAfter: Date | null;
  /** Run after this many ms from now on the database clock (when `runAfter` is null). */
  readonly delayMs?: number | null;
  readonly affinityGroup: string | null;
  readonly affinity: string | null;
  /** Joins scheduled with this task (in the same attempt) that list it as upstream. */
  readonly ownJoins?: readonly string[];
  /** A fork is excluded from the joins of its parent. */
  readonly isFork?: boolean;
  /** On a join: how many of the tasks it lists are being inserted with it. */
  readonly joinPending?: number | null;
  /** The scheduling span's W3C traceparent (and " " tracestate), or null (tracing off). */
  readonly traceContext?: string | null;
}

/**
 * A join's dependencies: each task of \`upstream\` -> \`joinId\`, at its position
 * in the list. One entry per join, not per edge: the statement that writes
 * them receives one comma-separated list per join (ULIDs need no escaping),
 * where 10,000 edges as four array parameters cost the driver and the server
 * an escaping and parsing pass per element.
 */
export interface NewJoinEdges {
  readonly joinId: string;
  readonly upstream: readonly string[];
  /** The task whose outcome writes the join (the edges are written only with it). */
  readonly parentId: string;
}

/** A task as a worker receives it. */
export interface AssignedTaskRow {
  readonly id: string;
  readonly workflow_id: string;
  readonly parent_id: string | null;
  readonly task_name: string;
  readonly input: unknown;
  readonly attempt: number;
  readonly token: number;
  readonly priority: number;
  readonly affinity_group: string | null;
  readonly affinity: string | null;
  readonly is_join: boolean;
  /** State saved by an earlier attempt (\`saveState\`), or null. */
  readonly saved_state: unknown;
  /** The scheduling span's context (see migration 011); null unless the store reads traces. */
  readonly trace_context: string | null;
  /** The span of the latest recorded attempt; null unless the store reads traces. */
  readonly attempt_span: string | null;
  /** A join awaits the task (its attempt's span is stored for the join's links); false unless the store reads traces. */
  readonly awaited: boolean;
}

/** One listed upstream of a join, as the join receives it. */
export interface UpstreamRow {
  readonly join_task_id: string;
  readonly id: string;
  /** Null when the upstream task was purged (older than the retention). */
  readonly state: string | null;
  readonly result: unknown;
  readonly error: unknown;
  /** The span of its latest recorded attempt, else of its scheduling (null: tracing was off). */
  readonly span: string | null;
}

export type FinalState = "COMPLETED" | "FAILED";

/** The outcome of one attempt, with the children it scheduled. */
export interface OutcomeRow {
  readonly id: string;
  readonly workflowId: string;
  readonly token: number;
  readonly state: FinalState;
  /** JSON text of the result, or null. */
  readonly result: string | null;
  /** JSON text of the error, or null. */
  readonly error: string | null;
  readonly children: readonly NewTaskRow[];
  /** Edges of the joins among \`children\`. */
  readonly edges?: readonly NewJoinEdges[];
  /** A failure to retry after \`delayMs\`, unless that is past \`maxIntervalMs\` from the first failure. */
  readonly retry?: { readonly delayMs: number; readonly maxIntervalMs: number } | undefined;
  /** The task runs a time slot: the slot is finished with it. */
  readonly slot?: boolean;
  /** A final failure to copy to the dead-letter table. */
  readonly deadLetter?: boolean;
  /** Messages to the joins awaiting this task, by join task name; \`message\` is JSON text. */
  readonly messages?: readonly { readonly joinName: string; readonly message: string }[];
  /**
   * The attempt's span (a traceparent), stored for a retry or a join awaiting
   * the task to link to; tracing only (set by the worker once the attempt ends).
   */
  span?: string | undefined;
  /** The task's name, for metrics (not written). */
  readonly taskName?: string;
}

/** An affinity key: a group and a value within it. */
export interface AffinityKey {
  readonly affinity_group: string;
  readonly affinity: string;
}

/** An affinity key and the workflow holding it. */
export interface AffinityHolder extends AffinityKey {
  readonly workflow_id: string;
  /** The workflow is known to have finished (so it has no unfinished task with the key). */
  readonly finished?: boolean;
}

/** A task the planner may place: unassigned, in NEW or READY. */
export interface Candidate {
  readonly id: string;
  readonly task_name: string;
  readonly priority: number;
  /** Its run_after is still in the future: it will be parked. */
  readonly delayed: boolean;
  readonly workflow_id?: string;
  readonly affinity_group?: string | null;
  readonly affinity?: string | null;
  /** With a key: the workflow holding it when the candidates were read (null: nobody). */
  readonly holder?: string | null;
}

/** One planner decision for a task: its next queue, and its node if assigned now. */
export interface PlanDecision {
  readonly id: string;
  readonly queue: "READY" | "PARKED";
  readonly node: string | null;
  readonly parkReason: string | null;
  /** For an assignment: the task's name (the planner counts what it placed per name). */
  readonly taskName?: string;
  /** For a park for AFFINITY: the key, whose holder the apply checks again. */
  readonly affinityKey?: { readonly group: string; readonly affinity: string };
}

/** The leader's own node, as an apply hands it its assignments (see statements/apply.ts). */
export interface LocalNode {
  readonly id: string;
  /** The highest token the node's worker has seen. */
  readonly cursor: number;
}
