import type { Queryable } from "../db/pg.js";
import { WorkflowNotFoundError, WorkflowNotRunningError } from "../errors.js";
import { soloRootSql, soloStatusSql } from "./solo.js";
import { insertEdgesSql, insertParams, insertSql, insertWorkflows, joinEdgesJson } from "./statements/insert.js";
import { insertKeyedParams, insertKeyedSql, type KeyHolderRow } from "./statements/insert-keyed.js";
import type { NewJoinEdges, NewTaskRow } from "./types.js";

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
  private readonly keyedSql: string;

  constructor(s: string) {
    this.edgesSql = insertEdgesSql(s);
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
    // See statements/insert.ts.
    this.insertSql = insertSql(s);
    // See statements/insert-keyed.ts.
    this.keyedSql = insertKeyedSql(s);
  }

  /** Join edges for joins inserted by \`insert\` in the same transaction. */
  async insertEdges(q: Queryable, joins: readonly NewJoinEdges[]): Promise<void> {
    if (joins.length === 0) return;
    await q.query(this.edgesSql, [joinEdgesJson(joins)]);
  }

  /**
   * Inserts `tasks`. Workflows named in `newWorkflows` are created (root task = the
   * first task given for them); every other workflow must exist and be RUNNING.
   * Must run inside a transaction when existing workflows are involved (the lock
   * taken by the check is held until the insert).
   */
  async insert(q: Queryable, tasks: readonly NewTaskRow[], newWorkflows: ReadonlySet<string>): Promise<void> {
    const workflows = insertWorkflows(tasks, newWorkflows);
    if (workflows.added.size > 0) {
      const ids = [...workflows.added.keys()].sort();
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
    await q.query(this.insertSql, insertParams(tasks, workflows));
  }

  /**
   * Inserts those of \`rows\` (one task name, each the root of a new solo
   * workflow) whose idempotency key (\`keys\`, at the same positions) is free or
   * expired, claiming it for \`windowMs\`; returns each key's holder, in no
   * particular order. One statement: outside a transaction it commits alone.
   */
  async insertKeyed(
    q: Queryable,
    rows: readonly NewTaskRow[],
    keys: readonly string[],
    hashes: readonly string[],
    windowMs: number,
  ): Promise<KeyHolderRow[]> {
    const { rows: holders } = await q.query<KeyHolderRow>(
      this.keyedSql,
      insertKeyedParams(rows, keys, hashes, windowMs),
    );
    return holders;
  }
}
