import type { WorkflowGraph } from "../graph.js";
import type { TaskStatus } from "../types.js";
import { type Colors, duration, pad, shortId, state, width } from "./output.js";

/** One task as `workflows show` draws it (and lists it with --json). */
export interface TreeTask {
  readonly id: string;
  readonly name: string;
  readonly kind: "task" | "join" | "fork";
  readonly state: string;
  readonly queue: string;
  readonly parkReason: string | null;
  readonly attempt: number;
  readonly parentId: string | null;
  /** A join's listed upstream tasks, in order. */
  readonly upstream: readonly string[];
  /** A waiting join: awaited tasks not yet finished. */
  readonly joinPending: number | null;
  readonly node: string | null;
  readonly createdAt: Date;
  readonly finishedAt: Date | null;
  readonly error: string | null;
  readonly children: TreeTask[];
}

/** The spawn tree of a workflow (children under their parent, oldest first), with each join's upstream. */
export function buildTree(graph: WorkflowGraph, tasks: readonly TaskStatus[]): TreeTask[] {
  const kinds = new Map(graph.nodes.map((n) => [n.id, n]));
  const upstream = new Map<string, string[]>();
  for (const e of graph.edges) {
    if (e.kind !== "join") continue;
    const list = upstream.get(e.to) ?? [];
    list[e.position ?? list.length] = e.from;
    upstream.set(e.to, list);
  }
  const byId = new Map<string, TreeTask>();
  for (const t of tasks) {
    const node = kinds.get(t.id);
    byId.set(t.id, {
      id: t.id,
      name: t.name,
      kind: node?.kind ?? "task",
      state: t.state,
      queue: t.queue,
      parkReason: t.parkReason,
      attempt: t.attempt,
      parentId: t.parentId,
      upstream: (upstream.get(t.id) ?? []).filter((id) => id !== undefined),
      joinPending: node?.joinPending ?? null,
      node: t.node,
      createdAt: t.createdAt,
      finishedAt: t.finishedAt,
      error: t.error?.message ?? null,
      children: [],
    });
  }
  const roots: TreeTask[] = [];
  for (const t of tasks) {
    const task = byId.get(t.id) as TreeTask;
    const parent = t.parentId === null ? undefined : byId.get(t.parentId);
    // A task whose parent was purged after its retention is drawn as a root.
    if (parent) parent.children.push(task);
    else roots.push(task);
  }
  return roots;
}

/**
 * Draws the tree with box-drawing characters, one task a line: name, short id,
 * state (coloured), attempt, and for a join how many upstream tasks it lists
 * (and which). Columns after the name line up.
 */
export function drawTree(c: Colors, roots: readonly TreeTask[], now: Date = new Date()): string {
  const lines: { prefix: string; task: TreeTask }[] = [];
  const walk = (task: TreeTask, lead: string, last: boolean, top: boolean) => {
    lines.push({ prefix: top ? "" : `${lead}${last ? "└─ " : "├─ "}`, task });
    const childLead = top ? "" : `${lead}${last ? "   " : "│  "}`;
    task.children.forEach((child, i) => {
      walk(child, childLead, i === task.children.length - 1, false);
    });
  };
  for (const r of roots) walk(r, "", true, true);
  const label = (t: TreeTask) =>
    t.kind === "join"
      ? `${c.magenta("⋈")} ${c.bold(t.name)}`
      : t.kind === "fork"
        ? `${c.bold(t.name)} ${c.dim("(fork)")}`
        : c.bold(t.name);
  const nameWidth = Math.max(0, ...lines.map((l) => width(l.prefix) + width(label(l.task))));
  const stateText = (t: TreeTask) =>
    t.state === "PENDING"
      ? `${state(c, t.state)} ${c.dim(t.parkReason ? `${t.queue}:${t.parkReason}` : t.queue)}`
      : state(c, t.state);
  const stateWidth = Math.max(0, ...lines.map((l) => width(stateText(l.task))));
  return lines
    .map(({ prefix, task }) => {
      const parts = [
        pad(`${c.dim(prefix)}${label(task)}`, nameWidth),
        c.dim(shortId(task.id)),
        pad(stateText(task), stateWidth),
        `attempt ${task.attempt}`,
      ];
      if (task.kind === "join") {
        const waiting = task.joinPending !== null && task.joinPending > 0 ? `, ${task.joinPending} pending` : "";
        parts.push(
          c.magenta(`joins ${task.upstream.length} upstream${waiting}: ${task.upstream.map(shortId).join(" ") || "-"}`),
        );
      }
      if (task.finishedAt === null && task.state === "RUNNING" && task.node) parts.push(c.dim(`on ${task.node}`));
      if (task.finishedAt !== null) parts.push(c.dim(duration(task.finishedAt.getTime() - task.createdAt.getTime())));
      else parts.push(c.dim(`${duration(now.getTime() - task.createdAt.getTime())} so far`));
      if (task.error) parts.push(c.red(task.error.length > 80 ? `${task.error.slice(0, 79)}…` : task.error));
      return parts.join("  ").trimEnd();
    })
    .join("\n");
}
