import Table from "cli-table3";
import type { RunResult } from "./runner.js";

/** The figures for one system, workload and task count: medians over the runs, and each run. */
export interface SystemSummary {
  readonly system: string;
  readonly version: string;
  readonly workload: string;
  /** Initial tasks per run (`--tasks`). */
  readonly tasks: number;
  /** Tasks finished per run (more than `tasks` when tasks spawn others). */
  readonly finishedTasks: number;
  readonly nodes: number;
  /** Per-node settings of this system (Weft: capacity and planner batch; pg-boss: loops and batch size). */
  readonly settings: Readonly<Record<string, number>>;
  /** Whether the tables were ANALYZEd after enqueueing (false: --no-analyze). */
  readonly analyzed: boolean;
  /** Tasks the node processes worked through, untimed, before each run (\`--warmup\`; 0: fresh processes). */
  readonly warmupTasks: number;
  /** Median processing wall time in seconds. */
  readonly seconds: number;
  /** Median throughput (finished tasks per second). */
  readonly tasksPerSec: number;
  /** Median enqueue time in seconds. */
  readonly enqueueSeconds: number;
  /**
   * Median end-to-end throughput: finished tasks per second of enqueue plus
   * processing. Fan-out writes its tasks while processing (the parent writes
   * them), independent writes them in the enqueue: this is the figure that
   * compares the two on the same work.
   */
  readonly endToEndTasksPerSec: number;
  /** Peak RSS of each node process in MiB, the highest over the runs. */
  readonly peakRssMb: number[];
  /** RSS of each node process when ready (before processing) in MiB, the highest over the runs. */
  readonly startRssMb: number[];
  /** CPU seconds of each node process while processing, the median over the runs. */
  readonly cpuSeconds: number[];
  readonly runs: RunResult[];
  readonly postgres: string;
  /** fsync and synchronous_commit on (PostgreSQL's defaults): false with --unsafe-fast. */
  readonly durable: boolean;
  /** fsync, synchronous_commit and full_page_writes as the server reported them. */
  readonly durability: Readonly<Record<string, string>>;
  /** The system's own setup (BullMQ: Redis's version and persistence settings). */
  readonly environment: Readonly<Record<string, string>>;
  /** Workload \`latency\`: medians over the runs of each run's percentiles, in ms. */
  readonly latency?: { readonly start: Percentiles; readonly completion?: Percentiles };
}

export interface Percentiles {
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
}

/** A system with no way to express a workload (no joins, no keys): a "not supported" row. */
export interface Unsupported {
  readonly system: string;
  readonly version: string;
  readonly workload: string;
}

export function unsupportedLines(unsupported: readonly Unsupported[]): string[] {
  return unsupported.map((u) => `${u.system}: ${u.workload} not supported (no equivalent in ${u.system})`);
}

/** Nearest-rank percentiles of \`values\` (ms), rounded to 0.1. */
export function percentiles(values: readonly number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? 0;
  return { p50: round(at(0.5), 1), p95: round(at(0.95), 1), p99: round(at(0.99), 1) };
}

function medianPercentiles(list: readonly (Percentiles | undefined)[]): Percentiles | undefined {
  const own = list.filter((p): p is Percentiles => p !== undefined);
  if (own.length === 0) return undefined;
  return {
    p50: round(median(own.map((p) => p.p50)), 1),
    p95: round(median(own.map((p) => p.p95)), 1),
    p99: round(median(own.map((p) => p.p99)), 1),
  };
}

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error("median of nothing");
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

function maxPerNode(runs: readonly RunResult[], pick: (r: RunResult) => number[]): number[] {
  const out: number[] = [];
  for (const run of runs) {
    for (const [i, v] of pick(run).entries()) out[i] = Math.max(out[i] ?? 0, v);
  }
  return out.map((v) => round(v, 1));
}

export function summarize(
  base: Omit<
    SystemSummary,
    | "seconds"
    | "tasksPerSec"
    | "enqueueSeconds"
    | "endToEndTasksPerSec"
    | "peakRssMb"
    | "startRssMb"
    | "cpuSeconds"
    | "runs"
  >,
  runs: readonly RunResult[],
): SystemSummary {
  const start = medianPercentiles(runs.map((r) => r.startLatencyMs));
  const completion = medianPercentiles(runs.map((r) => r.completionLatencyMs));
  return {
    ...base,
    ...(start ? { latency: { start, ...(completion ? { completion } : {}) } } : {}),
    seconds: round(median(runs.map((r) => r.seconds)), 3),
    tasksPerSec: Math.round(median(runs.map((r) => r.tasksPerSec))),
    enqueueSeconds: round(median(runs.map((r) => r.enqueueSeconds)), 3),
    endToEndTasksPerSec: Math.round(
      median(runs.map((r) => (r.tasksPerSec * r.seconds) / Math.max(1e-9, r.seconds + r.enqueueSeconds))),
    ),
    peakRssMb: maxPerNode(runs, (r) => r.peakRssMb),
    startRssMb: maxPerNode(runs, (r) => r.startRssMb),
    cpuSeconds: (runs[0]?.cpuSeconds ?? []).map((_, i) => round(median(runs.map((r) => r.cpuSeconds[i] ?? 0)), 2)),
    runs: runs.map((r) => ({
      run: r.run,
      seconds: round(r.seconds, 3),
      tasksPerSec: Math.round(r.tasksPerSec),
      enqueueSeconds: round(r.enqueueSeconds, 3),
      peakRssMb: r.peakRssMb.map((v) => round(v, 1)),
      startRssMb: r.startRssMb.map((v) => round(v, 1)),
      cpuSeconds: r.cpuSeconds.map((v) => round(v, 2)),
      heapUsedMb: r.heapUsedMb.map((v) => round(v, 1)),
      ...(r.startLatencyMs ? { startLatencyMs: r.startLatencyMs } : {}),
      ...(r.completionLatencyMs ? { completionLatencyMs: r.completionLatencyMs } : {}),
    })),
  };
}

/**
 * Weft's median throughput over this system's, for the same workload and task
 * count in the same invocation (fan-out end to end: its tasks are written while
 * processing, and for some systems by the enqueue).
 */
export function ratio(summaries: readonly SystemSummary[], s: SystemSummary): number | undefined {
  if (s.system === "weft") return undefined;
  const weft = summaries.find(
    (o) => o.system === "weft" && o.workload === s.workload && o.tasks === s.tasks && o.nodes === s.nodes,
  );
  if (!weft) return undefined;
  return s.workload === "fanout" ? weft.endToEndTasksPerSec / s.endToEndTasksPerSec : weft.tasksPerSec / s.tasksPerSec;
}

/**
 * Workloads compared with \`independent\` in the same invocation, with the share
 * of its throughput they must reach. Fan-out writes its tasks while processing
 * (its parent writes them), so it is compared end to end (enqueue + processing);
 * affinity enqueues like independent, so it is compared on processing.
 */
export const FLOORS: Readonly<Record<string, { readonly share: number; readonly endToEnd: boolean }>> = {
  fanout: { share: 0.7, endToEnd: true },
  affinity: { share: 0.5, endToEnd: false },
};

/** A workload's throughput over the same system's \`independent\` at the same task count, as its floor compares them. */
export function independentShare(summaries: readonly SystemSummary[], s: SystemSummary): number | undefined {
  const floor = FLOORS[s.workload];
  if (!floor) return undefined;
  const base = summaries.find(
    (o) => o.system === s.system && o.workload === "independent" && o.tasks === s.tasks && o.nodes === s.nodes,
  );
  if (!base) return undefined;
  return floor.endToEnd ? s.endToEndTasksPerSec / base.endToEndTasksPerSec : s.tasksPerSec / base.tasksPerSec;
}

/** One line per system, workload and task count compared with independent; flags a share below the floor. */
export function fanoutNotes(summaries: readonly SystemSummary[]): string[] {
  const notes: string[] = [];
  for (const s of summaries) {
    const share = independentShare(summaries, s);
    const floor = FLOORS[s.workload];
    if (share === undefined || !floor) continue;
    const base = summaries.find(
      (o) => o.system === s.system && o.workload === "independent" && o.tasks === s.tasks && o.nodes === s.nodes,
    );
    const pct = (x: number) => `${(x * 100).toFixed(0)}%`;
    const processing = base ? s.tasksPerSec / base.tasksPerSec : Number.NaN;
    const endToEnd = base ? s.endToEndTasksPerSec / base.endToEndTasksPerSec : Number.NaN;
    notes.push(
      `${s.system}: ${s.workload} ${s.tasks} (${s.finishedTasks} tasks) ran at ${pct(share)} of the independent ` +
        `throughput ${floor.endToEnd ? "end to end (enqueue included)" : "(processing)"}; floor ${pct(floor.share)}` +
        (share < floor.share ? ` — NOTE: below ${pct(floor.share)}` : "") +
        ` [processing ${pct(processing)}, end to end ${pct(endToEnd)}]`,
    );
  }
  return notes;
}

export function formatTable(summaries: readonly SystemSummary[], unsupported: readonly Unsupported[] = []): string {
  // The share column only when some compared workload ran next to independent.
  const withShare = summaries.some((s) => independentShare(summaries, s) !== undefined);
  const table = new Table({
    head: [
      "system",
      "workload",
      "tasks",
      "nodes",
      "median s",
      "median tasks/s",
      "runs (tasks/s)",
      "enqueue s",
      "end-to-end tasks/s",
      "peak RSS MiB / node",
      "Weft / this",
      ...(withShare ? ["share of independent"] : []),
    ],
    colAligns: [
      "left",
      "left",
      "right",
      "right",
      "right",
      "right",
      "right",
      "right",
      "right",
      "right",
      "right",
      ...(withShare ? (["right"] as const) : []),
    ],
    style: { head: [], border: [] },
  });
  for (const s of summaries) {
    const r = ratio(summaries, s);
    const share = independentShare(summaries, s);
    const floor = FLOORS[s.workload]?.share ?? 0;
    table.push([
      `${s.system} (${s.version})`,
      s.workload,
      s.finishedTasks === s.tasks ? String(s.tasks) : `${s.tasks} (${s.finishedTasks} run)`,
      String(s.nodes),
      s.seconds.toFixed(2),
      String(s.tasksPerSec),
      s.runs.map((run) => run.tasksPerSec).join(", "),
      s.enqueueSeconds.toFixed(2),
      String(s.endToEndTasksPerSec),
      s.peakRssMb.map((v) => v.toFixed(0)).join(", "),
      r === undefined ? "" : `${r.toFixed(2)}x`,
      ...(withShare
        ? [
            share === undefined
              ? ""
              : `${(share * 100).toFixed(0)}%${share < floor ? ` (< ${(floor * 100).toFixed(0)}%)` : ""}`,
          ]
        : []),
    ]);
  }
  for (const u of unsupported) {
    table.push([
      `${u.system} (${u.version})`,
      u.workload,
      { colSpan: withShare ? 10 : 9, content: "not supported (no equivalent)" },
    ]);
  }
  return table.toString();
}

/** Notes on how throughput and memory change from the smallest to the largest task count, per system and workload. */
export function scalingNotes(summaries: readonly SystemSummary[], minShare = 0.8): string[] {
  const notes: string[] = [];
  const several = new Set(summaries.map((s) => s.workload)).size > 1;
  const groups = new Map<string, SystemSummary[]>();
  for (const s of summaries) {
    const key = `${s.system}\u0000${s.workload}\u0000${s.nodes}`;
    groups.set(key, [...(groups.get(key) ?? []), s]);
  }
  for (const group of groups.values()) {
    const own = [...group].sort((a, b) => a.tasks - b.tasks);
    const small = own[0];
    const large = own[own.length - 1];
    if (!small || !large || small === large) continue;
    const share = large.tasksPerSec / small.tasksPerSec;
    const rss = (s: SystemSummary) => Math.max(...s.peakRssMb).toFixed(0);
    notes.push(
      `${large.system}${several ? ` ${large.workload}` : ""}: ${large.tasks} tasks ran at ` +
        `${(share * 100).toFixed(0)}% of the throughput of ${small.tasks} ` +
        `(${large.tasksPerSec} vs ${small.tasksPerSec} tasks/s); peak RSS ${rss(large)} vs ${rss(small)} MiB` +
        (share < minShare ? ` — NOTE: below ${(minShare * 100).toFixed(0)}%` : ""),
    );
  }
  return notes;
}

/** Workload latency: one line per system and rate with the percentiles (median over the runs). */
export function latencyNotes(summaries: readonly SystemSummary[]): string[] {
  const fmt = (p: Percentiles) => `p50 ${p.p50} ms, p95 ${p.p95} ms, p99 ${p.p99} ms`;
  return summaries.flatMap((s) =>
    s.latency
      ? [
          `${s.system}: latency at ${s.tasks}/s (${s.finishedTasks} tasks): schedule→start ${fmt(s.latency.start)}; ` +
            `schedule→completion ${s.latency.completion ? fmt(s.latency.completion) : "not measured (the system keeps no completion time)"}`,
        ]
      : [],
  );
}

/** Several node counts: each count's throughput against 1 node's, per system and workload (4 nodes should reach 1 node's). */
export function nodesNotes(summaries: readonly SystemSummary[]): string[] {
  const notes: string[] = [];
  for (const s of summaries) {
    if (s.nodes === 1) continue;
    const one = summaries.find(
      (o) => o.nodes === 1 && o.system === s.system && o.workload === s.workload && o.tasks === s.tasks,
    );
    if (!one) continue;
    const share = s.tasksPerSec / one.tasksPerSec;
    notes.push(
      `${s.system}: ${s.workload} ${s.tasks} on ${s.nodes} nodes ran at ${(share * 100).toFixed(0)}% of 1 node's ` +
        `throughput (${s.tasksPerSec} vs ${one.tasksPerSec} tasks/s)` +
        (share < 1 ? ` — NOTE: below 1 node's` : ""),
    );
  }
  return notes;
}
