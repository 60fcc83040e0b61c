import pg from "pg";
import type { TestProject } from "vitest/node";
import { migrate } from "../engine/src/db/migrate.js";
import { createDatabase, startDatabase } from "../engine/src/testing/index.js";

declare module "vitest" {
  export interface ProvidedContext {
    serverUrl: string;
    templateDatabase: string;
  }
}

/**
 * Starts one PostgreSQL for the whole run (DATABASE_URL, or embedded) and
 * migrates a template database once; each test file clones it in milliseconds.
 */
export default async function setup(project: TestProject) {
  const server = await startDatabase();
  const template = `weft_template_${process.pid}`;
  const url = await createDatabase(server.url, template);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  await migrate(pool, "weft");
  await pool.end();
  project.provide("serverUrl", server.url);
  project.provide("templateDatabase", template);
  console.log(`tests use ${server.embedded ? "embedded PostgreSQL" : "DATABASE_URL"}: ${new URL(server.url).host}`);
  return async () => {
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    const { rows } = await admin.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datname LIKE 'weft\\_t\\_%' OR datname = $1",
      [template],
    );
    for (const r of rows) await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(r.datname)} WITH (FORCE)`);
    await admin.end();
    await server.stop();
  };
}
