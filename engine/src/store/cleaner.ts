import { encodeTime } from "ulid";
import type { Queryable } from "../db/pg.js";

/**
 * CTEs deleting the join edges and join messages of the purged tasks whose ids
 * \`ids\` selects (both keyed by their join: a primary-key probe per id).
 */
function joinRowsSql(s: string, ids: string): string {
  return `edges AS (
        DELETE FROM ${s}.task_edges WHERE join_task_id = ANY(ARRAY(${ids}))
      ), messages AS (
        DELETE FROM ${s}.join_messages WHERE join_task_id = ANY(ARRAY(${ids}))
      )`;
}

/** Purges finished tasks and workflows older than the retention, in batches. */
export class CleanerStore {
  private readonly tasksSql: string;
  private readonly workflowsSql: string;
  private readonly keysSql: string;

  constructor(s: string) {
    // tasks_deleted_idx (finished_at) WHERE queue = 'DELETED'. A purged join
    // takes its edges and messages along (migration 009: no foreign keys).
    this.tasksSql = `
      WITH purged AS (
        DELETE FROM ${s}.tasks WHERE id IN (
          SELECT id FROM ${s}.tasks
           WHERE queue = 'DELETED' AND finished_at < now() - make_interval(secs => $1::float8 / 1000)
           ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED)
        RETURNING id
      ), ${joinRowsSql(s, "SELECT id FROM purged")}
      SELECT count(*)::int AS n FROM purged`;
    // Walks workflows_pkey from the oldest id up to the ULID of the cutoff time
    // ($3: a workflow finished before the cutoff was created before it), so the
    // walk is bounded by the workflows older than the retention; a finished
    // workflow's remaining tasks go with it (tasks_workflow_idx).
    this.workflowsSql = `
      WITH wf AS (
        DELETE FROM ${s}.workflows WHERE id IN (
          SELECT id FROM ${s}.workflows
           WHERE id < $3 AND status <> 'RUNNING' AND finished_at < now() - make_interval(secs => $1::float8 / 1000)
           ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
        RETURNING id
      ), members AS (
        DELETE FROM ${s}.tasks
         WHERE workflow_id = ANY((SELECT array_agg(id) FROM wf)::text[]) AND id <> workflow_id
        RETURNING id
      ), roots AS (
        DELETE FROM ${s}.tasks WHERE id = ANY((SELECT array_agg(id) FROM wf)::text[])
        RETURNING id
      ), ${joinRowsSql(s, "SELECT id FROM members UNION ALL SELECT id FROM roots")}
      SELECT count(*)::int AS n FROM wf`;
    // idempotency_keys_expires_idx. A key a schedule is taking over (locked)
    // is skipped; one taken over and committed since is no longer expired
    // when re-checked under the lock, so it stays.
    this.keysSql = `
      WITH gone AS (
        DELETE FROM ${s}.idempotency_keys WHERE (task_name, key) IN (
          SELECT task_name, key FROM ${s}.idempotency_keys
           WHERE expires_at <= now() ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)
        RETURNING 1
      )
      SELECT count(*)::int AS n FROM gone`;
  }

  async purgeTasks(q: Queryable, retentionMs: number, limit: number): Promise<number> {
    const { rows } = await q.query<{ n: number }>(this.tasksSql, [retentionMs, limit]);
    return rows[0]?.n ?? 0;
  }

  async purgeWorkflows(q: Queryable, retentionMs: number, limit: number): Promise<number> {
    // Crockford base32 time prefix of the cutoff (10 chars), padded to compare below every id of that instant.
    const cutoff = `${encodeTime(Date.now() - retentionMs + 60_000)}0000000000000000`;
    const { rows } = await q.query<{ n: number }>(this.workflowsSql, [retentionMs, limit, cutoff]);
    return rows[0]?.n ?? 0;
  }

  /** Deletes up to \`limit\` expired idempotency keys (migration 012); returns how many. */
  async purgeIdempotencyKeys(q: Queryable, limit: number): Promise<number> {
    const { rows } = await q.query<{ n: number }>(this.keysSql, [limit]);
    return rows[0]?.n ?? 0;
  }
}
