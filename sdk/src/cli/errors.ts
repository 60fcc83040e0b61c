import { isWeftError } from "@weft/engine";
import { EXIT_FAILURE, EXIT_USAGE, UsageError } from "./context.js";

/** Codes of errors that reject the command line's input before anything was done: exit 2, like a bad flag. */
const USAGE_CODES: ReadonlySet<string> = new Set([
  "USAGE",
  "INVALID_ARGUMENT",
  "INVALID_IDENTIFIER",
  "CONFIG_INVALID",
  "INVALID_RANGE",
  "INVALID_INTERVAL",
]);

/** PostgreSQL's codes for a schema or table that is not there: the schema was never migrated. */
const NOT_MIGRATED: ReadonlySet<string> = new Set(["42P01", "3F000"]);

export interface Reported {
  readonly code: string;
  readonly message: string;
  readonly exitCode: number;
}

/** An error as the CLI reports it: a stable code, one message, and the exit code. */
export function describe(error: unknown, schema: string): Reported {
  if (error instanceof UsageError) return { code: "USAGE", message: error.message, exitCode: EXIT_USAGE };
  if (isWeftError(error)) {
    return {
      code: error.code,
      message: error.message,
      exitCode: USAGE_CODES.has(error.code) ? EXIT_USAGE : EXIT_FAILURE,
    };
  }
  const e = error as { code?: unknown; message?: unknown; errors?: unknown };
  const code = typeof e?.code === "string" ? e.code : "ERROR";
  if (NOT_MIGRATED.has(code)) {
    return {
      code: "SCHEMA_NOT_MIGRATED",
      message: `schema "${schema}" has no Weft tables (${String(e.message)}); run \`weft migrate\` first, or pass --schema`,
      exitCode: EXIT_FAILURE,
    };
  }
  let message = typeof e?.message === "string" ? e.message : String(error);
  // A connection refused on every address (IPv6 and IPv4) is an AggregateError with an empty message.
  if (message === "" && Array.isArray(e?.errors)) {
    message = e.errors.map((x: { message?: unknown }) => String(x?.message)).join("; ");
  }
  if (message === "") message = String(error);
  return { code, message, exitCode: EXIT_FAILURE };
}
