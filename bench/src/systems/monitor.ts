import pg from "pg";
import type { Monitor } from "./types.js";

/** A Monitor from two count queries over one connection. */
export async function sqlMonitor(url: string, remainingSql: string, completedSql: string): Promise<Monitor> {
  const client = new pg.Client({ connectionString: url });
  // A lost connection surfaces as the next query's error; don't crash on the event.
  client.on("error", () => undefined);
  await client.connect();
  const count = async (sql: string) => {
    const { rows } = await client.query<{ n: number }>(sql);
    return rows[0]?.n ?? 0;
  };
  return {
    remaining: () => count(remainingSql),
    completed: () => count(completedSql),
    close: () => client.end(),
  };
}

/** The \`ms\` column of \`sql\`'s rows: latencies read from a system's own timestamps. */
export async function latencies(url: string, sql: string): Promise<number[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ ms: number }>(sql);
    return rows.map((r) => Number(r.ms));
  } finally {
    await client.end();
  }
}
