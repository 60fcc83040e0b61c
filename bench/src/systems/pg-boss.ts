import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import PgBoss from "pg-boss";
import type { PgBossWorkload, Workload } from "../workloads/index.js";
import { latencies, sqlMonitor } from "./monitor.js";
import type { BenchSystem } from "./types.js";

const SCHEMA = "pgboss";
/** How long an idle fetch loop waits before it polls again (pg-boss's own `work()` waits at least 500 ms). */
const IDLE_POLL_MS = 50;

function packageVersion(): string {
  const require = createRequire(import.meta.url);
  const main = require.resolve("pg-boss");
  const pkg = JSON.parse(readFileSync(join(dirname(main), "..", "package.json"), "utf8")) as { version?: string };
  return pkg.version ?? "unknown";
}

function newBoss(url: string, options: PgBoss.ConstructorOptions = {}): PgBoss {
  const boss = new PgBoss({ connectionString: url, schema: SCHEMA, ...options });
  boss.on("error", (err) => console.error(`pg-boss: ${err.message}`));
  return boss;
}

/** The workload's pg-boss part; the bench does not run pg-boss for a workload without one. */
function part(workload: Workload): PgBossWorkload {
  if (!workload.pgBoss) throw new Error(`pg-boss: workload "${workload.name}" has no pg-boss part`);
  return workload.pgBoss;
}

/**
 * pg-boss, tuned for throughput: each node process runs `pgBossWorkers`
 * concurrent loops of `fetch(batch)` → handler → `complete(ids)`, with no
 * delay between full batches (pg-boss's `work()` sleeps up to its polling
 * interval, at least 500 ms, after every batch, which caps it far lower).
 */
export const pgBoss: BenchSystem = {
  name: "pg-boss",
  version: () => packageVersion(),
  describe: (s) => ({ fetchLoops: s.pgBossWorkers, batchSize: s.pgBossBatchSize }),
  supports: (workload) => workload.pgBoss !== undefined,

  async enqueue(url, workload, tasks, batchSize) {
    const own = part(workload);
    const boss = newBoss(url, { supervise: false, schedule: false });
    await boss.start(); // installs the schema: not part of the timing
    try {
      for (const queue of own.queues) await boss.createQueue(queue);
      const t0 = performance.now();
      await own.enqueue(boss, tasks, batchSize);
      return (performance.now() - t0) / 1000;
    } finally {
      await boss.stop({ graceful: false, wait: true });
    }
  },

  async producer(url, workload) {
    const add = part(workload).add;
    if (!add) throw new Error(`pg-boss: workload "${workload.name}" is not paced`);
    const boss = newBoss(url, { supervise: false, schedule: false });
    await boss.start();
    return { add: (from, count) => add(boss, from, count), close: () => boss.stop({ graceful: false, wait: true }) };
  },

  completionLatencies: (url) =>
    latencies(
      url,
      `SELECT (extract(epoch FROM completed_on) * 1000 - (data ->> 'at')::float8)::float8 AS ms
         FROM ${SCHEMA}.job WHERE state = 'completed' AND data ? 'at'`,
    ),

  monitor: (url) =>
    sqlMonitor(
      url,
      `SELECT count(*)::int AS n FROM ${SCHEMA}.job WHERE state <> 'completed'`,
      `SELECT count(*)::int AS n FROM ${SCHEMA}.job WHERE state = 'completed'`,
    ),

  async createNode(url, workload, settings, onDone) {
    const own = part(workload);
    const boss = newBoss(url, { schedule: false });
    const batchSize = settings.pgBossBatchSize;
    let stopping = false;
    const loops: Promise<void>[] = [];
    const loop = async (queue: string) => {
      const handler = own.handlers[queue];
      if (!handler) throw new Error(`pg-boss: no handler for queue "${queue}"`);
      while (!stopping) {
        const jobs = await boss.fetch<object>(queue, { batchSize });
        if (jobs.length === 0) {
          await sleep(IDLE_POLL_MS);
          continue;
        }
        const ids = jobs.map((j) => j.id);
        try {
          await handler(jobs, boss);
          await boss.complete(queue, ids);
        } catch (err) {
          console.error(`pg-boss handler failed: ${err instanceof Error ? err.message : String(err)}`);
          await boss.fail(queue, ids);
        }
        onDone(jobs.length);
      }
    };
    return {
      async start() {
        await boss.start();
        for (const queue of own.queues) {
          for (let w = 0; w < settings.pgBossWorkers; w++) loops.push(loop(queue));
        }
      },
      async stop() {
        stopping = true;
        await Promise.allSettled(loops);
        await boss.stop({ graceful: true, wait: true });
      },
    };
  },
};
