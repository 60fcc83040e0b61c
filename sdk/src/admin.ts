import {
  CronSchedule,
  type Engine,
  InvalidArgumentError,
  isUlid,
  MAX_THROUGHPUT_WINDOW_SECONDS,
  type NodeStatusRecord,
  type TaskErrorInfo,
  TaskNotFoundError,
  type TaskRecord,
  validateTaskName,
  WorkflowNotFoundError,
  type WorkflowRecord,
} from "@weft/engine";
import { encodeTime } from "ulid";
import { type AttemptRecord, toAttempt } from "./dead-letters.js";
import { validateWorkflowId } from "./options.js";
import type { TaskState, TaskStatus, VirtualQueue, WorkflowState, WorkflowStatus } from "./types.js";

/** Operator reads behind WeftClient's listings (see AdminStore for their SQL and bounds). */

export const WORKFLOW_STATES: readonly WorkflowState[] = ["RUNNING", "COMPLETED", "FAILED", "CANCELLED"];
export const TASK_STATES: readonly TaskState[] = ["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"];
export const MAX_PAGE_SIZE = 500;
export const DEFAULT_PAGE_SIZE = 50;
/** Primary-key entries a workflow listing reads per source and call (see AdminStore.listWorkflows). */
const LIST_SCAN = 5_000;

/** A page of a listing: pass `nextCursor` back as `cursor` for the next one; null means the end. */
export interface Page<T> {
  readonly items: T[];
  readonly nextCursor: string | null;
}

/** A workflow in a listing: its status and the name of its root task (null once the root is purged). */
export interface WorkflowSummary extends WorkflowStatus {
  readonly rootTaskName: string | null;
}

export interface WorkflowListOptions {
  /** Only workflows in this status (or these). */
  readonly status?: WorkflowState | readonly WorkflowState[];
  /** Only workflows whose root task has this name. */
  readonly rootTaskName?: string;
  /** Created at or after this time (the creation time in the workflow's id: the scheduling process's clock, ms). */
  readonly createdAfter?: Date;
  /** Created before this time (same clock). */
  readonly createdBefore?: Date;
  /** At most this many per page: 1 to 500, default 50. */
  readonly limit?: number;
  /** The `nextCursor` of the previous page. */
  readonly cursor?: string;
}

export interface TaskPageOptions {
  /** At most this many per page: 1 to 500, default 50. */
  readonly limit?: number;
  /** The `nextCursor` of the previous page. */
  readonly cursor?: string;
  /** Only tasks in this state. */
  readonly state?: TaskState;
}

export interface QueueStats {
  /** Unfinished tasks by virtual queue and task name (finished tasks, queue DELETED, are not counted). */
  readonly queues: { readonly queue: VirtualQueue; readonly taskName: string; readonly count: number }[];
  /** Per task name with tasks waiting for a node: how long the oldest has been runnable. */
  readonly readyLag: { readonly taskName: string; readonly oldestReadyAgeMs: number }[];
  /** PARKED tasks by reason (RUN_AFTER, AFFINITY, JOIN, ...). */
  readonly parked: { readonly reason: string; readonly count: number }[];
}

export const DEFAULT_THROUGHPUT_WINDOW_SECONDS = 900;

export interface ThroughputOptions {
  /** The last this many seconds: 1 to 3600, default 900 (15 minutes). */
  readonly windowSeconds?: number;
}

/** The tasks that finished in one second, by final state. */
export interface ThroughputBucket {
  /** The start of the second (database clock). */
  readonly at: Date;
  readonly completed: number;
  readonly failed: number;
  readonly cancelled: number;
}

/** Tasks finished per second over a window: one bucket per second, oldest first, the current second last. */
export interface Throughput {
  /** The start of the first bucket. */
  readonly from: Date;
  /** The end of the last bucket (exclusive): the current second's end, which is still being counted. */
  readonly to: Date;
  readonly buckets: ThroughputBucket[];
}

/** A registered node, as the cluster sees it now. */
export interface NodeStatus {
  readonly id: string;
  readonly appName: string;
  readonly host: string;
  readonly pid: number;
  readonly capacity: number;
  readonly taskNames: readonly string[];
  readonly cpuLoad: number | null;
  readonly draining: boolean;
  readonly startedAt: Date;
  readonly heartbeatAt: Date;
  /** Time since its last heartbeat, on the database clock. */
  readonly heartbeatAgeMs: number;
  /** Whether it is the planner's leader. */
  readonly isLeader: boolean;
  /** Tasks assigned to it now (running, or waiting in the node for a free slot). */
  readonly running: number;
}

/** A cron schedule as the live nodes publish it (the newest node's wins), with its ticks. */
export interface CronStatus {
  readonly taskName: string;
  readonly pattern: string;
  readonly timezone: string | null;
  /** The newest recorded tick (fired or skipped), or null. */
  readonly lastTickAt: Date | null;
  /** The next tick after now (database clock), or null if the schedule never fires again. */
  readonly nextTickAt: Date | null;
}

/** The slot a slot task ran (or runs) for. */
export interface TaskSlot {
  readonly taskName: string;
  readonly every: string;
  readonly start: Date;
  readonly end: Date;
  readonly status: string;
  readonly generation: number;
}

function validateLimit(limit: unknown, argument = "limit"): number {
  const n = limit ?? DEFAULT_PAGE_SIZE;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > MAX_PAGE_SIZE) {
    throw new InvalidArgumentError(argument, `expected an integer from 1 to ${MAX_PAGE_SIZE}, got ${String(limit)}`);
  }
  return n;
}

function validateDate(d: unknown, argument: string): Date | undefined {
  if (d === undefined) return undefined;
  if (!(d instanceof Date) || Number.isNaN(d.getTime()))
    throw new InvalidArgumentError(argument, "expected a valid Date");
  const ms = d.getTime();
  if (ms < 0 || ms > 2 ** 48 - 1) throw new InvalidArgumentError(argument, "expected a date between 1970 and 10889");
  return d;
}

function checkKeys(options: object, known: readonly string[], where: string): void {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new InvalidArgumentError(`${where}.${key}`, `unknown option; known: ${known.join(", ")}`);
    }
  }
}

// Cursors are opaque to callers: a version-and-kind tag and an id, base64url.
function encodeCursor(kind: "w" | "t", id: string): string {
  return Buffer.from(`${kind}1:${id}`, "utf8").toString("base64url");
}

function decodeCursor(kind: "w" | "t", cursor: unknown, argument: string): string {
  if (typeof cursor !== "string" || cursor.length === 0 || cursor.length > 64 || !/^[A-Za-z0-9_-]+$/.test(cursor)) {
    throw new InvalidArgumentError(argument, "expected a cursor returned as nextCursor by the previous page");
  }
  const text = Buffer.from(cursor, "base64url").toString("utf8");
  const prefix = `${kind}1:`;
  const id = text.slice(prefix.length);
  if (!text.startsWith(prefix) || !isUlid(id)) {
    throw new InvalidArgumentError(argument, "not a cursor of this listing (expected nextCursor of the previous page)");
  }
  return id;
}

/** The smallest id whose time part is `d`: ULIDs sort by their creation time. */
function firstIdAt(d: Date): string {
  return `${encodeTime(d.getTime(), 10)}0000000000000000`;
}

export async function listWorkflows(engine: Engine, options: WorkflowListOptions = {}): Promise<Page<WorkflowSummary>> {
  if (typeof options !== "object" || options === null) throw new InvalidArgumentError("filter", "expected an object");
  checkKeys(options, ["status", "rootTaskName", "createdAfter", "createdBefore", "limit", "cursor"], "filter");
  const statuses =
    options.status === undefined ? undefined : Array.isArray(options.status) ? options.status : [options.status];
  for (const [i, s] of (statuses ?? []).entries()) {
    if (!WORKFLOW_STATES.includes(s as WorkflowState)) {
      throw new InvalidArgumentError(
        Array.isArray(options.status) ? `filter.status[${i}]` : "filter.status",
        `expected one of ${WORKFLOW_STATES.join(", ")}, got ${JSON.stringify(s)}`,
      );
    }
  }
  if (statuses !== undefined && statuses.length === 0) {
    throw new InvalidArgumentError("filter.status", "expected at least one status");
  }
  if (options.rootTaskName !== undefined) validateTaskName(options.rootTaskName);
  const after = validateDate(options.createdAfter, "filter.createdAfter");
  const before = validateDate(options.createdBefore, "filter.createdBefore");
  if (after && before && before.getTime() <= after.getTime()) {
    throw new InvalidArgumentError("filter.createdBefore", "must be later than createdAfter");
  }
  const limit = validateLimit(options.limit, "filter.limit");
  const cursor = options.cursor === undefined ? undefined : decodeCursor("w", options.cursor, "filter.cursor");
  const beforeId = before ? firstIdAt(before) : undefined;
  // Below both the cursor and the end of the range: the smaller of the two.
  const belowId = [cursor, beforeId].filter((id): id is string => id !== undefined).sort()[0];
  const page = await engine.api.admin.listWorkflows(
    {
      statuses: statuses as readonly string[] | undefined,
      rootTaskName: options.rootTaskName,
      minId: after ? firstIdAt(after) : undefined,
      belowId,
    },
    limit,
    LIST_SCAN,
  );
  return {
    items: page.rows.map((r) => ({ ...toWorkflowStatus(r), rootTaskName: r.root_task_name })),
    nextCursor: page.next === null ? null : encodeCursor("w", page.next),
  };
}

export async function getWorkflowTasksPage(
  engine: Engine,
  workflowId: string,
  options: TaskPageOptions = {},
): Promise<Page<TaskStatus>> {
  validateWorkflowId(workflowId);
  if (typeof options !== "object" || options === null) throw new InvalidArgumentError("options", "expected an object");
  checkKeys(options, ["limit", "cursor", "state"], "options");
  const limit = validateLimit(options.limit, "options.limit");
  const afterId = options.cursor === undefined ? undefined : decodeCursor("t", options.cursor, "options.cursor");
  if (options.state !== undefined && !TASK_STATES.includes(options.state)) {
    throw new InvalidArgumentError(
      "options.state",
      `expected one of ${TASK_STATES.join(", ")}, got ${JSON.stringify(options.state)}`,
    );
  }
  const api = engine.api;
  // One more than asked: whether another page follows, without a second query.
  const rows = await api.admin.workflowTasksPage(workflowId, {
    afterId,
    state: options.state,
    limit: limit + 1,
  });
  if (rows.length === 0 && afterId === undefined && !(await api.read.workflow(workflowId))) {
    throw new WorkflowNotFoundError(workflowId);
  }
  const more = rows.length > limit;
  const items = rows.slice(0, limit).map(toTaskStatus);
  const last = items[items.length - 1];
  return { items, nextCursor: more && last ? encodeCursor("t", last.id) : null };
}

/** A task's earlier attempts (each failed or lost one: node, start, end, error), oldest first. */
export async function taskAttempts(engine: Engine, taskId: string): Promise<AttemptRecord[]> {
  validateWorkflowId(taskId, "taskId");
  const log = await engine.api.admin.taskAttempts(taskId);
  if (log === null) throw new TaskNotFoundError(taskId);
  return log.map(toAttempt);
}

export async function workflowTaskCounts(engine: Engine, workflowId: string): Promise<Record<TaskState, number>> {
  validateWorkflowId(workflowId);
  const api = engine.api;
  const rows = await api.admin.workflowTaskCounts(workflowId);
  if (rows.length === 0 && !(await api.read.workflow(workflowId))) throw new WorkflowNotFoundError(workflowId);
  const counts = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Record<TaskState, number>;
  for (const r of rows) counts[r.state as TaskState] = r.count;
  return counts;
}

export async function queueStats(engine: Engine): Promise<QueueStats> {
  const rows = await engine.api.admin.queueStats();
  const queues = new Map<string, { queue: VirtualQueue; taskName: string; count: number }>();
  const lag = new Map<string, number>();
  const parked = new Map<string, number>();
  for (const r of rows) {
    const key = `${r.queue}\u0000${r.task_name}`;
    const q = queues.get(key) ?? { queue: r.queue as VirtualQueue, taskName: r.task_name, count: 0 };
    q.count += r.count;
    queues.set(key, q);
    if (r.oldest_ready_age_ms !== null) {
      lag.set(r.task_name, Math.max(lag.get(r.task_name) ?? 0, Math.max(0, r.oldest_ready_age_ms)));
    }
    if (r.queue === "PARKED")
      parked.set(r.park_reason ?? "UNKNOWN", (parked.get(r.park_reason ?? "UNKNOWN") ?? 0) + r.count);
  }
  return {
    queues: [...queues.values()],
    readyLag: [...lag]
      .map(([taskName, oldestReadyAgeMs]) => ({ taskName, oldestReadyAgeMs }))
      .sort((a, b) => b.oldestReadyAgeMs - a.oldestReadyAgeMs),
    parked: [...parked].map(([reason, count]) => ({ reason, count })).sort((a, b) => a.reason.localeCompare(b.reason)),
  };
}

export async function throughput(engine: Engine, options: ThroughputOptions = {}): Promise<Throughput> {
  if (typeof options !== "object" || options === null) throw new InvalidArgumentError("options", "expected an object");
  checkKeys(options, ["windowSeconds"], "options");
  const w = options.windowSeconds ?? DEFAULT_THROUGHPUT_WINDOW_SECONDS;
  if (typeof w !== "number" || !Number.isInteger(w) || w < 1 || w > MAX_THROUGHPUT_WINDOW_SECONDS) {
    throw new InvalidArgumentError(
      "options.windowSeconds",
      `expected an integer from 1 to ${MAX_THROUGHPUT_WINDOW_SECONDS}, got ${String(options.windowSeconds)}`,
    );
  }
  const buckets = (await engine.api.admin.throughput(w)).map((r) => ({
    at: r.at,
    completed: r.completed,
    failed: r.failed,
    cancelled: r.cancelled,
  }));
  const first = buckets[0]?.at ?? new Date();
  const last = buckets[buckets.length - 1]?.at ?? first;
  return { from: first, to: new Date(last.getTime() + 1000), buckets };
}

export async function taskSlot(engine: Engine, taskId: string): Promise<TaskSlot | null> {
  validateWorkflowId(taskId, "taskId");
  const r = await engine.api.admin.taskSlot(taskId);
  if (!r) return null;
  return {
    taskName: r.task_name,
    every: r.every,
    start: r.slot_start,
    end: r.slot_end,
    status: r.status,
    generation: r.generation,
  };
}

export async function listNodes(engine: Engine): Promise<NodeStatus[]> {
  return (await engine.api.admin.nodes()).map(toNodeStatus);
}

function toNodeStatus(r: NodeStatusRecord): NodeStatus {
  return {
    id: r.id,
    appName: r.app_name,
    host: r.host,
    pid: r.pid,
    capacity: r.capacity,
    taskNames: r.task_names,
    cpuLoad: r.cpu_load,
    draining: r.draining,
    startedAt: r.started_at,
    heartbeatAt: r.heartbeat_at,
    heartbeatAgeMs: Math.round(r.heartbeat_age_ms),
    isLeader: r.is_leader,
    running: r.running,
  };
}

export async function listCron(engine: Engine): Promise<CronStatus[]> {
  const admin = engine.api.admin;
  const specs = await admin.cronSpecs();
  if (specs.size === 0) return [];
  const entries = [...specs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const { ticks, now } = await admin.cronLastTicks(entries.map(([name]) => name));
  return entries.map(([taskName, spec]) => {
    let nextTickAt: Date | null = null;
    try {
      nextTickAt = new CronSchedule(spec.expression, spec.timeZone).next(now);
    } catch {
      // A spec this version cannot parse (published by another version): no next tick to show.
    }
    return {
      taskName,
      pattern: spec.expression,
      timezone: spec.timeZone ?? null,
      lastTickAt: ticks.get(taskName) ?? null,
      nextTickAt,
    };
  });
}

export function toTaskStatus(row: TaskRecord): TaskStatus {
  return {
    id: row.id,
    workflowId: row.workflow_id,
    parentId: row.parent_id,
    name: row.task_name,
    state: row.state as TaskState,
    queue: row.queue as VirtualQueue,
    parkReason: row.park_reason,
    attempt: row.attempt,
    priority: row.priority,
    input: row.input,
    result: row.result ?? null,
    error: (row.error as TaskErrorInfo | null) ?? null,
    node: row.assigned_node,
    runAfter: row.run_after,
    createdAt: row.created_at,
    assignedAt: row.assigned_at,
    finishedAt: row.finished_at,
  };
}

export function toWorkflowStatus(row: WorkflowRecord): WorkflowStatus {
  return {
    id: row.id,
    status: row.status as WorkflowState,
    rootTaskId: row.root_task_id,
    pendingTasks: row.pending_tasks,
    totalTasks: row.total_tasks,
    failedTasks: row.failed_tasks,
    createdAt: row.created_at,
    finishedAt: row.finished_at,
  };
}
