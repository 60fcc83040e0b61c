import { migrate, migrationStatus } from "@weft/engine";
import type { Command } from "commander";
import { action, common } from "../context.js";
import { table } from "../output.js";

export function migrateCommand(program: Command): void {
  common(
    program
      .command("migrate")
      .description("apply Weft's pending SQL migrations to the schema (or list them with --dry-run)")
      .option("--dry-run", "list the pending migration files without applying them"),
  ).action(
    action(async (session) => {
      const opts = session.opts<{ dryRun?: boolean }>();
      const pool = session.database();
      const status = await migrationStatus(pool, opts.schema);
      if (opts.dryRun) {
        const pending = status.pending.map((m) => ({
          version: m.version,
          name: m.name,
          file: `${String(m.version).padStart(3, "0")}_${m.name}.sql`,
          breaking: m.breaking,
        }));
        const current = status.applied.reduce((max, m) => Math.max(max, m.version), 0);
        session.emit({ schema: opts.schema, current, target: status.known, pending }, (c, d) =>
          d.pending.length === 0
            ? `schema ${d.schema} is up to date (migration ${d.current})`
            : `${d.pending.length} pending migration(s) for schema ${d.schema} (at ${d.current}, would go to ${d.target}):\n${table(
                c,
                ["VERSION", "FILE", "BREAKING"],
                d.pending.map((m) => [String(m.version), m.file, m.breaking ? c.red("yes") : "no"]),
              )}`,
        );
        return;
      }
      const result = await migrate(pool, opts.schema);
      const byVersion = new Map(status.pending.map((m) => [m.version, m]));
      const applied = result.applied.map((v) => ({ version: v, name: byVersion.get(v)?.name ?? "" }));
      session.emit({ schema: opts.schema, applied, version: result.version }, (c, d) =>
        d.applied.length === 0
          ? `schema ${d.schema} is up to date (migration ${d.version})`
          : `applied ${d.applied.length} migration(s) to schema ${d.schema}; now at ${d.version}\n${table(
              c,
              ["VERSION", "NAME"],
              d.applied.map((m) => [String(m.version), m.name]),
            )}`,
      );
    }),
  );
}
