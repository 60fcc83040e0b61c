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

/** Upstream ids a join's line lists before it says how many more. */
const UPSTREAM_SHOWN = 5;

/** A line of the drawing: a task, or a summary of the children left out under a parent. */
type Line =
  | { readonly prefix: string; readonly task: TreeTask }
  | { readonly prefix: string; readonly hidden: readonly TreeTask[] };

function countAll(tasks: readonly TreeTask[]): number {
  return tasks.reduce((n, t) => n + 1 + countAll(t.children), 0);
}

/**
 * Draws the tree with box-drawing characters, one task a line: name, short id,
 * state (coloured), attempt, and for a join how many upstream tasks it lists
 * (and which). Columns after the name line up. Under each parent, at most
 * `maxChildren` children are drawn (0: all) and joins always; the others are
 * summed up in one line by state.
 */
export function drawTree(
  c: Colors,
  roots: readonly TreeTask[],
  options: { readonly maxChildren?: number; readonly now?: Date } = {},
): string {
  const now = options.now ?? new Date();
  const maxChildren = options.maxChildren ?? 0;
  const lines: Line[] = [];
  const walk = (task: TreeTask, lead: string, last: boolean, top: boolean) => {
    lines.push({ prefix: top ? "" : `${lead}${last ? "└─ " : "├─ "}`, task });
    const childLead = top ? "" : `${lead}${last ? "   " : "│  "}`;
    let shown = task.children;
    let hidden: TreeTask[] = [];
    if (maxChildren > 0 && task.children.length > maxChildren) {
      const keep = new Set(task.children.slice(0, maxChildren));
      for (const child of task.children) if (child.kind === "join") keep.add(child);
      shown = task.children.filter((child) => keep.has(child));
      hidden = task.children.filter((child) => !keep.has(child));
    }
    // The summary goes where the first hidden child was, before the joins that follow it.
    const at =
      hidden.length > 0
        ? shown.findIndex((child) => task.children.indexOf(child) > task.children.indexOf(hidden[0] as TreeTask))
        : -1;
    const items: (TreeTask | null)[] = [...shown];
    if (hidden.length > 0) items.splice(at === -1 ? items.length : at, 0, null);
    items.forEach((item, i) => {
      const isLast = i === items.length - 1;
      if (item === null) lines.push({ prefix: `${childLead}${isLast ? "└─ " : "├─ "}`, hidden });
      else walk(item, childLead, isLast, false);
    });
  };
  for (const r of roots) walk(r, "", true, true);
  const hiddenText = (hidden: readonly TreeTask[]) => {
    const byState = new Map<string, number>();
    for (const t of hidden) byState.set(t.state, (byState.get(t.state) ?? 0) + 1);
    const names = [...new Set(hidden.map((t) => t.name))].join(", ");
    const below = countAll(hidden) - hidden.length;
    return c.dim(
      `… ${hidden.length} more ${names}: ${[...byState].map(([st, n]) => `${n} ${st}`).join(", ")}${below > 0 ? ` (and ${below} below them)` : ""}`,
    );
  };
  const label = (t: TreeTask) =>
    t.kind === "join"
      ? `${c.magenta("⋈")} ${c.bold(t.name)}`
      : t.kind === "fork"
        ? `${c.bold(t.name)} ${c.dim("(fork)")}`
        : c.bold(t.name);
  const tasks = lines.filter((l): l is Extract<Line, { task: TreeTask }> => "task" in l);
  const nameWidth = Math.max(0, ...tasks.map((l) => width(l.prefix) + width(label(l.task))));
  const stateText = (t: TreeTask) =>
    t.state === "PENDING"
      ? `${state(c, t.state)} ${c.dim(t.parkReason ? `${t.queue}:${t.parkReason}` : t.queue)}`
      : state(c, t.state);
  const stateWidth = Math.max(0, ...tasks.map((l) => width(stateText(l.task))));
  return lines
    .map((line) => {
      if ("hidden" in line) return `${c.dim(line.prefix)}${hiddenText(line.hidden)}`;
      const { prefix, task } = line;
      const parts = [
        pad(`${c.dim(prefix)}${label(task)}`, nameWidth),
        c.dim(shortId(task.id)),
        pad(stateText(task), stateWidth),
        `attempt ${task.attempt}`,
      ];
      if (task.kind === "join") {
        const waiting = task.joinPending !== null && task.joinPending > 0 ? `, ${task.joinPending} pending` : "";
        parts.push(
          c.magenta(
            `joins ${task.upstream.length} upstream${waiting}: ${task.upstream.slice(0, UPSTREAM_SHOWN).map(shortId).join(" ") || "-"}${task.upstream.length > UPSTREAM_SHOWN ? ` +${task.upstream.length - UPSTREAM_SHOWN}` : ""}`,
          ),
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
