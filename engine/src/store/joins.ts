import type { Queryable } from "../db/pg.js";
import { InvalidArgumentError, TaskNotFoundError } from "../errors.js";
import { LOCK_WORKFLOW_BUCKET_SQL, workflowBucket } from "./locks.js";

/**
 * Joins scheduled from outside a task, over tasks that already exist. Must run in
 * a transaction: it holds the workflow's bucket exclusively (as cancellation
 * does, see locks.ts), so no completion batch grows the upstream subtrees while
 * their unfinished tasks are marked as awaited by the new join.
 */
export class JoinStore {
  private readonly upstreamSql: string;
  private readonly lockSql: string;
  private readonly markSql: string;

  constructor(s: string) {
    this.upstreamSql = `SELECT id, workflow_id FROM ${s}.tasks WHERE id = ANY($1::text[])`;
    this.lockSql = LOCK_WORKFLOW_BUCKET_SQL;
    // The listed tasks and everything they spawned (forks and their subtrees
    // excepted), within the workflow; the unfinished ones now await the join.
    this.markSql = `
      WITH RECURSIVE subtree AS (
        SELECT id FROM ${s}.tasks WHERE id = ANY($1::text[])
        UNION
        SELECT t.id FROM ${s}.tasks t JOIN subtree ON t.parent_id = subtree.id
         WHERE t.workflow_id = $2 AND t.id <> t.workflow_id AND NOT t.is_fork
      ), marked AS (
        UPDATE ${s}.tasks t SET awaited_by = array_append(coalesce(t.awaited_by, '{}'::text[]), $3::text)
         WHERE t.id = ANY(ARRAY(SELECT id FROM subtree)) AND t.queue <> 'DELETED'
        RETURNING t.id
      )
      SELECT count(*)::int AS pending FROM marked`;
  }

  /**
   * Validates the upstream ids (all exist, one workflow), locks that workflow's
   * bucket, and marks the unfinished tasks of their subtrees as awaited by
   * \`joinId\`. Returns the workflow id and the join's initial pending count.
   */
  async prepare(
    tx: Queryable,
    joinId: string,
    upstream: readonly string[],
  ): Promise<{ workflowId: string; pending: number }> {
    const { rows } = await tx.query<{ id: string; workflow_id: string }>(this.upstreamSql, [upstream]);
    const found = new Map(rows.map((r) => [r.id, r.workflow_id]));
    for (const id of upstream) if (!found.has(id)) throw new TaskNotFoundError(id);
    const workflows = new Set(found.values());
    if (workflows.size !== 1) {
      throw new InvalidArgumentError(
        "upstream",
        `a join's upstream tasks must belong to one workflow; these span ${workflows.size}`,
      );
    }
    const [workflowId] = workflows as Set<string> & { size: 1 };
    await tx.query(this.lockSql, [workflowBucket(workflowId as string)]);
    const marked = await tx.query<{ pending: number }>(this.markSql, [upstream, workflowId, joinId]);
    return { workflowId: workflowId as string, pending: marked.rows[0]?.pending ?? 0 };
  }
}
