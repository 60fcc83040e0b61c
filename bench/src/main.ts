// `pnpm bench`: runs a workload through Weft and the baseline queues on one
// PostgreSQL server and prints the medians (see docs/benchmarks.md).
import { startDatabase, type TestDatabase } from "@weft/engine/testing";
import pg from "pg";
import { type BenchOptions, parseOptions, USAGE, UsageError } from "./cli.js";
import { formatTable, type SystemSummary, scalingNotes, summarize } from "./report.js";
import { killAllNodes, type RunResult, runOnce } from "./runner.js";
import { getSystem } from "./systems/index.js";
import { getWorkload } from "./workloads/index.js";

const log = (line: string) => process.stderr.write(`${line}\n`);

let server: TestDatabase | undefined;
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

async function serverVersion(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ server_version: string }>("SHOW server_version");
    return rows[0]?.server_version ?? "unknown";
  } finally {
    await client.end();
  }
}

async function bench(options: BenchOptions): Promise<SystemSummary[]> {
  const workload = getWorkload(options.workload);
  const systems = options.systems.map(getSystem);
  server = await startDatabase();
  const postgres = `${await serverVersion(server.url)}${server.embedded ? " (embedded)" : ""}`;
  log(`PostgreSQL ${postgres}; workload ${workload.name}; ${options.runs} run(s) per system`);

  const summaries: SystemSummary[] = [];
  let index = 0;
  for (const tasks of options.tasks) {
    const settings = {
      capacity: options.capacity,
      plannerBatchSize: options.plannerBatchSize,
      pgBossWorkers: options.pgBossWorkers,
      pgBossBatchSize: options.pgBossBatchSize,
    };
    const results = new Map<string, RunResult[]>(systems.map((s) => [s.name, []]));
    // Runs alternate between systems so that drift on the machine hits both alike.
    for (let run = 1; run <= options.runs; run++) {
      for (const system of systems) {
        const result = await runOnce({
          serverUrl: server.url,
          system,
          workload,
          tasks,
          nodes: options.nodes,
          settings,
          enqueueBatchSize: options.enqueueBatchSize,
          timeoutMs: options.timeoutSeconds * 1000,
          analyze: options.analyze,
          run,
          index: index++,
        });
        results.get(system.name)?.push(result);
        log(
          `${system.name} ${workload.name} ${tasks} run ${run}/${options.runs}: ${result.seconds.toFixed(2)} s, ` +
            `${Math.round(result.tasksPerSec)} tasks/s, enqueue ${result.enqueueSeconds.toFixed(2)} s, ` +
            `peak RSS ${result.peakRssMb.map((v) => v.toFixed(0)).join("/")} MiB`,
        );
      }
    }
    for (const system of systems) {
      summaries.push(
        summarize(
          {
            system: system.name,
            version: system.version(),
            workload: workload.name,
            tasks,
            finishedTasks: workload.expectedTasks(tasks),
            nodes: options.nodes,
            settings: system.describe(settings),
            analyzed: options.analyze,
            postgres,
          },
          results.get(system.name) ?? [],
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
  try {
    const summaries = await bench(options);
    if (options.json) {
      for (const s of summaries) console.log(JSON.stringify(s));
    } else {
      console.log(formatTable(summaries));
      for (const note of scalingNotes(summaries)) console.log(note);
    }
    if (options.json) for (const note of scalingNotes(summaries)) log(note);
    return 0;
  } catch (err) {
    if (interrupted) return 1;
    log(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  } finally {
    await cleanup();
  }
}

process.exitCode = await main();
