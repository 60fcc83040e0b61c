import { pino } from "pino";

/** The structured logger Weft writes to; any pino-compatible logger fits. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

/**
 * Weft is quiet by default: warnings and errors only. Lifecycle events (node
 * started, leadership, migrations) are at info/debug; nothing is logged per task
 * above debug level.
 */
export function createLogger(level: string = process.env.WEFT_LOG_LEVEL ?? "warn"): Logger {
  return pino({ name: "weft", level });
}
