import type { Command } from "commander";
import { action, common } from "../context.js";
import { time } from "../output.js";
import { buildTree, drawTree } from "../tree.js";

export function workflowsCommand(program: Command): void {
  const workflows = program.command("workflows").description("list workflows, or show one as a tree of its tasks");

  common(
    workflows
      .command("show")
      .description(
        "a workflow's status and its tasks as a tree (children under their parent; joins with their upstream)",
      )
      .argument("<workflowId>"),
  ).action(
    action(async (session, workflowId: string) => {
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
          : `${head}\n${drawTree(c, d.tasks)}`;
      });
    }),
  );
}
