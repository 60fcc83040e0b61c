import { exec, type Queryable } from "../db/pg.js";
import { type Statement, Statements } from "../db/statement.js";
import { digits, FIELD, ROW } from "./packed.js";
import type { AssignedTaskRow } from "./types.js";
import { attemptEntrySql, fromPacked, packedAssignedColumns, packedAssignedRows } from "./worker.js";

/**
 * The leader's fence: a statement of the planner writes only while the leader
 * row still has the epoch this planner took over with. The row is locked FOR
 * SHARE for the statement, so a takeover (which bumps the epoch) waits for a
 * statement in flight, and every later statement of the deposed leader finds the
 * new epoch and writes nothing. This covers a leader whose advisory lock no
 * longer means anything (behind a transaction-mode pooler, say).
 */
export function fenceSql(s: string, epochParam: string): string {
  return `fence AS MATERIALIZED (SELECT 1 AS ok FROM ${s}.leader WHERE epoch = ${epochParam}::bigint FOR SHARE)`;
}

/**
 * Whether an apply may hand the leader's own node its assignments directly
 * (\`ownNode\`, NULL for none): only when the node has fetched every earlier
 * assignment (none of its tokens above \`cursor\`, the highest it has seen), as
 * of this statement's snapshot. Its worker then moves its cursor past the
 * handed rows, and a later fetch skips nothing it has not seen. Served by
 * tasks_assigned_idx; the snapshot does not see this statement's own updates.
 */
function handoffSql(s: string, ownNode: string, cursor: string): string {
  return `handoff AS MATERIALIZED (
        SELECT ${ownNode}::text IS NOT NULL AND NOT EXISTS (
                 SELECT 1 FROM ${s}.tasks h
                  WHERE h.assigned_node = ${ownNode}::text AND h.queue = 'READY' AND h.token > ${cursor}::bigint) AS ok
      )`;
}

/** The leader's own node, as an apply hands it its assignments (see handoffSql). */
export interface LocalNode {
  readonly id: string;
  /** The highest token the node's worker has seen. */
  readonly cursor: number;
}

/** What an apply did. */
export interface ApplyResult {
  readonly applied: number;
  /** This planner's epoch is over: nothing was written. */
  readonly fenced: boolean;
  /** The local node's new assignments, handed over instead of notified (see handoffSql). */
  readonly handedOver: AssignedTaskRow[];
}

/** A task the planner may place: unassigned, in NEW or READY. */
export interface Candidate {
  readonly id: string;
  readonly task_name: string;
  readonly priority: number;
  /** Its run_after is still in the future: it will be parked. */
  readonly delayed: boolean;
  readonly workflow_id?: string;
  readonly affinity_group?: string | null;
  readonly affinity?: string | null;
  /** With a key: the workflow holding it when the candidates were read (null: nobody). */
  readonly holder?: string | null;
}

/**
 * The task table's size on disk and the size its planner statistics were
 * taken at (pg_class.relpages: the last ANALYZE or VACUUM), in pages.
 */
export interface TableSize {
  readonly pages: number;
  readonly statsPages: number;
}

/**
 * The candidates of a read, packed as the fetch packs assignments (see
 * PACKED_ASSIGNED in worker.ts): a row per task separated by \x1e, fields by
 * \x1f: id, task name, priority, 't' if delayed, the workflow id (empty when it
 * is the task's own), and for a task with a key: its group and key (JSON
 * strings, which escape every control character) and the key's holder (empty:
 * nobody). Scanned in place: a JSON array per row cost the server a type
 * lookup per value and the planner an array per row, and a batch's ids only
 * pass through it on their way to the apply.
 */
function candidatesFromPacked(text: string | null): Candidate[] {
  if (text === null || text === "") return [];
  const out: Candidate[] = [];
  let at = 0;
  const end = text.length;
  while (at < end) {
    let rowEnd = text.indexOf(ROW, at);
    if (rowEnd === -1) rowEnd = end;
    let next = text.indexOf(FIELD, at);
    const id = text.slice(at, next);
    at = next + 1;
    next = text.indexOf(FIELD, at);
    const taskName = text.slice(at, next);
    at = next + 1;
    next = text.indexOf(FIELD, at);
    const priority = digits(text, at, next);
    at = next + 1;
    next = text.indexOf(FIELD, at);
    const delayed = next > at;
    at = next + 1;
    next = text.indexOf(FIELD, at);
    if (next === -1 || next > rowEnd) {
      // No key: the workflow id ends the row.
      out.push({
        id,
        task_name: taskName,
        priority,
        delayed,
        workflow_id: rowEnd === at ? id : text.slice(at, rowEnd),
        affinity_group: null,
        affinity: null,
        holder: null,
      });
    } else {
      const workflowId = next === at ? id : text.slice(at, next);
      at = next + 1;
      next = text.indexOf(FIELD, at);
      const group = JSON.parse(text.slice(at, next)) as string;
      at = next + 1;
      next = text.indexOf(FIELD, at);
      const key = JSON.parse(text.slice(at, next)) as string;
      at = next + 1;
      out.push({
        id,
        task_name: taskName,
        priority,
        delayed,
        workflow_id: workflowId,
        affinity_group: group,
        affinity: key,
        holder: rowEnd === at ? null : text.slice(at, rowEnd),
      });
    }
    at = rowEnd + 1;
  }
  return out;
}

export interface LiveNode {
  readonly id: string;
  readonly capacity: number;
  readonly task_names: string[];
  readonly active: number;
  /** maxParallelInCluster by task name, as this node resolved it. */
  readonly task_limits?: Record<string, number>;
  /** timeoutMs by task name, as this node resolved it. */
  readonly task_timeouts?: Record<string, number>;
  /** Last reported CPU load (0..1), if any. */
  readonly cpu_load?: number | null;
}

export interface SweepResult {
  readonly dead_nodes: string[];
  readonly gone_nodes: string[];
  /** Lost attempts released for re-planning (dead, gone or overdue). */
  readonly released: number;
  /** Of which past their database deadline. */
  readonly overdue: number;
  /** The planner's epoch is over: nothing was written. */
  readonly fenced: boolean;
}

/** One planner decision for a task: its next queue, and its node if assigned now. */
export interface PlanDecision {
  readonly id: string;
  readonly queue: "READY" | "PARKED";
  readonly node: string | null;
  readonly parkReason: string | null;
  /** For an assignment: the task's name (the planner counts what it placed per name). */
  readonly taskName?: string;
  /** For a park for AFFINITY: the key, whose holder the apply checks again. */
  readonly affinityKey?: { readonly group: string; readonly affinity: string };
}

/** The planner's queries. Each transition is a single atomic, guarded statement. */
export class PlannerStore {
  private readonly nodesSql: Statement;
  private readonly candidatesSql: Statement;
  private readonly runningByNameSql: Statement;
  private readonly applySql: Statement;
  private readonly applyToOneNodeSql: Statement;
  private readonly sweepSql: string;
  private readonly dueSql: string;
  private readonly epochSql: string;
  private readonly analyzeSql: string;

  /** Whether hand-overs read the trace columns (the leader's own node traces). */
  private readonly traced: boolean;

  constructor(s: string, channel: string, statements: Statements = new Statements(false), traced = false) {
    this.traced = traced;
    const PACKED_ASSIGNED_COLUMNS = packedAssignedColumns(traced);
    const PACKED_ASSIGNED_ROWS = packedAssignedRows(traced);
    // A node's load is counted from its assignments (tasks_assigned_idx), so it
    // cannot drift from the truth the way a maintained counter could.
    this.nodesSql = statements.get(`SELECT n.id, n.capacity, n.task_names, n.task_limits, n.task_timeouts, n.cpu_load,
        (SELECT count(*) FROM ${s}.tasks t WHERE t.assigned_node = n.id AND t.queue = 'READY')::int AS active
      FROM ${s}.nodes n
      WHERE NOT n.draining AND n.heartbeat_at > now() - make_interval(secs => $1::float8 / 1000)
      ORDER BY n.id`);
    // Running tasks of the limited task names, cluster-wide: bounded by what runs
    // (tasks_assigned_idx), not by the table.
    this.runningByNameSql = statements.get(`SELECT task_name, count(*)::int AS running FROM ${s}.tasks
      WHERE assigned_node IS NOT NULL AND queue = 'READY' AND task_name = ANY($1::text[])
      GROUP BY task_name`);
    // Per task name (fair share within a batch), highest priority first, then
    // oldest, up to the free capacity that can run the name: served by
    // tasks_plannable_idx (task_name, priority DESC, id).
    // A candidate with a key comes with the key's holder (a probe of the holders' primary key).
    // $3: ids to leave out, as jsonb keys: the decisions of an apply still in
    // flight, which this read cannot see yet (see Planner).
    // The rows come packed in one text (see candidatesFromPacked): a
    // candidate without a key is five fields, its workflow id empty when it is
    // the task's own, as in the fetch (see PACKED_ASSIGNED in worker.ts).
    //
    // It also says how large the task table is and was when its statistics
    // were taken (see Planner: statistics refreshed on growth): two catalog
    // lookups, no scan.
    this.candidatesSql = statements.get(`SELECT string_agg(r.id || E'\\x1f' || r.task_name || E'\\x1f' || r.priority
               || E'\\x1f' || CASE WHEN r.delayed THEN 't' ELSE '' END || E'\\x1f' || coalesce(nullif(r.workflow_id, r.id), '')
               || CASE WHEN r.affinity IS NULL THEN ''
                       ELSE E'\\x1f' || to_json(r.affinity_group)::text || E'\\x1f' || to_json(r.affinity)::text || E'\\x1f'
                            || coalesce((SELECT h.workflow_id FROM ${s}.affinity_holders h
                                          WHERE h.affinity_group = r.affinity_group AND h.affinity = r.affinity), '') END,
               E'\\x1e') AS rows,
             (pg_relation_size('${s}.tasks'::regclass) / current_setting('block_size')::int)::int AS pages,
             (SELECT c.relpages FROM pg_class c WHERE c.oid = '${s}.tasks'::regclass) AS stats_pages
      FROM unnest($1::text[], $2::int[]) AS n(name, lim)
      CROSS JOIN LATERAL (
        SELECT id, task_name, priority, coalesce(run_after > now(), false) AS delayed,
               workflow_id, affinity_group, affinity FROM ${s}.tasks
         WHERE queue IN ('NEW', 'READY') AND assigned_node IS NULL AND task_name = n.name
           AND NOT ($3::jsonb ? id)
         ORDER BY priority DESC, id LIMIT n.lim) r`);
    // The guard (NEW or READY, unassigned) makes a decision void for a task that
    // was cancelled or planned meanwhile. Assignment draws a fresh fencing token
    // and counts an attempt.
    //
    // $1: the ids, comma-separated: ULIDs need no escaping, and a text[]
    // parameter costs the client an escaping pass per element.
    //
    // No join: rows are found by \`id = ANY($1)\` (primary key) and each row's
    // decision is looked up in jsonb objects ($2: id -> node, $3: id -> park
    // reason; binary search). A join with unnest() lets stale statistics pick a
    // nested loop that compares every pair: 15M comparisons for a batch of 1,000
    // measured on a 20,000-row table.
    //
    // $4: timeout by task name (ms, grace included): an assigned task with one
    // gets a database deadline. $5: the leader's epoch (see fenceSql).
    //
    // Parks for AFFINITY ($6 groups, $7 keys) are checked again against the
    // holders as they are now, locked FOR SHARE until this commits (so a
    // release, which locks them FOR UPDATE and then takes a fresh snapshot,
    // sees the parks). A key handed on to the task's own workflow since the
    // planner read it, or being handed on right now (its row locked: skipped,
    // the planner never waits), leaves the task as it is for the next cycle:
    // parking it would strand it. The InitPlan takes the locks before any task row.
    this.applySql = statements.get(`
      WITH ${fenceSql(s, "$5")}, held AS MATERIALIZED (
        SELECT h.affinity_group, h.affinity, h.workflow_id FROM ${s}.affinity_holders h
         WHERE h.affinity_group = ANY($6::text[]) AND h.affinity = ANY($7::text[])
         ORDER BY h.affinity_group, h.affinity
           FOR SHARE SKIP LOCKED
      ), applied AS (
        UPDATE ${s}.tasks t
           SET queue = CASE WHEN $3::jsonb ? t.id THEN 'PARKED' ELSE 'READY' END,
               park_reason = $3::jsonb ->> t.id,
               state = CASE WHEN $2::jsonb ? t.id THEN 'RUNNING' ELSE 'PENDING' END,
               assigned_node = $2::jsonb ->> t.id,
               token = CASE WHEN $2::jsonb ? t.id THEN nextval('${s}.task_token_seq') END,
               assigned_at = CASE WHEN $2::jsonb ? t.id THEN now() END,
               attempt = t.attempt + ($2::jsonb ? t.id)::int,
               deadline = CASE WHEN $2::jsonb ? t.id AND $4::jsonb ? t.task_name
                               THEN now() + make_interval(secs => ($4::jsonb ->> t.task_name)::float8 / 1000) END
         WHERE t.id = ANY(string_to_array($1::text, ',')) AND t.queue IN ('NEW', 'READY') AND t.assigned_node IS NULL
           AND EXISTS (SELECT 1 FROM fence) AND (SELECT count(*) FROM held) >= 0
           AND (cardinality($7::text[]) = 0 OR $3::jsonb ->> t.id IS DISTINCT FROM 'AFFINITY' OR EXISTS (
                 SELECT 1 FROM held h WHERE h.affinity_group = t.affinity_group AND h.affinity = t.affinity
                    AND h.workflow_id <> t.workflow_id))
        RETURNING ${PACKED_ASSIGNED_COLUMNS}
      ), ${handoffSql(s, "$8", "$9")}
      SELECT count(*)::int AS applied, NOT EXISTS (SELECT 1 FROM fence) AS fenced,
             (SELECT pg_notify('${channel}', 'n:' || string_agg(DISTINCT assigned_node, ','))
                FROM applied WHERE assigned_node IS NOT NULL
                 AND (assigned_node IS DISTINCT FROM $8::text OR NOT (SELECT ok FROM handoff))
               HAVING count(*) > 0) AS notified,
             (SELECT ${PACKED_ASSIGNED_ROWS} FROM applied WHERE assigned_node = $8::text AND (SELECT ok FROM handoff)) AS rows
        FROM applied`);
    // The usual cycle: every decision assigns a task to the same node (one node
    // in the cluster, or one with room). The node is one parameter ($2) instead
    // of a jsonb entry per task: PostgreSQL does one lookup per row instead of
    // eight, and the statement is a third smaller on the wire.
    this.applyToOneNodeSql = statements.get(`
      WITH ${fenceSql(s, "$4")}, applied AS (
        UPDATE ${s}.tasks t
           SET queue = 'READY', park_reason = NULL, state = 'RUNNING', assigned_node = $2,
               token = nextval('${s}.task_token_seq'), assigned_at = now(), attempt = t.attempt + 1,
               deadline = CASE WHEN $3::jsonb ? t.task_name
                               THEN now() + make_interval(secs => ($3::jsonb ->> t.task_name)::float8 / 1000) END
         WHERE t.id = ANY(string_to_array($1::text, ',')) AND t.queue IN ('NEW', 'READY') AND t.assigned_node IS NULL
           AND EXISTS (SELECT 1 FROM fence)
        RETURNING ${PACKED_ASSIGNED_COLUMNS}
      ), ${handoffSql(s, "$5", "$6")}
      SELECT count(*)::int AS applied, NOT EXISTS (SELECT 1 FROM fence) AS fenced,
             (SELECT pg_notify('${channel}', 'n:' || $2::text) FROM applied
               WHERE $2::text IS DISTINCT FROM $5::text OR NOT (SELECT ok FROM handoff) HAVING count(*) > 0) AS notified,
             (SELECT ${PACKED_ASSIGNED_ROWS} FROM applied WHERE $2::text = $5::text AND (SELECT ok FROM handoff)) AS rows
        FROM applied`);
    // Recovers lost attempts: the tasks of nodes whose heartbeat is stale
    // (deleting their rows), of nodes that no longer exist at all (a node that
    // stopped while a planner cycle that had not yet seen it draining assigned it
    // more work), and assignments past their database deadline (a hung attempt
    // on a live node). Assignments only go to nodes that have a row, so one to a
    // missing node is always an orphan. Each release is fenced by the token read
    // here: an outcome recorded meanwhile (queue DELETED) or a newer assignment
    // (another token) is left alone. A lost attempt counts as an attempt and is
    // logged in attempt_log; the live nodes of overdue ones are told to abort
    // them (r:). Scans are bounded by what runs (tasks_assigned_idx,
    // tasks_deadline_idx), not by the table. $2: the leader's epoch.
    this.sweepSql = `
      WITH ${fenceSql(s, "$2")}, dead AS (
        DELETE FROM ${s}.nodes
         WHERE heartbeat_at < now() - make_interval(secs => $1::float8 / 1000) AND EXISTS (SELECT 1 FROM fence)
        RETURNING id
      ), gone AS (
        SELECT DISTINCT t.assigned_node AS id FROM ${s}.tasks t
         WHERE t.assigned_node IS NOT NULL AND t.queue = 'READY'
           AND NOT EXISTS (SELECT 1 FROM ${s}.nodes n WHERE n.id = t.assigned_node)
      ), lost AS (
        SELECT t.id, t.token, 'node ' || t.assigned_node || ' was declared dead' AS reason FROM ${s}.tasks t
         WHERE t.assigned_node = ANY((SELECT array_agg(id) FROM (SELECT id FROM dead UNION SELECT id FROM gone) x)::text[])
           AND t.queue = 'READY'
        UNION ALL
        SELECT t.id, t.token, 'the attempt passed its deadline (timeout + grace) on node ' || t.assigned_node
          FROM ${s}.tasks t
         WHERE t.deadline < now() AND t.queue = 'READY' AND t.assigned_node IS NOT NULL
      ), released AS (
        UPDATE ${s}.tasks t
           SET assigned_node = NULL, token = NULL, state = 'PENDING', assigned_at = NULL, deadline = NULL,
               attempt_log = coalesce(t.attempt_log, '[]'::jsonb) || ${attemptEntrySql(
                 "t",
                 `jsonb_build_object('name', 'AttemptLost', 'code', 'ATTEMPT_LOST', 'message', l.reason)`,
               )}
          FROM (SELECT DISTINCT ON (id) id, token, reason FROM lost) l
         WHERE t.id = l.id AND t.token = l.token AND t.queue = 'READY' AND EXISTS (SELECT 1 FROM fence)
        RETURNING t.id, l.reason
      ), revoked AS (
        SELECT pg_notify('${channel}', 'r:' || string_agg(DISTINCT o.assigned_node, ','))
          FROM ${s}.tasks o WHERE o.id = ANY(ARRAY(SELECT id FROM released)) AND o.assigned_node IS NOT NULL
        HAVING count(*) > 0
      )
      SELECT (SELECT coalesce(array_agg(id), '{}') FROM dead) AS dead_nodes,
             (SELECT coalesce(array_agg(id), '{}') FROM gone) AS gone_nodes,
             (SELECT count(*)::int FROM released) AS released,
             (SELECT count(*)::int FROM released WHERE reason LIKE 'the attempt passed%') AS overdue,
             (SELECT count(*) FROM revoked) AS notified,
             NOT EXISTS (SELECT 1 FROM fence) AS fenced`;
    // Releases due PARKED tasks, and says how long until the next one is due
    // (ms, on the database clock; null when none waits).
    this.dueSql = `
      WITH ${fenceSql(s, "$2")}, due AS (
        UPDATE ${s}.tasks SET queue = 'READY', park_reason = NULL
         WHERE id IN (SELECT id FROM ${s}.tasks
                       WHERE queue = 'PARKED' AND park_reason = 'RUN_AFTER' AND run_after <= now()
                       ORDER BY run_after, id LIMIT $1 FOR UPDATE SKIP LOCKED)
           AND EXISTS (SELECT 1 FROM fence)
        RETURNING 1
      )
      SELECT (SELECT count(*)::int FROM due) AS promoted,
             (SELECT extract(epoch FROM min(run_after) - now()) * 1000 FROM ${s}.tasks
               WHERE queue = 'PARKED' AND park_reason = 'RUN_AFTER' AND run_after > now())::float8 AS next_due_ms`;
    // What the refresh is for is the table's size (pg_class.reltuples and
    // relpages: updating them re-plans the cached plans). One column and a
    // sample of 3,000 rows (a statistics target of 10, for this transaction
    // only) give it in ~4 ms where the full ANALYZE of a 10,000-task table took
    // 40-70 ms on the planner's path; autovacuum's ANALYZE keeps the columns'
    // own statistics. SKIP_LOCKED: a VACUUM or ANALYZE already running on the
    // table (autovacuum) holds its lock, and the planner never waits for one.
    this.analyzeSql = `SET LOCAL default_statistics_target = 10; ANALYZE (SKIP_LOCKED) ${s}.tasks (id)`;
    this.epochSql = `UPDATE ${s}.leader SET epoch = epoch + 1, node_id = $1, acquired_at = now() RETURNING epoch::float8 AS epoch`;
  }

  async liveNodes(q: Queryable, deadAfterMs: number): Promise<LiveNode[]> {
    return (await exec<LiveNode>(q, this.nodesSql, [deadAfterMs])).rows;
  }

  async runningByName(q: Queryable, names: readonly string[]): Promise<Map<string, number>> {
    if (names.length === 0) return new Map();
    const { rows } = await exec<{ task_name: string; running: number }>(q, this.runningByNameSql, [names]);
    return new Map(rows.map((r) => [r.task_name, r.running]));
  }

  /**
   * Candidates per task name, up to each name's limit; \`excluded\` ids are
   * left out. With them, the task table's size (see TableSize).
   */
  async candidates(
    q: Queryable,
    limits: ReadonlyMap<string, number>,
    excluded: readonly string[] = [],
  ): Promise<{ candidates: Candidate[]; table: TableSize }> {
    // ULIDs need no escaping.
    const exclusion = excluded.length === 0 ? "{}" : `{"${excluded.join('":0,"')}":0}`;
    const { rows } = await exec<{ rows: string | null; pages: number; stats_pages: number }>(q, this.candidatesSql, [
      [...limits.keys()],
      [...limits.values()],
      exclusion,
    ]);
    const row = rows[0];
    const table = { pages: row?.pages ?? 0, statsPages: row?.stats_pages ?? 0 };
    return { candidates: candidatesFromPacked(row?.rows ?? null), table };
  }

  /**
   * Takes fresh planner statistics for the task table. PostgreSQL then re-plans
   * every cached plan that reads it, on every connection (see Planner:
   * statistics refreshed on growth). Does nothing if a VACUUM or ANALYZE
   * already running (autovacuum) holds the table.
   */
  async refreshStatistics(q: Queryable): Promise<void> {
    await q.query(this.analyzeSql);
  }

  /**
   * Applies decisions; \`timeouts\` (ms by task name, grace included) set the
   * deadlines of tasks assigned now. \`fenced\` means this planner's epoch is
   * over: nothing was written.
   */
  async apply(
    q: Queryable,
    decisions: readonly PlanDecision[],
    epoch: number,
    timeouts: Readonly<Record<string, number>> = {},
    local: LocalNode | null = null,
  ): Promise<ApplyResult> {
    if (decisions.length === 0) return { applied: 0, fenced: false, handedOver: [] };
    const ids = decisions.map((d) => d.id).join(",");
    const node = oneNode(decisions);
    const localId = local?.id ?? null;
    const localCursor = local?.cursor ?? 0;
    if (node !== null) {
      const { rows } = await exec<ApplyRow>(q, this.applyToOneNodeSql, [
        ids,
        node,
        JSON.stringify(timeouts),
        epoch,
        localId,
        localCursor,
      ]);
      return applyResult(rows[0], this.traced);
    }
    // The jsonb maps are written as text directly: ids, node ids and park
    // reasons are ULIDs and upper-case words, which need no escaping.
    const nodes: string[] = [];
    const parked: string[] = [];
    const groups = new Set<string>();
    const keys = new Set<string>();
    for (const d of decisions) {
      if (d.node !== null) nodes.push(`"${d.id}":"${d.node}"`);
      else if (d.queue === "PARKED") parked.push(`"${d.id}":"${d.parkReason ?? "UNKNOWN"}"`);
      if (d.affinityKey) {
        groups.add(d.affinityKey.group);
        keys.add(d.affinityKey.affinity);
      }
    }
    const { rows } = await exec<ApplyRow>(q, this.applySql, [
      ids,
      `{${nodes.join(",")}}`,
      `{${parked.join(",")}}`,
      JSON.stringify(timeouts),
      epoch,
      [...groups],
      [...keys],
      localId,
      localCursor,
    ]);
    return applyResult(rows[0], this.traced);
  }

  async sweepDeadNodes(q: Queryable, deadAfterMs: number, epoch: number): Promise<SweepResult> {
    const { rows } = await q.query<SweepResult>(this.sweepSql, [deadAfterMs, epoch]);
    return rows[0] as SweepResult;
  }

  /** Releases due PARKED tasks; \`nextDueMs\`: until the next one is due (database clock), null if none. */
  async promoteDue(
    q: Queryable,
    limit: number,
    epoch: number,
  ): Promise<{ promoted: number; nextDueMs: number | null }> {
    const { rows } = await q.query<{ promoted: number; next_due_ms: number | null }>(this.dueSql, [limit, epoch]);
    return { promoted: rows[0]?.promoted ?? 0, nextDueMs: rows[0]?.next_due_ms ?? null };
  }

  async takeLeadership(q: Queryable, nodeId: string): Promise<number> {
    const { rows } = await q.query<{ epoch: number }>(this.epochSql, [nodeId]);
    return rows[0]?.epoch ?? 0;
  }
}

interface ApplyRow {
  applied: number;
  fenced: boolean;
  rows: string | null;
}

function applyResult(row: ApplyRow | undefined, traced: boolean): ApplyResult {
  return {
    applied: row?.applied ?? 0,
    fenced: row?.fenced ?? false,
    handedOver: fromPacked(row?.rows ?? null, traced),
  };
}

/** The node every decision assigns its task to, or null if they differ or some park. */
function oneNode(decisions: readonly PlanDecision[]): string | null {
  const node = decisions[0]?.node ?? null;
  if (node === null) return null;
  for (const d of decisions) if (d.node !== node) return null;
  return node;
}
