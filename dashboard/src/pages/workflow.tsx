import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import {
  type Attempt,
  api,
  type Snapshot,
  subscribe,
  TASK_STATES,
  type TaskStatus,
  type Whoami,
  type WorkflowGraph,
} from "../api.js";
import { ErrorNote, Json, STATE_MARK, StateBadge, span, TaskErrorView, time, useData } from "../components.js";
import { buildView, type ViewNode } from "../graph.js";

// A workflow: the DAG, live.

export function Workflow({ id, me }: { id: string; me: Whoami }) {
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
