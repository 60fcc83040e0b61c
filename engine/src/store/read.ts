import type { Queryable } from "../db/pg.js";

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

const TASK_COLUMNS = `id, workflow_id, parent_id, task_name, queue, state, park_reason, input, result, error,
  attempt, priority, run_after, affinity_group, affinity, assigned_node, created_at, assigned_at, finished_at`;

/** Reads for the client and for operators. */
export class ReadStore {
  private readonly taskSql: string;
  private readonly workflowSql: string;
  private readonly workflowTasksSql: string;
  private readonly queueCountsSql: string;

  constructor(s: string) {
    this.taskSql = `SELECT ${TASK_COLUMNS} FROM ${s}.tasks WHERE id = $1`;
    this.workflowSql = `SELECT * FROM ${s}.workflows WHERE id = $1`;
    // The root (id = workflow id) by primary key, the rest by tasks_workflow_idx.
    this.workflowTasksSql = `SELECT ${TASK_COLUMNS} FROM ${s}.tasks WHERE id = $1 AND workflow_id = $1
      UNION ALL
      SELECT ${TASK_COLUMNS} FROM ${s}.tasks WHERE workflow_id = $1 AND id <> workflow_id
      ORDER BY id`;
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

  async queueCounts(q: Queryable): Promise<{ queue: string; state: string; count: number }[]> {
    return (await q.query<{ queue: string; state: string; count: number }>(this.queueCountsSql)).rows;
  }
}
