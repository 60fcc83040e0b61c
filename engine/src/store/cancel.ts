import type { Queryable } from "../db/pg.js";

/** Advisory-lock class for workflow buckets; see workflowBucket. */
export const WORKFLOW_LOCK_CLASS = 0x57efa;
const BUCKETS = 1024;

/**
 * The advisory-lock bucket of a workflow. Completion batches hold their
 * workflows' buckets shared while they record outcomes and insert children;
 * cancellation holds its workflow's bucket exclusively before it reads the
 * workflow's tasks. So a cancel waits for batches already recording, its task
 * scan then sees every child they wrote, and batches that start later find
 * their tasks cancelled. Advisory locks live in memory: unlike a row lock, they
 * cost the completion batch no write. Buckets bound the locks a batch takes.
 */
export function workflowBucket(workflowId: string): number {
  let h = 0;
  for (let i = 0; i < workflowId.length; i++) h = (Math.imul(h, 31) + workflowId.charCodeAt(i)) | 0;
  return (h >>> 0) % BUCKETS;
}

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

  constructor(s: string, channel: string) {
    this.lockSql = `SELECT pg_advisory_xact_lock(${WORKFLOW_LOCK_CLASS}, $1)`;
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
             (SELECT pg_notify('${channel}', 'r:' || string_agg(DISTINCT assigned_node, ','))
                FROM cancelled WHERE assigned_node IS NOT NULL HAVING count(*) > 0) AS nodes,
             pg_notify('${channel}', 'w:' || $1)
        FROM cancelled`;
    this.statusSql = `SELECT status FROM ${s}.workflows WHERE id = $1`;
  }

  async cancelWorkflow(tx: Queryable, workflowId: string, reason: string | null): Promise<CancelResult | undefined> {
    await tx.query(this.lockSql, [workflowBucket(workflowId)]);
    const updated = await tx.query(this.workflowSql, [workflowId, reason]);
    if ((updated.rowCount ?? 0) === 0) {
      const { rows } = await tx.query<{ status: string }>(this.statusSql, [workflowId]);
      const status = rows[0]?.status;
      return status === undefined ? undefined : { cancelled: false, status, tasks: 0 };
    }
    const { rows } = await tx.query<{ tasks: number }>(this.tasksSql, [workflowId]);
    return { cancelled: true, status: "CANCELLED", tasks: rows[0]?.tasks ?? 0 };
  }
}
