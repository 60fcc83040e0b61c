import { DeadLetterNotFoundError } from "@weft/engine";
import type { Command } from "commander";
import type { DeadLetter, DeadLetterQuery } from "../../dead-letters.js";
import { action, common, parseTime, positiveInt, UsageError } from "../context.js";
import { type Colors, shortId, table, time } from "../output.js";

interface FilterOptions {
  readonly task?: string;
  readonly workflow?: string;
  readonly since?: Date;
  readonly until?: Date;
}

function filters(cmd: Command): Command {
  return cmd
    .option("--task <name>", "only dead letters of this task")
    .option("--workflow <id>", "only dead letters of this workflow")
    .option("--since <time>", "failed at or after (ISO time or a span ago: 2h, 7d)", parseTime)
    .option("--until <time>", "failed before (ISO time or a span ago)", parseTime);
}

function query(o: FilterOptions): DeadLetterQuery {
  return {
    ...(o.task !== undefined ? { taskName: o.task } : {}),
    ...(o.workflow !== undefined ? { workflowId: o.workflow } : {}),
    ...(o.since !== undefined ? { failedFrom: o.since } : {}),
    ...(o.until !== undefined ? { failedTo: o.until } : {}),
  };
}

function showLetter(c: Colors, d: DeadLetter): string {
  const head = [
    `${c.bold("task")}      ${d.taskId} (${d.taskName})`,
    `${c.bold("workflow")}  ${d.workflowId}`,
    `${c.bold("parent")}    ${d.parentId ?? "-"}`,
    `${c.bold("created")}   ${time(d.taskCreatedAt)}`,
    `${c.bold("failed")}    ${time(d.failedAt)}`,
    `${c.bold("error")}     ${c.red(d.error ? `${d.error.code ? `[${d.error.code}] ` : ""}${d.error.message}` : "-")}`,
    `${c.bold("input")}     ${JSON.stringify(d.input)}`,
    "",
    c.bold(`attempts (${d.attempts.length})`),
  ];
  const attempts = table(
    c,
    ["#", "NODE", "STARTED", "ENDED", "ERROR"],
    d.attempts.map((a) => [
      String(a.attempt),
      a.node ?? "-",
      time(a.startedAt),
      time(a.endedAt),
      a.error ? `${a.error.code ? `[${a.error.code}] ` : ""}${a.error.message}` : "-",
    ]),
  );
  return [...head, attempts].join("\n");
}

export function dltCommand(program: Command): void {
  const dlt = program.command("dlt").description("dead letters: tasks that failed their last attempt");

  common(
    filters(
      dlt
        .command("list")
        .description("list dead letters, newest first")
        .option("--limit <n>", "at most this many (1-1000)", positiveInt(1_000), 100),
    ),
  ).action(
    action(async (session) => {
      const o = session.opts<FilterOptions & { limit: number }>();
      const items = await session.client.deadLetters.list({ ...query(o), limit: o.limit });
      session.emit({ items }, (c, d) =>
        d.items.length === 0
          ? "no dead letters"
          : table(
              c,
              ["TASK ID", "TASK", "WORKFLOW", "FAILED AT", { header: "ATTEMPTS", align: "right" }, "ERROR"],
              d.items.map((x) => [
                x.taskId,
                x.taskName,
                shortId(x.workflowId),
                time(x.failedAt),
                String(x.attempts.length),
                c.red(x.error?.message ?? "-"),
              ]),
            ),
      );
    }),
  );

  common(
    dlt.command("show").description("one dead letter: its error, input and every attempt").argument("<taskId>"),
  ).action(
    action(async (session, taskId: string) => {
      const letter = await session.client.deadLetters.get(taskId);
      if (!letter) throw new DeadLetterNotFoundError(taskId);
      session.emit(letter, showLetter);
    }),
  );

  common(
    dlt
      .command("requeue")
      .description("give dead-lettered tasks a new run with a fresh attempt budget (all or nothing)")
      .argument("<taskIds...>"),
  ).action(
    action(async (session, taskIds: string[]) => {
      const requeued = await session.client.deadLetters.requeue(taskIds);
      session.emit({ requeued }, (_c, d) => `requeued ${d.requeued.length} task(s): ${d.requeued.join(" ")}`);
    }),
  );

  common(
    filters(
      dlt
        .command("delete")
        .description("delete dead letters by id, or all that match the filters (their tasks stay until retention)")
        .argument("[taskIds...]")
        .option("--all", "with no ids and no filters: delete every dead letter"),
    ),
  ).action(
    action(async (session, taskIds: string[]) => {
      const o = session.opts<FilterOptions & { all?: boolean }>();
      const q = query(o);
      const filtered = Object.keys(q).length > 0;
      if (taskIds.length > 0 && (filtered || o.all)) {
        throw new UsageError("give task ids or filters (--task, --workflow, --since, --until, --all), not both");
      }
      if (taskIds.length === 0 && !filtered && !o.all) {
        throw new UsageError("nothing to delete: give task ids, filters, or --all to delete every dead letter");
      }
      const deleted = await session.client.deadLetters.purge(taskIds.length > 0 ? { taskIds } : q);
      session.emit({ deleted }, (_c, d) => `deleted ${d.deleted} dead letter(s)`);
    }),
  );
}
