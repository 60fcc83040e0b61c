import type { Queryable } from "../db/pg.js";

/** Purges finished tasks and workflows older than the retention, in batches. */
export class CleanerStore {
  private readonly tasksSql: string;
  private readonly workflowsSql: string;

  constructor(s: string) {
    // tasks_deleted_idx (finished_at) WHERE queue = 'DELETED'.
    this.tasksSql = `DELETE FROM ${s}.tasks WHERE id IN (
        SELECT id FROM ${s}.tasks
         WHERE queue = 'DELETED' AND finished_at < now() - make_interval(secs => $1::float8 / 1000)
         ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED)`;
    // workflows_finished_idx; a finished workflow's remaining tasks go with it
    // (tasks_workflow_idx).
    this.workflowsSql = `
      WITH wf AS (
        DELETE FROM ${s}.workflows WHERE id IN (
          SELECT id FROM ${s}.workflows
           WHERE status <> 'RUNNING' AND finished_at < now() - make_interval(secs => $1::float8 / 1000)
           ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED)
        RETURNING id
      ), tasks AS (
        DELETE FROM ${s}.tasks WHERE workflow_id = ANY((SELECT array_agg(id) FROM wf)::text[])
      )
      SELECT count(*)::int AS n FROM wf`;
  }

  async purgeTasks(q: Queryable, retentionMs: number, limit: number): Promise<number> {
    return (await q.query(this.tasksSql, [retentionMs, limit])).rowCount ?? 0;
  }

  async purgeWorkflows(q: Queryable, retentionMs: number, limit: number): Promise<number> {
    const { rows } = await q.query<{ n: number }>(this.workflowsSql, [retentionMs, limit]);
    return rows[0]?.n ?? 0;
  }
}
