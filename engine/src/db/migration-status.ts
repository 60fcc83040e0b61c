import type pg from "pg";
import { SchemaTooNewError } from "../errors.js";
import { quoteSchema } from "./identifiers.js";
import { loadMigrations, type Migration } from "./migrate.js";

export interface AppliedMigration {
  readonly version: number;
  readonly name: string;
  readonly breaking: boolean;
  readonly appliedAt: Date;
}

export interface MigrationStatus {
  /** Recorded in `<schema>.migrations`, oldest first (empty when the schema does not exist yet). */
  readonly applied: readonly AppliedMigration[];
  /** Known to this code and not applied, in the order `migrate` would apply them. */
  readonly pending: readonly Migration[];
  /** The newest migration this code knows. */
  readonly known: number;
}

/**
 * What `migrate` would do, without doing it: the applied migrations and the
 * pending ones. One read, no lock. Throws SchemaTooNewError when the database
 * has a migration this code does not know.
 */
export async function migrationStatus(pool: pg.Pool, schema: string): Promise<MigrationStatus> {
  const q = quoteSchema(schema);
  const migrations = loadMigrations();
  let applied: AppliedMigration[] = [];
  try {
    const { rows } = await pool.query<{ version: number; name: string; breaking: boolean; applied_at: Date }>(
      `SELECT version, name, breaking, applied_at FROM ${q}.migrations ORDER BY version`,
    );
    applied = rows.map((r) => ({ version: r.version, name: r.name, breaking: r.breaking, appliedAt: r.applied_at }));
  } catch (error) {
    const code = (error as { code?: string }).code;
    // undefined_table, invalid_schema_name: nothing applied yet.
    if (code !== "42P01" && code !== "3F000") throw error;
  }
  const latest = applied.reduce((max, m) => Math.max(max, m.version), 0);
  if (latest > migrations.length) throw new SchemaTooNewError(latest, migrations.length);
  const done = new Set(applied.map((m) => m.version));
  return { applied, pending: migrations.filter((m) => !done.has(m.version)), known: migrations.length };
}
