import type { Command } from "commander";
import { engineOf } from "../../internal.js";
import type { SlotCoverage } from "../../slots.js";
import { openSeriesByName } from "../../slots.js";
import { action, common, listOf, parseTime, UsageError } from "../context.js";
import { type Colors, time } from "../output.js";

interface RangeOptions {
  readonly from?: Date;
  readonly to?: Date;
  readonly interval: string;
  readonly tz?: string;
}

/** The grid's characters, as SlotCoverage.grid writes them. */
const LEGEND: readonly [string, string][] = [
  ["#", "complete"],
  ["-", "skipped"],
  [".", "pending"],
  [">", "running / acquired"],
  ["x", "failed"],
  ["?", "missing (never ensured)"],
];

/** Slots per grid line. */
const ROW = 60;

function range(cmd: Command): Command {
  return cmd
    .argument("<task>", "the series' task name")
    .requiredOption("--interval <every>", "the series' interval: 5m, 1h, 1d, 1w, ...")
    .requiredOption("--from <time>", "first slot's start at or after (ISO time or a span ago: 7d)", parseTime)
    .option("--to <time>", "slots starting before (default: now)", parseTime)
    .option("--tz <zone>", "time zone of 1d and 1w slots (default UTC)");
}

function resolved(o: RangeOptions): { from: Date; to: Date } {
  const from = o.from as Date;
  const to = o.to ?? new Date();
  if (to.getTime() <= from.getTime()) throw new UsageError("--to must be after --from");
  return { from, to };
}

function colourGrid(c: Colors, grid: string): string {
  return [...grid]
    .map((ch) =>
      ch === "#"
        ? c.green(ch)
        : ch === "x"
          ? c.red(ch)
          : ch === ">"
            ? c.cyan(ch)
            : ch === "."
              ? c.yellow(ch)
              : c.dim(ch),
    )
    .join("");
}

/** The grid in rows of 60 slots, each row labelled with its first slot's start, then the counts and a legend. */
function drawCoverage(c: Colors, task: string, cov: SlotCoverage): string {
  const lines = [
    `${c.bold(task)} every ${cov.every}, ${time(cov.from)} to ${time(cov.to)}: ${cov.counts.total} slot(s)`,
  ];
  for (let i = 0; i < cov.slots.length; i += ROW) {
    const first = cov.slots[i];
    lines.push(`${time(first?.start)}  ${colourGrid(c, cov.grid.slice(i, i + ROW))}`);
  }
  const n = cov.counts;
  lines.push(
    "",
    `complete ${n.complete}  skipped ${n.skipped}  pending ${n.pending}  running ${n.acquired}  failed ${n.failed}  missing ${n.missing}`,
    c.dim(`legend: ${LEGEND.map(([ch, what]) => `${ch} ${what}`).join("  ")}`),
  );
  if (cov.gaps.length > 0) {
    lines.push(
      `gaps (${cov.gaps.length}): ${cov.gaps
        .slice(0, 10)
        .map((g) => `${time(g.from)} to ${time(g.to)}`)
        .join(", ")}${cov.gaps.length > 10 ? ", ..." : ""}`,
    );
  }
  return lines.join("\n");
}

export function slotsCommand(program: Command): void {
  const slots = program.command("slots").description("slot series: coverage of a time range, and re-opening slots");

  common(range(slots.command("coverage").description("the state of every slot of a range, as a grid"))).action(
    action(async (session, task: string) => {
      const o = session.opts<RangeOptions>();
      const { from, to } = resolved(o);
      const weft = session.weftClient();
      const series = await openSeriesByName(engineOf(weft), task, {
        every: o.interval,
        ...(o.tz !== undefined ? { timeZone: o.tz } : {}),
      });
      const coverage = await series.coverage({ from, to });
      session.emit({ task, ...coverage }, (c, d) => drawCoverage(c, task, d));
    }),
  );

  common(
    range(
      slots
        .command("reopen")
        .description("re-open finished slots of a range for reprocessing (a new generation; engine-run: a new task)")
        .option(
          "--status <list>",
          "which slots: COMPLETE,SKIP,FAILED (default all three)",
          listOf(["COMPLETE", "SKIP", "FAILED"] as const),
        ),
    ),
  ).action(
    action(async (session, task: string) => {
      const o = session.opts<RangeOptions & { status?: ("COMPLETE" | "SKIP" | "FAILED")[] }>();
      const { from, to } = resolved(o);
      const weft = session.weftClient();
      const series = await openSeriesByName(engineOf(weft), task, {
        every: o.interval,
        ...(o.tz !== undefined ? { timeZone: o.tz } : {}),
      });
      const reopened = await series.reopen({ from, to }, o.status ? { status: o.status } : {});
      session.emit(
        { task, every: series.every, from, to, reopened },
        (_c, d) =>
          `re-opened ${d.reopened} slot(s) of ${d.task} every ${d.every} from ${time(d.from)} to ${time(d.to)}`,
      );
    }),
  );
}
