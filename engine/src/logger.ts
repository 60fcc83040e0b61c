import { pino } from "pino";
import { ConfigError } from "./errors.js";

/** The structured logger Weft writes to; any pino-compatible logger fits. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
  /** pino's level (settable on a child); loggers without one keep their own filtering. */
  level?: string;
}

/** The levels `logLevel` and `WEFT_LOG_LEVEL` accept (pino's). */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Every line Weft writes carries one of these in its \`event\` field (documented
 * in docs/operations.md, "Logs"); the message beside it is for people and may change.
 */
export const LOG_EVENTS = [
  "node.started",
  "node.stopped",
  "node.declared_dead",
  "node.deregister_failed",
  "node.released",
  "node.release_failed",
  "node.outcomes_abandoned",
  "leader.elected",
  "leader.lost",
  "leader.deposed",
  "leader.election_failed",
  "leader.connection_error",
  "planner.started",
  "planner.planned",
  "planner.nodes_dead",
  "planner.attempts_overdue",
  "planner.keys_freed",
  "planner.statistics_refreshed",
  "planner.reader_failed",
  "planner.duties_failed",
  "planner.nudge_failed",
  "queue.no_node",
  "task.retried",
  "task.failed",
  "task.dead_lettered",
  "task.revoked",
  "task.outcomes_refused",
  "task.on_failure_threw",
  "task.record_failed",
  "task.exactly_once_rolled_back",
  "task.exactly_once_refused",
  "task.commit_read_back",
  "worker.reconcile_failed",
  "affinity.release_failed",
  "listener.listening",
  "listener.handler_failed",
  "cron.missed",
  "cron.invalid_schedule",
  "cleaner.purged",
  "db.outage_began",
  "db.outage_ended",
  "db.connection_error",
  "migrations.applied",
  "log.suppressed",
] as const;
export type LogEvent = (typeof LOG_EVENTS)[number];

/** The fields of a line Weft writes: its event, and whatever the event reports. */
export type LogFields = { readonly event: LogEvent } & Record<string, unknown>;

/**
 * The logger as Weft's own code sees it: the same methods, but every line must
 * name its event. Any Logger is one (its methods take any object).
 */
export interface EventLogger {
  debug(obj: LogFields, msg?: string): void;
  info(obj: LogFields, msg?: string): void;
  warn(obj: LogFields, msg?: string): void;
  error(obj: LogFields, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

/** Checks a log level option; \`key\` names it in the error. */
export function parseLogLevel(value: unknown, key: string): LogLevel {
  if (typeof value !== "string" || !(LOG_LEVELS as readonly string[]).includes(value)) {
    throw new ConfigError(key, `expected one of ${LOG_LEVELS.join(", ")}; got ${JSON.stringify(value)}`);
  }
  return value as LogLevel;
}

/**
 * Weft is quiet by default: warnings and errors only. Lifecycle events (node
 * started, leadership, migrations) and failed attempts that are retried are at
 * info; nothing is logged per successful task.
 */
export function createLogger(level?: string): Logger {
  const resolved =
    level === undefined
      ? process.env.WEFT_LOG_LEVEL === undefined || process.env.WEFT_LOG_LEVEL === ""
        ? "warn"
        : parseLogLevel(process.env.WEFT_LOG_LEVEL, "WEFT_LOG_LEVEL")
      : parseLogLevel(level, "logLevel");
  return pino({ name: "weft", level: resolved });
}

/**
 * The logger Weft writes to: its own pino (at \`level\`, else WEFT_LOG_LEVEL,
 * else warn), or a child of the application's logger with \`name: "weft"\`,
 * at \`level\` if one is given (a pino child's level is its own).
 */
export function weftLogger(parent: Logger | undefined, level: unknown): Logger {
  const checked = level === undefined ? undefined : parseLogLevel(level, "logLevel");
  if (parent === undefined) return createLogger(checked);
  if (typeof parent !== "object" || parent === null || typeof parent.child !== "function") {
    throw new ConfigError("logger", "expected a pino-compatible logger (with debug, info, warn, error and child)");
  }
  const log = parent.child({ name: "weft" });
  if (checked !== undefined) log.level = checked;
  return log;
}

/** Lines per event and window before the rest are counted instead (see RateLimitedLog). */
const LINES_PER_WINDOW = 20;
const WINDOW_MS = 10_000;

/**
 * Logs events that can come in storms (failed attempts) at most
 * LINES_PER_WINDOW times per event and window; the lines left out are counted
 * and reported in one \`log.suppressed\` line when the window ends. Its timer is
 * unref'd (it never keeps a process alive) and \`close()\` reports at once.
 */
export class RateLimitedLog {
  private windowStart = 0;
  private readonly counts = new Map<LogEvent, number>();
  private readonly suppressed = new Map<LogEvent, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly log: EventLogger) {}

  write(level: "info" | "warn" | "error", fields: LogFields, msg: string): void {
    const now = Date.now();
    if (now - this.windowStart >= WINDOW_MS) {
      this.report();
      this.windowStart = now;
      this.counts.clear();
    }
    const n = (this.counts.get(fields.event) ?? 0) + 1;
    this.counts.set(fields.event, n);
    if (n <= LINES_PER_WINDOW) {
      this.log[level](fields, msg);
      return;
    }
    this.suppressed.set(fields.event, (this.suppressed.get(fields.event) ?? 0) + 1);
    if (this.timer === undefined) {
      this.timer = setTimeout(() => this.report(), Math.max(0, this.windowStart + WINDOW_MS - now));
      this.timer.unref();
    }
  }

  /** Reports what was left out, now. */
  close(): void {
    this.report();
  }

  private report(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.suppressed.size === 0) return;
    const suppressed = Object.fromEntries(this.suppressed);
    this.suppressed.clear();
    this.log.warn(
      { event: "log.suppressed", suppressed, windowMs: WINDOW_MS },
      "more lines of these events than the log takes per window; counted instead",
    );
  }
}
