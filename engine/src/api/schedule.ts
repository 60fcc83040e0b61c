import { createHash } from "node:crypto";
import { type Span, SpanStatusCode } from "@opentelemetry/api";
import { type pg, type Queryable, withSavepoint, withTransaction } from "../db/pg.js";
import { IdempotencyConflictError } from "../errors.js";
import type { PlannerNudge } from "../services/listener.js";
import type { Store } from "../store/index.js";
import { NOTIFY_PLANNER } from "../store/notify.js";
import type { NewTaskRow } from "../store/types.js";
import type { Tracing } from "../telemetry/traces.js";

/** A join's own row: the API fills in its workflow, pending count and trace context. */
export type NewJoinRow = Omit<NewTaskRow, "workflowId" | "joinPending" | "traceContext">;

/**
 * Writing new work: tasks and joins, in the caller's transaction (inside a
 * savepoint, the planner notified when it commits) or in one of the API's own,
 * each task with a publish span when a tracer provider is set.
 */
export class ScheduleApi {
  constructor(
    private readonly store: Store,
    private readonly pool: pg.Pool,
    private readonly nudge: PlannerNudge,
    private readonly tracing: Tracing | undefined,
    private readonly idempotencyWindowMs: number,
  ) {}

  /**
   * Writes `rows`. `newWorkflows` holds the ids of rows that start a workflow
   * (their root); rows of existing workflows need the workflow's row locked, so
   * they are written in a transaction. Rows that only start workflows are one
   * statement and need none.
   */
  async tasks(rows: readonly NewTaskRow[], newWorkflows: ReadonlySet<string>, tx?: Queryable): Promise<void> {
    if (rows.length === 0) return;
    const store = this.store.schedule;
    const spans = this.tracing ? publishSpans(this.tracing, rows) : undefined;
    const written = spans ? spans.rows : rows;
    try {
      if (tx) {
        await withSavepoint(tx, () => store.insert(tx, written, newWorkflows));
        // Delivered at the caller's commit: the planner looks when the rows are visible.
        await tx.query("SELECT pg_notify($1, $2)", [this.store.channel, NOTIFY_PLANNER]);
      } else if (newWorkflows.size < rows.length) {
        await withTransaction(this.pool, (c) => store.insert(c, written, newWorkflows));
        this.nudge.nudge();
      } else {
        await store.insert(this.pool, written, newWorkflows);
        this.nudge.nudge();
      }
    } catch (error) {
      if (spans) endPublishSpans(spans.spans, error);
      throw error;
    }
    if (spans) endPublishSpans(spans.spans, undefined);
  }

  /**
   * Writes those of \`rows\` (one task name, each the root of a new solo
   * workflow) whose idempotency key (\`keys\`, at the same positions, distinct)
   * no unexpired earlier schedule holds; returns each row's task and workflow:
   * its own, or those of the key's first schedule. A key held for a different
   * input throws IdempotencyConflictError and nothing is written: a batch
   * runs in a transaction (or the caller's, in a savepoint) so that its other
   * keys are not claimed either. One key outside a transaction is one statement.
   */
  async keyed(
    rows: readonly NewTaskRow[],
    keys: readonly string[],
    tx?: Queryable,
  ): Promise<{ taskId: string; workflowId: string }[]> {
    if (rows.length === 0) return [];
    const store = this.store.schedule;
    const hashes = rows.map((r) => createHash("sha256").update(r.input).digest("hex"));
    const spans = this.tracing ? publishSpans(this.tracing, rows) : undefined;
    const written = spans ? spans.rows : rows;
    let wrote = false;
    const work = async (q: Queryable) => {
      wrote = false;
      const holders = await store.insertKeyed(q, written, keys, hashes, this.idempotencyWindowMs);
      const byKey = new Map(holders.map((h) => [h.key, h]));
      return rows.map((r, i) => {
        const key = keys[i] as string;
        const h = byKey.get(key);
        if (!h) throw new Error(`idempotency key ${JSON.stringify(key)} missing from the statement's result`);
        if (h.task_id === r.id) wrote = true;
        else if (h.input_hash !== hashes[i])
          throw new IdempotencyConflictError(r.taskName, key, h.task_id, h.workflow_id);
        return { taskId: h.task_id, workflowId: h.workflow_id };
      });
    };
    let refs: { taskId: string; workflowId: string }[];
    try {
      if (tx) refs = await withSavepoint(tx, () => work(tx));
      else if (rows.length === 1) refs = await work(this.pool);
      else refs = await withTransaction(this.pool, (c) => work(c));
    } catch (error) {
      if (spans) endPublishSpans(spans.spans, error);
      throw error;
    }
    if (spans) {
      // A repeat published nothing new: its span says which task holds the key.
      refs.forEach((ref, i) => {
        if (ref.taskId !== rows[i]?.id) spans.spans[i]?.setAttribute("weft.idempotency.task_id", ref.taskId);
      });
      endPublishSpans(spans.spans, undefined);
    }
    if (wrote) {
      if (tx) await tx.query("SELECT pg_notify($1, $2)", [this.store.channel, NOTIFY_PLANNER]);
      else this.nudge.nudge();
    }
    return refs;
  }

  /**
   * Writes a join over existing tasks `upstream` (of one workflow, checked and
   * locked by the join store) and its edges; returns the workflow's id.
   */
  async join(row: NewJoinRow, upstream: readonly string[], tx?: Queryable): Promise<string> {
    const { store, tracing } = this;
    let published: { span: Span; traceContext: string } | undefined;
    const work = async (q: Queryable) => {
      const { workflowId, pending } = await store.joins.prepare(q, row.id, upstream);
      published ??= tracing?.publish({ id: row.id, workflowId, taskName: row.taskName, parentId: row.parentId });
      await store.schedule.insert(
        q,
        [{ ...row, workflowId, joinPending: pending, traceContext: published?.traceContext ?? null }],
        new Set(),
      );
      await store.schedule.insertEdges(q, [{ joinId: row.id, upstream, parentId: row.id }]);
      return workflowId;
    };
    let workflowId: string;
    try {
      workflowId = tx ? await withSavepoint(tx, () => work(tx)) : await withTransaction(this.pool, (c) => work(c));
    } catch (error) {
      if (published) endPublishSpans([published.span], error);
      throw error;
    }
    if (published) endPublishSpans([published.span], undefined);
    if (tx) await tx.query("SELECT pg_notify($1, $2)", [this.store.channel, NOTIFY_PLANNER]);
    else this.nudge.nudge();
    return workflowId;
  }
}

/** Publish spans for `rows` (children of the active context), and the rows carrying their contexts. */
function publishSpans(tracing: Tracing, rows: readonly NewTaskRow[]): { rows: NewTaskRow[]; spans: Span[] } {
  const spans: Span[] = [];
  const traced = rows.map((r) => {
    const { span, traceContext } = tracing.publish(r);
    spans.push(span);
    return { ...r, traceContext };
  });
  return { rows: traced, spans };
}

/** Ends publish spans once their tasks are written, or not (ERROR with the exception). */
function endPublishSpans(spans: readonly Span[], error: unknown): void {
  for (const span of spans) {
    if (error !== undefined) {
      span.recordException(error instanceof Error ? error : String(error));
      span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
    }
    span.end();
  }
}
