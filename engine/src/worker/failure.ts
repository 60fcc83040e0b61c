/**
 * The retry decision: the outcome of a failed attempt (another attempt after
 * the policy's delay, or a final failure, dead-lettered or not) and its log line.
 */
import { isNonRetryable, type TaskErrorInfo, toTaskErrorInfo } from "../errors.js";
import type { TaskHandler } from "../handler.js";
import type { EventLogger, RateLimitedLog } from "../logger.js";
import { retryDelayMs } from "../retry.js";
import type { AssignedTaskRow, OutcomeRow } from "../store/types.js";
import type { ResolvedTaskSettings } from "../task-settings.js";

/** The outcome of a failed attempt: a retry after the policy's delay, or a final failure. */
export async function failureOutcome(
  row: AssignedTaskRow,
  handler: TaskHandler | undefined,
  settings: ResolvedTaskSettings | undefined,
  error: unknown,
  log: EventLogger,
): Promise<OutcomeRow> {
  const info = toTaskErrorInfo(error);
  let delayMs = settings && !isNonRetryable(error) ? retryDelayMs(settings.retry, row.attempt) : null;
  if (handler?.onFailure) {
    let stop = false;
    try {
      await handler.onFailure({
        taskId: row.id,
        workflowId: row.workflow_id,
        taskName: row.task_name,
        input: row.input,
        attempt: row.attempt,
        error,
        willRetry: delayMs !== null,
        stopRetrying: () => {
          stop = true;
        },
      });
    } catch (hookError) {
      log.warn(
        { event: "task.on_failure_threw", err: hookError, taskId: row.id },
        "onFailure threw; the retry policy applies unchanged",
      );
    }
    if (stop) delayMs = null;
  }
  const retry =
    delayMs !== null && settings && settings.retry.mode !== "OFF"
      ? { delayMs, maxIntervalMs: settings.retry.maxIntervalMs }
      : undefined;
  return {
    id: row.id,
    workflowId: row.workflow_id,
    taskName: row.task_name,
    token: row.token,
    span: undefined,
    state: "FAILED",
    result: null,
    error: JSON.stringify(info),
    children: [],
    retry,
    deadLetter: settings?.deadLetter ?? true,
    slot: handler?.slot !== undefined,
  };
}

/**
 * One line per failed attempt whose outcome is queued: \`task.retried\`
 * (info) when another attempt follows, else \`task.dead_lettered\` or
 * \`task.failed\` (warn). Rate-limited; the error's stack is in the task's
 * attempt log and dead letter, not here.
 */
export function logFailure(row: AssignedTaskRow, outcome: OutcomeRow, failureLog: RateLimitedLog): void {
  let info: TaskErrorInfo;
  try {
    info = JSON.parse(outcome.error ?? "null") as TaskErrorInfo;
  } catch {
    info = { name: "Error", message: String(outcome.error) };
  }
  const retryInMs = outcome.retry?.delayMs;
  const fields = {
    taskId: row.id,
    workflowId: row.workflow_id,
    taskName: row.task_name,
    attempt: row.attempt,
    error: { name: info.name, message: info.message, ...(info.code !== undefined ? { code: info.code } : {}) },
  };
  if (retryInMs !== undefined) {
    failureLog.write("info", { event: "task.retried", ...fields, retryInMs }, "attempt failed; retrying");
  } else if (outcome.deadLetter) {
    failureLog.write("warn", { event: "task.dead_lettered", ...fields }, "task failed; dead-lettered");
  } else {
    failureLog.write("warn", { event: "task.failed", ...fields }, "task failed");
  }
}
