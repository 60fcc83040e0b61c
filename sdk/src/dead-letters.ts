import {
  type DeadLetterFilter,
  type DeadLetterRow,
  type Engine,
  InvalidArgumentError,
  type TaskErrorInfo,
  validateTaskName,
} from "@weft/engine";
import { validateWorkflowId } from "./options.js";

/** One attempt of a task, as the dead-letter table and attempt history record it. */
export interface AttemptRecord {
  /** 1 for the first attempt (a requeue starts again at 1). */
  readonly attempt: number;
  /** The node that ran it. */
  readonly node: string | null;
  readonly startedAt: Date | null;
  readonly endedAt: Date;
  /** ATTEMPT_LOST when its node died or it passed its database deadline. */
  readonly error: TaskErrorInfo | null;
}

/** A task that failed its last attempt, as copied to the dead-letter table. */
export interface DeadLetter {
  readonly taskId: string;
  readonly workflowId: string;
  readonly parentId: string | null;
  readonly taskName: string;
  readonly input: unknown;
  /** The last attempt's error. */
  readonly error: TaskErrorInfo | null;
  /** Every attempt, oldest first. */
  readonly attempts: readonly AttemptRecord[];
  readonly taskCreatedAt: Date;
  readonly failedAt: Date;
  /**
   * A slot task's slot (`defineSlotTask`): its series (`taskName` and `every`)
   * and its start. The slot is FAILED; requeueing the task makes it AVAILABLE
   * again, and the task's success completes it. Null for other tasks.
   */
  readonly slot: DeadLetterSlot | null;
}

/** The slot of a dead-lettered slot task. */
export interface DeadLetterSlot {
  /** The series: the task name and its normalised interval (`1h`). */
  readonly taskName: string;
  readonly every: string;
  readonly start: Date;
}

export interface DeadLetterQuery {
  readonly taskName?: string;
  readonly workflowId?: string;
  /** Failed at or after this time. */
  readonly failedFrom?: Date;
  /** Failed before this time. */
  readonly failedTo?: Date;
}

export interface DeadLetterListOptions extends DeadLetterQuery {
  /** At most this many, newest first (default 100, at most 1,000). */
  readonly limit?: number;
}

const MAX_IDS = 10_000;

export function toAttempt(a: Record<string, unknown>): AttemptRecord {
  return {
    attempt: Number(a.attempt),
    node: (a.node as string | null) ?? null,
    startedAt: a.startedAt ? new Date(a.startedAt as string) : null,
    endedAt: new Date(a.endedAt as string),
    error: (a.error as TaskErrorInfo | null) ?? null,
  };
}

function toDeadLetter(r: DeadLetterRow): DeadLetter {
  return {
    taskId: r.task_id,
    workflowId: r.workflow_id,
    parentId: r.parent_id,
    taskName: r.task_name,
    input: r.input,
    error: (r.error as TaskErrorInfo | null) ?? null,
    attempts: (r.attempts as Record<string, unknown>[]).map(toAttempt),
    taskCreatedAt: r.task_created_at,
    failedAt: r.failed_at,
    slot:
      r.slot_every !== null && r.slot_start !== null
        ? { taskName: r.task_name, every: r.slot_every, start: r.slot_start }
        : null,
  };
}

function validateQuery(q: DeadLetterQuery | undefined): DeadLetterFilter {
  if (q === undefined) return {};
  if (typeof q !== "object" || q === null) throw new InvalidArgumentError("query", "expected an object");
  const known = new Set(["taskName", "workflowId", "failedFrom", "failedTo", "limit"]);
  for (const key of Object.keys(q)) {
    if (!known.has(key)) throw new InvalidArgumentError(key, `unknown option; known: ${[...known].join(", ")}`);
  }
  if (q.taskName !== undefined) validateTaskName(q.taskName);
  if (q.workflowId !== undefined) validateWorkflowId(q.workflowId);
  for (const key of ["failedFrom", "failedTo"] as const) {
    const d = q[key];
    if (d !== undefined && (!(d instanceof Date) || Number.isNaN(d.getTime()))) {
      throw new InvalidArgumentError(key, "expected a valid Date");
    }
  }
  if (q.failedFrom && q.failedTo && q.failedTo < q.failedFrom) {
    throw new InvalidArgumentError("failedTo", "is before failedFrom");
  }
  return { taskName: q.taskName, workflowId: q.workflowId, failedFrom: q.failedFrom, failedTo: q.failedTo };
}

function validateIds(taskIds: unknown): string[] {
  if (!Array.isArray(taskIds) || taskIds.length === 0) {
    throw new InvalidArgumentError("taskIds", "expected a non-empty array of task ids");
  }
  if (taskIds.length > MAX_IDS) throw new InvalidArgumentError("taskIds", `at most ${MAX_IDS} per call`);
  return taskIds.map((id, i) => validateWorkflowId(id, `taskIds[${i}]`));
}

/**
 * The dead-letter table: tasks that failed their last attempt (unless their
 * definition turned dead-lettering off), with their input and every attempt.
 */
export class DeadLetters {
  /** @internal created by WeftClient */
  constructor(private readonly engine: Engine) {}

  /** Dead letters matching `options`, newest first. */
  async list(options?: DeadLetterListOptions): Promise<DeadLetter[]> {
    const filter = validateQuery(options);
    const limit = options?.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > 1_000) {
      throw new InvalidArgumentError("limit", "expected an integer from 1 to 1000");
    }
    const rows = await this.engine.api.deadLetters.list(filter, limit);
    return rows.map(toDeadLetter);
  }

  /** One dead letter, or undefined. */
  async get(taskId: string): Promise<DeadLetter | undefined> {
    validateWorkflowId(taskId, "taskId");
    const row = await this.engine.api.deadLetters.get(taskId);
    return row ? toDeadLetter(row) : undefined;
  }

  /**
   * Gives each task a new run with a fresh attempt budget; all or nothing. The
   * task re-enters its DAG: joins that have not started wait for it again, and
   * its workflow is RUNNING until it finishes. Throws DeadLetterNotFoundError or
   * NotRequeueableError (task purged, workflow cancelled). Returns the ids.
   */
  async requeue(taskIds: readonly string[]): Promise<string[]> {
    const ids = validateIds(taskIds);
    return this.engine.api.deadLetters.requeue(ids);
  }

  /**
   * Deletes dead letters, by id or by query (an empty query purges all). Their
   * tasks stay until the cleaner's retention. Returns how many were deleted.
   */
  async purge(target: { readonly taskIds: readonly string[] } | DeadLetterQuery): Promise<number> {
    if (typeof target !== "object" || target === null) {
      throw new InvalidArgumentError("target", "expected { taskIds } or a query");
    }
    if ("taskIds" in target) {
      return this.engine.api.deadLetters.purge({ taskIds: validateIds(target.taskIds) });
    }
    return this.engine.api.deadLetters.purge(validateQuery(target));
  }
}
