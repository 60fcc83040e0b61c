import { preparedName } from "../../db/statement.js";
import { encodeNewTasks, newTasksRelation } from "../packed.js";
import type { NewJoinEdges, NewTaskRow } from "../types.js";

/**
 * The insert of scheduled tasks (and the pieces the completion statement
 * inserts children with). It runs as plain text, unprepared: it runs on the
 * caller's connection (their transaction), where Weft leaves no prepared
 * statement; the name says what it is (and is what it would be prepared as).
 */
export function insertName(schema: string): string {
  return preparedName("insert", schema);
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
 * Select list over \`newTasksRelation\` (relation \`c\`). A relative delay is resolved on the database
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
 * CTEs \`held\` and \`holder_map\` over the new tasks \`c\`: the affinity
 * holders of the statement's keys (see the comment within). A task starts
 * PARKED for AFFINITY when \`parkedForAffinitySql\` is true for it.
 */
export function affinityHeldSql(s: string): string {
  return `held AS MATERIALIZED (
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
           GROUP BY affinity_group) y`;
}

/** Whether the task of \`c\` waits for its affinity key (held by another workflow), over \`affinityHeldSql\`. */
export const parkedForAffinitySql =
  "coalesce((SELECT m FROM holder_map) -> c.affinity_group ->> c.affinity <> c.workflow_id, false)";

/**
 * Inserts tasks and their workflows. $1-$3 new workflows with a row (id,
 * root, task count); $4, $5 existing workflows and their added tasks; $6 the
 * tasks (encodeNewTasks); $7 the new solo workflows (migration 008: one task,
 * no row).
 */
export function insertSql(s: string): string {
  return `
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
        SELECT * FROM ${newTasksRelation(6)}
      ), ${affinityHeldSql(s)}
      )
      INSERT INTO ${s}.tasks (${TASK_INSERT_COLUMNS})
      SELECT ${taskSelectList("NULL::text[]", parkedForAffinitySql, "c.id = ANY($7::text[])")} FROM c`;
}

/** The edges of joins inserted by insertSql in the same transaction; $1 joinEdgesJson. */
export function insertEdgesSql(s: string): string {
  return `INSERT INTO ${s}.task_edges (join_task_id, upstream_task_id, position)
      SELECT ${joinEdgesSelectList} FROM ${joinEdgesFrom(1)}`;
}

/** The workflows of an insert: new ones (by root and task count) and existing ones (tasks added). */
export interface InsertWorkflows {
  readonly created: ReadonlyMap<string, { readonly root: string; readonly n: number }>;
  readonly added: ReadonlyMap<string, number>;
}

/** Counts the tasks of each workflow; those in \`newWorkflows\` are created (root: the first task given for them). */
export function insertWorkflows(tasks: readonly NewTaskRow[], newWorkflows: ReadonlySet<string>): InsertWorkflows {
  const created = new Map<string, { root: string; n: number }>();
  const added = new Map<string, number>();
  for (const t of tasks) {
    if (newWorkflows.has(t.workflowId)) {
      const c = created.get(t.workflowId);
      if (c) c.n++;
      else created.set(t.workflowId, { root: t.id, n: 1 });
    } else {
      added.set(t.workflowId, (added.get(t.workflowId) ?? 0) + 1);
    }
  }
  return { created, added };
}

export type InsertParams = [
  workflows: string[],
  roots: string[],
  counts: number[],
  existing: string[],
  added: string,
  tasks: string,
  solo: string[],
];

export function insertParams(tasks: readonly NewTaskRow[], workflows: InsertWorkflows): InsertParams {
  // A new workflow of one task is solo: no row (migration 008). Solo needs the
  // root's id to be the workflow's: readers find it by that id.
  const isSolo = (id: string, c: { root: string; n: number }) => c.n === 1 && c.root === id;
  const rowed = [...workflows.created].filter(([id, c]) => !isSolo(id, c));
  const solo = [...workflows.created].filter(([id, c]) => isSolo(id, c)).map(([id]) => id);
  return [
    rowed.map(([id]) => id),
    rowed.map(([, c]) => c.root),
    rowed.map(([, c]) => c.n),
    [...workflows.added.keys()],
    JSON.stringify(Object.fromEntries(workflows.added)),
    encodeNewTasks(tasks),
    solo,
  ];
}
