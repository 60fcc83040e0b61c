import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type pg from "pg";
import { MigrationFilesError, SchemaTooNewError } from "../errors.js";
import type { EventLogger } from "../logger.js";
import { MIGRATION_LOCK_CLASS } from "../store/locks.js";
import { quoteSchema } from "./identifiers.js";
import { connectClient } from "./pg.js";

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
  /** A breaking migration needs every node on the new code; see docs/operations.md. */
  readonly breaking: boolean;
}

const here = dirname(fileURLToPath(import.meta.url));

/**
 * Where the SQL files may be, nearest first: `dist/migrations` beside the built
 * code (the build copies the repository's `migrations/` there, and that is what
 * the published package carries), then the repository's own `migrations/` when
 * this file runs from `engine/src/db` (tests, tsx).
 */
export const MIGRATIONS_DIR_CANDIDATES: readonly string[] = [
  join(here, "../migrations"),
  join(here, "../../../migrations"),
];

/** The first of `candidates` that holds the first migration, or undefined. */
export function findMigrationsDir(candidates: readonly string[] = MIGRATIONS_DIR_CANDIDATES): string | undefined {
  return candidates.find((dir) => existsSync(join(dir, "001_foundation.sql")));
}

/** The directory `loadMigrations()` reads (the first candidate when none holds the files). */
export const MIGRATIONS_DIR: string = findMigrationsDir() ?? (MIGRATIONS_DIR_CANDIDATES[0] as string);

let cached: Migration[] | undefined;

/** The numbered SQL files of `migrations/`, in order. */
export function loadMigrations(dir = MIGRATIONS_DIR): Migration[] {
  if (dir === MIGRATIONS_DIR && cached) return cached;
  if (!existsSync(dir)) {
    const looked = dir === MIGRATIONS_DIR ? MIGRATIONS_DIR_CANDIDATES.join(", ") : dir;
    throw new MigrationFilesError(
      `Weft's SQL migrations were not found (looked in ${looked}); the package is incomplete`,
    );
  }
  const migrations = readdirSync(dir)
    .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((file) => {
      const sql = readFileSync(join(dir, file), "utf8");
      return {
        version: Number(file.slice(0, 3)),
        name: file.slice(4, -4),
        sql,
        breaking: /^--\s*weft:breaking\b/m.test(sql),
      };
    });
  migrations.forEach((m, i) => {
    if (m.version !== i + 1)
      throw new MigrationFilesError(`Migration files must be numbered 001, 002, ... without gaps; found ${m.version}`);
  });
  if (dir === MIGRATIONS_DIR) cached = migrations;
  return migrations;
}

export interface MigrateResult {
  readonly applied: number[];
  readonly version: number;
}

/**
 * The applied versions (how many, and the latest), or null when the schema or
 * its version table does not exist yet.
 */
async function appliedVersions(pool: pg.Pool, q: string): Promise<{ count: number; latest: number } | null> {
  try {
    const { rows } = await pool.query<{ count: number; latest: number | null }>(
      `SELECT count(*)::int AS count, max(version) AS latest FROM ${q}.migrations`,
    );
    return { count: rows[0]?.count ?? 0, latest: rows[0]?.latest ?? 0 };
  } catch (error) {
    const code = (error as { code?: string }).code;
    // undefined_table, invalid_schema_name
    if (code === "42P01" || code === "3F000") return null;
    throw error;
  }
}

/**
 * Applies pending migrations in one transaction under an advisory lock, so many
 * nodes may start at once: one applies, the others wait and then find nothing to do.
 * A schema already up to date costs one read and no lock: that is every start
 * but the first of a release, and a node's start is on its first tasks' path.
 */
export async function migrate(pool: pg.Pool, schema: string, log?: EventLogger): Promise<MigrateResult> {
  const q = quoteSchema(schema);
  const migrations = loadMigrations();
  const current = await appliedVersions(pool, q);
  const known = migrations.length;
  if (current !== null && current.latest > known) throw new SchemaTooNewError(current.latest, known);
  // Versions are distinct and start at 1: as many as known, the latest the
  // last known, means every one is there.
  if (current !== null && current.count === known && current.latest === known) return { applied: [], version: known };
  const client = await connectClient(pool);
  try {
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock($1, hashtext($2))", [MIGRATION_LOCK_CLASS, schema]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${q}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${q}.migrations (
         version     integer PRIMARY KEY,
         name        text NOT NULL,
         breaking    boolean NOT NULL DEFAULT false,
         applied_at  timestamptz NOT NULL DEFAULT now()
       )`,
    );
    const { rows } = await client.query<{ version: number }>(`SELECT version FROM ${q}.migrations ORDER BY version`);
    const done = new Set(rows.map((r) => r.version));
    const latest = rows.length > 0 ? Math.max(...done) : 0;
    if (latest > known) throw new SchemaTooNewError(latest, known);
    const applied: number[] = [];
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      await client.query(`SET LOCAL search_path TO ${q}, public`);
      await client.query(m.sql);
      await client.query(`INSERT INTO ${q}.migrations (version, name, breaking) VALUES ($1, $2, $3)`, [
        m.version,
        m.name,
        m.breaking,
      ]);
      applied.push(m.version);
      log?.info({ event: "migrations.applied", schema, version: m.version, migration: m.name }, "applied migration");
    }
    await client.query("COMMIT");
    return { applied, version: known };
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}
