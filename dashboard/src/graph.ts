// From a workflow's graph to what is drawn: large fan-outs collapsed into group
// nodes, then laid out by dagre (top to bottom).
import dagre from "@dagrejs/dagre";
import { type Counts, type GraphNode, TASK_STATES, type TaskState, type WorkflowGraph } from "./api.js";

/** A parent with more children than this shows them as groups (one per task name), expandable. */
export const COLLAPSE_ABOVE = 100;

export interface ViewNode {
  key: string;
  kind: "task" | "join" | "fork" | "group";
  label: string;
  state: TaskState;
  /** For a group: its tasks by state (members and their descendants). */
  counts: Counts | null;
  size: number;
  task: GraphNode | null;
  x: number;
  y: number;
  width: number;
  height: number;
}
export interface ViewEdge {
  from: string;
  to: string;
  kind: "spawn" | "join" | "awaits";
  points: { x: number; y: number }[];
}
export interface View {
  nodes: ViewNode[];
  edges: ViewEdge[];
  width: number;
  height: number;
  tasks: number;
}

const emptyCounts = (): Counts => Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Counts;

/** The state a group shows: failed before running before pending before cancelled, completed when all are. */
function groupState(c: Counts): TaskState {
  if (c.FAILED > 0) return "FAILED";
  if (c.RUNNING > 0) return "RUNNING";
  if (c.PENDING > 0) return "PENDING";
  if (c.CANCELLED > 0) return "CANCELLED";
  return "COMPLETED";
}

const NODE_W = 190;
const NODE_H = 44;
const GROUP_H = 70;

/**
 * Groups: for each parent with more than COLLAPSE_ABOVE children, its plain
 * tasks by name (joins stay visible: they are where fan-outs meet), unless the
 * group's key is in `expanded`. A collapsed task's descendants fold into its
 * group too; edges to and from folded tasks go to the group (once).
 */
export function buildView(graph: WorkflowGraph, expanded: ReadonlySet<string>): View {
  const children = new Map<string, GraphNode[]>();
  for (const n of graph.nodes) {
    if (n.parentId === null) continue;
    const list = children.get(n.parentId);
    if (list) list.push(n);
    else children.set(n.parentId, [n]);
  }
  // Which visible key each task is drawn as.
  const rep = new Map<string, string>();
  const groups = new Map<string, { label: string; counts: Counts; size: number }>();
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const fold = (id: string, key: string, group: { counts: Counts; size: number }) => {
    const stack = [id];
    while (stack.length > 0) {
      const cur = stack.pop() as string;
      if (rep.has(cur)) continue;
      rep.set(cur, key);
      const node = byId.get(cur);
      if (node) {
        group.counts[node.state]++;
        group.size++;
      }
      for (const c of children.get(cur) ?? []) stack.push(c.id);
    }
  };
  // Parents first (graph.nodes is in creation order: a parent before its children).
  for (const n of graph.nodes) {
    const kids = children.get(n.id);
    if (!kids || kids.length <= COLLAPSE_ABOVE || rep.has(n.id)) continue;
    const byName = new Map<string, GraphNode[]>();
    for (const k of kids) {
      if (k.kind === "join") continue;
      const list = byName.get(k.name);
      if (list) list.push(k);
      else byName.set(k.name, [k]);
    }
    for (const [name, members] of byName) {
      const key = `group:${n.id}:${name}`;
      if (members.length < 2 || expanded.has(key)) continue;
      const group = { label: `${members.length} × ${name}`, counts: emptyCounts(), size: 0 };
      groups.set(key, group);
      for (const m of members) fold(m.id, key, group);
    }
  }
  for (const n of graph.nodes) if (!rep.has(n.id)) rep.set(n.id, n.id);

  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "TB", nodesep: 24, ranksep: 56, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));
  const nodes = new Map<string, ViewNode>();
  for (const n of graph.nodes) {
    if (rep.get(n.id) !== n.id) continue;
    nodes.set(n.id, {
      key: n.id,
      kind: n.kind,
      label: n.name,
      state: n.state,
      counts: null,
      size: 1,
      task: n,
      x: 0,
      y: 0,
      width: NODE_W,
      height: NODE_H,
    });
  }
  for (const [key, group] of groups) {
    nodes.set(key, {
      key,
      kind: "group",
      label: group.label,
      state: groupState(group.counts),
      counts: group.counts,
      size: group.size,
      task: null,
      x: 0,
      y: 0,
      width: NODE_W + 40,
      height: GROUP_H,
    });
  }
  for (const v of nodes.values()) g.setNode(v.key, { width: v.width, height: v.height });
  const edges = new Map<string, { from: string; to: string; kind: ViewEdge["kind"] }>();
  for (const e of graph.edges) {
    const from = rep.get(e.from);
    const to = rep.get(e.to);
    if (from === undefined || to === undefined || from === to) continue;
    const id = `${from}>${to}`;
    if (!edges.has(id)) edges.set(id, { from, to, kind: e.kind });
  }
  for (const e of edges.values()) g.setEdge(e.from, e.to);
  dagre.layout(g);
  for (const v of nodes.values()) {
    const laid = g.node(v.key);
    v.x = laid.x - v.width / 2;
    v.y = laid.y - v.height / 2;
  }
  const viewEdges: ViewEdge[] = [...edges.values()].map((e) => ({
    ...e,
    points: ((g.edge(e.from, e.to)?.points ?? []) as { x: number; y: number }[]).map((p) => ({ x: p.x, y: p.y })),
  }));
  const label = g.graph();
  return {
    nodes: [...nodes.values()],
    edges: viewEdges,
    width: label.width ?? 0,
    height: label.height ?? 0,
    tasks: graph.nodes.length,
  };
}
