import type pg from "pg";
import { exec, inTransaction, type Queryable, withTransaction } from "../db/pg.js";
import { Statements } from "../db/statement.js";
import { fenceSql } from "./planner.js";

/** An affinity key: a group and a value within it. */
export interface AffinityKey {
  readonly affinity_group: string;
  readonly affinity: string;
}

/** An affinity key and the workflow holding it. */
export interface AffinityHolder extends AffinityKey {
  readonly workflow_id: string;
}

/** The oldest workflow with an unfinished task with the key of row \`k\` (tasks_affinity_idx). */
function nextHolder(s: string, k: string): string {
  return `SELECT t.workflow_id FROM ${s}.tasks t
             WHERE t.affinity_group = ${k}.affinity_group AND t.affinity = ${k}.affinity
               AND t.affinity IS NOT NULL AND t.queue <> 'DELETED'
             ORDER BY t.workflow_id LIMIT 1`;
}

/**
 * CTE \`unparked\`: releases the tasks parked for their key of each new holder
 * in \`holders\` (a CTE with affinity_group, affinity, workflow_id).
 */
function unparkCte(s: string, holders: string): string {
  return `unparked AS (
        -- One probe of tasks_affinity_idx per key handed over (LATERAL keeps it so).
        UPDATE ${s}.tasks t SET queue = 'READY', park_reason = NULL
         WHERE t.id = ANY(ARRAY(
                 SELECT w.id FROM ${holders} a CROSS JOIN LATERAL (
                   SELECT t2.id FROM ${s}.tasks t2
                    WHERE t2.affinity_group = a.affinity_group AND t2.affinity = a.affinity
                      AND t2.workflow_id = a.workflow_id AND t2.affinity IS NOT NULL AND t2.queue <> 'DELETED') w))
           AND t.queue = 'PARKED' AND t.park_reason = 'AFFINITY'
        RETURNING t.id
      )`;
}

/** "This workflow has no unfinished task with this key any more", for the holder row \`h\`. */
function finishedWithKey(s: string, h: string): string {
  return `NOT EXISTS (
          SELECT 1 FROM ${s}.tasks t
           WHERE t.affinity_group = ${h}.affinity_group AND t.affinity = ${h}.affinity
             AND t.workflow_id = ${h}.workflow_id AND t.affinity IS NOT NULL AND t.queue <> 'DELETED')`;
}

/**
 * Affinity keys: which workflow holds each, and handing a key on when its
 * holder has finished with it. A key is held by one workflow at a time (see
 * migration 004).
 *
 * Keys are released by whoever finishes the holder's last task with the key,
 * right after that commits: the worker after a completion batch, the client
 * after a cancel. Running after the commit, in a statement of its own, is what
 * makes it safe: of two batches that finish the holder's last two tasks at the
 * same time, the release of the later one sees both. The planner hands over
 * keys nobody holds (a first task with a new key) and, as a safety net on its
 * sweep, frees any key whose holder finished without a release (a node that
 * died between its commit and its release).
 */
export class AffinityStore {
  private readonly holdersSql: string;
  private readonly handOverSql: string;
  private readonly lockFinishedSql: string;
  private readonly releaseSql: string;
  private readonly releaseWorkflowSql: string;
  private readonly lockSql: string;
  private readonly lockWorkflowSql: string;

  constructor(
    s: string,
    channel: string,
    private readonly statements: Statements = new Statements(false),
  ) {
    this.holdersSql = `SELECT h.affinity_group, h.affinity, h.workflow_id FROM ${s}.affinity_holders h
      JOIN unnest($1::text[], $2::text[]) AS k(g, a) ON h.affinity_group = k.g AND h.affinity = k.a`;
    // The planner's hand-over of free keys, fenced by its epoch ($3).
    this.handOverSql = `
      WITH ${fenceSql(s, "$3")}, acquired AS (
        INSERT INTO ${s}.affinity_holders (affinity_group, affinity, workflow_id)
        SELECT k.affinity_group, k.affinity, n.workflow_id
          FROM unnest($1::text[], $2::text[]) AS k(affinity_group, affinity)
          CROSS JOIN LATERAL (${nextHolder(s, "k")}) n
         WHERE EXISTS (SELECT 1 FROM fence)
        ON CONFLICT DO NOTHING
        RETURNING affinity_group, affinity, workflow_id
      ), ${unparkCte(s, "acquired")}
      SELECT (SELECT count(*)::int FROM unparked) AS unparked`;
    // The planner's safety net (epoch $1): locks every holder that looks
    // finished with its key (skipping rows others hold), for a release.
    this.lockFinishedSql = `
      WITH ${fenceSql(s, "$1")}
      SELECT h.affinity_group, h.affinity, h.workflow_id FROM ${s}.affinity_holders h
       WHERE EXISTS (SELECT 1 FROM fence) AND ${finishedWithKey(s, "h")}
       ORDER BY h.affinity_group, h.affinity FOR UPDATE OF h SKIP LOCKED`;
    // After a commit that finished tasks with keys ($1 groups, $2 keys, $3
    // workflows): each holder among them that has no unfinished task with its
    // key lets it go to the next workflow in line. The planner is woken when
    // tasks were released.
    // The holder row is updated in place (HOT: only its key is indexed), or
    // deleted when no workflow waits for the key.
    const release = (holders: string) => `
      WITH freed AS MATERIALIZED (
        SELECT h.affinity_group, h.affinity, (${nextHolder(s, "h")}) AS next
          FROM ${s}.affinity_holders h
         WHERE (h.affinity_group, h.affinity) IN (${holders}) AND ${finishedWithKey(s, "h")}
      ), moved AS (
        UPDATE ${s}.affinity_holders h SET workflow_id = f.next, acquired_at = now()
          FROM freed f
         WHERE h.affinity_group = f.affinity_group AND h.affinity = f.affinity AND f.next IS NOT NULL
        RETURNING h.affinity_group, h.affinity, h.workflow_id
      ), dropped AS (
        DELETE FROM ${s}.affinity_holders h USING freed f
         WHERE h.affinity_group = f.affinity_group AND h.affinity = f.affinity AND f.next IS NULL
        RETURNING 1
      ), ${unparkCte(s, "moved")}
      SELECT (SELECT count(*)::int FROM freed) AS freed, (SELECT count(*)::int FROM unparked) AS unparked,
             (SELECT count(*)::int FROM dropped) AS dropped,
             (SELECT pg_notify('${channel}', 'p') FROM unparked HAVING count(*) > 0) AS notified`;
    this.releaseSql = release(
      `SELECT h2.affinity_group, h2.affinity FROM unnest($1::text[], $2::text[], $3::text[]) AS k(g, a, w)
         JOIN ${s}.affinity_holders h2 ON h2.affinity_group = k.g AND h2.affinity = k.a AND h2.workflow_id = k.w`,
    );
    // A release first locks its holder rows FOR UPDATE, in key order, and then
    // runs in a statement of its own: its snapshot is taken once the planner's
    // apply statements that hold them FOR SHARE have committed, so it sees (and
    // unparks) every task they parked for the key.
    this.lockSql = `SELECT 1 FROM ${s}.affinity_holders h
      WHERE h.affinity_group = ANY($1::text[]) AND h.affinity = ANY($2::text[]) AND h.workflow_id = ANY($3::text[])
      ORDER BY h.affinity_group, h.affinity FOR UPDATE`;
    // A cancelled workflow ($1): the keys of its tasks (tasks_workflow_idx and
    // the root by id), through the holders' primary key.
    const keysOfWorkflow = `SELECT DISTINCT t.affinity_group, t.affinity FROM ${s}.tasks t
       WHERE (t.id = $1 OR (t.workflow_id = $1 AND t.id <> t.workflow_id)) AND t.workflow_id = $1
         AND t.affinity IS NOT NULL`;
    this.lockWorkflowSql = `SELECT 1 FROM ${s}.affinity_holders h
      WHERE (h.affinity_group, h.affinity) IN (${keysOfWorkflow}) AND h.workflow_id = $1
      ORDER BY h.affinity_group, h.affinity FOR UPDATE OF h`;
    // A cancelled workflow ($1) gives up its keys at once.
    this.releaseWorkflowSql = release(
      `SELECT h2.affinity_group, h2.affinity FROM ${s}.affinity_holders h2
        WHERE (h2.affinity_group, h2.affinity) IN (${keysOfWorkflow}) AND h2.workflow_id = $1`,
    );
  }

  async holders(q: Queryable, keys: readonly AffinityKey[]): Promise<AffinityHolder[]> {
    if (keys.length === 0) return [];
    const { rows } = await exec<AffinityHolder>(q, this.statements.get(this.holdersSql), [
      keys.map((k) => k.affinity_group),
      keys.map((k) => k.affinity),
    ]);
    return rows;
  }

  /** The planner: gives each free key among \`keys\` to its oldest waiting workflow; returns tasks released from PARKED. */
  async handOver(q: Queryable, keys: readonly AffinityKey[], epoch: number): Promise<number> {
    if (keys.length === 0) return 0;
    const { rows } = await exec<{ unparked: number }>(q, this.statements.get(this.handOverSql), [
      keys.map((k) => k.affinity_group),
      keys.map((k) => k.affinity),
      epoch,
    ]);
    return rows[0]?.unparked ?? 0;
  }

  /**
   * The planner's safety net, on its connection (not in a transaction): frees every key whose holder has finished with it without a
   * release (its node died between commit and release), and hands it on.
   */
  async releaseFinished(client: Queryable, epoch: number): Promise<{ freed: number; unparked: number }> {
    return inTransaction(client, async (tx) => {
      const { rows: keys } = await tx.query<AffinityHolder>(this.lockFinishedSql, [epoch]);
      return keys.length === 0 ? { freed: 0, unparked: 0 } : this.releaseLocked(tx, keys);
    });
  }

  /**
   * After a commit that finished tasks holding \`keys\`: frees those whose
   * workflow has no unfinished task with them and hands them on. Must not run
   * inside the transaction that finished the tasks. Waits at most
   * \`lockTimeoutMs\` for a holder row (a caller's open transaction that
   * scheduled a task with the key holds it FOR SHARE); after that the key is
   * left to the planner's sweep.
   */
  async release(
    pool: pg.Pool,
    keys: readonly AffinityHolder[],
    lockTimeoutMs = 500,
  ): Promise<{ freed: number; unparked: number }> {
    if (keys.length === 0) return { freed: 0, unparked: 0 };
    const params = [keys.map((k) => k.affinity_group), keys.map((k) => k.affinity), keys.map((k) => k.workflow_id)];
    return withTransaction(
      pool,
      async (tx) => {
        await tx.query(`SELECT set_config('lock_timeout', $1, true)`, [`${lockTimeoutMs}ms`]);
        const locked = await exec(tx, this.statements.get(this.lockSql), params);
        if ((locked.rowCount ?? 0) === 0) return { freed: 0, unparked: 0 };
        return this.releaseLocked(tx, keys);
      },
      1,
    );
  }

  private async releaseLocked(
    tx: Queryable,
    keys: readonly AffinityHolder[],
  ): Promise<{ freed: number; unparked: number }> {
    const { rows } = await exec<{ freed: number; unparked: number }>(tx, this.statements.get(this.releaseSql), [
      keys.map((k) => k.affinity_group),
      keys.map((k) => k.affinity),
      keys.map((k) => k.workflow_id),
    ]);
    return { freed: rows[0]?.freed ?? 0, unparked: rows[0]?.unparked ?? 0 };
  }

  /** After a cancel committed: the workflow's keys go to the next workflows in line. */
  async releaseWorkflow(pool: pg.Pool, workflowId: string): Promise<{ freed: number; unparked: number }> {
    return withTransaction(pool, async (tx) => {
      const locked = await tx.query(this.lockWorkflowSql, [workflowId]);
      if ((locked.rowCount ?? 0) === 0) return { freed: 0, unparked: 0 };
      const { rows } = await tx.query<{ freed: number; unparked: number }>(this.releaseWorkflowSql, [workflowId]);
      return { freed: rows[0]?.freed ?? 0, unparked: rows[0]?.unparked ?? 0 };
    });
  }
}
