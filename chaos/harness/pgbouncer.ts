// PgBouncer in transaction mode in front of a private PostgreSQL: what a user
// behind a transaction pooler has. A session-level advisory lock means nothing
// there (each transaction may run on another server connection, and a lock
// taken on one stays with it), so the leader lock no longer keeps two planners
// apart: only the leader epoch does.
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { freePort } from "../../engine/src/testing/index.js";
import type { PrivatePostgres } from "./postgres.js";

const CANDIDATES = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"];

/** The pgbouncer binary, if installed (`apt-get install pgbouncer`). */
export function pgbouncerBinary(): string | undefined {
  return CANDIDATES.find((p) => existsSync(p));
}

const asRoot = typeof process.getuid === "function" && process.getuid() === 0;

export class PgBouncer {
  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly child: ChildProcess,
  ) {}

  url(database: string): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  log(): string {
    const file = join(this.dir, "pgbouncer.log");
    return existsSync(file) ? readFileSync(file, "utf8") : "";
  }

  /** Starts PgBouncer for `database` of `server` with `poolSize` server connections (transaction mode). */
  static async start(server: PrivatePostgres, database: string, poolSize: number): Promise<PgBouncer> {
    const bin = pgbouncerBinary();
    if (!bin) throw new Error("pgbouncer is not installed (apt-get install -y pgbouncer)");
    const dir = mkdtempSync(join(tmpdir(), "weft-chaos-bouncer-"));
    chmodSync(dir, 0o777);
    const port = await freePort();
    const ini = join(dir, "pgbouncer.ini");
    writeFileSync(
      ini,
      `[databases]
${database} = host=127.0.0.1 port=${server.port} dbname=${database} user=postgres pool_size=${poolSize}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = any
pool_mode = transaction
max_client_conn = 1000
max_db_connections = ${poolSize}
ignore_startup_parameters = extra_float_digits,options
logfile = ${join(dir, "pgbouncer.log")}
log_connections = 0
log_disconnections = 0
`,
    );
    chmodSync(ini, 0o644);
    // PgBouncer refuses to run as root.
    const [file, args] = asRoot ? ["runuser", ["-u", "postgres", "--", bin, ini]] : [bin, [ini]];
    const child = spawn(file, args, { stdio: "ignore" });
    const bouncer = new PgBouncer(port, dir, child);
    const deadline = Date.now() + 15_000;
    for (;;) {
      const client = new pg.Client({ connectionString: bouncer.url(database) });
      client.on("error", () => undefined);
      try {
        await client.connect();
        await client.query("SELECT 1");
        await client.end();
        return bouncer;
      } catch (error) {
        await client.end().catch(() => undefined);
        if (Date.now() > deadline || child.exitCode !== null) {
          child.kill("SIGKILL");
          throw new Error(`pgbouncer did not start: ${String(error)}\n${bouncer.log()}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((r) => this.child.once("exit", r));
      this.child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
      this.child.kill("SIGKILL");
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
