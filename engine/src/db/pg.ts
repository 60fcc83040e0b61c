import pg from "pg";
import type { Statement } from "./statement.js";

/** Anything that can run a parameterised query: a Pool, a PoolClient or a Client inside BEGIN. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/**
 * Runs a hot-path statement: prepared by name on a pg pool or client (see
 * Statement), as plain text on any other Queryable.
 */
export function exec<R extends pg.QueryResultRow = pg.QueryResultRow>(
  q: Queryable,
  stmt: Statement,
  values: unknown[],
): Promise<pg.QueryResult<R>> {
  if (stmt.name !== undefined && (q instanceof pg.Pool || q instanceof pg.Client)) {
    return q.query<R>({ name: stmt.name, text: stmt.text, values });
  }
  return q.query<R>(stmt.text, values);
}

/** PostgreSQL error codes after which the whole transaction may simply be retried. */
export const RETRYABLE_PG_CODES: ReadonlySet<string> = new Set(["40P01", "40001", "55P03"]);

/** Errors that mean the connection (or the server) went away. */
export function isConnectionError(error: unknown): boolean {
  const e = error as { code?: string; message?: string };
  if (typeof e?.code === "string") {
    if (e.code.startsWith("08") || e.code === "57P01" || e.code === "57P02" || e.code === "57P03") return true;
    if (["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "ENOTFOUND"].includes(e.code)) return true;
  }
  const message = typeof e?.message === "string" ? e.message : "";
  return /Connection terminated|connection ended|Client has encountered a connection error|not queryable/i.test(
    message,
  );
}

/**
 * \`pool.connect()\` for a client held across awaits (a transaction, an
 * exactly-once attempt). pg emits a connection error that arrives between two
 * queries as an 'error' event on the client, and a lent-out client has no
 * listener, so a server restart or a terminated backend would crash the
 * process. Here the error is ignored; the client's next query fails with it.
 */
export async function connectClient(pool: pg.Pool): Promise<pg.PoolClient> {
  const client = await pool.connect();
  const ignore = () => undefined;
  client.on("error", ignore);
  const release = client.release;
  client.release = (err?: Error | boolean) => {
    client.removeListener("error", ignore);
    release(err);
  };
  return client;
}

/**
 * Errors that say the database cannot take the statement now, whatever its
 * rows: the connection went away, the server is read-only (maintenance, a
 * standby), out of resources, a lock or statement timeout, a serialization
 * failure or deadlock, a session timeout. The same statement can succeed later,
 * so an outcome must wait for it instead of being recorded as a failure.
 */
export function isTransientError(error: unknown): boolean {
  if (isConnectionError(error)) return true;
  const code = (error as { code?: string })?.code;
  if (typeof code !== "string") return false;
  return (
    code.startsWith("53") ||
    code.startsWith("57P") ||
    RETRYABLE_PG_CODES.has(code) ||
    ["25006", "57014", "25P03", "58000", "58030"].includes(code)
  );
}

export function isRetryable(error: unknown): boolean {
  const code = (error as { code?: string })?.code;
  return typeof code === "string" && RETRYABLE_PG_CODES.has(code);
}

/**
 * Runs `work` in a transaction on a client from the pool; retries the whole
 * transaction on deadlock / serialization failures.
 */
export async function withTransaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
  attempts = 5,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const client = await connectClient(pool);
    let broken = false;
    try {
      await client.query("BEGIN");
      const result = await work(client);
      await client.query("COMMIT");
      return result;
    } catch (error) {
      broken = isConnectionError(error);
      if (!broken) await client.query("ROLLBACK").catch(() => undefined);
      if (attempt < attempts && isRetryable(error)) continue;
      throw error;
    } finally {
      client.release(broken);
    }
  }
}

/**
 * Runs \`work\` in a transaction on \`q\`: a pool lends a client for it (see
 * withTransaction); a single connection (not already in a transaction) is used as is.
 */
export async function inTransaction<T>(q: Queryable, work: (tx: Queryable) => Promise<T>): Promise<T> {
  if (q instanceof pg.Pool) return withTransaction(q, work, 1);
  await q.query("BEGIN");
  try {
    const result = await work(q);
    await q.query("COMMIT");
    return result;
  } catch (error) {
    await q.query("ROLLBACK").catch(() => undefined);
    throw error;
  }
}

/** Runs `work` inside a savepoint of a transaction the caller holds. */
export async function withSavepoint<T>(client: Queryable, work: () => Promise<T>): Promise<T> {
  await client.query("SAVEPOINT weft_schedule");
  try {
    const result = await work();
    await client.query("RELEASE SAVEPOINT weft_schedule");
    return result;
  } catch (error) {
    await client.query("ROLLBACK TO SAVEPOINT weft_schedule").catch(() => undefined);
    throw error;
  }
}

export { pg };
