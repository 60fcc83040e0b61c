import { render } from "preact";
import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import {
  ApiError,
  type Attempt,
  api,
  type Coverage,
  type CronInfo,
  type DeadLetter,
  type DeadLetterDetail,
  type NodeInfo,
  onUnauthorized,
  type QueueStats,
  qs,
  type Slot,
  type Snapshot,
  setToken,
  subscribe,
  TASK_STATES,
  type TaskError,
  type TaskStatus,
  type Whoami,
  type WorkflowGraph,
  type WorkflowSummary,
} from "./api.js";
import { buildView, type ViewNode } from "./graph.js";

// ---------------------------------------------------------------------------
// Small helpers

/** Each state has a colour AND a symbol and a word: never colour alone. */
const STATE_MARK: Record<string, string> = {
  PENDING: "○",
  RUNNING: "▶",
  COMPLETED: "✓",
  FAILED: "✕",
  CANCELLED: "⊘",
};

function StateBadge({ state }: { state: string }) {
  return (
    <span class={`badge s-${state}`}>
      <span aria-hidden="true">{STATE_MARK[state] ?? "•"}</span> {state}
    </span>
  );
}

function ago(iso: string | null): string {
  if (!iso) return "—";
  const ms = Date.now() - new Date(iso).getTime();
  return `${duration(Math.abs(ms))} ${ms >= 0 ? "ago" : "from now"}`;
}
function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${Math.floor(ms / 3_600_000)} h ${Math.round((ms % 3_600_000) / 60_000)} min`;
}
function time(iso: string | null): string {
  return iso ? new Date(iso).toLocaleString() : "—";
}
function span(from: string | null, to: string | null): string {
  if (!from) return "—";
  return duration((to ? new Date(to).getTime() : Date.now()) - new Date(from).getTime());
}

function Json({ value }: { value: unknown }) {
  return <pre class="json">{value === undefined ? "—" : JSON.stringify(value, null, 2)}</pre>;
}

/** A task's error: its name and message, its code, other fields, the stack as lines. */
function TaskErrorView({ error }: { error: TaskError | null }) {
  if (!error) return <p>—</p>;
  const { name, message, code, stack, ...rest } = error;
  return (
    <div class="task-error">
      <p>
        <strong>{name}</strong>: {message}
        {code ? (
          <>
            {" "}
            <code>{code}</code>
          </>
        ) : null}
      </p>
      {Object.keys(rest).length > 0 && <Json value={rest} />}
      {typeof stack === "string" && <pre class="json">{stack}</pre>}
    </div>
  );
}

function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  const message = error instanceof ApiError ? `${error.code}: ${error.message}` : String(error);
  return (
    <p class="error" role="alert">
      {message}
    </p>
  );
}

/** Loads `load()` now, when `deps` change, and when reload() is called. */
function useData<T>(load: () => Promise<T>, deps: unknown[]): [T | null, unknown, () => void] {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    load().then(
      (d) => {
        if (live) {
          setData(d);
          setError(null);
        }
      },
      (e: unknown) => live && setError(e),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  return [data, error, () => setTick((t) => t + 1)];
}

function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return hash;
}

// ---------------------------------------------------------------------------
// Login

function Login({ onDone, failed }: { onDone: () => void; failed: boolean }) {
  const [value, setValue] = useState("");
  return (
    <main class="login">
      <h1>Weft</h1>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setToken(value.trim());
          onDone();
        }}
      >
        <label for="token">API token</label>
        <p class="hint">
          A bearer token of this server (<code>weft serve --token read:…</code>). It stays in this tab (sessionStorage).
        </p>
        <input
          id="token"
          type="password"
          autocomplete="off"
          value={value}
          onInput={(e) => setValue(e.currentTarget.value)}
          required
        />
        <button type="submit">Sign in</button>
        {failed && (
          <p class="error" role="alert">
            That token was refused.
          </p>
        )}
      </form>
    </main>
  );
}

// ---------------------------------------------------------------------------
// Overview

function Overview() {
  const [data, error, reload] = useData(
    () => Promise.all([api<QueueStats>("/v1/queues"), api<{ items: NodeInfo[] }>("/v1/nodes")]),
    [],
  );
  useEffect(() => {
    const t = setInterval(reload, 5_000);
    return () => clearInterval(t);
  }, [reload]);
  if (!data) return <ErrorNote error={error} />;
  const [queues, nodes] = data;
  const names = [...new Set(queues.queues.map((q) => q.taskName))].sort();
  const Q = ["NEW", "READY", "PARKED", "DELETED"];
  const count = (queue: string, name: string) =>
    queues.queues.find((q) => q.queue === queue && q.taskName === name)?.count ?? 0;
  const lag = new Map(queues.readyLag.map((l) => [l.taskName, l.oldestReadyAgeMs]));
  const leader = nodes.items.find((n) => n.isLeader);
  return (
    <>
      <h1>Overview</h1>
      <ErrorNote error={error} />
      <div class="cards">
        <div class="card">
          <div class="big">{nodes.items.length}</div> nodes
        </div>
        <div class="card">
          <div class="big">{leader ? leader.id.slice(-8) : "none"}</div> leader{leader ? ` (${leader.host})` : ""}
        </div>
        {Q.slice(0, 3).map((q) => (
          <div class="card" key={q}>
            <div class="big">{queues.queues.filter((x) => x.queue === q).reduce((a, x) => a + x.count, 0)}</div> {q}
          </div>
        ))}
      </div>
      <h2>Tasks by virtual queue and name</h2>
      <table>
        <thead>
          <tr>
            <th scope="col">Task</th>
            {Q.map((q) => (
              <th scope="col" class="num" key={q}>
                {q}
              </th>
            ))}
            <th scope="col" class="num">
              Oldest READY
            </th>
          </tr>
        </thead>
        <tbody>
          {names.length === 0 && (
            <tr>
              <td colSpan={6}>No unfinished tasks.</td>
            </tr>
          )}
          {names.map((name) => (
            <tr key={name}>
              <td>{name}</td>
              {Q.map((q) => (
                <td class="num" key={q}>
                  {count(q, name)}
                </td>
              ))}
              <td class="num">{lag.has(name) ? duration(lag.get(name) ?? 0) : "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {queues.parked.length > 0 && (
        <>
          <h2>PARKED by reason</h2>
          <ul>
            {queues.parked.map((p) => (
              <li key={p.reason}>
                {p.reason}: {p.count}
              </li>
            ))}
          </ul>
        </>
      )}
      <h2>Nodes</h2>
      <NodeTable nodes={nodes.items} />
    </>
  );
}

function NodeTable({ nodes }: { nodes: NodeInfo[] }) {
  return (
    <table>
      <thead>
        <tr>
          <th scope="col">Node</th>
          <th scope="col">Host / pid</th>
          <th scope="col" class="num">
            Running / capacity
          </th>
          <th scope="col">Heartbeat</th>
          <th scope="col">Tasks</th>
          <th scope="col">Role</th>
        </tr>
      </thead>
      <tbody>
        {nodes.map((n) => (
          <tr key={n.id}>
            <td>
              <code>{n.id}</code>
              <div class="hint">{n.appName}</div>
            </td>
            <td>
              {n.host} / {n.pid}
            </td>
            <td class="num">
              {n.running} / {n.capacity}
            </td>
            <td>{duration(n.heartbeatAgeMs)} ago</td>
            <td class="names">{n.taskNames.join(", ") || "—"}</td>
            <td>
              {n.isLeader ? "★ leader" : "member"}
              {n.draining ? " (draining)" : ""}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Nodes() {
  const [data, error, reload] = useData(() => api<{ items: NodeInfo[] }>("/v1/nodes"), []);
  useEffect(() => {
    const t = setInterval(reload, 5_000);
    return () => clearInterval(t);
  }, [reload]);
  return (
    <>
      <h1>Nodes</h1>
      <ErrorNote error={error} />
      {data && <NodeTable nodes={data.items} />}
    </>
  );
}

function Cron() {
  const [data, error] = useData(() => api<{ items: CronInfo[] }>("/v1/cron"), []);
  return (
    <>
      <h1>Cron</h1>
      <ErrorNote error={error} />
      {data && (
        <table>
          <thead>
            <tr>
              <th scope="col">Task</th>
              <th scope="col">Pattern</th>
              <th scope="col">Time zone</th>
              <th scope="col">Last tick</th>
              <th scope="col">Next tick</th>
            </tr>
          </thead>
          <tbody>
            {data.items.length === 0 && (
              <tr>
                <td colSpan={5}>No cron schedules.</td>
              </tr>
            )}
            {data.items.map((c) => (
              <tr key={c.taskName}>
                <td>{c.taskName}</td>
                <td>
                  <code>{c.pattern}</code>
                </td>
                <td>{c.timezone ?? "UTC"}</td>
                <td>{ago(c.lastTickAt)}</td>
                <td>{ago(c.nextTickAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

// ---------------------------------------------------------------------------
// Workflows list

function Workflows() {
  const [status, setStatus] = useState("");
  const [root, setRoot] = useState("");
  const [after, setAfter] = useState("");
  const [before, setBefore] = useState("");
  const [search, setSearch] = useState("");
  // The cursors of the pages before this one, for Previous.
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const cursor = cursors[cursors.length - 1] ?? null;
  const [data, error] = useData(
    () =>
      api<{ items: WorkflowSummary[]; nextCursor: string | null }>(
        `/v1/workflows${qs({
          status,
          rootTaskName: root,
          createdAfter: after ? new Date(after).toISOString() : undefined,
          createdBefore: before ? new Date(before).toISOString() : undefined,
          limit: 25,
          cursor,
        })}`,
      ),
    [status, root, after, before, cursor],
  );
  const reset = () => setCursors([null]);
  return (
    <>
      <h1>Workflows</h1>
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          if (search.trim()) location.hash = `#/workflows/${search.trim().toUpperCase()}`;
        }}
      >
        <label>
          Status{" "}
          <select
            value={status}
            onChange={(e) => {
              setStatus(e.currentTarget.value);
              reset();
            }}
          >
            <option value="">any</option>
            {["RUNNING", "COMPLETED", "FAILED", "CANCELLED"].map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          Root task{" "}
          <input
            value={root}
            placeholder="name"
            onChange={(e) => {
              setRoot(e.currentTarget.value.trim());
              reset();
            }}
          />
        </label>
        <label>
          From{" "}
          <input
            type="datetime-local"
            value={after}
            onChange={(e) => {
              setAfter(e.currentTarget.value);
              reset();
            }}
          />
        </label>
        <label>
          To{" "}
          <input
            type="datetime-local"
            value={before}
            onChange={(e) => {
              setBefore(e.currentTarget.value);
              reset();
            }}
          />
        </label>
        <label>
          Id <input value={search} placeholder="workflow id" onInput={(e) => setSearch(e.currentTarget.value)} />
        </label>
        <button type="submit">Open</button>
      </form>
      <ErrorNote error={error} />
      {data && (
        <>
          <table data-testid="workflows">
            <thead>
              <tr>
                <th scope="col">Workflow</th>
                <th scope="col">Root task</th>
                <th scope="col">Status</th>
                <th scope="col" class="num">
                  Tasks
                </th>
                <th scope="col" class="num">
                  Pending
                </th>
                <th scope="col" class="num">
                  Failed
                </th>
                <th scope="col">Created</th>
                <th scope="col">Duration</th>
              </tr>
            </thead>
            <tbody>
              {data.items.length === 0 && (
                <tr>
                  <td colSpan={8}>No workflows on this page.</td>
                </tr>
              )}
              {data.items.map((w) => (
                <tr key={w.id}>
                  <td>
                    <a href={`#/workflows/${w.id}`}>
                      <code>{w.id}</code>
                    </a>
                  </td>
                  <td>{w.rootTaskName ?? "—"}</td>
                  <td>
                    <StateBadge state={w.status} />
                  </td>
                  <td class="num">{w.totalTasks}</td>
                  <td class="num">{w.pendingTasks}</td>
                  <td class="num">{w.failedTasks}</td>
                  <td>{time(w.createdAt)}</td>
                  <td>{span(w.createdAt, w.finishedAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <nav class="pager" aria-label="pages">
            <button type="button" disabled={cursors.length < 2} onClick={() => setCursors((c) => c.slice(0, -1))}>
              ← Newer
            </button>
            <button
              type="button"
              disabled={data.nextCursor === null}
              onClick={() => setCursors((c) => [...c, data.nextCursor])}
            >
              Older →
            </button>
          </nav>
        </>
      )}
    </>
  );
}

// ---------------------------------------------------------------------------
// Workflow: the DAG, live

function Workflow({ id, me }: { id: string; me: Whoami }) {
  const [graph, setGraph] = useState<WorkflowGraph | null>(null);
  const [snapshot, setSnapshot] = useState<Snapshot | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [expanded, setExpanded] = useState<ReadonlySet<string>>(new Set());
  const [selected, setSelected] = useState<string | null>(null);
  const [live, setLive] = useState<"connecting" | "live" | "ended" | "lost">("connecting");
  const loadedAt = useRef(0);
  const pending = useRef<number | null>(null);

  const loadGraph = useCallback(() => {
    loadedAt.current = Date.now();
    api<WorkflowGraph>(`/v1/workflows/${id}/graph`).then(setGraph, setError);
  }, [id]);

  // The graph again on a change, at most once a second (the last change always read).
  const changed = useCallback(() => {
    if (pending.current !== null) return;
    const wait = Math.max(0, loadedAt.current + 1000 - Date.now());
    pending.current = window.setTimeout(() => {
      pending.current = null;
      loadGraph();
    }, wait);
  }, [loadGraph]);

  useEffect(() => {
    setGraph(null);
    setSnapshot(null);
    setSelected(null);
    setExpanded(new Set());
    loadGraph();
    let first = true;
    const stop = subscribe(
      `/v1/workflows/${id}/events`,
      (event, data) => {
        if (event !== "snapshot") return;
        setSnapshot(JSON.parse(data) as Snapshot);
        setLive("live");
        if (!first) changed();
        first = false;
      },
      (e) => {
        setLive(e ? "lost" : "ended");
        // The final state, after the last event.
        changed();
      },
    );
    return () => {
      stop();
      if (pending.current !== null) clearTimeout(pending.current);
      pending.current = null;
    };
  }, [id, loadGraph, changed]);

  const view = useMemo(() => (graph ? buildView(graph, expanded) : null), [graph, expanded]);

  const cancel = async () => {
    if (!window.confirm(`Cancel workflow ${id}? Its unfinished tasks become CANCELLED.`)) return;
    try {
      await api(`/v1/workflows/${id}/cancel`, { method: "POST", body: { reason: "cancelled from the dashboard" } });
      changed();
    } catch (e) {
      setError(e);
    }
  };

  const wf = snapshot?.workflow;
  return (
    <>
      <h1>
        Workflow <code>{id}</code>
      </h1>
      <ErrorNote error={error} />
      <div class="wf-head">
        {wf && <StateBadge state={wf.status} />}
        {snapshot && (
          <span class="counts" data-testid="counts">
            {TASK_STATES.map((s) => (
              <span key={s} class={`count s-${s}`}>
                {STATE_MARK[s]} {s} {snapshot.counts[s]}
              </span>
            ))}
          </span>
        )}
        {wf && (
          <span class="hint">
            created {time(wf.createdAt)}, {wf.finishedAt ? `took ${span(wf.createdAt, wf.finishedAt)}` : "running"}
          </span>
        )}
        <span class={`live live-${live}`} data-testid="live">
          {live === "live" ? "● live" : live === "ended" ? "finished" : live === "lost" ? "updates lost" : "…"}
        </span>
        {me.scope === "write" && wf?.status === "RUNNING" && (
          <button type="button" class="danger" data-action="cancel" onClick={cancel}>
            Cancel workflow
          </button>
        )}
      </div>
      {view && (
        <p class="hint" data-testid="dag-summary">
          {view.tasks} {view.tasks === 1 ? "task" : "tasks"}, {view.nodes.length} drawn
          {view.nodes.some((n) => n.kind === "group") ? " (large fan-outs grouped: click a group to expand it)" : ""}
        </p>
      )}
      <div class="wf-body">
        <div class="dag" data-testid="dag">
          {view && (
            <svg
              width={view.width}
              height={view.height}
              viewBox={`0 0 ${view.width} ${view.height}`}
              role="img"
              aria-label="the workflow's tasks and their edges"
            >
              <defs>
                <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto">
                  <path d="M0,0 L10,5 L0,10 z" fill="#7a8599" />
                </marker>
              </defs>
              {view.edges.map((e) => (
                <polyline
                  key={`${e.from}>${e.to}`}
                  class={`edge e-${e.kind}`}
                  points={e.points.map((p) => `${p.x},${p.y}`).join(" ")}
                  marker-end="url(#arrow)"
                />
              ))}
              {view.nodes.map((n) => (
                <DagNode
                  key={n.key}
                  node={n}
                  selected={selected === n.key}
                  onActivate={() => {
                    if (n.kind === "group") setExpanded((s) => new Set([...s, n.key]));
                    else setSelected(n.key);
                  }}
                />
              ))}
            </svg>
          )}
          {!view && !error && <p>Loading…</p>}
        </div>
        {selected && <TaskPanel id={selected} onClose={() => setSelected(null)} />}
      </div>
      {expanded.size > 0 && (
        <button type="button" onClick={() => setExpanded(new Set())}>
          Collapse groups again
        </button>
      )}
    </>
  );
}

function DagNode({ node, selected, onActivate }: { node: ViewNode; selected: boolean; onActivate: () => void }) {
  const c = node.counts;
  const title =
    node.kind === "group"
      ? `${node.label}: ${TASK_STATES.filter((s) => (c?.[s] ?? 0) > 0)
          .map((s) => `${c?.[s]} ${s}`)
          .join(", ")}. Press to expand.`
      : `${node.kind === "join" ? "join " : ""}${node.label}: ${node.state}`;
  return (
    // biome-ignore lint/a11y/useSemanticElements: an SVG group cannot be a <button>; role and keys make it one
    <g
      class={`node k-${node.kind} s-${node.state}${selected ? " selected" : ""}`}
      transform={`translate(${node.x},${node.y})`}
      data-testid="dag-node"
      data-kind={node.kind}
      data-state={node.state}
      data-key={node.key}
      data-size={node.size}
      role="button"
      tabindex={0}
      aria-label={title}
      onClick={onActivate}
      onKeyDown={(e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          onActivate();
        }
      }}
    >
      <title>{title}</title>
      <rect width={node.width} height={node.height} rx={node.kind === "join" ? 18 : 6} />
      <text x={10} y={18} class="n-name">
        {node.kind === "join" ? "⋈ " : ""}
        {node.label.length > 26 ? `${node.label.slice(0, 25)}…` : node.label}
      </text>
      {node.kind !== "group" && (
        <text x={10} y={35} class="n-state">
          {STATE_MARK[node.state]} {node.state}
          {node.kind === "join" && node.task?.joinPending ? ` · waits for ${node.task.joinPending}` : ""}
        </text>
      )}
      {node.kind === "group" && c && (
        <>
          <text x={10} y={36} class="n-state">
            {TASK_STATES.filter((s) => c[s] > 0)
              .map((s) => `${STATE_MARK[s]} ${c[s]} ${s}`)
              .join("  ")}
          </text>
          <text x={10} y={56} class="n-hint">
            group of {node.size} · click to expand
          </text>
        </>
      )}
    </g>
  );
}

function TaskPanel({ id, onClose }: { id: string; onClose: () => void }) {
  const [task, error] = useData(() => api<TaskStatus>(`/v1/tasks/${id}`), [id]);
  const [attempts] = useData(() => api<{ items: Attempt[] }>(`/v1/tasks/${id}/attempts`), [id]);
  return (
    <aside class="panel" aria-label="task details" data-testid="task-panel">
      <button type="button" class="close" onClick={onClose} aria-label="close">
        ×
      </button>
      <ErrorNote error={error} />
      {task && (
        <>
          <h2>{task.name}</h2>
          <p>
            <StateBadge state={task.state} /> <span class="hint">queue {task.queue}</span>
            {task.parkReason ? <span class="hint"> (parked: {task.parkReason})</span> : null}
          </p>
          <dl>
            <dt>Task</dt>
            <dd>
              <code>{task.id}</code>
            </dd>
            <dt>Attempt</dt>
            <dd>{task.attempt}</dd>
            <dt>Node</dt>
            <dd>{task.node ?? "—"}</dd>
            <dt>Priority</dt>
            <dd>{task.priority}</dd>
            <dt>Created</dt>
            <dd>{time(task.createdAt)}</dd>
            <dt>Assigned</dt>
            <dd>{time(task.assignedAt)}</dd>
            <dt>Finished</dt>
            <dd>
              {time(task.finishedAt)}{" "}
              {task.finishedAt ? `(${span(task.createdAt, task.finishedAt)} after creation)` : ""}
            </dd>
            {task.runAfter && (
              <>
                <dt>Run after</dt>
                <dd>{time(task.runAfter)}</dd>
              </>
            )}
          </dl>
          <h3>Attempts</h3>
          <table data-testid="attempts">
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">Node</th>
                <th scope="col">Started</th>
                <th scope="col">Took</th>
                <th scope="col">Outcome</th>
              </tr>
            </thead>
            <tbody>
              {(attempts?.items ?? []).map((a) => (
                <tr key={`${a.attempt}-${a.endedAt}`}>
                  <td>{a.attempt}</td>
                  <td>
                    <code>{a.node ? a.node.slice(-8) : "—"}</code>
                  </td>
                  <td>{a.startedAt ? new Date(a.startedAt).toLocaleTimeString() : "—"}</td>
                  <td>{span(a.startedAt, a.endedAt)}</td>
                  <td class="names">{a.error ? `${a.error.name}: ${a.error.message}` : "—"}</td>
                </tr>
              ))}
              {/* The attempt it is on or finished with (a FAILED task's last one is in the log). */}
              {task.assignedAt && task.state !== "FAILED" && (
                <tr>
                  <td>{task.attempt}</td>
                  <td>
                    <code>{task.node ? task.node.slice(-8) : "—"}</code>
                  </td>
                  <td>{new Date(task.assignedAt).toLocaleTimeString()}</td>
                  <td>{span(task.assignedAt, task.finishedAt)}</td>
                  <td>{task.state === "RUNNING" ? "running" : task.state}</td>
                </tr>
              )}
            </tbody>
          </table>
          <h3>Input</h3>
          <Json value={task.input} />
          {task.error ? (
            <>
              <h3>Error</h3>
              <TaskErrorView error={task.error} />
            </>
          ) : (
            <>
              <h3>Result</h3>
              <Json value={task.result} />
            </>
          )}
        </>
      )}
    </aside>
  );
}

// ---------------------------------------------------------------------------
// Dead letters

function DeadLetters({ me }: { me: Whoami }) {
  const [taskName, setTaskName] = useState("");
  const [data, error] = useData(
    () => api<{ items: DeadLetter[] }>(`/v1/dead-letters${qs({ taskName, limit: 200 })}`),
    [taskName],
  );
  return (
    <>
      <h1>Dead letters</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Task <input value={taskName} placeholder="name" onChange={(e) => setTaskName(e.currentTarget.value.trim())} />
        </label>
      </form>
      <ErrorNote error={error} />
      {data && (
        <table data-testid="dead-letters">
          <thead>
            <tr>
              <th scope="col">Task</th>
              <th scope="col">Name</th>
              <th scope="col">Error</th>
              <th scope="col" class="num">
                Attempts
              </th>
              <th scope="col">Failed</th>
            </tr>
          </thead>
          <tbody>
            {data.items.length === 0 && (
              <tr>
                <td colSpan={5}>No dead letters.</td>
              </tr>
            )}
            {data.items.map((d) => (
              <tr key={d.taskId}>
                <td>
                  <a href={`#/dead-letters/${d.taskId}`}>
                    <code>{d.taskId}</code>
                  </a>
                </td>
                <td>{d.taskName}</td>
                <td class="names">{d.error ? `${d.error.name}: ${d.error.message}` : "—"}</td>
                <td class="num">{d.attempts.length}</td>
                <td>{ago(d.failedAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {me.scope === "read" && <p class="hint">This token is read-only: requeue and delete are not offered.</p>}
    </>
  );
}

function DeadLetterPage({ taskId, me }: { taskId: string; me: Whoami }) {
  const [data, error] = useData(() => api<DeadLetterDetail>(`/v1/dead-letters/${taskId}`), [taskId]);
  const [done, setDone] = useState<string | null>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const act = async (what: "requeue" | "delete") => {
    const ok = window.confirm(
      what === "requeue"
        ? `Requeue task ${taskId}? It runs again with a fresh attempt budget.`
        : `Delete the dead letter of task ${taskId}? This cannot be undone.`,
    );
    if (!ok) return;
    try {
      if (what === "requeue") await api(`/v1/dead-letters/${taskId}/requeue`, { method: "POST" });
      else await api(`/v1/dead-letters/${taskId}`, { method: "DELETE" });
      setDone(what === "requeue" ? "Requeued: the task runs again." : "Deleted.");
    } catch (e) {
      setActionError(e);
    }
  };
  const d = data?.deadLetter;
  return (
    <>
      <h1>
        Dead letter <code>{taskId}</code>
      </h1>
      <ErrorNote error={error ?? actionError} />
      {done && (
        <p class="ok" role="status" data-testid="action-done">
          {done} {data && <a href={`#/workflows/${data.deadLetter.workflowId}`}>Open its workflow</a>}
        </p>
      )}
      {d && (
        <>
          <p>
            <strong>{d.taskName}</strong> failed {ago(d.failedAt)} after {d.attempts.length} attempt(s). Workflow{" "}
            <a href={`#/workflows/${d.workflowId}`}>
              <code>{d.workflowId}</code>
            </a>
            {data.workflow ? (
              <>
                {" "}
                (<StateBadge state={data.workflow.status} />)
              </>
            ) : null}
          </p>
          {data.slot && (
            <p>
              Slot {time(data.slot.start)} – {time(data.slot.end)} of {data.slot.taskName} ({data.slot.status})
            </p>
          )}
          {me.scope === "write" && !done && (
            <div class="actions">
              <button type="button" data-action="requeue" onClick={() => act("requeue")}>
                Requeue
              </button>
              <button type="button" class="danger" data-action="delete" onClick={() => act("delete")}>
                Delete
              </button>
            </div>
          )}
          <h3>Error</h3>
          <TaskErrorView error={d.error} />
          <h3>Attempts</h3>
          <table>
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">Node</th>
                <th scope="col">Started</th>
                <th scope="col">Ended</th>
                <th scope="col">Error</th>
              </tr>
            </thead>
            <tbody>
              {d.attempts.map((a) => (
                <tr key={a.attempt}>
                  <td>{a.attempt}</td>
                  <td>{a.node ?? "—"}</td>
                  <td>{time(a.startedAt)}</td>
                  <td>{time(a.endedAt)}</td>
                  <td class="names">{a.error ? `${a.error.name}: ${a.error.message}` : "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <h3>Input</h3>
          <Json value={d.input} />
        </>
      )}
    </>
  );
}

// ---------------------------------------------------------------------------
// Slots: the coverage grid

const SLOT_MARK: Record<string, string> = {
  COMPLETE: "#",
  SKIP: "-",
  AVAILABLE: ".",
  ACQUIRED: ">",
  FAILED: "x",
  MISSING: "?",
};
const SLOT_WORD: Record<string, string> = {
  COMPLETE: "complete",
  SKIP: "skipped",
  AVAILABLE: "pending",
  ACQUIRED: "acquired",
  FAILED: "failed",
  MISSING: "missing",
};

function localInput(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function Slots({ me, query }: { me: Whoami; query: URLSearchParams }) {
  const now = new Date();
  const [name, setName] = useState(query.get("name") ?? "");
  const [every, setEvery] = useState(query.get("every") ?? "");
  const [from, setFrom] = useState(
    query.get("from") ? localInput(new Date(query.get("from") as string)) : localInput(new Date(+now - 86_400_000)),
  );
  const [to, setTo] = useState(query.get("to") ? localInput(new Date(query.get("to") as string)) : localInput(now));
  const [coverage, setCoverage] = useState<Coverage | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [picked, setPicked] = useState<Slot | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const load = useCallback(async () => {
    if (!name) return;
    try {
      setCoverage(
        await api<Coverage>(
          `/v1/slots/${encodeURIComponent(name)}/coverage${qs({
            every,
            from: new Date(from).toISOString(),
            to: new Date(to).toISOString(),
          })}`,
        ),
      );
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, [name, every, from, to]);
  useEffect(() => {
    if (query.get("name")) void load();
  }, []);
  const reopen = async (range: { from: string; to: string }, what: string) => {
    if (!window.confirm(`Reopen ${what}? Finished slots in it run again.`)) return;
    try {
      const r = await api<{ reopened: number }>(`/v1/slots/${encodeURIComponent(name)}/reopen`, {
        method: "POST",
        body: { ...range, ...(every ? { every } : {}) },
      });
      setNote(`${r.reopened} slot(s) reopened.`);
      setPicked(null);
      await load();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <>
      <h1>Slots</h1>
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          void load();
        }}
      >
        <label>
          Series{" "}
          <input value={name} required placeholder="slot task name" onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <label>
          Every <input value={every} size={5} placeholder="own" onInput={(e) => setEvery(e.currentTarget.value)} />
        </label>
        <label>
          From <input type="datetime-local" value={from} onInput={(e) => setFrom(e.currentTarget.value)} />
        </label>
        <label>
          To <input type="datetime-local" value={to} onInput={(e) => setTo(e.currentTarget.value)} />
        </label>
        <button type="submit">Show coverage</button>
      </form>
      <ErrorNote error={error} />
      {note && (
        <p class="ok" role="status">
          {note}
        </p>
      )}
      {coverage && (
        <>
          <p class="legend">
            {Object.keys(SLOT_MARK).map((s) => (
              <span key={s} class={`cell sl-${s}`}>
                {SLOT_MARK[s]} {SLOT_WORD[s]}
              </span>
            ))}
          </p>
          <p>
            {coverage.counts.total} slots of {coverage.every}: {coverage.counts.complete} complete,{" "}
            {coverage.counts.skipped} skipped, {coverage.counts.pending} pending, {coverage.counts.acquired} acquired,{" "}
            {coverage.counts.failed} failed, {coverage.counts.missing} missing
          </p>
          <div class="grid" data-testid="coverage-grid">
            {coverage.slots.map((s) => (
              <button
                type="button"
                key={s.start}
                class={`cell sl-${s.status}${picked?.start === s.start ? " selected" : ""}`}
                data-testid="slot"
                data-status={s.status}
                data-start={s.start}
                title={`${time(s.start)}: ${SLOT_WORD[s.status]}${s.generation > 0 ? `, generation ${s.generation}` : ""}`}
                aria-label={`${time(s.start)} ${SLOT_WORD[s.status]}`}
                onClick={() => setPicked(s)}
              >
                {SLOT_MARK[s.status]}
              </button>
            ))}
          </div>
          {picked && (
            <div class="panel-inline" data-testid="slot-detail">
              <strong>
                {time(picked.start)} – {time(picked.end)}
              </strong>
              : {SLOT_WORD[picked.status]}, generation {picked.generation}, {picked.attempts} attempt(s)
              {picked.completedAt ? `, done ${ago(picked.completedAt)}` : ""}
              {picked.message ? ` — ${picked.message}` : ""}
              {me.scope === "write" && ["COMPLETE", "SKIP", "FAILED"].includes(picked.status) && (
                <button
                  type="button"
                  data-action="reopen-slot"
                  onClick={() => reopen({ from: picked.start, to: picked.end }, `the slot at ${time(picked.start)}`)}
                >
                  Reopen this slot
                </button>
              )}
            </div>
          )}
          {me.scope === "write" && (
            <button
              type="button"
              data-action="reopen-range"
              onClick={() => reopen({ from: coverage.from, to: coverage.to }, "every finished slot of this range")}
            >
              Reopen the range
            </button>
          )}
        </>
      )}
    </>
  );
}

// ---------------------------------------------------------------------------
// The shell

const NAV: [string, string][] = [
  ["#/", "Overview"],
  ["#/workflows", "Workflows"],
  ["#/dead-letters", "Dead letters"],
  ["#/slots", "Slots"],
  ["#/cron", "Cron"],
  ["#/nodes", "Nodes"],
];

function App() {
  const hash = useHash();
  const [me, setMe] = useState<Whoami | null>(null);
  const [needLogin, setNeedLogin] = useState(false);
  const [refused, setRefused] = useState(false);
  const [tick, setTick] = useState(0);
  // Whether a token was entered in the form: a 401 then means it was refused.
  const tried = useRef(false);
  useEffect(() => {
    api<Whoami>("/v1/whoami").then(
      (w) => {
        setMe(w);
        setNeedLogin(false);
      },
      (e: unknown) => {
        if (e instanceof ApiError && e.status === 401) {
          setRefused(tried.current);
          tried.current = false;
          setToken(null);
          setNeedLogin(true);
        }
      },
    );
  }, [tick]);
  useEffect(
    () =>
      onUnauthorized(() => {
        setToken(null);
        setMe(null);
        setNeedLogin(true);
      }),
    [],
  );
  if (needLogin)
    return (
      <Login
        failed={refused}
        onDone={() => {
          tried.current = true;
          setTick((t) => t + 1);
        }}
      />
    );
  if (!me) return <p class="loading">Loading…</p>;

  const [route = "", queryString = ""] = hash.replace(/^#/, "").split("?");
  const parts = route.split("/").filter(Boolean);
  const query = new URLSearchParams(queryString);
  let page: preact.JSX.Element;
  let section = "#/";
  if (parts[0] === "workflows" && parts[1]) {
    page = <Workflow id={parts[1]} me={me} />;
    section = "#/workflows";
  } else if (parts[0] === "workflows") {
    page = <Workflows />;
    section = "#/workflows";
  } else if (parts[0] === "dead-letters" && parts[1]) {
    page = <DeadLetterPage taskId={parts[1]} me={me} />;
    section = "#/dead-letters";
  } else if (parts[0] === "dead-letters") {
    page = <DeadLetters me={me} />;
    section = "#/dead-letters";
  } else if (parts[0] === "slots") {
    page = <Slots me={me} query={query} />;
    section = "#/slots";
  } else if (parts[0] === "cron") {
    page = <Cron />;
    section = "#/cron";
  } else if (parts[0] === "nodes") {
    page = <Nodes />;
    section = "#/nodes";
  } else page = <Overview />;
  return (
    <>
      <header>
        <a class="brand" href="#/">
          Weft
        </a>
        <nav aria-label="sections">
          {NAV.map(([href, label]) => (
            <a key={href} href={href} aria-current={section === href ? "page" : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <span class="scope" data-testid="scope">
          {me.scope === "write" ? "write access" : "read-only"}
        </span>
        {me.auth === "bearer" && (
          <button
            type="button"
            class="link"
            onClick={() => {
              setToken(null);
              setMe(null);
              setRefused(false);
              setNeedLogin(true);
            }}
          >
            Sign out
          </button>
        )}
      </header>
      <main key={hash}>{page}</main>
    </>
  );
}

render(<App />, document.getElementById("app") as HTMLElement);
