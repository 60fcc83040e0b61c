import type { Queryable } from "../db/pg.js";
import { InvalidRangeError } from "../errors.js";
import { newIdAt } from "../ids.js";
import { fixedSlotStarts, MAX_SLOTS_PER_CALL, type SlotInterval } from "../slots.js";
import { SLOT_LOCK_BASE, SLOT_LOCK_CLASS } from "./locks.js";
import { NOTIFY_PLANNER } from "./notify.js";
import { ownWorkflowTasksSql } from "./schedule.js";

/** One series of slots: a task name and an interval (calendar intervals in a time zone). */
export interface SlotSeries {
  readonly taskName: string;
  readonly interval: SlotInterval;
  readonly timeZone: string;
}

/** How an engine-run series schedules a slot's task. */
export interface SlotTasks {
  /** Run slots one after another in time order (affinity on the series). */
  readonly ordered: boolean;
}

export interface SlotRow {
  readonly id: string;
  readonly slot_start: Date;
  readonly slot_end: Date;
  readonly status: "AVAILABLE" | "COMPLETE" | "SKIP" | "FAILED";
  readonly generation: number;
  readonly attempts: number;
  readonly message: string | null;
  readonly task_id: string | null;
  readonly completed_at: Date | null;
  readonly completed_by: string | null;
  readonly history: unknown[] | null;
  /** Coverage only: an engine-run slot's task is running, or a pull-mode caller holds the slot. */
  readonly acquired?: boolean;
}

const SLOT_COLUMNS = `id::text AS id, slot_start, slot_end, status, generation, attempts, message, task_id,
  completed_at, completed_by, history`;

/** Slot SQL: ensure, acquire and finish (pull mode), coverage, re-open. */
export class SlotStore {
  private readonly calendarSql: string;
  private readonly ensureSql: string;
  private readonly acquireAscSql: string;
  private readonly acquireDescSql: string;
  private readonly finishSql: string;
  private readonly coverageSql: string;
  private readonly reopenPickSql: string;
  private readonly reopenSql: string;
  private readonly reviveSql: string;
  private readonly modeSql: string;

  constructor(s: string, channel: string) {
    // How a series is run, for callers without its definition (the CLI): its
    // newest slot with a task (engine-run), and whether that task carries the
    // series' affinity (ordered); a node's published cron says so too.
    this.modeSql = `
      SELECT EXISTS (SELECT 1 FROM ${s}.slots WHERE task_name = $1 AND every = $2 AND task_id IS NOT NULL) AS engine_run,
             EXISTS (SELECT 1 FROM ${s}.nodes WHERE (task_crons -> $1 -> 'slot' ->> 'every') IS NOT NULL
                      AND (task_crons -> $1 -> 'slot' ->> 'ordered')::boolean) OR coalesce((
               SELECT t.affinity = $3 FROM ${s}.slots sl JOIN ${s}.tasks t ON t.id = sl.task_id
                WHERE sl.task_name = $1 AND sl.every = $2 AND sl.task_id IS NOT NULL
                ORDER BY sl.slot_start DESC LIMIT 1), false) AS ordered`;
    // Calendar slots in a time zone, computed by the server's tz database: local
    // midnights (or Mondays) converted back to instants, so a day across a
    // daylight-saving change is 23 or 25 hours long.
    this.calendarSql = `
      SELECT (d AT TIME ZONE $3) AS slot_start, ((d + $4::interval) AT TIME ZONE $3) AS slot_end
        FROM generate_series(date_trunc($5, $1::timestamptz AT TIME ZONE $3), $2::timestamptz AT TIME ZONE $3, $4::interval) d
       WHERE (d AT TIME ZONE $3) < $2::timestamptz
       LIMIT $6`;
    // Inserts the missing slots; in engine-run mode each new slot gets a task
    // in a workflow of its own, in the same statement (ON CONFLICT: concurrent
    // ensures of overlapping ranges create each slot, and its task, once).
    this.ensureSql = `
      WITH ins AS (
        INSERT INTO ${s}.slots (task_name, every, slot_start, slot_end, task_id)
        SELECT $1, $2, x.slot_start, x.slot_end, x.task_id
          FROM unnest($3::timestamptz[], $4::timestamptz[], $5::text[]) AS x(slot_start, slot_end, task_id)
        ON CONFLICT DO NOTHING
        RETURNING task_id, slot_start, slot_end
      ), ${slotTasks(s, "$1", "$6")}
      SELECT (SELECT count(*)::int FROM ins) AS inserted,
             (SELECT count(*) FROM t) AS tasks,
             (SELECT pg_notify('${channel}', '${NOTIFY_PLANNER}') FROM ins WHERE task_id IS NOT NULL LIMIT 1) AS notified`;
    const acquire = (order: "ASC" | "DESC") => `
      WITH picked AS (
        SELECT ${SLOT_COLUMNS} FROM ${s}.slots
         WHERE task_name = $1 AND every = $2 AND status = ANY($3::text[]) AND task_id IS NULL
           AND slot_start >= $4 AND slot_start < $5
         ORDER BY slot_start ${order} LIMIT 1
         FOR UPDATE SKIP LOCKED
      )
      SELECT picked.*, pg_advisory_xact_lock(${SLOT_LOCK_BASE} | picked.id::bigint) IS NULL AS locked FROM picked`;
    this.acquireAscSql = acquire("ASC");
    this.acquireDescSql = acquire("DESC");
    // $3 status; a failure ($3 = AVAILABLE) counts an attempt and becomes FAILED
    // once attempts reach $6 (0: never).
    this.finishSql = `
      UPDATE ${s}.slots
         SET status = CASE WHEN $3 = 'AVAILABLE' AND $6::int > 0 AND attempts + 1 >= $6::int THEN 'FAILED' ELSE $3 END,
             attempts = attempts + ($3 = 'AVAILABLE')::int,
             message = $4,
             completed_at = CASE WHEN $3 IN ('COMPLETE', 'SKIP') THEN now() END,
             completed_by = CASE WHEN $3 IN ('COMPLETE', 'SKIP') THEN $5 END
       WHERE id = $1::bigint AND generation = $2 AND status = 'AVAILABLE'
      RETURNING status`;
    // Every slot of the range, with "acquired": an engine-run slot whose task is
    // running, or a pull-mode slot whose advisory lock someone holds (pg_locks).
    this.coverageSql = `
      WITH held AS (
        SELECT (l.classid::bigint << 32 | l.objid::bigint) - ${SLOT_LOCK_BASE} AS id FROM pg_locks l
         WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND (l.classid::bigint << 32 | l.objid::bigint) >> 40 = ${SLOT_LOCK_CLASS}
      )
      SELECT ${SLOT_COLUMNS},
             (sl.status = 'AVAILABLE' AND (
               EXISTS (SELECT 1 FROM held WHERE held.id = sl.id)
               OR EXISTS (SELECT 1 FROM ${s}.tasks t WHERE t.id = sl.task_id AND t.state = 'RUNNING'))) AS acquired
        FROM ${s}.slots sl
       WHERE task_name = $1 AND every = $2 AND slot_start >= $3 AND slot_start < $4
       ORDER BY slot_start`;
    this.reviveSql = `UPDATE ${s}.slots SET status = 'AVAILABLE' WHERE id = $1::bigint AND status = 'FAILED'`;
    this.reopenPickSql = `SELECT id::text AS id, slot_start, slot_end FROM ${s}.slots
      WHERE task_name = $1 AND every = $2 AND slot_start >= $3 AND slot_start < $4 AND status = ANY($5::text[])
      ORDER BY slot_start FOR UPDATE`;
    // A re-opened slot keeps the story of its earlier generation and, in
    // engine-run mode, gets a new task: the old task, if it still ran, can no
    // longer complete it (the slot points at the new task).
    this.reopenSql = `
      WITH ins AS (
        UPDATE ${s}.slots sl
           SET history = coalesce(sl.history, '[]'::jsonb) || jsonb_build_array(jsonb_build_object(
                 'generation', sl.generation, 'status', sl.status, 'completedAt', sl.completed_at,
                 'completedBy', sl.completed_by, 'message', sl.message, 'attempts', sl.attempts, 'reopenedAt', now())),
               generation = sl.generation + 1, status = 'AVAILABLE', attempts = 0, message = NULL,
               completed_at = NULL, completed_by = NULL,
               task_id = ($2::jsonb ->> sl.id::text)
         WHERE sl.id = ANY($1::bigint[])
        RETURNING sl.task_id, sl.slot_start, sl.slot_end
      ), ${slotTasks(s, "$3", "$4")}
      SELECT (SELECT count(*)::int FROM ins) AS reopened, (SELECT count(*) FROM t) AS tasks,
             (SELECT pg_notify('${channel}', '${NOTIFY_PLANNER}') FROM ins WHERE task_id IS NOT NULL LIMIT 1) AS notified`;
  }

  /** The slots of `series` covering [from, to): starts and ends. */
  async boundaries(q: Queryable, series: SlotSeries, from: Date, to: Date): Promise<{ start: Date; end: Date }[]> {
    const iv = series.interval;
    if (iv.kind === "fixed") {
      return fixedSlotStarts(iv.ms, from, to).map((t) => ({ start: new Date(t), end: new Date(t + iv.ms) }));
    }
    const { rows } = await q.query<{ slot_start: Date; slot_end: Date }>(this.calendarSql, [
      from,
      to,
      series.timeZone,
      iv.unit === "day" ? "1 day" : "1 week",
      iv.unit,
      MAX_SLOTS_PER_CALL + 1,
    ]);
    if (rows.length > MAX_SLOTS_PER_CALL) {
      throw new InvalidRangeError(`more than ${MAX_SLOTS_PER_CALL} slots; at most that many per call`);
    }
    return rows.map((r) => ({ start: r.slot_start, end: r.slot_end }));
  }

  /** Creates the missing slots of [from, to); with `tasks`, each new slot's task too. Returns how many were created. */
  async ensure(
    q: Queryable,
    series: SlotSeries,
    from: Date,
    to: Date,
    tasks: SlotTasks | null,
    /** Only slots that have ended by then (a cron filling the slots that just closed). */
    closedBy?: Date,
  ): Promise<number> {
    let slots = await this.boundaries(q, series, from, to);
    if (closedBy) slots = slots.filter((x) => x.end.getTime() <= closedBy.getTime());
    if (slots.length === 0) return 0;
    const { rows } = await q.query<{ inserted: number }>(this.ensureSql, [
      series.taskName,
      series.interval.key,
      slots.map((x) => x.start),
      slots.map((x) => x.end),
      // Ids carry the slot's start as their time: older slots sort (and are planned) first.
      slots.map((x) => (tasks ? newIdAt(x.start.getTime()) : null)),
      tasks?.ordered ? seriesAffinity(series) : null,
    ]);
    return rows[0]?.inserted ?? 0;
  }

  /** Pull mode: locks the first matching slot for the caller's transaction, or returns undefined. */
  async acquire(
    tx: Queryable,
    series: SlotSeries,
    statuses: readonly string[],
    from: Date,
    to: Date,
    order: "oldest" | "newest",
  ): Promise<SlotRow | undefined> {
    const sql = order === "oldest" ? this.acquireAscSql : this.acquireDescSql;
    const { rows } = await tx.query<SlotRow>(sql, [series.taskName, series.interval.key, statuses, from, to]);
    return rows[0];
  }

  /** Pull mode: finishes an acquired slot; returns its new status, or undefined if it was not AVAILABLE at that generation. */
  async finish(
    tx: Queryable,
    id: string,
    generation: number,
    status: "COMPLETE" | "SKIP" | "AVAILABLE",
    message: string | null,
    workerName: string | null,
    maxAttempts: number,
  ): Promise<string | undefined> {
    const { rows } = await tx.query<{ status: string }>(this.finishSql, [
      id,
      generation,
      status,
      message,
      workerName,
      maxAttempts,
    ]);
    return rows[0]?.status;
  }

  /** Pull mode: a FAILED slot taken again is AVAILABLE while its taker's transaction holds it. */
  async revive(tx: Queryable, id: string): Promise<void> {
    await tx.query(this.reviveSql, [id]);
  }

  /** Engine-run (slots have tasks) and ordered, or null for a pull-mode series (or one with no slots yet). */
  async mode(q: Queryable, series: SlotSeries): Promise<SlotTasks | null> {
    const { rows } = await q.query<{ engine_run: boolean; ordered: boolean }>(this.modeSql, [
      series.taskName,
      series.interval.key,
      seriesAffinity(series),
    ]);
    return rows[0]?.engine_run ? { ordered: rows[0].ordered } : null;
  }

  async coverage(q: Queryable, series: SlotSeries, from: Date, to: Date): Promise<SlotRow[]> {
    return (await q.query<SlotRow>(this.coverageSql, [series.taskName, series.interval.key, from, to])).rows;
  }

  /**
   * Re-opens the finished slots (COMPLETE, SKIP, FAILED by default) of [from, to)
   * for reprocessing. Must run inside a transaction. Returns how many.
   */
  async reopen(
    tx: Queryable,
    series: SlotSeries,
    from: Date,
    to: Date,
    statuses: readonly string[],
    tasks: SlotTasks | null,
  ): Promise<number> {
    const { rows: picked } = await tx.query<{ id: string; slot_start: Date }>(this.reopenPickSql, [
      series.taskName,
      series.interval.key,
      from,
      to,
      statuses,
    ]);
    if (picked.length === 0) return 0;
    if (picked.length > MAX_SLOTS_PER_CALL) throw new InvalidRangeError(`at most ${MAX_SLOTS_PER_CALL} slots per call`);
    const taskIds: Record<string, string> = {};
    if (tasks) for (const p of picked) taskIds[p.id] = newIdAt(p.slot_start.getTime());
    const { rows } = await tx.query<{ reopened: number }>(this.reopenSql, [
      picked.map((p) => p.id),
      JSON.stringify(taskIds),
      series.taskName,
      tasks?.ordered ? seriesAffinity(series) : null,
    ]);
    return rows[0]?.reopened ?? 0;
  }
}

/** Ordered series run under one affinity key: one slot at a time, oldest first (ids carry the slot time). */
function seriesAffinity(series: SlotSeries): string {
  return `${series.taskName}/${series.interval.key}`;
}

/** A slot's task: input { start, end }; \`affinity\` (an SQL parameter) orders the series. */
function slotTasks(s: string, taskName: string, affinity: string): string {
  return ownWorkflowTasksSql(
    s,
    "ins",
    taskName,
    "jsonb_build_object('start', slot_start, 'end', slot_end)",
    `${affinity}::text`,
  );
}
