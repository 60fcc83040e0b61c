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
}

export type FinalState = "COMPLETED" | "FAILED";

/** The outcome of one attempt, with the children it scheduled. */
export interface OutcomeRow {
  readonly id: string;
  readonly token: number;
  readonly state: FinalState;
  /** JSON text of the result, or null. */
  readonly result: string | null;
  /** JSON text of the error, or null. */
  readonly error: string | null;
  readonly children: readonly NewTaskRow[];
}
