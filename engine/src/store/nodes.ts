import type { Queryable } from "../db/pg.js";
import type { PublishedCron } from "./cron.js";

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

  constructor(s: string, channel: string) {
    this.registerSql = `
      WITH n AS (
        INSERT INTO ${s}.nodes (id, app_name, host, pid, capacity, task_names, task_limits, task_timeouts, task_crons)
        VALUES ($1, $2, $3, $4, $5, $6::text[], $7::jsonb, $8::jsonb, $9::jsonb) RETURNING id
      )
      SELECT pg_notify('${channel}', 'p') FROM n`;
    // Zero rows updated means the planner declared this node dead.
    this.heartbeatSql = `UPDATE ${s}.nodes SET heartbeat_at = now(), cpu_load = $2 WHERE id = $1`;
    this.drainSql = `UPDATE ${s}.nodes SET draining = true WHERE id = $1`;
    this.deregisterSql = `WITH d AS (DELETE FROM ${s}.nodes WHERE id = $1 RETURNING id)
      SELECT pg_notify('${channel}', 'p') FROM d`;
    this.listSql = `SELECT * FROM ${s}.nodes ORDER BY started_at, id`;
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
