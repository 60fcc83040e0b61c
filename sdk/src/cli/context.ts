import { type Command, InvalidArgumentError as OptionError } from "commander";
import pg from "pg";
import pc from "picocolors";
import type { WeftClient } from "../client.js";
import type { AnyDefinition } from "../task.js";
import { createClient, type Weft } from "../weft.js";
import { type Colors, colorEnabled } from "./output.js";

/** The exit codes: documented in docs/operations.md ("CLI"). */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** A command line the CLI cannot act on (a missing or malformed flag): exit 2. */
export class UsageError extends Error {
  readonly code = "USAGE";
  override readonly name = "UsageError";
}

/** The options every command takes. */
export interface CommonOptions {
  readonly url?: string;
  readonly schema: string;
  readonly json?: boolean;
  readonly verbose?: boolean;
}

/** Adds --url, --schema, --json and --verbose to a command. */
export function common(cmd: Command): Command {
  return cmd
    .option("--url <url>", "PostgreSQL connection string (default: $DATABASE_URL)")
    .option("--schema <name>", "Weft's schema", "weft")
    .option("--json", "machine-readable output (one JSON document on stdout)")
    .option("--verbose", "print stack traces of errors");
}

/** Everything an action needs: its options, where to write, and the database. */
export class Session {
  readonly color: Colors;
  private weft: Weft | undefined;
  private pool: pg.Pool | undefined;

  constructor(readonly options: CommonOptions) {
    this.color = pc.createColors(colorEnabled(options.json === true));
  }

  /** The command's own options with the common ones. */
  opts<T>(): T & CommonOptions {
    return this.options as unknown as T & CommonOptions;
  }

  get json(): boolean {
    return this.options.json === true;
  }

  /** The connection string: --url, else DATABASE_URL. */
  get url(): string {
    const url = this.options.url ?? process.env.DATABASE_URL;
    if (url === undefined || url === "") {
      throw new UsageError("no database given: pass --url <postgres://...> or set DATABASE_URL");
    }
    return url;
  }

  /**
   * A pool of at most `max` connections, with a connect timeout so an
   * unreachable server fails the command instead of hanging it. Idle
   * connections are never timed out: every command closes its pool, and a
   * command that did not would hang instead of exiting late (the tests catch it).
   */
  database(max = 2): pg.Pool {
    this.pool ??= new pg.Pool({
      connectionString: this.url,
      max,
      connectionTimeoutMillis: 10_000,
      idleTimeoutMillis: 0,
    });
    return this.pool;
  }

  /**
   * A client only (no node, no planner) on the session's pool; with `tasks`,
   * it can schedule them by name (weft serve --tasks).
   */
  weftClient(tasks: readonly AnyDefinition[] = []): Weft {
    this.weft ??= createClient({
      pool: this.database(),
      schema: this.options.schema,
      logger: silentLogger(),
      tasks,
    });
    return this.weft;
  }

  get client(): WeftClient {
    return this.weftClient().client;
  }

  /** Prints `data` as JSON with --json, else what `human` makes of it. */
  emit<T>(data: T, human: (c: Colors, data: T) => string): void {
    const text = this.json ? JSON.stringify(data, null, 2) : human(this.color, data);
    if (text !== "") process.stdout.write(`${text}\n`);
  }

  /** Closes the client and the pool; nothing is left to keep the process alive. */
  async close(): Promise<void> {
    const weft = this.weft;
    const pool = this.pool;
    this.weft = undefined;
    this.pool = undefined;
    await weft?.stop().catch(() => undefined);
    await pool?.end().catch(() => undefined);
  }
}

/** The CLI reports errors itself; the engine's own logs would only repeat them. */
function silentLogger() {
  const noop = () => undefined;
  const logger = {
    trace: noop,
    debug: noop,
    info: noop,
    warn: noop,
    error: noop,
    fatal: noop,
    child: () => logger,
  };
  return logger;
}

/**
 * Runs an action with a session built from the command's options (its own and
 * its parents'), and closes the session whatever happens.
 */
export function action<A extends unknown[]>(
  body: (session: Session, ...args: A) => Promise<void>,
): (...args: [...A, Record<string, unknown>, Command]) => Promise<void> {
  return async (...all) => {
    const cmd = all[all.length - 1] as Command;
    const args = all.slice(0, -2) as unknown as A;
    const session = new Session(cmd.optsWithGlobals<CommonOptions>());
    try {
      await body(session, ...args);
    } finally {
      await session.close();
    }
  };
}

// Option parsers: a bad value is a usage error (commander reports it, exit 2).

export function positiveInt(max: number): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value)) throw new OptionError(`expected a whole number from 1 to ${max}`);
    const n = Number(value);
    if (n < 1 || n > max) throw new OptionError(`expected a whole number from 1 to ${max}`);
    return n;
  };
}

/**
 * A time: an ISO 8601 date or date-time (`2026-12-03`, `2026-12-03T07:00:00Z`),
 * or a span back from now (`30s`, `15m`, `2h`, `7d`).
 */
export function parseTime(value: string): Date {
  const ago = /^(\d+)(s|m|h|d)$/.exec(value);
  if (ago) {
    const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[ago[2] as "s" | "m" | "h" | "d"];
    return new Date(Date.now() - Number(ago[1]) * unit);
  }
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(value)) {
    throw new OptionError("expected an ISO 8601 time (2026-12-03, 2026-12-03T07:00:00Z) or a span ago (15m, 2h, 7d)");
  }
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw new OptionError("not a valid date");
  return date;
}

export function oneOf<T extends string>(values: readonly T[]): (value: string) => T {
  return (value) => {
    const upper = value.toUpperCase() as T;
    if (!values.includes(upper)) throw new OptionError(`expected one of ${values.join(", ")}`);
    return upper;
  };
}

/** A comma-separated list of `values`, e.g. `COMPLETE,SKIP`. */
export function listOf<T extends string>(values: readonly T[]): (value: string) => T[] {
  const one = oneOf(values);
  return (value) => value.split(",").map((v) => one(v.trim()));
}
