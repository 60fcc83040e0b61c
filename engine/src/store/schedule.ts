import type { Queryable } from "../db/pg.js";
import { WorkflowNotFoundError, WorkflowNotRunningError } from "../errors.js";
import { soloRootSql, soloStatusSql } from "./solo.js";
import type { NewJoinEdges, NewTaskRow } from "./types.js";

/**
 * Separators of \`packedTasks\`: control characters that no field can contain
 * (ids are ULIDs, task names validated identifiers, inputs JSON text, in which
 * control characters are always escaped; affinity keys are sent JSON-encoded).
 */
const ROW_SEPARATOR = "\x1e";
const FIELD_SEPARATOR = "\x1f";

/**
 * New tasks as one text parameter, for \`packedTasksFrom\`: a row per task, its
 * fields in the order of the columns there, an empty field for NULL. Splitting
 * text is the cheapest way in for PostgreSQL: for 10,000 children it took
 * ~23 ms where one JSON document (jsonb_to_recordset) took ~80 ms, most of it
 * parsing the jsonb, and 13 array parameters cost the driver ~70 ms to encode.
 */
export function packedTasks(rows: readonly NewTaskRow[]): string {
  const parts = new Array<string>(rows.length);
  const f = FIELD_SEPARATOR;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i] as NewTaskRow;
    parts[i] =
      `${r.id}${f}${r.workflowId}${f}${r.parentId ?? ""}${f}${r.taskName}${f}${r.input}${f}${r.priority}${f}` +
      `${r.runAfter === null ? "" : r.runAfter.toISOString()}${f}` +
      `${r.affinityGroup === null ? "" : JSON.stringify(r.affinityGroup)}${f}` +
      `${r.affinity === null ? "" : JSON.stringify(r.affinity)}${f}${r.delayMs ?? ""}${f}` +
      `${r.ownJoins && r.ownJoins.length > 0 ? r.ownJoins.join(",") : ""}${f}${r.isFork ? "t" : ""}${f}` +
      // The trace context last, and only when there is one: a row without it
      // reads NULL for f[14], so an untraced schedule sends nothing more.
      `${r.joinPending ?? ""}${r.traceContext ? `${f}${r.traceContext}` : ""}`;
  }
  return parts.join(ROW_SEPARATOR);
}

/**
 * The rows of \`packedTasks\` in parameter \`$n\`, as relation \`c\`. Each row is
 * split once (OFFSET 0 keeps the split from being repeated per field).
 */
export function packedTasksFrom(n: number): string {
  return `(SELECT f[1] AS id, f[2] AS workflow_id, f[3] AS parent_id, f[4] AS task_name, f[5]::jsonb AS input,
                 f[6]::int AS priority, f[7]::timestamptz AS run_after, f[8]::jsonb #>> '{}' AS affinity_group,
                 f[9]::jsonb #>> '{}' AS affinity, f[10]::float8 AS delay_ms, f[11] AS own_joins,
                 f[12]::bool AS is_fork, f[13]::int AS join_pending, f[14] AS trace_context
            FROM (SELECT string_to_array(r, E'\\x1f', '') AS f
                    FROM unnest(string_to_array($${n}::text, E'\\x1e')) AS r OFFSET 0) p) AS c`;
}

/** Joins' edges as one JSON array, for \`joinEdgesFrom\` (ids are ULIDs: no escaping). */
export function joinEdgesJson(joins: readonly NewJoinEdges[]): string {
  const parts = new Array<string>(joins.length);
  for (let i = 0; i < joins.length; i++) {
    const j = joins[i] as NewJoinEdges;
    parts[i] = `{"j":"${j.joinId}","p":"${j.parentId}","u":"${j.upstream.join(",")}"}`;
  }
  return `[${parts.join(",")}]`;
}

/** One row per edge of \`joinEdgesJson\` in parameter \`$n\`: \`e\` (j: join, p: parent) and \`u\` (id, n: 1-based position). */
export function joinEdgesFrom(n: number): string {
  return `jsonb_to_recordset($${n}::jsonb) AS e(j text, p text, u text)
          CROSS JOIN LATERAL unnest(string_to_array(e.u, ',')) WITH ORDINALITY AS u(id, n)`;
}

/** The task_edges columns (join_task_id, upstream_task_id, position) over \`joinEdgesFrom\`. */
export const joinEdgesSelectList = "e.j, u.id, (u.n - 1)::int";

export const TASK_INSERT_COLUMNS = `id, workflow_id, parent_id, task_name, input, priority, run_after, affinity_group,
  affinity, awaited_by, is_fork, join_pending, queue, park_reason, solo, trace_context`;

/**
 * Select list over \`packedTasksFrom\`. A relative delay is resolved on the database
 * clock. \`inherited\` is an SQL expression of type text[] for the joins a task
 * inherits from its parent (the parent's own \`awaited_by\`, read in the same
 * statement that records the parent's outcome); forks inherit none. A join that
 * still waits for something starts PARKED.
 */
export function taskSelectList(inherited = "NULL::text[]", parkedForAffinity = "false", solo = "false"): string {
  // A JSON null input becomes SQL NULL in jsonb_to_recordset: store it as JSON null.
  return `c.id, c.workflow_id, c.parent_id, c.task_name, coalesce(c.input, 'null'::jsonb), c.priority,
    coalesce(c.run_after, now() + c.delay_ms * interval '1 millisecond'), c.affinity_group, c.affinity,
    nullif(CASE WHEN c.is_fork THEN '{}'::text[] ELSE coalesce(${inherited}, '{}'::text[]) END
           || coalesce(string_to_array(c.own_joins, ','), '{}'::text[]), '{}'::text[]),
    coalesce(c.is_fork, false), c.join_pending,
    CASE WHEN c.join_pending > 0 OR ${parkedForAffinity} THEN 'PARKED' ELSE 'NEW' END,
    CASE WHEN c.join_pending > 0 THEN 'JOIN' WHEN ${parkedForAffinity} THEN 'AFFINITY' END, ${solo}, c.trace_context`;
}

/**
 * CTE \`t\` that creates, for each row of \`rows\` with a task_id, a task in a
 * workflow of its own (slot tasks, cron ticks): a solo workflow, with no
 * workflow row (migration 008). \`input\` is an SQL expression over the row;
 * \`affinity\` an SQL text expression (NULL: none) for the group \`affinityGroup\`.
 */
export function ownWorkflowTasksSql(
  s: string,
  rows: string,
  taskName: string,
  input: string,
  affinity = "NULL::text",
  affinityGroup = "weft.slots",
): string {
  return `t AS (
        INSERT INTO ${s}.tasks (id, workflow_id, task_name, input, affinity_group, affinity, solo)
        SELECT task_id, task_id, ${taskName}, ${input},
               CASE WHEN ${affinity} IS NOT NULL THEN '${affinityGroup}' END, ${affinity}, true
          FROM ${rows} WHERE task_id IS NOT NULL
        RETURNING 1
      )`;
}

/** Inserts tasks and their workflows: new workflows are created, existing ones must be RUNNING. */
export class ScheduleStore {
  private readonly insertSql: string;
  private readonly lockWorkflowsSql: string;
  private readonly materializeSql: string;
  private readonly soloStatusSql: string;
  private readonly edgesSql: string;

  constructor(s: string) {
    this.edgesSql = `INSERT INTO ${s}.task_edges (join_task_id, upstream_task_id, position)
      SELECT ${joinEdgesSelectList} FROM ${joinEdgesFrom(1)}`;
    this.lockWorkflowsSql = `SELECT id, status FROM ${s}.workflows WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE`;
    // Solo workflows getting a second task get their row (see migration 008):
    // the unfinished root task is locked and marked first, so a completion of
    // the root ordered after this finds the row; a finished root means the
    // workflow has finished (soloStatusSql tells how).
    this.materializeSql = `
      WITH roots AS (
        UPDATE ${s}.tasks t SET solo = false
         WHERE t.id = ANY($1::text[]) AND ${soloRootSql("t")} AND t.queue <> 'DELETED'
        RETURNING t.id, t.created_at
      )
      INSERT INTO ${s}.workflows (id, root_task_id, pending_tasks, total_tasks, created_at)
      SELECT id, id, 1, 1, created_at FROM roots ORDER BY id`;
    this.soloStatusSql = `SELECT t.id, ${soloStatusSql("t")} AS status FROM ${s}.tasks t
      WHERE t.id = ANY($1::text[]) AND ${soloRootSql("t")}`;
    this.insertSql = `
      WITH new_wf AS (
        INSERT INTO ${s}.workflows (id, root_task_id, pending_tasks, total_tasks)
        SELECT w.id, w.root, w.n, w.n FROM unnest($1::text[], $2::text[], $3::int[]) AS w(id, root, n)
      ), old_wf AS (
        -- $5: jsonb { workflow id: added tasks } (no join with unnest: see PlannerStore.apply)
        UPDATE ${s}.workflows w
           SET pending_tasks = w.pending_tasks + ($5::jsonb ->> w.id)::int,
               total_tasks = w.total_tasks + ($5::jsonb ->> w.id)::int
         WHERE w.id = ANY($4::text[])
      ), c AS MATERIALIZED (
        SELECT * FROM ${packedTasksFrom(6)}
      ), held AS MATERIALIZED (
        -- Each key of this statement: claimed for the oldest workflow scheduling
        -- it here when nobody holds it, otherwise its holder as it is now. Tasks
        -- of other workflows start PARKED. The row stays locked until this
        -- commits, so the release that hands the key on (FOR UPDATE, then a fresh
        -- snapshot) sees and unparks them. DO UPDATE (a no-op, HOT) rather than
        -- DO NOTHING and a separate read: a holder row deleted meanwhile (its key
        -- released with nobody waiting) is claimed again, not missed, which left
        -- a later workflow to take the key first. Keys are locked in key order.
        INSERT INTO ${s}.affinity_holders AS h (affinity_group, affinity, workflow_id)
        SELECT DISTINCT ON (c.affinity_group, c.affinity) c.affinity_group, c.affinity, c.workflow_id
          FROM c WHERE c.affinity IS NOT NULL
         ORDER BY c.affinity_group, c.affinity, c.workflow_id
        ON CONFLICT (affinity_group, affinity) DO UPDATE SET workflow_id = h.workflow_id
        RETURNING h.affinity_group, h.affinity, h.workflow_id
      ), holder_map AS MATERIALIZED (
        -- { group: { key: holding workflow } }, looked up per row (no join, see PlannerStore.apply).
        SELECT coalesce(jsonb_object_agg(g, m), '{}'::jsonb) AS m FROM (
          SELECT affinity_group AS g, jsonb_object_agg(affinity, workflow_id) AS m
            FROM held x
           GROUP BY affinity_group) y
      )
      INSERT INTO ${s}.tasks (${TASK_INSERT_COLUMNS})
      SELECT ${taskSelectList(
        "NULL::text[]",
        `coalesce((SELECT m FROM holder_map) -> c.affinity_group ->> c.affinity <> c.workflow_id, false)`,
        "c.id = ANY($7::text[])",
      )} FROM c`;
  }

  /**
   * Inserts `tasks`. Workflows named in `newWorkflows` are created (root task = the
   * first task given for them); every other workflow must exist and be RUNNING.
   * Must run inside a transaction when existing workflows are involved (the lock
   * taken by the check is held until the insert).
   */
  /** Join edges for joins inserted by \`insert\` in the same transaction. */
  async insertEdges(q: Queryable, joins: readonly NewJoinEdges[]): Promise<void> {
    if (joins.length === 0) return;
    await q.query(this.edgesSql, [joinEdgesJson(joins)]);
  }

  async insert(q: Queryable, tasks: readonly NewTaskRow[], newWorkflows: ReadonlySet<string>): Promise<void> {
    // A new workflow of one task is solo: no row (migration 008).
    const newCounts = new Map<string, { root: string; n: number }>();
    const oldCounts = new Map<string, number>();
    for (const t of tasks) {
      if (newWorkflows.has(t.workflowId)) {
        const c = newCounts.get(t.workflowId);
        if (c) c.n++;
        else newCounts.set(t.workflowId, { root: t.id, n: 1 });
      } else {
        oldCounts.set(t.workflowId, (oldCounts.get(t.workflowId) ?? 0) + 1);
      }
    }
    if (oldCounts.size > 0) {
      const ids = [...oldCounts.keys()].sort();
      await q.query(this.materializeSql, [ids]);
      const { rows } = await q.query<{ id: string; status: string }>(this.lockWorkflowsSql, [ids]);
      const status = new Map(rows.map((r) => [r.id, r.status]));
      const missing = ids.filter((id) => !status.has(id));
      if (missing.length > 0) {
        const solo = await q.query<{ id: string; status: string }>(this.soloStatusSql, [missing]);
        for (const r of solo.rows) status.set(r.id, r.status);
      }
      for (const id of ids) {
        const s = status.get(id);
        if (s === undefined) throw new WorkflowNotFoundError(id);
        if (s !== "RUNNING") throw new WorkflowNotRunningError(id, s);
      }
    }
    // Solo needs the root's id to be the workflow's: readers find it by that id.
    const isSolo = (id: string, c: { root: string; n: number }) => c.n === 1 && c.root === id;
    const rowed = [...newCounts].filter(([id, c]) => !isSolo(id, c));
    const solo = [...newCounts].filter(([id, c]) => isSolo(id, c)).map(([id]) => id);
    await q.query(this.insertSql, [
      rowed.map(([id]) => id),
      rowed.map(([, c]) => c.root),
      rowed.map(([, c]) => c.n),
      [...oldCounts.keys()],
      JSON.stringify(Object.fromEntries(oldCounts)),
      packedTasks(tasks),
      solo,
    ]);
  }
}
