import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, inject, it } from "vitest";
import { ROOT, spawnNode } from "../../test/support.js";
import {
  findMigrationsDir,
  loadMigrations,
  MIGRATIONS_DIR,
  MIGRATIONS_DIR_CANDIDATES,
  migrate,
} from "../src/db/migrate.js";
import { SchemaTooNewError } from "../src/errors.js";
import { createDatabase, dropDatabase } from "../src/testing/index.js";

async function emptyDatabase(): Promise<string> {
  const server = inject("serverUrl");
  const name = `weft_t_${randomBytes(6).toString("hex")}`;
  const url = await createDatabase(server, name);
  afterAll(() => dropDatabase(server, name));
  return url;
}

/** Tables, columns, indexes and constraints of a schema, as comparable text. */
async function catalog(pool: pg.Pool, schema: string): Promise<string[]> {
  const { rows } = await pool.query<{ item: string }>(
    `SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || coalesce(column_default, '') AS item
       FROM information_schema.columns WHERE table_schema = $1
     UNION ALL
     SELECT 'index ' || indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = $1
     UNION ALL
     SELECT 'constraint ' || conname || ' ' || pg_get_constraintdef(c.oid)
       FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = $1
     ORDER BY 1`,
    [schema],
  );
  return rows.map((r) => r.item.replaceAll(`${schema}.`, "<schema>."));
}

describe("migrations", () => {
  it("run concurrently from 3 processes without error, then again without change", async () => {
    const url = await emptyDatabase();
    const procs = [1, 2, 3].map(() =>
      spawnNode(join(ROOT, "test/fixtures/migrate.ts"), { DATABASE_URL: url, SCHEMA: "weft" }),
    );
    const results = await Promise.all(
      procs.map((p) => p.waitFor((m) => m.type === "done" || m.type === "error", 60_000)),
    );
    expect(results.map((r) => r.type)).toEqual(["done", "done", "done"]);
    const appliedCounts = results.map((r) => (r.applied as number[]).length).sort();
    expect(appliedCounts).toEqual([0, 0, loadMigrations().length]);

    const pool = new pg.Pool({ connectionString: url, max: 1 });
    try {
      const before = await catalog(pool, "weft");
      expect(before.some((i) => i.startsWith("index tasks_plannable_idx"))).toBe(true);
      const again = await migrate(pool, "weft");
      expect(again.applied).toEqual([]);
      expect(await catalog(pool, "weft")).toEqual(before);
      const { rows } = await pool.query<{ version: number }>("SELECT version FROM weft.migrations ORDER BY version");
      expect(rows.map((r) => r.version)).toEqual(loadMigrations().map((m) => m.version));
    } finally {
      await pool.end();
    }
  });

  it("use a configurable schema, leaving other schemas alone", async () => {
    const url = await emptyDatabase();
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    try {
      await migrate(pool, "tenant_a");
      await migrate(pool, "tenant_b");
      expect(await catalog(pool, "tenant_a")).toEqual(await catalog(pool, "tenant_b"));
      const { rows } = await pool.query("SELECT 1 FROM information_schema.tables WHERE table_schema = 'weft'");
      expect(rows).toHaveLength(0);
    } finally {
      await pool.end();
    }
  });

  it("find an up-to-date schema without waiting for the migration lock, and apply a missing version under it", async () => {
    const url = await emptyDatabase();
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      await migrate(pool, "weft");
      // Another node is migrating (it holds the lock): an up-to-date start does not wait for it.
      await holder.query("BEGIN");
      await holder.query("SELECT pg_advisory_xact_lock($1, hashtext($2))", [0x57ef7, "weft"]);
      // (Waiting for the lock would hang this test: the lock is released below.)
      expect((await migrate(pool, "weft")).applied).toEqual([]);
      await holder.query("ROLLBACK");

      // A version missing from the record (the latest still there) is not up to
      // date: the locked path applies it again, which fails here on its existing
      // tables and changes nothing.
      await pool.query("DELETE FROM weft.migrations WHERE version = 1");
      await expect(migrate(pool, "weft")).rejects.toThrow();
      const { rows } = await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM weft.migrations");
      expect(rows[0]?.n).toBe(loadMigrations().length - 1);
    } finally {
      await holder.end();
      await pool.end();
    }
  });

  it("refuse a database migrated by a newer Weft", async () => {
    const url = await emptyDatabase();
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    try {
      await migrate(pool, "weft");
      await pool.query("INSERT INTO weft.migrations (version, name) VALUES (999, 'from_the_future')");
      await expect(migrate(pool, "weft")).rejects.toBeInstanceOf(SchemaTooNewError);
    } finally {
      await pool.end();
    }
  });
});

describe("finding the migrations", () => {
  const repository = join(ROOT, "migrations");

  it("reads the repository's migrations/ from the sources, every file of it", () => {
    expect(MIGRATIONS_DIR).toBe(repository);
    const files = readdirSync(repository).filter((f) => f.endsWith(".sql"));
    expect(loadMigrations().map((m) => `${String(m.version).padStart(3, "0")}_${m.name}.sql`)).toEqual(files.sort());
  });

  it("looks beside the built code first (dist/migrations), then in the repository", () => {
    // From engine/src/db: engine/src/migrations (what dist/db/../migrations is for the
    // built package), then the repository's migrations/.
    expect(MIGRATIONS_DIR_CANDIDATES).toEqual([join(ROOT, "engine/src/migrations"), repository]);
    expect(findMigrationsDir([join(ROOT, "no-such-dir"), repository])).toBe(repository);
    expect(findMigrationsDir([join(ROOT, "engine")])).toBeUndefined();
  });

  it("says where it looked when the files are not there", () => {
    const missing = join(ROOT, "no-such-dir");
    expect(() => loadMigrations(missing)).toThrow(`Weft's SQL migrations were not found (looked in ${missing})`);
  });
});
