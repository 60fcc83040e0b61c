import type { Queryable } from "../db/pg.js";
import { TASK_INSERT_COLUMNS, TASK_SELECT_LIST, taskColumns, unnestTasks } from "./schedule.js";
import type { AssignedTaskRow, NewTaskRow, OutcomeRow } from "./types.js";

const ASSIGNED_COLUMNS =
  "id, workflow_id, parent_id, task_name, input, attempt, token, priority, affinity_group, affinity";

export interface CompleteResult {
  /** Outcomes that were recorded; the rest were refused by their fencing token. */
  readonly recorded: readonly string[];
  /** Workflows that reached a final status in this batch. */
  readonly finishedWorkflows: readonly string[];
}

/** The worker's queries: fetch its assignments, record outcomes, release on shutdown. */
export class WorkerStore {
  private readonly fetchSql: string;
  private readonly fetchByIdSql: string;
  private readonly listAssignedSql: string;
  private readonly completeSql: string;
  private readonly releaseSql: string;

  constructor(s: string, channel: string) {
    // Served by tasks_assigned_idx (assigned_node, token): the worker reads only
    // assignments newer than the last token it saw.
    this.fetchSql = `SELECT ${ASSIGNED_COLUMNS} FROM ${s}.tasks
      WHERE assigned_node = $1 AND queue = 'READY' AND token > $2 ORDER BY token LIMIT $3`;
    this.fetchByIdSql = `SELECT ${ASSIGNED_COLUMNS} FROM ${s}.tasks
      WHERE assigned_node = $1 AND queue = 'READY' AND id = ANY($2::text[])`;
    this.listAssignedSql = `SELECT id, token FROM ${s}.tasks WHERE assigned_node = $1 AND queue = 'READY'`;
    // One statement records a batch of outcomes. Every write is fenced: a task is
    // finished only while its token matches and it is still READY (not cancelled,
    // not re-planned), and only the children of recorded outcomes are inserted.
    // Workflow rows are locked in id order (lock_wf) so concurrent batches that
    // touch the same workflows cannot deadlock.
    this.completeSql = `
      WITH outcome AS (
        SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::jsonb[], $5::jsonb[])
          AS o(id, token, state, result, error)
      ), done AS (
        UPDATE ${s}.tasks t
           SET queue = 'DELETED', state = o.state, result = o.result, error = o.error, finished_at = now()
          FROM outcome o
         WHERE t.id = o.id AND t.token = o.token AND t.queue = 'READY'
        RETURNING t.id, t.workflow_id, t.state
      ), children AS (
        INSERT INTO ${s}.tasks (${TASK_INSERT_COLUMNS})
        SELECT ${TASK_SELECT_LIST} FROM ${unnestTasks(6)}
         WHERE c.parent_id IN (SELECT id FROM done)
        RETURNING workflow_id
      ), delta AS (
        SELECT workflow_id, sum(pending)::int AS pending, sum(added)::int AS added, sum(failed)::int AS failed
          FROM (SELECT workflow_id, -1 AS pending, 0 AS added, (state = 'FAILED')::int AS failed FROM done
                UNION ALL
                SELECT workflow_id, 1, 1, 0 FROM children) x
         GROUP BY workflow_id
      ), lock_wf AS (
        SELECT w.id FROM ${s}.workflows w WHERE w.id IN (SELECT workflow_id FROM delta)
         ORDER BY w.id FOR NO KEY UPDATE
      ), wf AS (
        UPDATE ${s}.workflows w
           SET pending_tasks = w.pending_tasks + d.pending,
               total_tasks = w.total_tasks + d.added,
               failed_tasks = w.failed_tasks + d.failed,
               status = CASE WHEN w.pending_tasks + d.pending > 0 THEN w.status
                             WHEN w.failed_tasks + d.failed > 0 THEN 'FAILED' ELSE 'COMPLETED' END,
               finished_at = CASE WHEN w.pending_tasks + d.pending > 0 THEN NULL ELSE now() END
          FROM delta d, lock_wf l
         WHERE w.id = d.workflow_id AND l.id = w.id AND w.status = 'RUNNING'
        RETURNING w.id, w.status
      ), finished AS (
        SELECT id FROM wf WHERE status <> 'RUNNING'
      ), notified AS (
        -- NOTIFY payloads are limited to 8000 bytes: 250 ids per notification.
        SELECT pg_notify('${channel}', 'w:' || string_agg(id, ','))
          FROM (SELECT id, (row_number() OVER ()) / 250 AS chunk FROM finished) f
         GROUP BY chunk
      )
      SELECT (SELECT coalesce(array_agg(id), '{}') FROM done) AS recorded,
             (SELECT coalesce(array_agg(id), '{}') FROM finished) AS finished,
             (SELECT count(*) FROM notified) AS notified,
             pg_notify('${channel}', 'p')`;
    // Release without counting an attempt: the task did not fail, its node left.
    this.releaseSql = `UPDATE ${s}.tasks
         SET assigned_node = NULL, token = NULL, state = 'PENDING', assigned_at = NULL,
             attempt = greatest(attempt - 1, 0)
       WHERE assigned_node = $1 AND queue = 'READY' AND ($2::text[] IS NULL OR id = ANY($2::text[]))
      RETURNING id`;
  }

  async fetch(q: Queryable, nodeId: string, afterToken: number, limit: number): Promise<AssignedTaskRow[]> {
    const { rows } = await q.query<AssignedTaskRow>(this.fetchSql, [nodeId, afterToken, limit]);
    return rows;
  }

  async fetchByIds(q: Queryable, nodeId: string, ids: readonly string[]): Promise<AssignedTaskRow[]> {
    const { rows } = await q.query<AssignedTaskRow>(this.fetchByIdSql, [nodeId, ids]);
    return rows;
  }

  async listAssigned(q: Queryable, nodeId: string): Promise<{ id: string; token: number }[]> {
    const { rows } = await q.query<{ id: string; token: number }>(this.listAssignedSql, [nodeId]);
    return rows;
  }

  async complete(q: Queryable, outcomes: readonly OutcomeRow[]): Promise<CompleteResult> {
    const children: NewTaskRow[] = [];
    for (const o of outcomes) for (const c of o.children) children.push(c);
    const { rows } = await q.query<{ recorded: string[]; finished: string[] }>(this.completeSql, [
      outcomes.map((o) => o.id),
      outcomes.map((o) => o.token),
      outcomes.map((o) => o.state),
      outcomes.map((o) => o.result),
      outcomes.map((o) => o.error),
      ...taskColumns(children),
    ]);
    const row = rows[0] as { recorded: string[]; finished: string[] };
    return { recorded: row.recorded, finishedWorkflows: row.finished };
  }

  /** Returns assignments to the planner; `ids` null releases all of the node's tasks. */
  async release(q: Queryable, nodeId: string, ids: readonly string[] | null): Promise<string[]> {
    const { rows } = await q.query<{ id: string }>(this.releaseSql, [nodeId, ids]);
    return rows.map((r) => r.id);
  }
}
