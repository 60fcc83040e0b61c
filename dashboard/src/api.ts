// The dashboard's only data source: the /v1 HTTP API, with the token kept in sessionStorage.

const TOKEN_KEY = "weft.token";

/** The prefix the API is mounted under, written into index.html by the server. */
function apiBase(): string {
  const meta = document.querySelector('meta[name="weft-api-base"]');
  const value = meta?.getAttribute("content") ?? "";
  return value === "__WEFT_API_BASE__" ? "" : value;
}

export const base = apiBase();

export function getToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}
export function setToken(token: string | null): void {
  if (token === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, token);
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const unauthorizedHandlers = new Set<() => void>();
export function onUnauthorized(handler: () => void): () => void {
  unauthorizedHandlers.add(handler);
  return () => unauthorizedHandlers.delete(handler);
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const token = getToken();
  return { ...extra, ...(token ? { authorization: `Bearer ${token}` } : {}) };
}

export async function api<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const response = await fetch(`${base}${path}`, {
    method: init.method ?? "GET",
    headers: headers(init.body !== undefined ? { "content-type": "application/json" } : {}),
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
  });
  const text = await response.text();
  const body = text === "" ? null : (JSON.parse(text) as unknown);
  if (!response.ok) {
    const error = (body as { error?: { code?: string; message?: string } } | null)?.error;
    if (response.status === 401) for (const h of unauthorizedHandlers) h();
    throw new ApiError(response.status, error?.code ?? "HTTP_ERROR", error?.message ?? `HTTP ${response.status}`);
  }
  return body as T;
}

/** A query string from the defined values. */
export function qs(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s === "" ? "" : `?${s}`;
}

/**
 * Server-sent events over fetch (EventSource cannot send an Authorization
 * header): calls onEvent for each event until stop() or the stream ends.
 */
export function subscribe(
  path: string,
  onEvent: (event: string, data: string) => void,
  onEnd: (error: unknown) => void,
): () => void {
  const abort = new AbortController();
  (async () => {
    const response = await fetch(`${base}${path}`, {
      headers: headers({ accept: "text/event-stream" }),
      signal: abort.signal,
    });
    if (!response.ok || !response.body) throw new ApiError(response.status, "SSE", `events: HTTP ${response.status}`);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end = buffer.indexOf("\n\n");
      while (end !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message";
        const data: string[] = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length > 0) onEvent(event, data.join("\n"));
        end = buffer.indexOf("\n\n");
      }
    }
  })().then(
    () => onEnd(null),
    (error: unknown) => {
      if (!abort.signal.aborted) onEnd(error);
    },
  );
  return () => abort.abort();
}

// ---------------------------------------------------------------------------
// Wire types (dates are ISO strings), as in the OpenAPI document.

export type TaskState = "PENDING" | "RUNNING" | "COMPLETED" | "FAILED" | "CANCELLED";
export type WorkflowState = "RUNNING" | "COMPLETED" | "FAILED" | "CANCELLED";
export const TASK_STATES: readonly TaskState[] = ["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"];

export interface Whoami {
  scope: "read" | "write";
  auth: "bearer" | "none";
  readOnly: boolean;
}
export interface WorkflowStatus {
  id: string;
  status: WorkflowState;
  rootTaskId: string | null;
  pendingTasks: number;
  totalTasks: number;
  failedTasks: number;
  createdAt: string;
  finishedAt: string | null;
}
export interface WorkflowSummary extends WorkflowStatus {
  rootTaskName: string | null;
}
export type Counts = Record<TaskState, number>;
export interface Snapshot {
  workflow: WorkflowStatus;
  counts: Counts;
}
export interface GraphNode {
  id: string;
  name: string;
  kind: "task" | "join" | "fork";
  state: TaskState;
  queue: string;
  parentId: string | null;
  joinPending: number | null;
  level: number;
}
export interface GraphEdge {
  from: string;
  to: string;
  kind: "spawn" | "join" | "awaits";
}
export interface WorkflowGraph {
  workflowId: string;
  nodes: GraphNode[];
  edges: GraphEdge[];
}
export interface TaskError {
  name: string;
  message: string;
  code?: string;
  [key: string]: unknown;
}
export interface TaskStatus {
  id: string;
  workflowId: string;
  parentId: string | null;
  name: string;
  state: TaskState;
  queue: string;
  parkReason: string | null;
  attempt: number;
  priority: number;
  input: unknown;
  result: unknown;
  error: TaskError | null;
  node: string | null;
  runAfter: string | null;
  createdAt: string;
  assignedAt: string | null;
  finishedAt: string | null;
}
export interface Attempt {
  attempt: number;
  node: string | null;
  startedAt: string | null;
  endedAt: string;
  error: TaskError | null;
}
export interface DeadLetter {
  taskId: string;
  workflowId: string;
  parentId: string | null;
  taskName: string;
  input: unknown;
  error: TaskError | null;
  attempts: Attempt[];
  taskCreatedAt: string;
  failedAt: string;
}
export interface DeadLetterDetail {
  deadLetter: DeadLetter;
  workflow: WorkflowStatus | null;
  slot: { taskName: string; every: string; start: string; end: string; status: string; generation: number } | null;
}
export interface QueueStats {
  queues: { queue: string; taskName: string; count: number }[];
  readyLag: { taskName: string; oldestReadyAgeMs: number }[];
  parked: { reason: string; count: number }[];
}
export interface NodeInfo {
  id: string;
  appName: string;
  host: string;
  pid: number;
  capacity: number;
  taskNames: string[];
  cpuLoad: number | null;
  draining: boolean;
  startedAt: string;
  heartbeatAt: string;
  heartbeatAgeMs: number;
  isLeader: boolean;
  running: number;
}
export interface CronInfo {
  taskName: string;
  pattern: string;
  timezone: string | null;
  lastTickAt: string | null;
  nextTickAt: string | null;
}
export type SlotStatus = "AVAILABLE" | "ACQUIRED" | "COMPLETE" | "SKIP" | "FAILED" | "MISSING";
export interface Slot {
  start: string;
  end: string;
  status: SlotStatus;
  generation: number;
  attempts: number;
  message: string | null;
  completedAt: string | null;
  completedBy: string | null;
}
export interface Coverage {
  from: string;
  to: string;
  every: string;
  slots: Slot[];
  counts: Record<"total" | "complete" | "skipped" | "pending" | "acquired" | "failed" | "missing", number>;
}
export interface ThroughputBucket {
  at: string;
  completed: number;
  failed: number;
  cancelled: number;
}
export interface Throughput {
  from: string;
  to: string;
  buckets: ThroughputBucket[];
}
