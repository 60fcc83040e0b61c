import type { Command } from "commander";
import { action, common } from "../context.js";

export function cancelCommand(program: Command): void {
  common(
    program
      .command("cancel")
      .description("cancel a workflow: every unfinished task becomes CANCELLED, running ones are aborted")
      .argument("<workflowId>", "the workflow's id")
      .option("--reason <text>", "recorded with the cancellation"),
  ).action(
    action(async (session, workflowId: string) => {
      const { reason } = session.opts<{ reason?: string }>();
      const cancelled = await session.client.cancelWorkflow(workflowId, reason);
      const status = await session.client.getWorkflow(workflowId);
      session.emit({ workflowId, cancelled, status: status.status, reason: reason ?? null }, (c, d) =>
        d.cancelled
          ? `${c.bold(d.workflowId)} cancelled${d.reason ? ` (${d.reason})` : ""}`
          : `${c.bold(d.workflowId)} had already finished: ${d.status}; nothing was cancelled`,
      );
    }),
  );
}
