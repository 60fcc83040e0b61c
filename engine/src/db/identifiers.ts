import { InvalidIdentifierError } from "../errors.js";

// Lower-case, unquoted-safe PostgreSQL identifier. Shorter than 63 so that the
// derived NOTIFY channel name ("weft:" + schema) also fits.
const SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,47}$/;

/** Validates a schema name and returns it double-quoted, ready to splice into SQL. */
export function quoteSchema(schema: string): string {
  if (typeof schema !== "string" || !SCHEMA_PATTERN.test(schema)) {
    throw new InvalidIdentifierError(
      "schema name",
      String(schema),
      "use 1-48 characters of lower-case letters, digits and underscores, not starting with a digit",
    );
  }
  return `"${schema}"`;
}

const TASK_NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_.:-]{0,127}$/;

export function validateTaskName(name: string): string {
  if (typeof name !== "string" || !TASK_NAME_PATTERN.test(name)) {
    throw new InvalidIdentifierError(
      "task name",
      String(name),
      "use 1-128 characters: a letter, then letters, digits, '_', '.', ':' or '-'",
    );
  }
  return name;
}

const ULID_PATTERN = /^[0-9A-HJKMNP-TV-Z]{26}$/;

export function isUlid(value: unknown): value is string {
  return typeof value === "string" && ULID_PATTERN.test(value);
}
