// The charts of docs/benchmarks.md: the results of `pnpm bench --charts`
// invocations are merged into bench/results/results.json (one entry per
// durability, system, workload, task count and node count: a later
// invocation replaces an earlier one's entry), and drawn from there as SVG
// with Vega-Lite and Vega's headless renderer. `pnpm bench:charts` redraws
// them from the file alone.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as vega from "vega";
import * as vegaLite from "vega-lite";
import type { SystemSummary, Unsupported } from "./report.js";

/** bench/results/, or BENCH_RESULTS_DIR (CI draws its smoke's charts into a temporary folder). */
export const RESULTS_DIR = process.env.BENCH_RESULTS_DIR || fileURLToPath(new URL("../results/", import.meta.url));
const RESULTS_FILE = join(RESULTS_DIR, "results.json");

/** One saved figure: what a chart needs of a SystemSummary, with when it was measured. */
export interface SavedResult {
  readonly system: string;
  readonly version: string;
  readonly workload: string;
  readonly tasks: number;
  readonly finishedTasks: number;
  readonly nodes: number;
  readonly durable: boolean;
  readonly tasksPerSec: number;
  readonly endToEndTasksPerSec: number;
  readonly runs: readonly number[];
  readonly latency?: SystemSummary["latency"];
  readonly measuredAt: string;
}

interface ResultsFile {
  readonly results: SavedResult[];
  readonly unsupported: Unsupported[];
}

const key = (r: { system: string; workload: string; tasks: number; nodes: number; durable: boolean }) =>
  [r.durable ? "durable" : "unsafe-fast", r.system, r.workload, r.tasks, r.nodes].join("\u0000");

export function loadResults(): ResultsFile {
  if (!existsSync(RESULTS_FILE)) return { results: [], unsupported: [] };
  return JSON.parse(readFileSync(RESULTS_FILE, "utf8")) as ResultsFile;
}

/** Merges this invocation's figures into bench/results/results.json; returns its path. */
export function saveResults(summaries: readonly SystemSummary[], unsupported: readonly Unsupported[]): string {
  const file = loadResults();
  const merged = new Map(file.results.map((r) => [key(r), r]));
  const measuredAt = new Date().toISOString();
  for (const s of summaries) {
    merged.set(key(s), {
      system: s.system,
      version: s.version,
      workload: s.workload,
      tasks: s.tasks,
      finishedTasks: s.finishedTasks,
      nodes: s.nodes,
      durable: s.durable,
      tasksPerSec: s.tasksPerSec,
      endToEndTasksPerSec: s.endToEndTasksPerSec,
      runs: s.runs.map((r) => r.tasksPerSec),
      ...(s.latency ? { latency: s.latency } : {}),
      measuredAt,
    });
  }
  const gaps = new Map(file.unsupported.map((u) => [`${u.system}\u0000${u.workload}`, u]));
  for (const u of unsupported) gaps.set(`${u.system}\u0000${u.workload}`, u);
  mkdirSync(RESULTS_DIR, { recursive: true });
  const sorted = [...merged.values()].sort((a, b) => key(a).localeCompare(key(b)));
  writeFileSync(RESULTS_FILE, `${JSON.stringify({ results: sorted, unsupported: [...gaps.values()] }, null, 2)}\n`);
  return RESULTS_FILE;
}

async function svg(spec: vegaLite.TopLevelSpec): Promise<string> {
  const compiled = vegaLite.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  const out = await view.toSVG();
  view.finalize();
  return out;
}

const FONT = { config: { font: "sans-serif", axis: { labelFontSize: 11, titleFontSize: 12 } } } as const;

/** Throughput by system, one panel per workload, durable and --unsafe-fast side by side (1 node, largest task count shown). */
function throughputSpec(results: readonly SavedResult[]): vegaLite.TopLevelSpec | undefined {
  const rows = results
    .filter((r) => r.nodes === 1 && r.workload !== "latency" && r.workload !== "backlog")
    .map((r) => ({
      system: r.system,
      workload: `${r.workload} (${r.tasks.toLocaleString("en-US")})`,
      settings: r.durable ? "durable" : "--unsafe-fast",
      // Fan-out writes its tasks while processing: compared end to end.
      tasksPerSec: r.workload === "fanout" ? r.endToEndTasksPerSec : r.tasksPerSec,
    }));
  if (rows.length === 0) return undefined;
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: "Throughput (median tasks/s; fan-out end to end)",
    data: { values: rows },
    facet: { column: { field: "workload", type: "nominal", title: null } },
    spec: {
      width: 180,
      height: 220,
      mark: { type: "bar", tooltip: true },
      encoding: {
        x: { field: "system", type: "nominal", title: null, axis: { labelAngle: -40, labelLimit: 200 } },
        xOffset: { field: "settings", sort: ["durable", "--unsafe-fast"] },
        y: { field: "tasksPerSec", type: "quantitative", title: "tasks/s" },
        color: { field: "settings", type: "nominal", title: "PostgreSQL", sort: ["durable", "--unsafe-fast"] },
      },
    },
    resolve: { scale: { y: "independent" } },
    ...FONT,
  };
}

/** Throughput by node processes, per system (workload `independent`). */
function nodesSpec(results: readonly SavedResult[]): vegaLite.TopLevelSpec | undefined {
  const rows = results
    .filter((r) => r.workload === "independent" && r.durable)
    .map((r) => ({ system: r.system, nodes: r.nodes, tasksPerSec: r.tasksPerSec }));
  if (new Set(rows.map((r) => r.nodes)).size < 2) return undefined;
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: "Node processes on one database (independent, durable)",
    data: { values: rows },
    width: 360,
    height: 220,
    mark: { type: "line", point: true, tooltip: true },
    encoding: {
      x: { field: "nodes", type: "ordinal", title: "node processes" },
      y: { field: "tasksPerSec", type: "quantitative", title: "tasks/s" },
      color: { field: "system", type: "nominal" },
    },
    ...FONT,
  };
}

/** Latency percentiles, schedule→start and schedule→completion, per system and rate. */
function latencySpec(results: readonly SavedResult[]): vegaLite.TopLevelSpec | undefined {
  const rows = results.flatMap((r) =>
    r.latency && r.durable
      ? (["start", "completion"] as const).flatMap((phase) =>
          (["p50", "p95", "p99"] as const).map((p) => ({
            system: r.system,
            rate: `${r.tasks}/s`,
            measure: `schedule→${phase} ${p}`,
            ms: r.latency?.[phase]?.[p],
          })),
        )
      : [],
  );
  const measured = rows.filter((r) => r.ms !== undefined);
  if (measured.length === 0) return undefined;
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: "Latency (ms, durable; log scale)",
    data: { values: measured },
    facet: { column: { field: "rate", type: "nominal", title: null } },
    spec: {
      width: 260,
      height: 220,
      mark: { type: "bar", tooltip: true },
      encoding: {
        x: { field: "system", type: "nominal", title: null, axis: { labelAngle: -40, labelLimit: 200 } },
        xOffset: { field: "measure" },
        y: { field: "ms", type: "quantitative", title: "ms", scale: { type: "log" } },
        color: { field: "measure", type: "nominal", title: null },
      },
    },
    ...FONT,
  };
}

/** Draws every chart there are figures for into bench/results/; returns the files written. */
export async function writeCharts(): Promise<string[]> {
  const { results } = loadResults();
  mkdirSync(RESULTS_DIR, { recursive: true });
  const written: string[] = [];
  for (const [name, spec] of [
    ["throughput.svg", throughputSpec(results)],
    ["nodes.svg", nodesSpec(results)],
    ["latency.svg", latencySpec(results)],
  ] as const) {
    if (!spec) continue;
    const file = join(RESULTS_DIR, name);
    writeFileSync(file, await svg(spec));
    written.push(file);
  }
  return written;
}
