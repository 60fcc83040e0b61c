/**
 * Every error Weft throws is a WeftError with a stable `code`. The brand symbol
 * (Symbol.for, shared across module copies) keeps `isWeftError` true when two
 * copies of the package are loaded.
 */
import { suggest } from "./suggest.js";

const brand = Symbol.for("weft.error");

export type WeftErrorCode =
  | "CONFIG_INVALID"
  | "INVALID_IDENTIFIER"
  | "INVALID_ARGUMENT"
  | "INPUT_INVALID"
  | "OUTPUT_INVALID"
  | "UNKNOWN_TASK"
  | "DUPLICATE_TASK"
  | "PAYLOAD_TOO_LARGE"
  | "TASK_NOT_FOUND"
  | "WORKFLOW_NOT_FOUND"
  | "WORKFLOW_NOT_RUNNING"
  | "WORKFLOW_FAILED"
  | "WORKFLOW_CANCELLED"
  | "WAIT_TIMEOUT"
  | "SCHEMA_TOO_NEW"
  | "ALREADY_STARTED"
  | "MIGRATION_FILES_INVALID"
  | "WORKFLOW_GRAPH_INVALID"
  | "NON_RETRYABLE"
  | "TASK_TIMEOUT"
  | "ATTEMPT_LOST"
  | "ATTEMPTS_EXHAUSTED"
  | "ATTEMPT_REVOKED"
  | "ATTEMPT_ENDED"
  | "ATTEMPT_NOT_COMMITTED"
  | "DEAD_LETTER_NOT_FOUND"
  | "NOT_REQUEUEABLE"
  | "INVALID_INTERVAL"
  | "INVALID_RANGE"
  | "INVALID_CRON"
  | "SLOT_NOT_ACQUIRED"
  | "IDEMPOTENCY_CONFLICT";

export interface ValidationIssue {
  /** Dotted path of the offending field, e.g. `items.3.name`; empty for the root. */
  readonly path: string;
  readonly message: string;
}

export class WeftError extends Error {
  readonly [brand] = true;
  readonly code: WeftErrorCode;

  constructor(code: WeftErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = "WeftError";
  }
}

export function isWeftError(value: unknown): value is WeftError {
  return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[brand] === true;
}

export class ConfigError extends WeftError {
  constructor(
    readonly key: string,
    detail: string,
  ) {
    super("CONFIG_INVALID", `Invalid Weft configuration at "${key}": ${detail}`);
    this.name = "ConfigError";
  }
}

export class InvalidIdentifierError extends WeftError {
  constructor(
    readonly what: string,
    readonly value: string,
    rule: string,
  ) {
    super("INVALID_IDENTIFIER", `Invalid ${what} ${JSON.stringify(value)}: ${rule}`);
    this.name = "InvalidIdentifierError";
  }
}

export class InvalidArgumentError extends WeftError {
  constructor(
    readonly argument: string,
    detail: string,
  ) {
    super("INVALID_ARGUMENT", `Invalid argument "${argument}": ${detail}`);
    this.name = "InvalidArgumentError";
  }
}

function describeIssues(issues: readonly ValidationIssue[]): string {
  return issues.map((i) => `${i.path === "" ? "(root)" : i.path}: ${i.message}`).join("; ");
}

export class InputValidationError extends WeftError {
  constructor(
    readonly taskName: string,
    readonly issues: readonly ValidationIssue[],
  ) {
    super("INPUT_INVALID", `Input of task "${taskName}" is invalid: ${describeIssues(issues)}`);
    this.name = "InputValidationError";
  }
}

export class OutputValidationError extends WeftError {
  constructor(
    readonly taskName: string,
    readonly issues: readonly ValidationIssue[],
  ) {
    super("OUTPUT_INVALID", `Result of task "${taskName}" does not match its output schema: ${describeIssues(issues)}`);
    this.name = "OutputValidationError";
  }
}

export class UnknownTaskError extends WeftError {
  constructor(
    readonly taskName: string,
    readonly known: readonly string[],
  ) {
    const hint = suggest(taskName, known);
    super(
      "UNKNOWN_TASK",
      `Unknown task "${taskName}"${hint !== undefined ? `; did you mean "${hint}"?` : ""}${
        known.length > 0 ? `; known tasks: ${known.join(", ")}` : "; no tasks are registered"
      }`,
    );
    this.name = "UnknownTaskError";
  }
}

export class DuplicateTaskError extends WeftError {
  constructor(readonly taskName: string) {
    super("DUPLICATE_TASK", `Task "${taskName}" is defined more than once`);
    this.name = "DuplicateTaskError";
  }
}

export class PayloadTooLargeError extends WeftError {
  constructor(
    readonly taskName: string,
    readonly what: "input" | "result",
    readonly bytes: number,
    readonly limitBytes: number,
  ) {
    super(
      "PAYLOAD_TOO_LARGE",
      `The ${what} of task "${taskName}" is ${bytes} bytes as JSON, over the limit of ${limitBytes} bytes (maxPayloadBytes)`,
    );
    this.name = "PayloadTooLargeError";
  }
}

export class TaskNotFoundError extends WeftError {
  constructor(readonly taskId: string) {
    super("TASK_NOT_FOUND", `Task ${taskId} does not exist (or was purged after its retention)`);
    this.name = "TaskNotFoundError";
  }
}

export class WorkflowNotFoundError extends WeftError {
  constructor(readonly workflowId: string) {
    super("WORKFLOW_NOT_FOUND", `Workflow ${workflowId} does not exist (or was purged after its retention)`);
    this.name = "WorkflowNotFoundError";
  }
}

export class WorkflowNotRunningError extends WeftError {
  constructor(
    readonly workflowId: string,
    readonly status: string,
  ) {
    super("WORKFLOW_NOT_RUNNING", `Workflow ${workflowId} is ${status}; nothing can be scheduled into it`);
    this.name = "WorkflowNotRunningError";
  }
}

/** A failed task that no join handled. */
export interface UnhandledFailure {
  readonly taskId: string;
  readonly taskName: string;
  readonly error: TaskErrorInfo | null;
}

export class WorkflowFailedError extends WeftError {
  constructor(
    readonly workflowId: string,
    readonly failures: readonly UnhandledFailure[],
  ) {
    const first = failures[0];
    super(
      "WORKFLOW_FAILED",
      `Workflow ${workflowId} failed: ${failures.length} unhandled task failure(s)${
        first ? `; first: ${first.taskName} ${first.taskId}: ${first.error?.message ?? "unknown error"}` : ""
      }`,
    );
    this.name = "WorkflowFailedError";
  }
}

export class WorkflowCancelledError extends WeftError {
  constructor(
    readonly workflowId: string,
    readonly reason: string | null,
  ) {
    super("WORKFLOW_CANCELLED", `Workflow ${workflowId} was cancelled${reason ? `: ${reason}` : ""}`);
    this.name = "WorkflowCancelledError";
  }
}

export class WaitTimeoutError extends WeftError {
  constructor(
    readonly what: string,
    readonly timeoutMs: number,
  ) {
    super("WAIT_TIMEOUT", `Timed out after ${timeoutMs} ms waiting for ${what}`);
    this.name = "WaitTimeoutError";
  }
}

export class SchemaTooNewError extends WeftError {
  constructor(
    readonly databaseVersion: number,
    readonly codeVersion: number,
  ) {
    super(
      "SCHEMA_TOO_NEW",
      `The database schema is at migration ${databaseVersion} but this Weft knows only up to ${codeVersion}; upgrade Weft`,
    );
    this.name = "SchemaTooNewError";
  }
}

/** start() on a Weft (engine) that was started before: each starts once. */
export class AlreadyStartedError extends WeftError {
  constructor(readonly state: string) {
    super("ALREADY_STARTED", `Weft cannot start: it is ${state} (a Weft starts once; create another to start again)`);
    this.name = "AlreadyStartedError";
  }
}

/** The SQL migration files are missing or misnumbered: the installed package is incomplete. */
export class MigrationFilesError extends WeftError {
  constructor(detail: string) {
    super("MIGRATION_FILES_INVALID", detail);
    this.name = "MigrationFilesError";
  }
}

/** A workflow's stored DAG is inconsistent (a cycle, or an edge to a missing task). */
export class WorkflowGraphError extends WeftError {
  constructor(message: string) {
    super("WORKFLOW_GRAPH_INVALID", message);
    this.name = "WorkflowGraphError";
  }
}

/**
 * Thrown by a task to fail its attempt without retries (the input can never
 * succeed, say). The task goes straight to FAILED and, if enabled, to the
 * dead-letter table.
 */
export class NonRetryableError extends WeftError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("NON_RETRYABLE", message, options);
    this.name = "NonRetryableError";
  }
}

/** An attempt ran past its task's \`timeoutMs\`: its signal aborted and the attempt failed. */
export class TaskTimeoutError extends WeftError {
  constructor(
    readonly taskName: string,
    readonly timeoutMs: number,
  ) {
    super("TASK_TIMEOUT", `Task "${taskName}" timed out after ${timeoutMs} ms`);
    this.name = "TaskTimeoutError";
  }
}

/**
 * An attempt that used up the task's last attempt was lost (its node died, or
 * it ran past its database deadline): the task fails without another run.
 */
export class AttemptsExhaustedError extends WeftError {
  constructor(
    readonly taskName: string,
    readonly attempts: number,
  ) {
    super(
      "ATTEMPTS_EXHAUSTED",
      `Task "${taskName}" used all ${attempts} attempts; the last one was lost (node died or deadline passed)`,
    );
    this.name = "AttemptsExhaustedError";
  }
}

/**
 * An attempt that is no longer its node's: its assignment was revoked
 * (cancelled, re-planned, the node declared dead) or released because the
 * node stops. Its signal aborts with this reason; its late outcome is refused.
 */
export class AttemptRevokedError extends WeftError {
  constructor(detail: string) {
    super("ATTEMPT_REVOKED", detail);
    this.name = "AttemptRevokedError";
  }
}

/** A query on the transaction of an exactly-once attempt that has ended (timed out, say). */
export class AttemptEndedError extends WeftError {
  constructor(detail: string) {
    super("ATTEMPT_ENDED", detail);
    this.name = "AttemptEndedError";
  }
}

/** An exactly-once attempt whose transaction did not commit: nothing of it is stored, and the retry policy decides. */
export class AttemptNotCommittedError extends WeftError {
  constructor(detail: string) {
    super("ATTEMPT_NOT_COMMITTED", detail);
    this.name = "AttemptNotCommittedError";
  }
}

export class DeadLetterNotFoundError extends WeftError {
  constructor(readonly taskId: string) {
    super("DEAD_LETTER_NOT_FOUND", `No dead letter for task ${taskId}`);
    this.name = "DeadLetterNotFoundError";
  }
}

/** A dead letter whose task can no longer run again (purged, or its workflow was cancelled). */
export class NotRequeueableError extends WeftError {
  constructor(
    readonly taskId: string,
    reason: string,
  ) {
    super("NOT_REQUEUEABLE", `Task ${taskId} cannot be requeued: ${reason}`);
    this.name = "NotRequeueableError";
  }
}

/** A slot interval that is not a divisor of a day (sub-day) or 1d / 1w (calendar). */
export class InvalidIntervalError extends WeftError {
  constructor(
    readonly every: unknown,
    detail: string,
  ) {
    super("INVALID_INTERVAL", `Invalid slot interval ${JSON.stringify(every)}: ${detail}`);
    this.name = "InvalidIntervalError";
  }
}

/** A time range with its end before its start, or too many slots. */
export class InvalidRangeError extends WeftError {
  constructor(detail: string) {
    super("INVALID_RANGE", `Invalid time range: ${detail}`);
    this.name = "InvalidRangeError";
  }
}

export class InvalidCronError extends WeftError {
  constructor(
    readonly expression: unknown,
    detail: string,
  ) {
    super("INVALID_CRON", `Invalid cron expression ${JSON.stringify(expression)}: ${detail}`);
    this.name = "InvalidCronError";
  }
}

/** A pull-mode slot was finished twice, or its generation was re-opened meanwhile. */
export class SlotNotAcquiredError extends WeftError {
  constructor(detail: string) {
    super("SLOT_NOT_ACQUIRED", detail);
    this.name = "SlotNotAcquiredError";
  }
}

/**
 * A schedule with an idempotency key that an earlier schedule of the same task
 * name used (within the window) with a different input. Nothing was written:
 * a key names one schedule, so new work needs a new key.
 */
export class IdempotencyConflictError extends WeftError {
  constructor(
    readonly taskName: string,
    readonly key: string,
    /** The task the key's first schedule created. */
    readonly taskId: string,
    readonly workflowId: string,
  ) {
    super(
      "IDEMPOTENCY_CONFLICT",
      `Idempotency key ${JSON.stringify(key)} of task "${taskName}" was used by task ${taskId} with a different input; nothing was scheduled`,
    );
    this.name = "IdempotencyConflictError";
  }
}

/** Error codes whose failures are never retried: the same attempt would fail the same way. */
export const NON_RETRYABLE_CODES: ReadonlySet<string> = new Set([
  "NON_RETRYABLE",
  "INPUT_INVALID",
  "OUTPUT_INVALID",
  "UNKNOWN_TASK",
  "PAYLOAD_TOO_LARGE",
  "ATTEMPTS_EXHAUSTED",
]);

/**
 * Codes of Weft's own errors for API misuse (a programming error): thrown
 * inside a task, e.g. \`ctx.scheduleJoin\` with an id the attempt did not
 * schedule, they fail the task at once, since no retry can succeed. Only
 * errors Weft threw count (another library's error with a \`code\` of the same
 * name is retried as usual).
 */
export const PROGRAMMING_ERROR_CODES: ReadonlySet<string> = new Set([
  "INVALID_ARGUMENT",
  "INVALID_IDENTIFIER",
  "CONFIG_INVALID",
  "DUPLICATE_TASK",
  "INVALID_INTERVAL",
  "INVALID_RANGE",
  "INVALID_CRON",
  // A key reused for other work conflicts again on every retry within its window.
  "IDEMPOTENCY_CONFLICT",
]);

/** Whether a task's failure is final whatever its retry policy says (see NON_RETRYABLE_CODES, PROGRAMMING_ERROR_CODES). */
export function isNonRetryable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  if (typeof code !== "string" || !(error instanceof Error)) return false;
  return NON_RETRYABLE_CODES.has(code) || (isWeftError(error) && PROGRAMMING_ERROR_CODES.has(code));
}

/** The serialised form of a task failure as stored in the `error` column. */
export interface TaskErrorInfo {
  readonly name: string;
  readonly message: string;
  readonly code?: string;
  readonly stack?: string;
}

export function toTaskErrorInfo(error: unknown): TaskErrorInfo {
  if (error instanceof Error) {
    const code = isWeftError(error) ? error.code : (error as { code?: unknown }).code;
    return {
      name: error.name,
      message: error.message,
      ...(typeof code === "string" ? { code } : {}),
      ...(error.stack !== undefined ? { stack: error.stack } : {}),
    };
  }
  return { name: "NonError", message: String(error) };
}
