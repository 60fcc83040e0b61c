import { parseArgs } from "node:util";
import { DEFAULT_SYSTEMS, SYSTEMS } from "./systems/index.js";
import { WORKLOADS } from "./workloads/index.js";

/** The default warm-up is the run's task count, up to this many tasks. */
export const DEFAULT_WARMUP_MAX = 20_000;

export interface BenchOptions {
  /** One or more workloads, run one after another (their runs alternate, as the systems' do). */
  readonly workloads: readonly string[];
  /** One or more task counts, each measured for every system; undefined: each workload's `defaultTasks`. */
  readonly tasks: readonly number[] | undefined;
  readonly runs: number;
  readonly systems: readonly string[];
  /** Node processes per system; several counts compare scaling on one database. */
  readonly nodes: readonly number[];
  readonly capacity: number;
  readonly plannerBatchSize: number;
  readonly completionBatchSize: number;
  readonly pgBossWorkers: number;
  readonly pgBossBatchSize: number;
  readonly enqueueBatchSize: number;
  readonly timeoutSeconds: number;
  /** Paced workloads (latency): seconds of scheduling per run. */
  readonly durationSeconds: number;
  readonly analyze: boolean;
  /**
   * Tasks each run's node processes work through, untimed, before the measured
   * run (0: none); undefined: the run's task count, at most DEFAULT_WARMUP_MAX.
   */
  readonly warmupTasks: number | undefined;
  readonly json: boolean;
  /** An existing server (--database-url, else DATABASE_URL); undefined: an embedded one. */
  readonly databaseUrl: string | undefined;
  /** The embedded server with fsync, synchronous_commit and full_page_writes off. */
  readonly unsafeFast: boolean;
  /** Redraw the SVG charts under bench/results/ from this invocation's results. */
  readonly charts: boolean;
  /** Show a progress bar per run (default: when stderr is a TTY and not --json). */
  readonly progress: boolean;
  readonly help: boolean;
}

/** A command-line mistake: reported with the usage hint, exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** " (pg-boss: fanout)": the workloads each system has no part for. */
function unsupported(): string {
  const parts = Object.values(SYSTEMS).flatMap((system) => {
    const names = Object.values(WORKLOADS)
      .filter((w) => !system.supports(w))
      .map((w) => w.name);
    return names.length > 0 ? [`${system.name}: ${names.join(", ")}`] : [];
  });
  return parts.length > 0 ? ` (${parts.join("; ")})` : "";
}

export const USAGE = `Usage: pnpm bench [options]
       node --import tsx bench/src/main.ts [options]

Runs the same workload through each system on one PostgreSQL server (an embedded
PostgreSQL 18 started for the invocation with PostgreSQL's durable defaults, or an
existing one) and reports the median of the runs.

Options:
  --workload LIST        comma-separated workloads: ${Object.keys(WORKLOADS).join(", ")}
                         (default: independent); run one after another, their runs
                         alternating like the systems'; a system is skipped for a
                         workload it has no part for${unsupported()}
  --tasks N[,N...]       tasks per run; several counts compare scaling (default per
                         workload: ${Object.values(WORKLOADS)
                           .map((w) => `${w.name} ${w.defaultTasks}`)
                           .join(", ")})
  --runs N               runs per system, the median is reported (default: 3)
  --systems LIST         comma-separated: ${Object.keys(SYSTEMS).join(", ")}
                         (default: ${DEFAULT_SYSTEMS.join(",")}; weft-http, Weft
                         with its HTTP API mounted and idle, on request; bullmq is
                         skipped with a line when no Redis answers)
  --unsafe-fast          the embedded server with fsync, synchronous_commit and
                         full_page_writes off (default: PostgreSQL's defaults, on)
  --database-url URL     an existing server instead of the embedded one (default:
                         DATABASE_URL when set); the bench creates and drops its own
                         bench_* databases there and changes none of its settings
  --charts               also redraw the SVG charts in bench/results/ from this
                         invocation (pnpm bench:charts redraws them from the saved results)
  --no-progress          no progress bars (default: shown when stderr is a TTY)
  --nodes N[,N...]       worker node processes per system; several counts compare
                         node scaling on one database (default: 1)
  --capacity N           Weft maxParallelTasksInNode (default: pg-boss loops × jobs
                         per fetch, 4000 with their defaults: both systems hold
                         as many tasks in flight per node)
  --planner-batch N      Weft planner batch size (default: 2000)
  --completion-batch N   Weft outcomes per completion statement (default: 2000, as
                         pg-boss completes a fetch of 2000 in one statement)
  --pgboss-workers N     pg-boss fetch/complete loops per node (default: 2)
  --pgboss-batch N       pg-boss jobs per fetch (default: 2000)
  --enqueue-batch N      tasks per enqueue statement, both systems (default: 5000)
  --timeout SECONDS      give up on a run after this long (default: 600)
  --duration SECONDS     workload latency: seconds of scheduling at --tasks per
                         second in each run (default: 30)
  --warmup N             tasks each run's node processes first work through,
                         untimed, in a database of their own, so that the run
                         measures a node whose code V8 has compiled, as in a
                         service that has been up for a while; 0 measures
                         freshly started processes (default: the run's task
                         count, at most ${DEFAULT_WARMUP_MAX})
  --no-analyze           skip the (untimed) ANALYZE after enqueueing: measures a
                         burst into tables the planner has no statistics for
  --json                 print one JSON object per line, one per system, workload and task count
  -h, --help             show this help

The planner's cycle time under a large backlog (1,000 to 1,000,000 waiting tasks)
is a separate bench: node --import tsx bench/src/planner-cycle.ts --help`;

/** A whole-number option within [min, max]; a UsageError names the option otherwise. */
export function int(name: string, raw: string, min: number, max: number): number {
  if (!/^\d+$/.test(raw.trim())) throw new UsageError(`--${name}: expected a whole number, got "${raw}"`);
  const value = Number(raw.trim());
  if (value < min || value > max) throw new UsageError(`--${name}: expected ${min}..${max}, got ${value}`);
  return value;
}

function list(name: string, raw: string): string[] {
  const items = raw
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (items.length === 0) throw new UsageError(`--${name}: expected a comma-separated list, got "${raw}"`);
  return items;
}

function oneOf(name: string, value: string, known: readonly string[]): string {
  if (!known.includes(value))
    throw new UsageError(`--${name}: unknown "${value}"; expected one of ${known.join(", ")}`);
  return value;
}

export function parseOptions(argv: readonly string[]): BenchOptions {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const v = parsed.values;
  if (v["unsafe-fast"] && v["database-url"])
    throw new UsageError("--unsafe-fast: applies to the embedded server only, not to --database-url");
  const systems = [...new Set(list("systems", v.systems ?? DEFAULT_SYSTEMS.join(",")))];
  for (const s of systems) oneOf("systems", s, Object.keys(SYSTEMS));
  const workloads = [...new Set(list("workload", v.workload ?? "independent"))];
  for (const w of workloads) oneOf("workload", w, Object.keys(WORKLOADS));
  const tasks =
    v.tasks === undefined ? undefined : [...new Set(list("tasks", v.tasks).map((t) => int("tasks", t, 1, 10_000_000)))];
  const pgBossWorkers = int("pgboss-workers", v["pgboss-workers"] ?? "2", 1, 100);
  const pgBossBatchSize = int("pgboss-batch", v["pgboss-batch"] ?? "2000", 1, 100_000);
  return {
    workloads,
    tasks,
    runs: int("runs", v.runs ?? "3", 1, 100),
    systems,
    nodes: [...new Set(list("nodes", v.nodes ?? "1").map((n) => int("nodes", n, 1, 64)))],
    capacity:
      v.capacity === undefined
        ? Math.min(100_000, pgBossWorkers * pgBossBatchSize)
        : int("capacity", v.capacity, 1, 100_000),
    plannerBatchSize: int("planner-batch", v["planner-batch"] ?? "2000", 1, 50_000),
    completionBatchSize: int("completion-batch", v["completion-batch"] ?? "2000", 1, 10_000),
    pgBossWorkers,
    pgBossBatchSize,
    enqueueBatchSize: int("enqueue-batch", v["enqueue-batch"] ?? "5000", 1, 100_000),
    timeoutSeconds: int("timeout", v.timeout ?? "600", 1, 86_400),
    durationSeconds: int("duration", v.duration ?? "30", 1, 3_600),
    analyze: !(v["no-analyze"] ?? false),
    warmupTasks: v.warmup === undefined ? undefined : int("warmup", v.warmup, 0, 10_000_000),
    json: v.json ?? false,
    databaseUrl: databaseUrl(v["database-url"] ?? process.env.DATABASE_URL),
    unsafeFast: v["unsafe-fast"] ?? false,
    charts: v.charts ?? false,
    progress: !(v["no-progress"] ?? false) && !(v.json ?? false) && process.stderr.isTTY === true,
    help: v.help ?? false,
  };
}

function databaseUrl(raw: string | undefined): string | undefined {
  if (raw === undefined || raw.trim() === "") return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`--database-url: expected a postgres:// URL, got "${raw}"`);
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:")
    throw new UsageError(`--database-url: expected a postgres:// URL, got "${raw}"`);
  return raw;
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      workload: { type: "string" },
      tasks: { type: "string" },
      runs: { type: "string" },
      systems: { type: "string" },
      nodes: { type: "string" },
      capacity: { type: "string" },
      "planner-batch": { type: "string" },
      "completion-batch": { type: "string" },
      "pgboss-workers": { type: "string" },
      "pgboss-batch": { type: "string" },
      "enqueue-batch": { type: "string" },
      timeout: { type: "string" },
      duration: { type: "string" },
      "no-analyze": { type: "boolean" },
      warmup: { type: "string" },
      json: { type: "boolean" },
      "database-url": { type: "string" },
      "unsafe-fast": { type: "boolean" },
      charts: { type: "boolean" },
      "no-progress": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
}
