import type { Queryable } from "../db/pg.js";
import { LOCK_WORKFLOW_BUCKET_SQL, workflowBucket } from "./locks.js";
import { NOTIFY_RECONCILE, NOTIFY_WORKFLOWS, notifyPrefixSql } from "./notify.js";
import { soloRootSql, soloStatusSql } from "./solo.js";

export interface CancelResult {
  /** False when the workflow had already finished. */
  readonly cancelled: boolean;
  readonly status: string;
  readonly tasks: number;
}

/** Cancels workflows. Must run inside a transaction (see withTransaction). */
export class CancelStore {
  private readonly lockSql: string;
  private readonly workflowSql: string;
  private readonly tasksSql: string;
  private readonly statusSql: string;
  private readonly taskSql: string;
  private readonly subtreeSql: string;
  private readonly soloSql: string;

  constructor(s: string, channel: string) {
    this.lockSql = LOCK_WORKFLOW_BUCKET_SQL;
    this.workflowSql = `UPDATE ${s}.workflows
         SET status = 'CANCELLED', cancel_reason = $2, pending_tasks = 0, finished_at = now()
       WHERE id = $1 AND status = 'RUNNING'
      RETURNING id`;
    // Every unfinished task: the root by its id, the rest through tasks_workflow_idx.
    // Nodes running one are told to reconcile (their attempt's signal aborts; its
    // outcome is refused because the task is no longer READY).
    this.tasksSql = `
      WITH cancelled AS (
        UPDATE ${s}.tasks t
           SET queue = 'DELETED', state = 'CANCELLED', park_reason = NULL, finished_at = now()
         WHERE (t.id = $1 OR (t.workflow_id = $1 AND t.id <> t.workflow_id))
           AND t.workflow_id = $1 AND t.queue <> 'DELETED'
        RETURNING t.assigned_node
      )
      SELECT count(*)::int AS tasks,
             (SELECT pg_notify('${channel}', ${notifyPrefixSql(NOTIFY_RECONCILE)} || string_agg(DISTINCT assigned_node, ','))
                FROM cancelled WHERE assigned_node IS NOT NULL HAVING count(*) > 0) AS nodes,
             pg_notify('${channel}', ${notifyPrefixSql(NOTIFY_WORKFLOWS)} || $1)
        FROM cancelled`;
    this.statusSql = `SELECT status FROM ${s}.workflows WHERE id = $1
      UNION ALL
      SELECT ${soloStatusSql("t")} FROM ${s}.tasks t WHERE t.id = $1 AND ${soloRootSql("t")}`;
    // A solo workflow (no row, migration 008): its root task is cancelled and
    // the row written, CANCELLED with the reason. Locking the root orders this
    // against its completion and against a schedule into the workflow (which
    // would write the row first: then this finds no solo root).
    this.soloSql = `
      WITH root AS (
        UPDATE ${s}.tasks t
           SET queue = 'DELETED', state = 'CANCELLED', park_reason = NULL, finished_at = now(), solo = false
         WHERE t.id = $1 AND ${soloRootSql("t")} AND t.queue <> 'DELETED'
        RETURNING t.created_at, t.assigned_node
      ), wf AS (
        INSERT INTO ${s}.workflows (id, root_task_id, status, pending_tasks, total_tasks, cancel_reason, created_at, finished_at)
        SELECT $1, $1, 'CANCELLED', 0, 1, $2::text, created_at, now() FROM root
      )
      SELECT count(*)::int AS tasks,
             (SELECT pg_notify('${channel}', ${notifyPrefixSql(NOTIFY_RECONCILE)} || assigned_node) FROM root WHERE assigned_node IS NOT NULL) AS nodes,
             CASE WHEN count(*) > 0 THEN pg_notify('${channel}', ${notifyPrefixSql(NOTIFY_WORKFLOWS)} || $1) END AS finished
        FROM root`;
    this.taskSql = `SELECT workflow_id FROM ${s}.tasks WHERE id = $1`;
    // The task, its descendants (forks included), and the joins that wait for any
    // of them with their own descendants, closed transitively; the unfinished
    // ones are cancelled. No join outside the set waits for a task in it, so no
    // join counter needs adjusting. The workflow loses them from its pending
    // count; if that ends it, it is CANCELLED when the closure holds its root
    // (cancelling the root's subtree is cancelling the workflow), otherwise
    // COMPLETED or FAILED by its unhandled failures.
    this.subtreeSql = `
      WITH RECURSIVE closure(id) AS (
        SELECT $1::text COLLATE "C"
        UNION
        SELECT x.id FROM closure c CROSS JOIN LATERAL (
          SELECT t.id FROM ${s}.tasks t WHERE t.workflow_id = $2 AND t.id <> t.workflow_id AND t.parent_id = c.id
          UNION ALL
          SELECT unnest(t.awaited_by) COLLATE "C" FROM ${s}.tasks t WHERE t.id = c.id
        ) x
      ), cancelled AS (
        UPDATE ${s}.tasks t
           SET queue = 'DELETED', state = 'CANCELLED', park_reason = NULL, finished_at = now()
         WHERE t.id = ANY(ARRAY(SELECT id FROM closure)) AND t.queue <> 'DELETED'
        RETURNING t.id, t.assigned_node
      ), wf AS (
        UPDATE ${s}.workflows w
           SET pending_tasks = w.pending_tasks - (SELECT count(*) FROM cancelled),
               status = CASE WHEN w.pending_tasks - (SELECT count(*) FROM cancelled) > 0 THEN w.status
                             WHEN EXISTS (SELECT 1 FROM closure WHERE id = w.id) THEN 'CANCELLED'
                             WHEN w.failed_tasks > 0 THEN 'FAILED' ELSE 'COMPLETED' END,
               finished_at = CASE WHEN w.pending_tasks - (SELECT count(*) FROM cancelled) > 0 THEN NULL ELSE now() END
         WHERE w.id = $2 AND w.status = 'RUNNING' AND (SELECT count(*) FROM cancelled) > 0
        RETURNING w.status
      )
      SELECT (SELECT count(*)::int FROM cancelled) AS tasks,
             (SELECT status FROM wf) AS status,
             (SELECT pg_notify('${channel}', ${notifyPrefixSql(NOTIFY_RECONCILE)} || string_agg(DISTINCT assigned_node, ','))
                FROM cancelled WHERE assigned_node IS NOT NULL HAVING count(*) > 0) AS nodes,
             (SELECT pg_notify('${channel}', ${notifyPrefixSql(NOTIFY_WORKFLOWS)} || $2) FROM wf WHERE status <> 'RUNNING') AS finished`;
  }

  /** Cancels a task with its descendants and dependent joins; undefined when the task does not exist. */
  async cancelTask(tx: Queryable, taskId: string): Promise<{ workflowId: string; tasks: number } | undefined> {
    const { rows } = await tx.query<{ workflow_id: string }>(this.taskSql, [taskId]);
    const workflowId = rows[0]?.workflow_id;
    if (workflowId === undefined) return undefined;
    await tx.query(this.lockSql, [workflowBucket(workflowId)]);
    if (taskId === workflowId) {
      // Cancelling the root of a solo workflow cancels the workflow.
      const solo = await tx.query<{ tasks: number }>(this.soloSql, [workflowId, null]);
      if ((solo.rows[0]?.tasks ?? 0) > 0) return { workflowId, tasks: 1 };
    }
    const result = await tx.query<{ tasks: number }>(this.subtreeSql, [taskId, workflowId]);
    return { workflowId, tasks: result.rows[0]?.tasks ?? 0 };
  }

  async cancelWorkflow(tx: Queryable, workflowId: string, reason: string | null): Promise<CancelResult | undefined> {
    await tx.query(this.lockSql, [workflowBucket(workflowId)]);
    // Each statement reads a fresh snapshot: a solo workflow that got its row
    // between the first two (a schedule into it) is RUNNING with a row on the
    // next pass.
    for (let pass = 0; ; pass++) {
      const updated = await tx.query(this.workflowSql, [workflowId, reason]);
      if ((updated.rowCount ?? 0) > 0) {
        const { rows } = await tx.query<{ tasks: number }>(this.tasksSql, [workflowId]);
        return { cancelled: true, status: "CANCELLED", tasks: rows[0]?.tasks ?? 0 };
      }
      const solo = await tx.query<{ tasks: number }>(this.soloSql, [workflowId, reason]);
      if ((solo.rows[0]?.tasks ?? 0) > 0) return { cancelled: true, status: "CANCELLED", tasks: 1 };
      const { rows } = await tx.query<{ status: string }>(this.statusSql, [workflowId]);
      const status = rows[0]?.status;
      if (status === undefined) return undefined;
      if (status !== "RUNNING" || pass > 0) return { cancelled: false, status, tasks: 0 };
    }
  }
}
