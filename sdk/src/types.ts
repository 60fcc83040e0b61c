import type { Queryable, TaskErrorInfo } from "@weft/engine";

/** Identifies a scheduled task: both ids are ULIDs. */
export interface TaskRef {
  readonly taskId: string;
  readonly workflowId: string;
}

export interface ScheduleOptions {
  /** Higher runs first among ready tasks; default 0. */
  readonly priority?: number;
  /** Never started before this time (database clock). */
  readonly runAt?: Date;
  /** Never started before this many milliseconds from now; exclusive with `runAt`. */
  readonly delayMs?: number;
  /** Affinity group and key; give both or neither. */
  readonly affinityGroup?: string;
  readonly affinity?: string;
  /** Add the task to this existing, RUNNING workflow instead of starting a new one. */
  readonly workflowId?: string;
  /**
   * Schedule inside the caller's transaction: a `pg` client on which BEGIN was
   * issued. The task exists only if that transaction commits.
   */
  readonly tx?: Queryable;
  /**
   * Schedule at most once per key (and task name) within
   * \`idempotency.windowMs\`: a later schedule with the key writes nothing and
   * gets this one's ids, or an IdempotencyConflictError when its input differs.
   * 1-255 characters; starts a new workflow (not with \`workflowId\`).
   */
  readonly idempotencyKey?: string;
}

export interface ChildScheduleOptions extends Omit<ScheduleOptions, "workflowId" | "tx" | "idempotencyKey"> {
  /** Exclude the child from the joins that wait for this task (same as \`ctx.fork\`). */
  readonly fork?: boolean;
}

/** Where and when one task runs: the placement part of ScheduleOptions. */
export type Placement = Pick<ScheduleOptions, "priority" | "runAt" | "delayMs" | "affinityGroup" | "affinity">;

/** Options of \`scheduleMany\`: those of \`schedule\`, and placement per input. */
export interface ScheduleManyOptions<Input> extends Omit<ScheduleOptions, "idempotencyKey"> {
  /**
   * The placement of each input's task (its priority, runAt or delayMs, and
   * affinity), instead of one for the whole batch: e.g. one affinity key per
   * account. Not combined with the batch's own placement fields.
   */
  readonly placement?: (input: Input, index: number) => Placement;
  /** The idempotency key of each input's task (see ScheduleOptions.idempotencyKey); distinct within the call. */
  readonly idempotencyKey?: (input: Input, index: number) => string;
}

export type TaskState = "PENDING" | "RUNNING" | "COMPLETED" | "FAILED" | "CANCELLED";
export type VirtualQueue = "NEW" | "READY" | "PARKED" | "DELETED";
export type WorkflowState = "RUNNING" | "COMPLETED" | "FAILED" | "CANCELLED";

export interface TaskStatus<Result = unknown> {
  readonly id: string;
  readonly workflowId: string;
  readonly parentId: string | null;
  readonly name: string;
  readonly state: TaskState;
  readonly queue: VirtualQueue;
  /**
   * Why the task waits: RUN_AFTER, JOIN or AFFINITY for a PARKED task, and
   * NO_NODE for a NEW or READY one that no live node serves (its definition is
   * in no running node's \`tasks\`); null otherwise.
   */
  readonly parkReason: string | null;
  readonly attempt: number;
  readonly priority: number;
  readonly input: unknown;
  readonly result: Result | null;
  readonly error: TaskErrorInfo | null;
  /** The node the task is (or was last) assigned to. */
  readonly node: string | null;
  readonly runAfter: Date | null;
  readonly createdAt: Date;
  readonly assignedAt: Date | null;
  readonly finishedAt: Date | null;
}

export interface WorkflowStatus {
  readonly id: string;
  readonly status: WorkflowState;
  readonly rootTaskId: string | null;
  /** Tasks not yet in a final state. */
  readonly pendingTasks: number;
  readonly totalTasks: number;
  readonly failedTasks: number;
  readonly createdAt: Date;
  readonly finishedAt: Date | null;
}

export interface WaitOptions {
  /** Give up after this long with a WaitTimeoutError; default 60 s. */
  readonly timeoutMs?: number;
}
