import type { Command } from "commander";
import { action, common } from "../context.js";
import { duration, table, time } from "../output.js";

export function statusCommand(program: Command): void {
  common(
    program.command("status").description("the cluster now: nodes and the leader, queue depths, lag, parked tasks"),
  ).action(
    action(async (session) => {
      const client = session.client;
      const [nodes, queues] = await Promise.all([client.listNodes(), client.queueStats()]);
      const leader = nodes.find((n) => n.isLeader)?.id ?? null;
      session.emit({ leader, nodes, ...queues }, (c, d) => {
        const out: string[] = [];
        out.push(
          `${c.bold("leader")}  ${d.leader ?? c.yellow("none (no node holds the planner's lock; nothing is being planned)")}`,
          "",
        );
        out.push(
          d.nodes.length === 0
            ? c.yellow("no nodes registered")
            : table(
                c,
                [
                  "NODE",
                  "APP",
                  "HOST",
                  { header: "PID", align: "right" },
                  { header: "RUNNING", align: "right" },
                  { header: "CAPACITY", align: "right" },
                  { header: "HEARTBEAT", align: "right" },
                  "STARTED",
                  "TASKS",
                ],
                d.nodes.map((n) => [
                  `${n.id}${n.isLeader ? c.green(" *") : ""}${n.draining ? c.yellow(" (draining)") : ""}`,
                  n.appName,
                  n.host,
                  String(n.pid),
                  String(n.running),
                  String(n.capacity),
                  `${duration(n.heartbeatAgeMs)} ago`,
                  time(n.startedAt),
                  n.taskNames.join(","),
                ]),
              ),
        );
        out.push("", c.bold("queues"));
        out.push(
          d.queues.length === 0
            ? "no unfinished tasks"
            : table(
                c,
                ["QUEUE", "TASK", { header: "COUNT", align: "right" }],
                d.queues.map((q) => [q.queue, q.taskName, String(q.count)]),
              ),
        );
        if (d.readyLag.length > 0) {
          out.push("", c.bold("lag (oldest runnable task waiting for a node)"));
          out.push(
            table(
              c,
              ["TASK", { header: "OLDEST READY", align: "right" }],
              d.readyLag.map((l) => [l.taskName, duration(l.oldestReadyAgeMs)]),
            ),
          );
        }
        if (d.parked.length > 0) {
          out.push("", c.bold("parked"));
          out.push(
            table(
              c,
              ["REASON", { header: "COUNT", align: "right" }],
              d.parked.map((p) => [p.reason, String(p.count)]),
            ),
          );
        }
        return out.join("\n");
      });
    }),
  );
}
