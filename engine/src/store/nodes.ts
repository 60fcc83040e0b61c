import type { Queryable } from "../db/pg.js";
import type { PublishedCron } from "./cron.js";
import { NOTIFY_PLANNER } from "./notify.js";

export interface NodeRegistration {
  readonly id: string;
  readonly appName: string;
  readonly host: string;
  readonly pid: number;
  readonly capacity: number;
  readonly taskNames: readonly string[];
  /** maxParallelInCluster by task name, for the names that have one. */
  readonly taskLimits?: Readonly<Record<string, number>>;
  /** timeoutMs by task name: the planner sets database deadlines from it. */
  readonly taskTimeouts?: Readonly<Record<string, number>>;
  /** Cron schedules by task name: the leader fires them. */
  readonly taskCrons?: Readonly<Record<string, PublishedCron>>;
}

export interface NodeInfo {
  readonly id: string;
  readonly app_name: string;
  readonly host: string;
  readonly pid: number;
  readonly capacity: number;
  readonly task_names: string[];
  readonly cpu_load: number | null;
  readonly draining: boolean;
  readonly started_at: Date;
  readonly heartbeat_at: Date;
}

/** The node registry: register, heartbeat, drain, deregister. */
export class NodeStore {
  private readonly registerSql: string;
  private readonly heartbeatSql: string;
  private readonly drainSql: string;
  private readonly deregisterSql: string;
  private readonly listSql: string;
  private readonly servedNamesSql: string;
  private readonly unservedNamesSql: string;

  constructor(s: string, channel: string) {
    this.registerSql = `
      WITH n AS (
        INSERT INTO ${s}.nodes (id, app_name, host, pid, capacity, task_names, task_limits, task_timeouts, task_crons)
        VALUES ($1, $2, $3, $4, $5, $6::text[], $7::jsonb, $8::jsonb, $9::jsonb) RETURNING id
      )
      SELECT pg_notify('${channel}', '${NOTIFY_PLANNER}') FROM n`;
    // Zero rows updated means the planner declared this node dead.
    this.heartbeatSql = `UPDATE ${s}.nodes SET heartbeat_at = now(), cpu_load = $2 WHERE id = $1`;
    this.drainSql = `UPDATE ${s}.nodes SET draining = true WHERE id = $1`;
    this.deregisterSql = `WITH d AS (DELETE FROM ${s}.nodes WHERE id = $1 RETURNING id)
      SELECT pg_notify('${channel}', '${NOTIFY_PLANNER}') FROM d`;
    this.listSql = `SELECT * FROM ${s}.nodes ORDER BY started_at, id`;
    // A node serves its names while it is alive and not draining (as the planner counts it).
    const serving = `NOT n.draining AND n.heartbeat_at > now() - make_interval(secs => $1::float8 / 1000)`;
    this.servedNamesSql = `SELECT DISTINCT unnest(n.task_names) AS name FROM ${s}.nodes n WHERE ${serving}`;
    // The names of tasks waiting to be placed that no serving node runs. The
    // distinct names come from tasks_plannable_idx by a loose index scan (one
    // probe per name, however long the backlog), then the nodes are checked.
    this.unservedNamesSql = `WITH RECURSIVE names AS (
        (SELECT t.task_name FROM ${s}.tasks t
          WHERE t.queue IN ('NEW', 'READY') AND t.assigned_node IS NULL ORDER BY t.task_name LIMIT 1)
        UNION ALL
        SELECT (SELECT t.task_name FROM ${s}.tasks t
                 WHERE t.queue IN ('NEW', 'READY') AND t.assigned_node IS NULL AND t.task_name > names.task_name
                 ORDER BY t.task_name LIMIT 1)
          FROM names WHERE names.task_name IS NOT NULL
      )
      SELECT task_name FROM names
       WHERE task_name IS NOT NULL
         AND NOT EXISTS (SELECT 1 FROM ${s}.nodes n WHERE ${serving} AND names.task_name = ANY(n.task_names))
       LIMIT $2`;
  }

  /** The task names some live, non-draining node serves. */
  async servedNames(q: Queryable, deadAfterMs: number): Promise<Set<string>> {
    const { rows } = await q.query<{ name: string }>(this.servedNamesSql, [deadAfterMs]);
    return new Set(rows.map((r) => r.name));
  }

  /** Names (up to \`limit\`) of tasks waiting to be placed that no live node serves. */
  async unservedNames(q: Queryable, deadAfterMs: number, limit: number): Promise<string[]> {
    const { rows } = await q.query<{ task_name: string }>(this.unservedNamesSql, [deadAfterMs, limit]);
    return rows.map((r) => r.task_name);
  }

  async register(q: Queryable, r: NodeRegistration): Promise<void> {
    await q.query(this.registerSql, [
      r.id,
      r.appName,
      r.host,
      r.pid,
      r.capacity,
      r.taskNames,
      JSON.stringify(r.taskLimits ?? {}),
      JSON.stringify(r.taskTimeouts ?? {}),
      JSON.stringify(r.taskCrons ?? {}),
    ]);
  }

  /** Returns false when the node's row is gone (declared dead). */
  async heartbeat(q: Queryable, nodeId: string, cpuLoad: number | null): Promise<boolean> {
    return ((await q.query(this.heartbeatSql, [nodeId, cpuLoad])).rowCount ?? 0) > 0;
  }

  async drain(q: Queryable, nodeId: string): Promise<void> {
    await q.query(this.drainSql, [nodeId]);
  }

  async deregister(q: Queryable, nodeId: string): Promise<void> {
    await q.query(this.deregisterSql, [nodeId]);
  }

  async list(q: Queryable): Promise<NodeInfo[]> {
    return (await q.query<NodeInfo>(this.listSql)).rows;
  }
}
