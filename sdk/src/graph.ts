import { type TaskRecord, WorkflowGraphError } from "@weft/engine";
import { DirectedGraph } from "graphology";
import { hasCycle, topologicalGenerations } from "graphology-dag";
import type { TaskState, VirtualQueue } from "./types.js";

export interface WorkflowGraphNode {
  readonly id: string;
  readonly name: string;
  readonly kind: "task" | "join" | "fork";
  readonly state: TaskState;
  readonly queue: VirtualQueue;
  readonly parentId: string | null;
  /** On a waiting join: how many awaited tasks have not finished. */
  readonly joinPending: number | null;
  /** Layout: the node's generation (0 for the roots), from a topological sort. */
  readonly level: number;
}

export interface WorkflowGraphEdge {
  readonly from: string;
  readonly to: string;
  /**
   * `spawn`: a parent scheduled a child; `join`: a join lists an upstream task;
   * `awaits`: a join waits for a task of an upstream's subtree without listing it.
   */
  readonly kind: "spawn" | "join" | "awaits";
  /** On a join edge: the upstream's position in the join's list. */
  readonly position?: number;
}

export interface WorkflowGraph {
  readonly workflowId: string;
  readonly nodes: readonly WorkflowGraphNode[];
  readonly edges: readonly WorkflowGraphEdge[];
  /** Node ids by generation, roots first: rows for drawing the DAG. */
  readonly levels: readonly (readonly string[])[];
}

/**
 * Builds and validates a workflow's DAG with graphology: every edge endpoint must
 * be a task of the workflow (upstream tasks purged after their retention are
 * dropped with their edges) and the graph must be acyclic.
 */
export function buildWorkflowGraph(
  workflowId: string,
  tasks: readonly TaskRecord[],
  joinEdges: readonly { join_task_id: string; upstream_task_id: string; position: number }[],
): WorkflowGraph {
  const graph = new DirectedGraph();
  for (const t of tasks) graph.addNode(t.id);
  const edges: WorkflowGraphEdge[] = [];
  for (const t of tasks) {
    if (t.parent_id !== null && graph.hasNode(t.parent_id)) {
      graph.mergeEdge(t.parent_id, t.id);
      edges.push({ from: t.parent_id, to: t.id, kind: "spawn" });
    }
  }
  for (const e of joinEdges) {
    if (!graph.hasNode(e.join_task_id))
      throw new WorkflowGraphError(`join ${e.join_task_id} is not in workflow ${workflowId}`);
    if (!graph.hasNode(e.upstream_task_id)) continue; // purged after its retention
    graph.mergeEdge(e.upstream_task_id, e.join_task_id);
    edges.push({ from: e.upstream_task_id, to: e.join_task_id, kind: "join", position: e.position });
  }
  for (const t of tasks) {
    for (const joinId of t.awaited_by ?? []) {
      if (!graph.hasNode(joinId) || graph.hasEdge(t.id, joinId)) continue;
      graph.addEdge(t.id, joinId);
      edges.push({ from: t.id, to: joinId, kind: "awaits" });
    }
  }
  if (hasCycle(graph)) throw new WorkflowGraphError(`workflow ${workflowId} has a cycle`);
  const levels = topologicalGenerations(graph);
  const levelOf = new Map<string, number>();
  levels.forEach((ids, level) => {
    for (const id of ids) levelOf.set(id, level);
  });
  const nodes = tasks.map(
    (t): WorkflowGraphNode => ({
      id: t.id,
      name: t.task_name,
      kind: t.join_pending !== null ? "join" : t.is_fork ? "fork" : "task",
      state: t.state as TaskState,
      queue: t.queue as VirtualQueue,
      parentId: t.parent_id,
      joinPending: t.join_pending,
      level: levelOf.get(t.id) ?? 0,
    }),
  );
  return { workflowId, nodes, edges, levels };
}
