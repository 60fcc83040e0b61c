import type { Queryable } from "../db/pg.js";
import { DeadLetterNotFoundError, NotRequeueableError } from "../errors.js";
import { SHARE_WORKFLOW_BUCKET_SQL, workflowBucket } from "./locks.js";
import { NOTIFY_PLANNER } from "./notify.js";
import { soloRootSql, soloStatusSql } from "./solo.js";

/** A dead letter as stored. */
export interface DeadLetterRow {
  readonly task_id: string;
  readonly workflow_id: string;
  readonly parent_id: string | null;
  readonly task_name: string;
  readonly input: unknown;
  readonly error: unknown;
  readonly attempts: unknown[];
  readonly task_created_at: Date;
  readonly failed_at: Date;
  /** A slot task's slot: its series' interval and its start (migration 010); NULL otherwise. */
  readonly slot_every: string | null;
  readonly slot_start: Date | null;
}

export interface DeadLetterFilter {
  readonly taskName?: string | undefined;
  readonly workflowId?: string | undefined;
  /** failed_at >= this */
  readonly failedFrom?: Date | undefined;
  /** failed_at < this */
  readonly failedTo?: Date | undefined;
}

const COLUMNS =
  "task_id, workflow_id, parent_id, task_name, input, error, attempts, task_created_at, failed_at, slot_every, slot_start";
// NULL parameters mean "no filter". Served by dead_letters_name_idx,
// dead_letters_workflow_idx or dead_letters_failed_idx as the filter allows.
const WHERE = `($1::text IS NULL OR task_name = $1) AND ($2::text IS NULL OR workflow_id = $2)
  AND ($3::timestamptz IS NULL OR failed_at >= $3) AND ($4::timestamptz IS NULL OR failed_at < $4)`;

/** The dead-letter table: list, inspect, requeue, purge. */
export class DeadLetterStore {
  private readonly listSql: string;
  private readonly getSql: string;
  private readonly purgeIdsSql: string;
  private readonly purgeFilterSql: string;
  private readonly lockedSql: string;
  private readonly workflowsSql: string;
  private readonly requeueSql: string;
  private readonly expireSql: string;

  constructor(s: string, channel: string) {
    this.listSql = `SELECT ${COLUMNS} FROM ${s}.dead_letters WHERE ${WHERE}
      ORDER BY failed_at DESC, task_id DESC LIMIT $5`;
    this.getSql = `SELECT ${COLUMNS} FROM ${s}.dead_letters WHERE task_id = $1`;
    this.purgeIdsSql = `DELETE FROM ${s}.dead_letters WHERE task_id = ANY($1::text[])`;
    this.purgeFilterSql = `DELETE FROM ${s}.dead_letters WHERE ${WHERE}`;
    this.workflowsSql = `SELECT DISTINCT workflow_id FROM ${s}.dead_letters WHERE task_id = ANY($1::text[])`;
    // The dead letters to requeue with their task and workflow, locked.
    // A solo workflow (no row, migration 008) has its root task's status.
    this.lockedSql = `SELECT d.task_id, t.id AS task, t.queue, t.state, d.workflow_id,
             coalesce(w.status, CASE WHEN ${soloRootSql("t")} THEN ${soloStatusSql("t")} END) AS workflow_status
      FROM ${s}.dead_letters d
      LEFT JOIN ${s}.tasks t ON t.id = d.task_id
      LEFT JOIN ${s}.workflows w ON w.id = d.workflow_id
      WHERE d.task_id = ANY($1::text[])
      ORDER BY d.task_id
      FOR UPDATE OF d`;
    // A requeued task re-enters its DAG: it is READY again with a fresh attempt
    // budget (attempt_log keeps the history); the joins in its awaited_by that
    // have not started wait for it again (+1); its workflow counts it pending
    // again, no longer counts its failure (if it counted), and is RUNNING again
    // if it had ended. Joins that already ran cannot wait for it any more.
    // The slot a slot task failed is AVAILABLE again, with the same generation,
    // attempt count and message, so that the task's outcome finishes it (the
    // completion only finishes AVAILABLE slots); a slot re-opened since points
    // at the task of its new generation and is left alone.
    this.requeueSql = `
      WITH tasks_back AS (
        UPDATE ${s}.tasks t
           SET queue = 'READY', state = 'PENDING', attempt = 0, error = NULL, result = NULL,
               finished_at = NULL, run_after = NULL, park_reason = NULL,
               assigned_node = NULL, token = NULL, assigned_at = NULL, deadline = NULL
         WHERE t.id = ANY($1::text[]) AND t.queue = 'DELETED' AND t.state = 'FAILED'
        RETURNING t.id, t.workflow_id, t.awaited_by,
                  NOT EXISTS (SELECT 1 FROM ${s}.task_edges e WHERE e.upstream_task_id = t.id) AS counted
      ), join_delta AS (
        SELECT j, count(*)::int AS d FROM (SELECT unnest(awaited_by) AS j FROM tasks_back) x GROUP BY j
      ), joins AS (
        UPDATE ${s}.tasks t SET join_pending = t.join_pending + jd.d
          FROM join_delta jd
         WHERE t.id = jd.j AND t.queue = 'PARKED' AND t.join_pending IS NOT NULL
        RETURNING 1
      ), delta AS (
        SELECT workflow_id, count(*)::int AS pending, count(*) FILTER (WHERE counted)::int AS failed
          FROM tasks_back GROUP BY workflow_id
      ), wf AS (
        UPDATE ${s}.workflows w
           SET pending_tasks = w.pending_tasks + d.pending,
               failed_tasks = greatest(w.failed_tasks - d.failed, 0),
               status = 'RUNNING', finished_at = NULL
          FROM delta d
         WHERE w.id = d.workflow_id AND w.status <> 'CANCELLED'
        RETURNING 1
      ), slots_back AS (
        UPDATE ${s}.slots sl SET status = 'AVAILABLE', completed_at = NULL, completed_by = NULL
         WHERE sl.task_id = ANY(ARRAY(SELECT id FROM tasks_back)) AND sl.status = 'FAILED'
        RETURNING 1
      ), removed AS (
        DELETE FROM ${s}.dead_letters WHERE task_id = ANY(ARRAY(SELECT id FROM tasks_back))
      )
      SELECT array(SELECT id FROM tasks_back) AS requeued, (SELECT count(*) FROM joins) AS joins,
             (SELECT count(*) FROM wf) AS workflows, (SELECT count(*) FROM slots_back) AS slots, pg_notify('${channel}', '${NOTIFY_PLANNER}')`;
    this.expireSql = `DELETE FROM ${s}.dead_letters WHERE task_id IN (
        SELECT task_id FROM ${s}.dead_letters WHERE failed_at < now() - make_interval(secs => $1::float8 / 1000)
         ORDER BY failed_at LIMIT $2 FOR UPDATE SKIP LOCKED)`;
  }

  private filterParams(f: DeadLetterFilter): unknown[] {
    return [f.taskName ?? null, f.workflowId ?? null, f.failedFrom ?? null, f.failedTo ?? null];
  }

  /** Newest first. */
  async list(q: Queryable, filter: DeadLetterFilter, limit: number): Promise<DeadLetterRow[]> {
    return (await q.query<DeadLetterRow>(this.listSql, [...this.filterParams(filter), limit])).rows;
  }

  async get(q: Queryable, taskId: string): Promise<DeadLetterRow | undefined> {
    return (await q.query<DeadLetterRow>(this.getSql, [taskId])).rows[0];
  }

  /** Removes dead letters (their tasks stay until the cleaner purges them). */
  async purge(q: Queryable, target: { taskIds: readonly string[] } | DeadLetterFilter): Promise<number> {
    if ("taskIds" in target) return (await q.query(this.purgeIdsSql, [target.taskIds])).rowCount ?? 0;
    return (await q.query(this.purgeFilterSql, this.filterParams(target))).rowCount ?? 0;
  }

  /** Deletes dead letters older than the retention, in batches (the cleaner). */
  async expire(q: Queryable, retentionMs: number, limit: number): Promise<number> {
    return (await q.query(this.expireSql, [retentionMs, limit])).rowCount ?? 0;
  }

  /**
   * Requeues dead-lettered tasks; all or nothing. Must run inside a transaction.
   * Holds the workflows' buckets shared, like a completion batch, so that a
   * concurrent cancel either sees the task back in its workflow or happened first
   * (and the workflow is CANCELLED: refused here).
   */
  async requeue(tx: Queryable, taskIds: readonly string[]): Promise<string[]> {
    const ids = [...new Set(taskIds)].sort();
    // Buckets first (a dead letter's workflow never changes), then read and check
    // under them: a cancel that got in first is seen here.
    const workflows = await tx.query<{ workflow_id: string }>(this.workflowsSql, [ids]);
    const buckets = [...new Set(workflows.rows.map((r) => workflowBucket(r.workflow_id)))].sort((a, b) => a - b);
    for (const b of buckets) await tx.query(SHARE_WORKFLOW_BUCKET_SQL, [b]);
    const found = await tx.query<{
      task_id: string;
      task: string | null;
      queue: string | null;
      state: string | null;
      workflow_status: string | null;
      workflow_id: string;
    }>(this.lockedSql, [ids]);
    const byId = new Map(found.rows.map((r) => [r.task_id, r]));
    for (const id of ids) {
      const r = byId.get(id);
      if (!r) throw new DeadLetterNotFoundError(id);
      if (r.task === null) throw new NotRequeueableError(id, "the task was purged (older than the retention)");
      if (r.workflow_status === null) throw new NotRequeueableError(id, "its workflow was purged");
      if (r.workflow_status === "CANCELLED") throw new NotRequeueableError(id, "its workflow was cancelled");
      if (r.queue !== "DELETED" || r.state !== "FAILED") {
        throw new NotRequeueableError(id, `the task is ${r.state} in ${r.queue}, not FAILED`);
      }
    }
    const { rows } = await tx.query<{ requeued: string[] }>(this.requeueSql, [ids]);
    return rows[0]?.requeued ?? [];
  }
}
