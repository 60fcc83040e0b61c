import { exec, type Queryable } from "../db/pg.js";
import { type Statement, Statements } from "../db/statement.js";
import { decodeAssigned, decodeCandidates } from "./packed.js";
import { applyName, applyParams, applySql, applyToOneNodeName, applyToOneNodeSql } from "./statements/apply.js";
import { candidatesName, candidatesParams, candidatesSql } from "./statements/candidates.js";
import { dueParams, dueSql } from "./statements/due.js";
import {
  liveNodesName,
  liveNodesParams,
  liveNodesSql,
  runningByNameName,
  runningByNameParams,
  runningByNameSql,
} from "./statements/live-nodes.js";
import { sweepParams, sweepSql } from "./statements/sweep.js";
import type { AssignedTaskRow, Candidate, LocalNode, PlanDecision } from "./types.js";

/** What an apply did. */
export interface ApplyResult {
  readonly applied: number;
  /** This planner's epoch is over: nothing was written. */
  readonly fenced: boolean;
  /** The local node's new assignments, handed over instead of notified (see statements/fragments.ts: handoffSql). */
  readonly handedOver: AssignedTaskRow[];
}

/**
 * The task table's size on disk and the size its planner statistics were
 * taken at (pg_class.relpages: the last ANALYZE or VACUUM), in pages.
 */
export interface TableSize {
  readonly pages: number;
  readonly statsPages: number;
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
    const schema = statements.schema;
    this.nodesSql = statements.get(liveNodesName(schema), liveNodesSql(s));
    this.runningByNameSql = statements.get(runningByNameName(schema), runningByNameSql(s));
    // The hot statements: see statements/. The sweep and the release of due
    // tasks run as plain text: once per sweep interval, or when a retry is due.
    this.candidatesSql = statements.get(candidatesName(schema), candidatesSql(s));
    this.applySql = statements.get(applyName(schema, traced), applySql(s, channel, traced));
    this.applyToOneNodeSql = statements.get(applyToOneNodeName(schema, traced), applyToOneNodeSql(s, channel, traced));
    this.sweepSql = sweepSql(s, channel);
    this.dueSql = dueSql(s);
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
    return (await exec<LiveNode>(q, this.nodesSql, liveNodesParams(deadAfterMs))).rows;
  }

  async runningByName(q: Queryable, names: readonly string[]): Promise<Map<string, number>> {
    if (names.length === 0) return new Map();
    const { rows } = await exec<{ task_name: string; running: number }>(
      q,
      this.runningByNameSql,
      runningByNameParams(names),
    );
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
    const { rows } = await exec<{ rows: string | null; pages: number; stats_pages: number }>(
      q,
      this.candidatesSql,
      candidatesParams(limits, excluded),
    );
    const row = rows[0];
    const table = { pages: row?.pages ?? 0, statsPages: row?.stats_pages ?? 0 };
    return { candidates: decodeCandidates(row?.rows ?? null), table };
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
    const plan = applyParams(decisions, epoch, timeouts, local);
    const { rows } = await exec<ApplyRow>(q, plan.oneNode ? this.applyToOneNodeSql : this.applySql, plan.params);
    return applyResult(rows[0], this.traced);
  }

  async sweepDeadNodes(q: Queryable, deadAfterMs: number, epoch: number): Promise<SweepResult> {
    const { rows } = await q.query<SweepResult>(this.sweepSql, sweepParams(deadAfterMs, epoch));
    return rows[0] as SweepResult;
  }

  /** Releases due PARKED tasks; \`nextDueMs\`: until the next one is due (database clock), null if none. */
  async promoteDue(
    q: Queryable,
    limit: number,
    epoch: number,
  ): Promise<{ promoted: number; nextDueMs: number | null }> {
    const { rows } = await q.query<{ promoted: number; next_due_ms: number | null }>(
      this.dueSql,
      dueParams(limit, epoch),
    );
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
    handedOver: decodeAssigned(row?.rows ?? null, traced),
  };
}
