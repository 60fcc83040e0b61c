import { Cron } from "croner";
import { InvalidArgumentError, InvalidCronError } from "./errors.js";
import { validateTimeZone } from "./slots.js";

/**
 * A parsed cron schedule (croner: five fields, or six with seconds first; an
 * optional time zone, UTC by default). Daylight-saving rule, as croner applies
 * it: a tick whose local time falls in the skipped hour fires once, at the end
 * of the gap (02:30 on a spring-forward night fires at 03:00); a tick in the
 * repeated hour fires once, at its first occurrence.
 */
export class CronSchedule {
  private readonly cron: Cron;

  constructor(
    readonly expression: string,
    readonly timeZone = "UTC",
  ) {
    if (typeof expression !== "string" || expression.trim() === "") {
      throw new InvalidCronError(expression, "expected a cron expression such as '*/5 * * * *'");
    }
    const fields = expression.trim().split(/\s+/).length;
    if (fields < 5 || fields > 6) {
      throw new InvalidCronError(expression, `expected 5 fields (or 6 with seconds), got ${fields}`);
    }
    validateTimeZone(timeZone);
    try {
      this.cron = new Cron(expression, { timezone: timeZone, paused: true });
    } catch (error) {
      throw new InvalidCronError(expression, error instanceof Error ? error.message : String(error));
    }
    if (this.cron.nextRun(new Date(0)) === null) throw new InvalidCronError(expression, "it never fires");
  }

  /** The first tick strictly after `after`, or null. */
  next(after: Date): Date | null {
    return this.cron.nextRun(after);
  }

  /** Ticks in (after, until], oldest first, at most `limit`. */
  between(after: Date, until: Date, limit: number): Date[] {
    const ticks: Date[] = [];
    let t = this.next(after);
    while (t !== null && t.getTime() <= until.getTime() && ticks.length < limit) {
      ticks.push(t);
      t = this.next(t);
    }
    return ticks;
  }
}

export interface CronOptionsInput {
  readonly expression: string;
  readonly timeZone?: string;
  /** Ticks missed while no leader ran (older than the misfire grace): 'skip' (default) or 'catch-up'. */
  readonly missed?: "skip" | "catch-up";
  /** With 'catch-up': fire at most this many missed ticks, the most recent ones (default 10). */
  readonly maxCatchUp?: number;
}

/** Validates a task's cron options (throws InvalidCronError / InvalidArgumentError). */
export function parseCronOptions(where: string, input: CronOptionsInput | string) {
  const o = typeof input === "string" ? { expression: input } : input;
  if (typeof o !== "object" || o === null)
    throw new InvalidArgumentError(where, "expected a cron expression or options");
  const schedule = new CronSchedule(o.expression, o.timeZone ?? "UTC");
  const missed = o.missed ?? "skip";
  if (missed !== "skip" && missed !== "catch-up") {
    throw new InvalidArgumentError(`${where}.missed`, `expected "skip" or "catch-up"`);
  }
  const maxCatchUp = o.maxCatchUp ?? 10;
  if (!Number.isInteger(maxCatchUp) || maxCatchUp < 0 || maxCatchUp > 10_000) {
    throw new InvalidArgumentError(`${where}.maxCatchUp`, "expected an integer from 0 to 10000");
  }
  return { expression: schedule.expression, timeZone: schedule.timeZone, missed, maxCatchUp } as const;
}
