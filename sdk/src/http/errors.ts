import type { z } from "@hono/zod-openapi";
import { isWeftError, type WeftError, type WeftErrorCode } from "@weft/engine";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ErrorBody } from "./schemas.js";

/** The body of every error response: `{ error: { code, message, issues?, known? } }`. */
export type ErrorResponse = z.infer<typeof ErrorBody>;

/** The HTTP status of each WeftError code a request can cause; any other is a 500. */
const STATUS: Partial<Record<WeftErrorCode, ContentfulStatusCode>> = {
  INVALID_ARGUMENT: 400,
  INVALID_IDENTIFIER: 400,
  INPUT_INVALID: 400,
  INVALID_INTERVAL: 400,
  INVALID_RANGE: 400,
  INVALID_CRON: 400,
  PAYLOAD_TOO_LARGE: 413,
  UNKNOWN_TASK: 404,
  TASK_NOT_FOUND: 404,
  WORKFLOW_NOT_FOUND: 404,
  DEAD_LETTER_NOT_FOUND: 404,
  WORKFLOW_NOT_RUNNING: 409,
  WORKFLOW_CANCELLED: 409,
  WORKFLOW_FAILED: 409,
  NOT_REQUEUEABLE: 409,
  IDEMPOTENCY_CONFLICT: 409,
  WAIT_TIMEOUT: 504,
  SCHEMA_TOO_NEW: 503,
};

export function errorBody(code: string, message: string, extra: Partial<ErrorResponse["error"]> = {}): ErrorResponse {
  return { error: { code, message, ...extra } };
}

/**
 * A WeftError as a response: its status by code, its message (written for
 * callers: it names the argument and the rule) and its issues. Any other error,
 * and a WeftError of an internal kind, is a 500 with a generic message: nothing
 * of its message or stack reaches the client.
 */
export function fromError(error: unknown): { status: ContentfulStatusCode; body: ErrorResponse } {
  if (isWeftError(error)) {
    const status = STATUS[error.code];
    if (status !== undefined) return { status, body: describeWeftError(error) };
  }
  return { status: 500, body: errorBody("INTERNAL", "internal error; the server's log has the details") };
}

function describeWeftError(error: WeftError): ErrorResponse {
  const e = error as WeftError & { issues?: readonly { path: string; message: string }[]; known?: readonly string[] };
  return errorBody(error.code, error.message, {
    ...(Array.isArray(e.issues) ? { issues: e.issues.map((i) => ({ path: i.path, message: i.message })) } : {}),
    ...(Array.isArray(e.known) ? { known: [...e.known] } : {}),
  });
}
