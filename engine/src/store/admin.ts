import type { Queryable } from "../db/pg.js";
import { InvalidArgumentError } from "../errors.js";
import type { NodeInfo } from "./nodes.js";
import { TASK_COLUMNS, type TaskRecord, WORKFLOW_COLUMNS, type WorkflowRecord } from "./read.js";
import { soloRootSql, soloWorkflowSql } from "./solo.js";

/**
 * Operator reads: listings, counts and cluster state for the HTTP API, the CLI
 * and dashboards. None of them is on the hot path; each is bounded so that no
 * call reads a table unboundedly:
 * - the workflow listing reads at most `scan` entries of each primary key per
 *   call (see listWorkflows); a page can come back short, even empty, with a
 *   cursor to go on from;
 * - a workflow's tasks go through the root's primary key and
 *   tasks_workflow_idx, so they cost what the workflow holds, not the table;
 * - the queue statistics read the unfinished tasks (queue <> 'DELETED'): a
 *   sequential scan of the table, its cost growing with the retention window.
 *   An index for it would be maintained by every insert and every transition
 *   of the hot path; an operator read a few times a minute does not pay for it;
 * - the throughput reads the tasks finished in its window (at most
 *   MAX_THROUGHPUT_WINDOW_SECONDS) through tasks_deleted_idx: its cost is the
 *   tasks finished in that window (a heap fetch each, for the state), not the
 *   retention.
 */

/** The longest window the throughput read accepts, in seconds. */
export const MAX_THROUGHPUT_WINDOW_SECONDS = 3600;

/** A workflow row (or a solo workflow's, derived from its root task) with its root task's name. */
export interface WorkflowListRecord extends WorkflowRecord {
  readonly root_task_name: string | null;
}

export interface WorkflowListFilter {
  /** Only these statuses (none: all). */
  readonly statuses?: readonly string[];
  readonly rootTaskName?: string;
  /** Ids from this one (inclusive), e.g. the smallest id of a creation time. */
  readonly minId?: string;
  /** Ids below this one (exclusive): the cursor, or the smallest id of a creation time. */
  readonly belowId?: string;
}

export interface WorkflowListPage {
  readonly rows: WorkflowListRecord[];
  /** Where the next page starts (ids below it), or null when nothing is left. */
  readonly next: string | null;
}

export interface QueueStatRow {
  readonly queue: string;
  readonly task_name: string;
  readonly park_reason: string | null;
  readonly count: number;
  /** Of the NEW and READY tasks not assigned to a node: how long the oldest has been runnable (ms). */
  readonly oldest_ready_age_ms: number | null;
}

export interface NodeStatusRecord extends NodeInfo {
  readonly is_leader: boolean;
  readonly heartbeat_age_ms: number;
  readonly running: number;
}

/** The tasks finished in one second of the throughput window, by final state. */
export interface ThroughputRow {
  /** The start of the second (database clock). */
  readonly at: Date;
  readonly completed: number;
  readonly failed: number;
  readonly cancelled: number;
}

/** The slot an engine-run slot task is for. */
export interface TaskSlotRecord {
  readonly task_name: string;
  readonly every: string;
  readonly slot_start: Date;
  readonly slot_end: Date;
  readonly status: string;
  readonly generation: number;
}

export class AdminStore {
  private readonly taskSlotSql: string;
  private readonly listWorkflowsSql: string;
  private readonly tasksPageSql: string;
  private readonly taskCountsSql: string;
  private readonly taskAttemptsSql: string;
  private readonly queueStatsSql: string;
  private readonly queueDepthSql: string;
  private readonly nodesSql: string;
  private readonly throughputSql: string;

  constructor(s: string) {
    // By slots_task_idx: the slot whose current generation the task runs.
    this.taskSlotSql = `SELECT task_name, every, slot_start, slot_end, status, generation FROM ${s}.slots
      WHERE task_id = $1 AND task_id IS NOT NULL`;
    // Newest first, merged from the two places a workflow lives: its row in
    // workflows, or (solo) its root task. Each source is read backwards along
    // its primary key, at most $6 entries, from the cursor ($2) down to $3.
    // Of a source that filled its window, only the ids down to the window's
    // smallest were all seen; the page holds the ids both sources covered
    // (down to the larger of the two frontiers) and the next page starts below
    // that frontier. The filters apply after the window, so a call costs at
    // most 2 x $6 index entries whatever they match.
    // $1 statuses (text[] or null), $2 below id, $3 min id, $4 root task name, $5 limit, $6 scan.
    this.listWorkflowsSql = `
      WITH w AS MATERIALIZED (
        SELECT ${WORKFLOW_COLUMNS} FROM ${s}.workflows
         WHERE ($2::text IS NULL OR id < $2::text) AND ($3::text IS NULL OR id >= $3::text)
         ORDER BY id DESC LIMIT $6
      ), t AS MATERIALIZED (
        SELECT id, workflow_id, solo, task_name, queue, state, created_at, finished_at FROM ${s}.tasks
         WHERE ($2::text IS NULL OR id < $2::text) AND ($3::text IS NULL OR id >= $3::text)
         ORDER BY id DESC LIMIT $6
      ), frontier AS (
        SELECT greatest(
          CASE WHEN (SELECT count(*) FROM w) >= $6 THEN (SELECT min(id) FROM w) END,
          CASE WHEN (SELECT count(*) FROM t) >= $6 THEN (SELECT min(id) FROM t) END) AS id
      ), candidates AS (
        SELECT w.*, r.task_name AS root_task_name FROM w
          LEFT JOIN ${s}.tasks r ON r.id = w.root_task_id
        UNION ALL
        SELECT ${soloWorkflowSql("t")}, t.task_name AS root_task_name FROM t WHERE ${soloRootSql("t")}
      ), page AS (
        SELECT c.* FROM candidates c, frontier f
         WHERE (f.id IS NULL OR c.id >= f.id)
           AND ($1::text[] IS NULL OR c.status = ANY($1::text[]))
           AND ($4::text IS NULL OR c.root_task_name = $4::text)
         ORDER BY c.id DESC LIMIT $5
      )
      SELECT p.*, f.id AS frontier FROM frontier f LEFT JOIN page p ON true ORDER BY p.id DESC NULLS LAST`;
    // Oldest first: the root by its primary key, the others through
    // tasks_workflow_idx (which holds no id: the page sorts the workflow's tasks).
    // $1 workflow id, $2 after id, $3 state, $4 limit.
    this.tasksPageSql = `SELECT ${TASK_COLUMNS} FROM (
        SELECT * FROM ${s}.tasks WHERE id = $1 AND workflow_id = $1
        UNION ALL
        SELECT * FROM ${s}.tasks WHERE workflow_id = $1 AND id <> workflow_id
      ) t
      WHERE ($2::text IS NULL OR t.id > $2::text) AND ($3::text IS NULL OR t.state = $3::text)
      ORDER BY t.id LIMIT $4`;
    // A task's failed attempts, oldest first (the attempt it is on is its row's own).
    this.taskAttemptsSql = `SELECT coalesce(attempt_log, '[]'::jsonb) AS attempts FROM ${s}.tasks WHERE id = $1`;
    this.taskCountsSql = `SELECT state, count(*)::int AS count FROM (
        SELECT state FROM ${s}.tasks WHERE id = $1 AND workflow_id = $1
        UNION ALL
        SELECT state FROM ${s}.tasks WHERE workflow_id = $1 AND id <> workflow_id
      ) t GROUP BY state`;
    // Lag: how long the oldest task waiting for a node has been runnable (since
    // its run_after, or since it was written), on the database clock.
    // The metrics' queue depth and lag (telemetry/metrics.ts), read by the
    // leader at most every few seconds: unlike queueStats, only what the
    // planner's partial indexes cover, so it costs the backlog, the running
    // attempts and the delayed tasks, not the table (tasks_plannable_idx,
    // tasks_assigned_idx, tasks_parked_idx). Tasks parked for a join or an
    // affinity key have no index and are not counted.
    this.queueDepthSql = `SELECT queue, task_name, sum(count)::int AS count, max(lag_seconds) AS lag_seconds FROM (
        SELECT CASE WHEN run_after > now() THEN 'delayed' ELSE 'ready' END AS queue, task_name, count(*) AS count,
               CASE WHEN bool_and(run_after > now()) IS NOT TRUE
                    THEN extract(epoch FROM now() - min(greatest(created_at, coalesce(run_after, created_at))))::float8 END
                 AS lag_seconds
          FROM ${s}.tasks WHERE queue IN ('NEW', 'READY') AND assigned_node IS NULL
         GROUP BY 1, task_name
        UNION ALL
        SELECT 'running', task_name, count(*), NULL FROM ${s}.tasks
         WHERE assigned_node IS NOT NULL AND queue = 'READY' GROUP BY task_name
        UNION ALL
        SELECT 'delayed', task_name, count(*), NULL FROM ${s}.tasks
         WHERE queue = 'PARKED' AND park_reason = 'RUN_AFTER' GROUP BY task_name) d
      GROUP BY queue, task_name`;
    this.queueStatsSql = `SELECT queue, task_name, park_reason, count(*)::int AS count,
        (extract(epoch FROM now() - min(coalesce(run_after, created_at))
          FILTER (WHERE queue IN ('NEW', 'READY') AND assigned_node IS NULL)) * 1000)::float8 AS oldest_ready_age_ms
      FROM ${s}.tasks WHERE queue <> 'DELETED'
      GROUP BY queue, task_name, park_reason ORDER BY queue, task_name, park_reason`;
    // Running: the node's assignments, counted through tasks_assigned_idx.
    this.nodesSql = `SELECT n.id, n.app_name, n.host, n.pid, n.capacity, n.task_names, n.cpu_load, n.draining,
        n.started_at, n.heartbeat_at, coalesce(l.node_id = n.id, false) AS is_leader,
        greatest(extract(epoch FROM now() - n.heartbeat_at) * 1000, 0)::float8 AS heartbeat_age_ms,
        (SELECT count(*)::int FROM ${s}.tasks t
          WHERE t.assigned_node = n.id AND t.assigned_node IS NOT NULL AND t.queue = 'READY') AS running
      FROM ${s}.nodes n LEFT JOIN ${s}.leader l ON true
      ORDER BY n.started_at, n.id`;
    // One row per second of the last $1 seconds (the current, partial second
    // last), from the finished tasks whose finished_at falls in the window:
    // a range of tasks_deleted_idx (finished_at) WHERE queue = 'DELETED'.
    // finished_at is the finishing transaction's now(), so a batch committed
    // late lands in the second it started in: a re-read of the last seconds
    // may find more there.
    this.throughputSql = `
      SELECT s.at, coalesce(d.completed, 0) AS completed, coalesce(d.failed, 0) AS failed,
             coalesce(d.cancelled, 0) AS cancelled
        FROM generate_series(date_trunc('second', now()) - make_interval(secs => $1::int - 1),
                             date_trunc('second', now()), interval '1 second') AS s(at)
        LEFT JOIN (
          SELECT date_trunc('second', finished_at) AS at,
                 count(*) FILTER (WHERE state = 'COMPLETED')::int AS completed,
                 count(*) FILTER (WHERE state = 'FAILED')::int AS failed,
                 count(*) FILTER (WHERE state = 'CANCELLED')::int AS cancelled
            FROM ${s}.tasks
           WHERE queue = 'DELETED'
             AND finished_at >= date_trunc('second', now()) - make_interval(secs => $1::int - 1)
             AND finished_at < date_trunc('second', now()) + interval '1 second'
           GROUP BY 1
        ) d ON d.at = s.at
       ORDER BY s.at`;
  }

  async listWorkflows(
    q: Queryable,
    filter: WorkflowListFilter,
    limit: number,
    scan: number,
  ): Promise<WorkflowListPage> {
    const { rows } = await q.query<WorkflowListRecord & { frontier: string | null }>(this.listWorkflowsSql, [
      filter.statuses && filter.statuses.length > 0 ? filter.statuses : null,
      filter.belowId ?? null,
      filter.minId ?? null,
      filter.rootTaskName ?? null,
      limit,
      scan,
    ]);
    // One row at least (the frontier's), with a null id when the page is empty.
    const frontier = rows[0]?.frontier ?? null;
    const page: WorkflowListRecord[] = rows.filter((r) => r.id !== null).map(({ frontier: _, ...r }) => r);
    // A full page goes on below its last id; a short one below the frontier (if
    // a window was cut), else the listing is done.
    const next = page.length >= limit ? (page[page.length - 1]?.id ?? null) : frontier;
    return { rows: page, next };
  }

  async workflowTasksPage(
    q: Queryable,
    workflowId: string,
    options: { readonly afterId?: string; readonly state?: string; readonly limit: number },
  ): Promise<TaskRecord[]> {
    return (
      await q.query<TaskRecord>(this.tasksPageSql, [
        workflowId,
        options.afterId ?? null,
        options.state ?? null,
        options.limit,
      ])
    ).rows;
  }

  /** A task's attempt log (failed and lost attempts), or null when there is no such task. */
  async taskAttempts(q: Queryable, taskId: string): Promise<Record<string, unknown>[] | null> {
    const row = (await q.query<{ attempts: Record<string, unknown>[] }>(this.taskAttemptsSql, [taskId])).rows[0];
    return row ? row.attempts : null;
  }

  async workflowTaskCounts(q: Queryable, workflowId: string): Promise<{ state: string; count: number }[]> {
    return (await q.query<{ state: string; count: number }>(this.taskCountsSql, [workflowId])).rows;
  }

  /** Queue depth and lag for the metrics (see queueDepthSql). */
  async queueDepth(
    q: Queryable,
  ): Promise<{ queue: string; task_name: string; count: number; lag_seconds: number | null }[]> {
    return (
      await q.query<{ queue: string; task_name: string; count: number; lag_seconds: number | null }>(this.queueDepthSql)
    ).rows;
  }

  /** Tasks finished per second over the last `windowSeconds` (1 to MAX_THROUGHPUT_WINDOW_SECONDS), oldest first. */
  async throughput(q: Queryable, windowSeconds: number): Promise<ThroughputRow[]> {
    if (!Number.isInteger(windowSeconds) || windowSeconds < 1 || windowSeconds > MAX_THROUGHPUT_WINDOW_SECONDS) {
      throw new InvalidArgumentError(
        "windowSeconds",
        `expected an integer from 1 to ${MAX_THROUGHPUT_WINDOW_SECONDS}, got ${String(windowSeconds)}`,
      );
    }
    return (await q.query<ThroughputRow>(this.throughputSql, [windowSeconds])).rows;
  }

  async queueStats(q: Queryable): Promise<QueueStatRow[]> {
    return (await q.query<QueueStatRow>(this.queueStatsSql)).rows;
  }

  /** Whether the database answers (for health checks). */
  async ping(q: Queryable): Promise<boolean> {
    return (await q.query<{ ok: number }>("SELECT 1 AS ok")).rows[0]?.ok === 1;
  }

  async taskSlot(q: Queryable, taskId: string): Promise<TaskSlotRecord | undefined> {
    return (await q.query<TaskSlotRecord>(this.taskSlotSql, [taskId])).rows[0];
  }

  async nodes(q: Queryable): Promise<NodeStatusRecord[]> {
    return (await q.query<NodeStatusRecord>(this.nodesSql)).rows;
  }
}
