import type { Command } from "commander";
import { WORKFLOW_STATES } from "../../admin.js";
import type { WorkflowState } from "../../types.js";
import { action, common, listOf, parseTime, positiveInt } from "../context.js";
import { state, table, time } from "../output.js";
import { buildTree, drawTree } from "../tree.js";

export function workflowsCommand(program: Command): void {
  const workflows = program.command("workflows").description("list workflows, or show one as a tree of its tasks");

  common(
    workflows
      .command("list")
      .description("list workflows, newest first, a page at a time")
      .option("--status <list>", `only in these states: ${WORKFLOW_STATES.join(",")}`, listOf(WORKFLOW_STATES))
      .option("--task <name>", "only workflows whose root task has this name")
      .option("--since <time>", "created at or after (ISO time or a span ago: 15m, 2h, 7d)", parseTime)
      .option("--until <time>", "created before (ISO time or a span ago)", parseTime)
      .option("--limit <n>", "at most this many (1-500)", positiveInt(500), 50)
      .option("--cursor <cursor>", "the next page: the cursor the previous page printed"),
  ).action(
    action(async (session) => {
      const o = session.opts<{
        status?: WorkflowState[];
        task?: string;
        since?: Date;
        until?: Date;
        limit: number;
        cursor?: string;
      }>();
      const page = await session.client.listWorkflows({
        ...(o.status ? { status: o.status } : {}),
        ...(o.task !== undefined ? { rootTaskName: o.task } : {}),
        ...(o.since ? { createdAfter: o.since } : {}),
        ...(o.until ? { createdBefore: o.until } : {}),
        ...(o.cursor !== undefined ? { cursor: o.cursor } : {}),
        limit: o.limit,
      });
      session.emit(page, (c, d) => {
        const rows = d.items.map((w) => [
          w.id,
          w.rootTaskName ?? "-",
          state(c, w.status),
          String(w.totalTasks),
          String(w.pendingTasks),
          w.failedTasks > 0 ? c.red(String(w.failedTasks)) : "0",
          time(w.createdAt),
          time(w.finishedAt),
        ]);
        const body =
          rows.length === 0
            ? "no workflows"
            : table(
                c,
                [
                  "WORKFLOW",
                  "ROOT TASK",
                  "STATUS",
                  { header: "TASKS", align: "right" },
                  { header: "PENDING", align: "right" },
                  { header: "FAILED", align: "right" },
                  "CREATED",
                  "FINISHED",
                ],
                rows,
              );
        return d.nextCursor ? `${body}\n${c.dim(`more: --cursor ${d.nextCursor}`)}` : body;
      });
    }),
  );

  common(
    workflows
      .command("show")
      .description(
        "a workflow's status and its tasks as a tree (children under their parent; joins with their upstream)",
      )
      .argument("<workflowId>")
      .option(
        "--children <n>",
        "draw at most this many children under each parent (joins always), the rest summed up; 0: all (--json: always all)",
        (v: string) => (v === "0" ? 0 : positiveInt(1_000_000)(v)),
        20,
      ),
  ).action(
    action(async (session, workflowId: string) => {
      const { children } = session.opts<{ children: number }>();
      const client = session.client;
      const status = await client.getWorkflow(workflowId);
      const [graph, tasks] = await Promise.all([
        client.getWorkflowGraph(workflowId),
        client.getWorkflowTasks(workflowId),
      ]);
      const tree = buildTree(graph, tasks);
      session.emit({ workflow: status, tasks: tree }, (c, d) => {
        const w = d.workflow;
        const head = `${c.bold(`workflow ${w.id}`)}  ${w.status === "COMPLETED" ? c.green(w.status) : w.status === "FAILED" ? c.red(w.status) : w.status === "CANCELLED" ? c.dim(w.status) : c.cyan(w.status)}  ${w.totalTasks} task(s), ${w.pendingTasks} pending, ${w.failedTasks} failed  created ${time(w.createdAt)}${w.finishedAt ? `  finished ${time(w.finishedAt)}` : ""}`;
        return d.tasks.length === 0
          ? `${head}\n(no tasks left: purged after their retention)`
          : `${head}\n${drawTree(c, d.tasks, { maxChildren: children })}`;
      });
    }),
  );
}
