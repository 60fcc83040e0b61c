import { InvalidArgumentError, InvalidIntervalError, InvalidRangeError } from "./errors.js";

const DAY_MS = 86_400_000;
const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000 } as const;

/** A slot interval: a divisor of a day (aligned to the Unix epoch, UTC), or a calendar day or week in a time zone. */
export type SlotInterval =
  | { readonly kind: "fixed"; readonly ms: number; readonly key: string }
  | { readonly kind: "calendar"; readonly unit: "day" | "week"; readonly key: string };

/** The most slots one ensure, coverage or re-open may span. */
export const MAX_SLOTS_PER_CALL = 100_000;

/**
 * Parses `every`: `<n>s`, `<n>m`, `<n>h` dividing 24 hours (slots aligned to
 * the epoch, so 15m slots start at :00, :15, ...), or `1d` / `1w` (calendar
 * days, weeks from Monday, in the series' time zone, 23 or 25 hours long
 * across daylight-saving changes). The key is normalised: `60m` is `1h`.
 */
export function parseInterval(every: unknown): SlotInterval {
  if (typeof every !== "string") throw new InvalidIntervalError(every, "expected a string such as 15m, 1h or 1d");
  const m = /^(\d{1,6})(s|m|h|d|w)$/.exec(every);
  if (!m) throw new InvalidIntervalError(every, "expected <number><s|m|h|d|w>, e.g. 15m, 1h, 1d");
  const n = Number(m[1]);
  const unit = m[2] as "s" | "m" | "h" | "d" | "w";
  if (n === 0) throw new InvalidIntervalError(every, "must be longer than zero");
  if (unit === "d" || unit === "w") {
    if (n !== 1)
      throw new InvalidIntervalError(every, "calendar intervals are 1d or 1w (use 24h for fixed 24-hour slots)");
    return { kind: "calendar", unit: unit === "d" ? "day" : "week", key: every };
  }
  const ms = n * UNIT_MS[unit];
  if (ms > DAY_MS || DAY_MS % ms !== 0) {
    throw new InvalidIntervalError(every, "sub-day intervals must divide 24 hours (e.g. 5m, 90m, 8h)");
  }
  const key = ms % 3_600_000 === 0 ? `${ms / 3_600_000}h` : ms % 60_000 === 0 ? `${ms / 60_000}m` : `${ms / 1_000}s`;
  return { kind: "fixed", ms, key };
}

/** Validates a time zone name with the runtime's tz database (the server's is used for calendar slots). */
export function validateTimeZone(timeZone: unknown): string {
  if (typeof timeZone !== "string" || timeZone.length === 0) {
    throw new InvalidArgumentError("timeZone", "expected an IANA time zone name such as Europe/Berlin");
  }
  try {
    new Intl.DateTimeFormat("en", { timeZone });
  } catch {
    throw new InvalidArgumentError("timeZone", `unknown time zone ${JSON.stringify(timeZone)}`);
  }
  return timeZone;
}

/** Validates [from, to): Dates, to after from. */
export function validateRange(range: unknown): { from: Date; to: Date } {
  if (typeof range !== "object" || range === null) throw new InvalidRangeError("expected { from, to }");
  const { from, to } = range as { from?: unknown; to?: unknown };
  for (const [name, d] of [
    ["from", from],
    ["to", to],
  ] as const) {
    if (!(d instanceof Date) || Number.isNaN(d.getTime())) throw new InvalidRangeError(`${name} must be a valid Date`);
  }
  const f = from as Date;
  const t = to as Date;
  if (t.getTime() <= f.getTime()) {
    throw new InvalidRangeError(`end ${t.toISOString()} is not after start ${f.toISOString()}`);
  }
  return { from: f, to: t };
}

/** Fixed-interval slot starts covering [from, to), epoch-aligned. */
export function fixedSlotStarts(ms: number, from: Date, to: Date): number[] {
  const first = Math.floor(from.getTime() / ms) * ms;
  const count = Math.ceil((to.getTime() - first) / ms);
  if (count > MAX_SLOTS_PER_CALL) {
    throw new InvalidRangeError(`${count} slots; at most ${MAX_SLOTS_PER_CALL} per call`);
  }
  return Array.from({ length: count }, (_, i) => first + i * ms);
}
