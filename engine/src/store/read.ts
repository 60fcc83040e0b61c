import type { Queryable } from "../db/pg.js";
import { soloRootSql, soloWorkflowSql } from "./solo.js";

export interface TaskRecord {
  readonly id: string;
  readonly workflow_id: string;
  readonly parent_id: string | null;
  readonly task_name: string;
  readonly queue: string;
  readonly state: string;
  readonly park_reason: string | null;
  readonly input: unknown;
  readonly result: unknown;
  readonly error: unknown;
  readonly attempt: number;
  readonly priority: number;
  readonly run_after: Date | null;
  readonly affinity_group: string | null;
  readonly affinity: string | null;
  readonly assigned_node: string | null;
  readonly created_at: Date;
  readonly assigned_at: Date | null;
  readonly finished_at: Date | null;
  readonly join_pending: number | null;
  readonly is_fork: boolean;
  /** Joins that wait for this task (listed, or through an ancestor). */
  readonly awaited_by: string[] | null;
}

export interface WorkflowRecord {
  readonly id: string;
  readonly status: string;
  readonly root_task_id: string | null;
  readonly pending_tasks: number;
  readonly total_tasks: number;
  readonly failed_tasks: number;
  readonly cancel_reason: string | null;
  readonly created_at: Date;
  readonly finished_at: Date | null;
}

export const WORKFLOW_COLUMNS = `id, status, root_task_id, pending_tasks, total_tasks, failed_tasks, cancel_reason,
  created_at, finished_at`;

export const TASK_COLUMNS = `id, workflow_id, parent_id, task_name, queue, state, park_reason, input, result, error,
  attempt, priority, run_after, affinity_group, affinity, assigned_node, created_at, assigned_at, finished_at,
  join_pending, is_fork, awaited_by`;

/** Reads for the client and for operators. */
export class ReadStore {
  private readonly taskSql: string;
  private readonly workflowSql: string;
  private readonly workflowTasksSql: string;
  private readonly queueCountsSql: string;
  private readonly resultTaskSql: string;
  private readonly graphEdgesSql: string;
  private readonly failuresSql: string;

  constructor(s: string) {
    this.taskSql = `SELECT ${TASK_COLUMNS} FROM ${s}.tasks WHERE id = $1`;
    // A solo workflow (no row) is read from its root task: at most one branch
    // has a row, since the row and solo = false are written together.
    this.workflowSql = `SELECT ${WORKFLOW_COLUMNS} FROM ${s}.workflows WHERE id = $1
      UNION ALL
      SELECT ${soloWorkflowSql("t")} FROM ${s}.tasks t WHERE t.id = $1 AND ${soloRootSql("t")}`;
    // The root (id = workflow id) by primary key, the rest by tasks_workflow_idx.
    this.workflowTasksSql = `SELECT ${TASK_COLUMNS} FROM ${s}.tasks WHERE id = $1 AND workflow_id = $1
      UNION ALL
      SELECT ${TASK_COLUMNS} FROM ${s}.tasks WHERE workflow_id = $1 AND id <> workflow_id
      ORDER BY id`;
    this.graphEdgesSql = `SELECT e.join_task_id, e.upstream_task_id, e.position FROM ${s}.task_edges e
      WHERE e.join_task_id = ANY(ARRAY(
        SELECT id FROM ${s}.tasks WHERE workflow_id = $1 AND id <> workflow_id AND join_pending IS NOT NULL))
      ORDER BY e.join_task_id, e.position`;
    // The task whose result is the workflow's: the last top-level join (one no
    // other join awaits) to complete, else the root task.
    this.resultTaskSql = `SELECT ${TASK_COLUMNS} FROM (
        SELECT * FROM ${s}.tasks WHERE id = $1 AND workflow_id = $1
        UNION ALL
        SELECT * FROM ${s}.tasks
         WHERE workflow_id = $1 AND id <> workflow_id AND join_pending IS NOT NULL AND awaited_by IS NULL
      ) t
      ORDER BY (join_pending IS NOT NULL) DESC, finished_at DESC NULLS LAST LIMIT 1`;
    // Failures no join received (not a listed upstream): the ones that failed the workflow.
    this.failuresSql = `SELECT id, task_name, error FROM (
        SELECT * FROM ${s}.tasks WHERE id = $1 AND workflow_id = $1
        UNION ALL
        SELECT * FROM ${s}.tasks WHERE workflow_id = $1 AND id <> workflow_id
      ) t
      WHERE state = 'FAILED'
        AND NOT EXISTS (SELECT 1 FROM ${s}.task_edges e WHERE e.upstream_task_id = t.id)
      ORDER BY finished_at LIMIT 100`;
    this.queueCountsSql = `SELECT queue, state, count(*)::int AS count FROM ${s}.tasks GROUP BY queue, state`;
  }

  async task(q: Queryable, id: string): Promise<TaskRecord | undefined> {
    return (await q.query<TaskRecord>(this.taskSql, [id])).rows[0];
  }

  async workflow(q: Queryable, id: string): Promise<WorkflowRecord | undefined> {
    return (await q.query<WorkflowRecord>(this.workflowSql, [id])).rows[0];
  }

  async workflowTasks(q: Queryable, id: string): Promise<TaskRecord[]> {
    return (await q.query<TaskRecord>(this.workflowTasksSql, [id])).rows;
  }

  /** Join edges of a workflow (upstream -> join). */
  async graphEdges(
    q: Queryable,
    workflowId: string,
  ): Promise<{ join_task_id: string; upstream_task_id: string; position: number }[]> {
    return (
      await q.query<{ join_task_id: string; upstream_task_id: string; position: number }>(this.graphEdgesSql, [
        workflowId,
      ])
    ).rows;
  }

  async resultTask(q: Queryable, workflowId: string): Promise<TaskRecord | undefined> {
    return (await q.query<TaskRecord>(this.resultTaskSql, [workflowId])).rows[0];
  }

  async unhandledFailures(
    q: Queryable,
    workflowId: string,
  ): Promise<{ id: string; task_name: string; error: unknown }[]> {
    return (await q.query<{ id: string; task_name: string; error: unknown }>(this.failuresSql, [workflowId])).rows;
  }

  async queueCounts(q: Queryable): Promise<{ queue: string; state: string; count: number }[]> {
    return (await q.query<{ queue: string; state: string; count: number }>(this.queueCountsSql)).rows;
  }
}
