import { InvalidArgumentError, isUlid } from "@weft/engine";
import type { ChildScheduleOptions, ScheduleOptions } from "./types.js";

export interface ResolvedPlacement {
  readonly priority: number;
  readonly runAfter: Date | null;
  readonly delayMs: number | null;
  readonly affinityGroup: string | null | undefined;
  readonly affinity: string | null | undefined;
}

const INT32_MAX = 2_147_483_647;
const MAX_DELAY_MS = 10 * 365 * 24 * 3600 * 1000;

/**
 * Validates the options shared by client and child scheduling; \`path\` names
 * them in errors (\`options\`, or a per-input placement).
 */
export function resolvePlacement(
  options: ChildScheduleOptions | ScheduleOptions | undefined,
  path = "options",
): ResolvedPlacement {
  const o = options ?? {};
  if (typeof o !== "object" || o === null) throw new InvalidArgumentError(path, "expected an object");
  const priority = o.priority ?? 0;
  if (!Number.isInteger(priority) || Math.abs(priority) > INT32_MAX) {
    throw new InvalidArgumentError(`${path}.priority`, `expected an integer between -${INT32_MAX} and ${INT32_MAX}`);
  }
  if (o.runAt !== undefined && o.delayMs !== undefined) {
    throw new InvalidArgumentError(`${path}.runAt`, "give either runAt or delayMs, not both");
  }
  if (o.runAt !== undefined && (!(o.runAt instanceof Date) || Number.isNaN(o.runAt.getTime()))) {
    throw new InvalidArgumentError(`${path}.runAt`, "expected a valid Date");
  }
  if (o.delayMs !== undefined && (!Number.isFinite(o.delayMs) || o.delayMs < 0 || o.delayMs > MAX_DELAY_MS)) {
    throw new InvalidArgumentError(`${path}.delayMs`, `expected a number of milliseconds from 0 to ${MAX_DELAY_MS}`);
  }
  const hasGroup = o.affinityGroup !== undefined;
  const hasKey = o.affinity !== undefined;
  if (hasGroup !== hasKey) {
    throw new InvalidArgumentError(`${path}.affinity`, "give affinityGroup and affinity together, or neither");
  }
  for (const key of ["affinityGroup", "affinity"] as const) {
    const v = o[key];
    if (v !== undefined && (typeof v !== "string" || v.length === 0 || v.length > 256)) {
      throw new InvalidArgumentError(`${path}.${key}`, "expected a non-empty string of at most 256 characters");
    }
  }
  return {
    priority,
    runAfter: o.runAt ?? null,
    delayMs: o.delayMs !== undefined && o.delayMs > 0 ? o.delayMs : null,
    affinityGroup: o.affinityGroup,
    affinity: o.affinity,
  };
}

export function validateWorkflowId(id: unknown, argument = "workflowId"): string {
  if (!isUlid(id))
    throw new InvalidArgumentError(
      argument,
      `expected a ULID (26 characters of Crockford base32), got ${JSON.stringify(id)}`,
    );
  return id;
}

/** The longest idempotency key (characters). */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

export function validateIdempotencyKey(key: unknown, argument: string): string {
  if (typeof key !== "string" || key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
    throw new InvalidArgumentError(
      argument,
      `expected a non-empty string of at most ${MAX_IDEMPOTENCY_KEY_LENGTH} characters, got ${
        typeof key === "string" ? `a string of ${key.length}` : typeof key
      }`,
    );
  }
  return key;
}

/**
 * Each input's idempotency key from \`keyOf\` (scheduleMany's option), validated;
 * undefined without one. A key given twice is refused (naming both inputs), and
 * so is a key with \`workflowId\` (an existing workflow): a key starts one.
 */
export function resolveIdempotencyKeys<Input>(
  inputs: readonly Input[],
  keyOf: ((input: Input, index: number) => unknown) | undefined,
  workflowId: string | undefined,
): string[] | undefined {
  if (keyOf === undefined) return undefined;
  if (typeof keyOf !== "function") {
    throw new InvalidArgumentError("options.idempotencyKey", "expected a function (input, index) => key");
  }
  if (workflowId !== undefined) {
    throw new InvalidArgumentError(
      "options.idempotencyKey",
      "a key starts a new workflow: not with options.workflowId",
    );
  }
  const seen = new Map<string, number>();
  return inputs.map((input, i) => {
    const key = validateIdempotencyKey(keyOf(input, i), `options.idempotencyKey(inputs[${i}])`);
    const first = seen.get(key);
    if (first !== undefined) {
      throw new InvalidArgumentError(
        "options.idempotencyKey",
        `inputs[${i}] has the key of inputs[${first}] (${JSON.stringify(key)}): keys must be distinct within a call`,
      );
    }
    seen.set(key, i);
    return key;
  });
}
