import { exec, type Queryable } from "../db/pg.js";
import { type Statement, Statements } from "../db/statement.js";
import { decodeAssigned } from "./packed.js";
import { completeName, completeParams, completeSql } from "./statements/complete.js";
import { fetchName, fetchParams, fetchSql } from "./statements/fetch.js";
import type { AffinityHolder, AssignedTaskRow, OutcomeRow, UpstreamRow } from "./types.js";

// Tokens are bigint; they are read as float8 (exact below 2^53) so that JS gets a
// number without a process-wide type parser that would change the application's pg.
const ASSIGNED_COLUMNS = `id, workflow_id, parent_id, task_name, input, attempt, token::float8 AS token, priority,
  affinity_group, affinity, join_pending IS NOT NULL AS is_join, saved_state`;
const TRACE_COLUMNS = "trace_context, attempt_span, awaited_by IS NOT NULL AS awaited";
const NO_TRACE_COLUMNS = "NULL::text AS trace_context, NULL::text AS attempt_span, false AS awaited";

export interface CompleteResult {
  /** How many outcomes were recorded. */
  readonly recorded: number;
  /** Outcomes refused by their fencing token (revoked assignments). */
  readonly refused: readonly string[];
  /** How many of the recorded failures were scheduled for a retry. */
  readonly retried: number;
  /** How many workflows reached a final status in this batch. */
  readonly finishedWorkflows: number;
  /**
   * Affinity keys (with their workflow, and whether it finished here) of the
   * tasks finished: release them after the commit.
   */
  readonly heldKeys: readonly AffinityHolder[];
}

interface CompleteRow {
  recorded: number;
  finished: number;
  retried: number;
  refused: string[] | null;
  held_keys: [string, string, string, boolean][] | null;
}

/** The worker's queries: fetch its assignments, record outcomes, release on shutdown. */
export class WorkerStore {
  private readonly fetchSql: Statement;
  private readonly fetchByIdSql: string;
  private readonly listAssignedSql: string;
  private readonly completeSql: Statement;
  private readonly releaseSql: string;
  private readonly saveStateSql: string;
  private readonly isRecordedSql: string;
  private readonly upstreamSql: string;
  private readonly messagesSql: string;

  /** Whether fetches read the trace columns (a node with a tracer provider). */
  private readonly traced: boolean;

  constructor(s: string, channel: string, statements: Statements = new Statements(false), traced = false) {
    this.traced = traced;
    this.fetchSql = statements.get(fetchName(statements.schema, traced), fetchSql(s, traced));
    this.fetchByIdSql = `SELECT ${ASSIGNED_COLUMNS}, ${traced ? TRACE_COLUMNS : NO_TRACE_COLUMNS} FROM ${s}.tasks
      WHERE assigned_node = $1 AND queue = 'READY' AND id = ANY($2::text[])`;
    this.listAssignedSql = `SELECT id, token::float8 AS token FROM ${s}.tasks WHERE assigned_node = $1 AND queue = 'READY'`;
    this.completeSql = statements.get(completeName(statements.schema, traced), completeSql(s, channel, traced));
    this.messagesSql = `SELECT join_task_id, message FROM ${s}.join_messages
      WHERE join_task_id = ANY($1::text[]) ORDER BY join_task_id, seq`;
    // The listed upstream tasks of joins, in list order (primary-key lookups).
    this.upstreamSql = `SELECT e.join_task_id, e.upstream_task_id AS id, u.state, u.result, u.error,
             coalesce(u.attempt_span, u.trace_context) AS span
      FROM ${s}.task_edges e
      LEFT JOIN LATERAL (SELECT state, result, error, attempt_span, trace_context FROM ${s}.tasks u WHERE u.id = e.upstream_task_id) u ON true
      WHERE e.join_task_id = ANY($1::text[])
      ORDER BY e.join_task_id, e.position`;
    // State saved by an attempt for the next ones: fenced like an outcome.
    this.isRecordedSql = `SELECT EXISTS (SELECT 1 FROM ${s}.tasks WHERE id = $1 AND token = $2 AND queue = 'DELETED') AS recorded`;
    this.saveStateSql = `UPDATE ${s}.tasks SET saved_state = $3::jsonb
      WHERE id = $1 AND token = $2 AND queue = 'READY'`;
    // Release without counting an attempt: the task did not fail, its node left.
    this.releaseSql = `UPDATE ${s}.tasks
         SET assigned_node = NULL, token = NULL, state = 'PENDING', assigned_at = NULL, deadline = NULL,
             attempt = greatest(attempt - 1, 0)
       WHERE assigned_node = $1 AND queue = 'READY' AND ($2::text[] IS NULL OR id = ANY($2::text[]))
      RETURNING id`;
  }

  async fetch(q: Queryable, nodeId: string, afterToken: number, limit: number): Promise<AssignedTaskRow[]> {
    const { rows } = await exec<{ rows: string | null }>(q, this.fetchSql, fetchParams(nodeId, afterToken, limit));
    return decodeAssigned(rows[0]?.rows ?? null, this.traced);
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
    const { rows } = await exec<CompleteRow>(q, this.completeSql, completeParams(outcomes));
    const row = rows[0] as CompleteRow;
    return {
      recorded: row.recorded,
      refused: row.refused ?? [],
      finishedWorkflows: row.finished,
      retried: row.retried,
      heldKeys: (row.held_keys ?? []).map(([affinity_group, affinity, workflow_id, finished]) => ({
        affinity_group,
        affinity,
        workflow_id,
        finished,
      })),
    };
  }

  /** Whether the attempt holding \`token\` has its outcome recorded (after a COMMIT whose reply was lost). */
  async isRecorded(q: Queryable, taskId: string, token: number): Promise<boolean> {
    const { rows } = await q.query<{ recorded: boolean }>(this.isRecordedSql, [taskId, token]);
    return rows[0]?.recorded ?? false;
  }

  /** Saves an attempt's state for the next attempts; false if the attempt was revoked. */
  async saveState(q: Queryable, taskId: string, token: number, state: string): Promise<boolean> {
    return ((await q.query(this.saveStateSql, [taskId, token, state])).rowCount ?? 0) > 0;
  }

  /** The listed upstream outcomes of the given joins, in list order. */
  async upstreams(q: Queryable, joinIds: readonly string[]): Promise<UpstreamRow[]> {
    if (joinIds.length === 0) return [];
    return (await q.query<UpstreamRow>(this.upstreamSql, [joinIds])).rows;
  }

  /** Messages sent to the given joins, oldest first. */
  async joinMessages(q: Queryable, joinIds: readonly string[]): Promise<{ join_task_id: string; message: unknown }[]> {
    if (joinIds.length === 0) return [];
    return (await q.query<{ join_task_id: string; message: unknown }>(this.messagesSql, [joinIds])).rows;
  }

  /** Returns assignments to the planner; `ids` null releases all of the node's tasks. */
  async release(q: Queryable, nodeId: string, ids: readonly string[] | null): Promise<string[]> {
    const { rows } = await q.query<{ id: string }>(this.releaseSql, [nodeId, ids]);
    return rows.map((r) => r.id);
  }
}
