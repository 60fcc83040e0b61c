import { exec, inTransaction, type Queryable } from "../db/pg.js";
import { preparedName, type Statement, Statements } from "../db/statement.js";
import { fenceSql } from "./statements/fragments.js";
import { releaseKeysName, releaseKeysParams, releaseKeysSql } from "./statements/release-keys.js";
import type { AffinityHolder, AffinityKey } from "./types.js";

/** Keys freed and tasks released by a release. */
export interface ReleaseResult {
  readonly freed: number;
  readonly unparked: number;
}

/** Holder of a key the planner claimed for nobody, to hand it on at once (see handOver). */
const NOBODY = "";

/**
 * Affinity keys: which workflow holds each, and handing a key on when its
 * holder has finished with it. A key is held by one workflow at a time (see
 * migration 004); the hand-over itself is release_affinity_keys (migration 007).
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
  private readonly holdersSql: Statement;
  private readonly claimSql: string;
  private readonly lockFinishedSql: string;
  private readonly releaseSql: Statement;
  private readonly releaseWorkflowSql: string;

  constructor(
    s: string,
    private readonly channel: string,
    statements: Statements = new Statements(false),
  ) {
    this.holdersSql = statements.get(
      preparedName("affinity_holders", statements.schema),
      `SELECT h.affinity_group, h.affinity, h.workflow_id FROM ${s}.affinity_holders h
      JOIN unnest($1::text[], $2::text[]) AS k(g, a) ON h.affinity_group = k.g AND h.affinity = k.a`,
    );
    // The planner (epoch $3) claims keys nobody holds, for nobody: the release
    // that follows hands them to the oldest waiting workflow. Meanwhile the row
    // makes schedulers and the planner park other workflows' tasks behind it.
    this.claimSql = `
      WITH ${fenceSql(s, "$3")}
      INSERT INTO ${s}.affinity_holders (affinity_group, affinity, workflow_id)
      SELECT k.g, k.a, '${NOBODY}' FROM unnest($1::text[], $2::text[]) AS k(g, a)
       WHERE EXISTS (SELECT 1 FROM fence)
      ON CONFLICT DO NOTHING
      RETURNING affinity_group, affinity, workflow_id`;
    // The planner's safety net (epoch $1): locks every holder that looks
    // finished with its key (skipping rows others hold), for a release.
    this.lockFinishedSql = `
      WITH ${fenceSql(s, "$1")}
      SELECT h.affinity_group, h.affinity, h.workflow_id FROM ${s}.affinity_holders h
       WHERE EXISTS (SELECT 1 FROM fence) AND NOT EXISTS (
         SELECT 1 FROM ${s}.tasks t
          WHERE t.affinity_group = h.affinity_group AND t.affinity = h.affinity
            AND t.workflow_id = h.workflow_id AND t.affinity IS NOT NULL AND t.queue <> 'DELETED')
       ORDER BY h.affinity_group, h.affinity FOR UPDATE OF h SKIP LOCKED`;
    // See statements/release-keys.ts.
    this.releaseSql = statements.get(releaseKeysName(statements.schema), releaseKeysSql(s));
    // A cancelled workflow ($1) gives up its keys at once: the keys of its
    // tasks (tasks_workflow_idx and the root by id) that it holds.
    this.releaseWorkflowSql = `
      SELECT r.keys_freed AS freed, r.tasks_released AS unparked FROM (
        SELECT array_agg(h.affinity_group) AS g, array_agg(h.affinity) AS a, array_agg(h.workflow_id) AS w
          FROM ${s}.affinity_holders h
         WHERE (h.affinity_group, h.affinity) IN (
                 SELECT DISTINCT t.affinity_group, t.affinity FROM ${s}.tasks t
                  WHERE (t.id = $1 OR (t.workflow_id = $1 AND t.id <> t.workflow_id)) AND t.workflow_id = $1
                    AND t.affinity IS NOT NULL)
           AND h.workflow_id = $1) k
      CROSS JOIN LATERAL ${s}.release_affinity_keys(k.g, k.a, k.w, NULL, NULL, $2::text) r`;
  }

  async holders(q: Queryable, keys: readonly AffinityKey[]): Promise<AffinityHolder[]> {
    if (keys.length === 0) return [];
    const { rows } = await exec<AffinityHolder>(q, this.holdersSql, [
      keys.map((k) => k.affinity_group),
      keys.map((k) => k.affinity),
    ]);
    return rows;
  }

  /**
   * The planner: gives each free key among \`keys\` to its oldest waiting
   * workflow; returns the tasks released from PARKED.
   */
  async handOver(q: Queryable, keys: readonly AffinityKey[], epoch: number): Promise<number> {
    if (keys.length === 0) return 0;
    const { rows: claimed } = await q.query<AffinityHolder>(this.claimSql, [
      keys.map((k) => k.affinity_group),
      keys.map((k) => k.affinity),
      epoch,
    ]);
    return (await this.releaseKeys(q, claimed, null)).unparked;
  }

  /**
   * The planner's safety net, on its connection (not in a transaction): frees
   * every key whose holder has finished with it without a release (its node
   * died between commit and release), and hands it on.
   */
  async releaseFinished(client: Queryable, epoch: number): Promise<ReleaseResult> {
    return inTransaction(client, async (tx) => {
      const { rows: keys } = await tx.query<AffinityHolder>(this.lockFinishedSql, [epoch]);
      return this.releaseKeys(tx, keys, null);
    });
  }

  /**
   * After a commit that finished tasks holding \`keys\`: frees those whose
   * workflow has no unfinished task with them and hands them on. Must not run
   * inside the transaction that finished the tasks. Waits at most
   * \`lockTimeoutMs\` for a holder row (a caller's open transaction that
   * scheduled a task with the key holds it FOR SHARE); after that it fails
   * with 55P03 and the key is left to the planner's sweep.
   */
  release(q: Queryable, keys: readonly AffinityHolder[], lockTimeoutMs = 500): Promise<ReleaseResult> {
    return this.releaseKeys(q, keys, lockTimeoutMs);
  }

  private async releaseKeys(
    q: Queryable,
    keys: readonly AffinityHolder[],
    lockTimeoutMs: number | null,
  ): Promise<ReleaseResult> {
    if (keys.length === 0) return { freed: 0, unparked: 0 };
    const { rows } = await exec<ReleaseResult>(
      q,
      this.releaseSql,
      releaseKeysParams(keys, lockTimeoutMs, this.channel),
    );
    return rows[0] ?? { freed: 0, unparked: 0 };
  }

  /** After a cancel committed: the workflow's keys go to the next workflows in line. */
  async releaseWorkflow(q: Queryable, workflowId: string): Promise<ReleaseResult> {
    const { rows } = await q.query<ReleaseResult>(this.releaseWorkflowSql, [workflowId, this.channel]);
    return rows[0] ?? { freed: 0, unparked: 0 };
  }
}
