import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import { Logger, makeWorkerUtils, type Runner, run, type WorkerUtils } from "graphile-worker";
import pg from "pg";
import { countInto } from "../workloads/done.js";
import type { GraphileWorkload, Workload } from "../workloads/index.js";
import type { BenchSystem, Monitor } from "./types.js";

const SCHEMA = "graphile_worker";

function packageVersion(): string {
  const require = createRequire(import.meta.url);
  const main = require.resolve("graphile-worker");
  const pkg = JSON.parse(readFileSync(join(dirname(main), "..", "package.json"), "utf8")) as { version?: string };
  return pkg.version ?? "unknown";
}

/** Errors only: graphile-worker logs every job at info level otherwise. */
const logger = new Logger(() => (level, message) => {
  if (level === "error") console.error(`graphile-worker: ${message}`);
});

function part(workload: Workload): GraphileWorkload {
  if (!workload.graphile) throw new Error(`graphile-worker: workload "${workload.name}" has no graphile-worker part`);
  return workload.graphile;
}

/** The worker settings of one flavour, as graphile-worker's options. */
interface Flavour {
  readonly name: string;
  readonly description: string;
  readonly concurrency: number;
  readonly maxPoolSize: number;
  /** preset.worker additions (batching), or none for the defaults. */
  readonly batching?: { readonly localQueueSize: number };
}

/**
 * graphile-worker counts finished jobs by their absence: a completed job is
 * deleted, a failed one stays with its `last_error`. Completed: the jobs ever
 * added (the id sequence's last value; the run's database is fresh) less
 * those still there.
 */
async function monitor(url: string): Promise<Monitor> {
  const client = new pg.Client({ connectionString: url });
  client.on("error", () => undefined);
  await client.connect();
  const count = async (sql: string) => (await client.query<{ n: number }>(sql)).rows[0]?.n ?? 0;
  const jobs = `${SCHEMA}._private_jobs`;
  const added = `SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence('${jobs}', 'id')::regclass), 0)::int AS n`;
  return {
    // A job that failed for good (attempts used up) is finished too; the runner's completed check catches it.
    remaining: () => count(`SELECT count(*)::int AS n FROM ${jobs} WHERE attempts < max_attempts`),
    completed: async () => (await count(added)) - (await count(`SELECT count(*)::int AS n FROM ${jobs}`)),
    close: () => client.end(),
  };
}

/**
 * A pool of the bench's own for graphile-worker. Its connections may still be
 * open when the run's database is dropped with FORCE (graphile-worker's
 * release() does not wait for its own pool's end, and one CI run crashed on
 * the unhandled pool error); a lost connection here is never an uncaught error.
 */
function benchPool(url: string, max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max });
  pool.on("error", () => undefined);
  pool.on("connect", (client) => client.on("error", () => undefined));
  return pool;
}

/** Worker utils over a pool of the bench's own; release() ends both. */
async function workerUtils(url: string): Promise<{ utils: WorkerUtils; release: () => Promise<void> }> {
  const pool = benchPool(url, 4);
  const utils = await makeWorkerUtils({ pgPool: pool, logger });
  return {
    utils,
    release: async () => {
      await utils.release();
      await pool.end();
    },
  };
}

function graphileSystem(flavour: Flavour): BenchSystem {
  return {
    name: flavour.name,
    version: () => packageVersion(),
    describe: () => ({
      concurrentJobs: flavour.concurrency,
      maxPoolSize: flavour.maxPoolSize,
      ...(flavour.batching
        ? { localQueueSize: flavour.batching.localQueueSize, completeJobBatchDelay: 0, failJobBatchDelay: 0 }
        : {}),
    }),
    supports: (workload) => workload.graphile !== undefined,

    async enqueue(url, workload, tasks, batchSize) {
      const own = part(workload);
      const { utils, release } = await workerUtils(url);
      try {
        await utils.migrate(); // installs the schema: not part of the timing
        const t0 = performance.now();
        await own.enqueue(utils, tasks, batchSize);
        return (performance.now() - t0) / 1000;
      } finally {
        await release();
      }
    },

    async producer(url, workload) {
      const add = part(workload).add;
      if (!add) throw new Error(`graphile-worker: workload "${workload.name}" is not paced`);
      const { utils, release } = await workerUtils(url);
      return { add: (from, count) => add(utils, from, count), close: release };
    },

    // A completed job is deleted: no completion time is kept.
    completionLatencies: async () => undefined,

    monitor: (url) => monitor(url),

    async createNode(url, workload, _settings, onDone) {
      const own = part(workload);
      countInto(onDone);
      let runner: Runner | undefined;
      const pool = benchPool(url, flavour.maxPoolSize);
      return {
        async start() {
          runner = await run({
            pgPool: pool,
            concurrency: flavour.concurrency,
            noHandleSignals: true,
            logger,
            taskList: own.taskList,
            preset: flavour.batching
              ? {
                  worker: {
                    localQueue: { size: flavour.batching.localQueueSize },
                    completeJobBatchDelay: 0,
                    failJobBatchDelay: 0,
                  },
                }
              : {},
          });
        },
        async stop() {
          await runner?.stop();
          await pool.end();
        },
      };
    },
  };
}

/** graphile-worker as installed: its defaults (1 concurrent job, a pool of 10, no batching). */
export const graphileWorker = graphileSystem({
  name: "graphile-worker",
  description: "defaults",
  concurrency: 1,
  maxPoolSize: 10,
});

/**
 * graphile-worker in the batched mode of its performance page: 24 concurrent
 * jobs, a pool of 25, a local queue of 500 jobs fetched at once, completions
 * and failures batched (delay 0).
 */
export const graphileWorkerBatched = graphileSystem({
  name: "graphile-worker-batched",
  description: "batched (its performance page's settings)",
  concurrency: 24,
  maxPoolSize: 25,
  batching: { localQueueSize: 500 },
});
