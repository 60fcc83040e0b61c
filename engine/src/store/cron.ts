import type { Queryable } from "../db/pg.js";
import type { CronSpec } from "../handler.js";
import { NOTIFY_PLANNER } from "./notify.js";
import { ownWorkflowTasksSql } from "./schedule.js";
import { fenceSql } from "./statements/fragments.js";

/** A cron schedule as a node publishes it, with the slot series it fills (if any). */
export interface PublishedCron extends CronSpec {
  readonly slot?: { readonly every: string; readonly timeZone: string; readonly ordered: boolean };
}

/** The cron service's queries. Every write is fenced by the leader's epoch. */
export class CronStore {
  private readonly specsSql: string;
  private readonly lastSql: string;
  private readonly fireSql: string;
  private readonly pruneSql: string;

  constructor(s: string, channel: string) {
    // Newest nodes first: during a deploy, the new code's schedule wins.
    this.specsSql = `SELECT task_crons FROM ${s}.nodes
      WHERE NOT draining AND heartbeat_at > now() - make_interval(secs => $1::float8 / 1000) AND task_crons <> '{}'
      ORDER BY started_at DESC, id`;
    // The newest tick of each task (primary key, read backwards), and the database clock.
    this.lastSql = `SELECT n.name AS task_name, l.tick_at, now() AS now
      FROM unnest($1::text[]) AS n(name)
      LEFT JOIN LATERAL (SELECT tick_at FROM ${s}.cron_ticks WHERE task_name = n.name ORDER BY tick_at DESC LIMIT 1) l ON true`;
    // Records ticks (each once: primary key) and creates a task, in a workflow of
    // its own, for every new tick that fires (task id not null).
    this.fireSql = `
      WITH ${fenceSql(s, "$4")}, ins AS (
        INSERT INTO ${s}.cron_ticks (task_name, tick_at, task_id)
        SELECT $1, x.tick_at, x.task_id FROM unnest($2::timestamptz[], $3::text[]) AS x(tick_at, task_id)
         WHERE EXISTS (SELECT 1 FROM fence)
        ON CONFLICT DO NOTHING
        RETURNING task_id, tick_at
      ), ${ownWorkflowTasksSql(s, "ins", "$1", "jsonb_build_object('tick', tick_at)")}
      SELECT coalesce((SELECT array_agg(tick_at ORDER BY tick_at) FROM ins), '{}') AS recorded,
             (SELECT count(*)::int FROM t) AS tasks, NOT EXISTS (SELECT 1 FROM fence) AS fenced,
             (SELECT pg_notify('${channel}', '${NOTIFY_PLANNER}') FROM t LIMIT 1) AS notified`;
    // Old ticks, except each task's newest (where its schedule resumes).
    this.pruneSql = `DELETE FROM ${s}.cron_ticks c
      WHERE c.tick_at < now() - make_interval(secs => $1::float8 / 1000)
        AND c.tick_at < (SELECT max(tick_at) FROM ${s}.cron_ticks m WHERE m.task_name = c.task_name)`;
  }

  /** Published schedules by task name; the newest node's wins. */
  async specs(q: Queryable, deadAfterMs: number): Promise<Map<string, PublishedCron>> {
    const { rows } = await q.query<{ task_crons: Record<string, PublishedCron> }>(this.specsSql, [deadAfterMs]);
    const out = new Map<string, PublishedCron>();
    for (const r of rows)
      for (const [name, spec] of Object.entries(r.task_crons)) if (!out.has(name)) out.set(name, spec);
    return out;
  }

  /** The newest recorded tick of each name (null if none) and the database's now. */
  async last(q: Queryable, names: readonly string[]): Promise<{ ticks: Map<string, Date | null>; now: Date }> {
    const { rows } = await q.query<{ task_name: string; tick_at: Date | null; now: Date }>(this.lastSql, [names]);
    return {
      ticks: new Map(rows.map((r) => [r.task_name, r.tick_at])),
      now: rows[0]?.now ?? new Date(),
    };
  }

  /** Records ticks; `taskIds[i]` null records tick i as skipped. Returns the ticks recorded now. */
  async fire(
    q: Queryable,
    taskName: string,
    ticks: readonly Date[],
    taskIds: readonly (string | null)[],
    epoch: number,
  ): Promise<{ recorded: Date[]; fenced: boolean }> {
    const { rows } = await q.query<{ recorded: Date[]; fenced: boolean }>(this.fireSql, [
      taskName,
      ticks,
      taskIds,
      epoch,
    ]);
    return { recorded: rows[0]?.recorded ?? [], fenced: rows[0]?.fenced ?? false };
  }

  async prune(q: Queryable, retentionMs: number): Promise<number> {
    return (await q.query(this.pruneSql, [retentionMs])).rowCount ?? 0;
  }
}
