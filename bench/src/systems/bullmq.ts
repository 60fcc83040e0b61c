import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import { FlowProducer, Queue, Worker } from "bullmq";
import { countInto } from "../workloads/done.js";
import type { BullmqWorkload, Workload } from "../workloads/index.js";
import type { BenchSystem } from "./types.js";

/** The machine's Redis (BENCH_REDIS_URL to use another). */
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
/** Jobs each worker processes at once (BullMQ has no batch fetch outside its Pro edition). */
export const BULLMQ_CONCURRENCY = 1000;

function packageVersion(): string {
  const require = createRequire(import.meta.url);
  let dir = dirname(require.resolve("bullmq"));
  // dist/cjs/index.js → the package root
  for (let i = 0; i < 4; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "bullmq") return pkg.version ?? "unknown";
    } catch {
      // not here: one level up
    }
    dir = dirname(dir);
  }
  return "unknown";
}

function connection(url: string) {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    // BullMQ's workers need this (blocking commands); its docs set it for every connection.
    maxRetriesPerRequest: null,
  };
}

/**
 * The run's Redis key prefix, from its PostgreSQL database's name: every run
 * (and warm-up) has keys of its own, and they are removed afterwards.
 */
function prefixOf(url: string): string {
  return `weftbench:${new URL(url).pathname.slice(1)}`;
}

function part(workload: Workload): BullmqWorkload {
  if (!workload.bullmq) throw new Error(`bullmq: workload "${workload.name}" has no BullMQ part`);
  return workload.bullmq;
}

function openQueues(own: BullmqWorkload, prefix: string): Record<string, Queue> {
  const queues: Record<string, Queue> = {};
  for (const name of own.queues) queues[name] = new Queue(name, { connection: connection(REDIS_URL), prefix });
  return queues;
}

/** Whether a Redis answers at REDIS_URL (a PING within a second). */
export async function redisAvailable(): Promise<boolean> {
  const { Socket } = await import("node:net");
  const u = new URL(REDIS_URL);
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once("error", () => done(false));
    socket.once("data", (data) => done(data.toString().startsWith("+PONG")));
    socket.connect(Number(u.port || 6379), u.hostname, () => socket.write("PING\r\n"));
  });
}

/** Redis's persistence settings, for the report (BullMQ's durability is Redis's). */
export async function redisPersistence(): Promise<Record<string, string>> {
  const queue = new Queue("weftbench-probe", { connection: connection(REDIS_URL) });
  try {
    // BullMQ's client is an ioredis client; its type in BullMQ names only what BullMQ uses.
    const client = (await queue.client) as unknown as {
      config(op: "GET", key: string): Promise<string[]>;
      info(section: string): Promise<string>;
    };
    const out: Record<string, string> = {};
    for (const key of ["appendonly", "appendfsync", "save"]) {
      const reply = await client.config("GET", key);
      out[key] = reply[1] ?? "";
    }
    const info = await client.info("server");
    out.version = /redis_version:(\S+)/.exec(info)?.[1] ?? "unknown";
    return out;
  } finally {
    // The probe's queue leaves a meta key: removed again.
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
  }
}

/**
 * BullMQ on Redis: one Worker per queue and node process with a concurrency of
 * BULLMQ_CONCURRENCY, jobs added with `addBulk`, completed jobs kept (the
 * default) so that the monitor can count them. The run's PostgreSQL database
 * is not used, but names the run's key prefix.
 */
export const bullmq: BenchSystem = {
  name: "bullmq",
  version: () => packageVersion(),
  describe: () => ({ concurrency: BULLMQ_CONCURRENCY }),
  supports: (workload) => workload.bullmq !== undefined,
  unavailable: async () =>
    (await redisAvailable()) ? undefined : `no Redis answers at ${REDIS_URL} (set BENCH_REDIS_URL to use another)`,
  environment: async () => {
    const p = await redisPersistence();
    return {
      redis: p.version ?? "unknown",
      appendonly: p.appendonly ?? "",
      appendfsync: p.appendfsync ?? "",
      save: p.save ?? "",
    };
  },

  async enqueue(url, workload, tasks, batchSize) {
    const own = part(workload);
    const queues = openQueues(own, prefixOf(url));
    try {
      // Keys of an earlier run of the same name, if it was interrupted.
      for (const q of Object.values(queues)) await q.obliterate({ force: true });
      const t0 = performance.now();
      await own.enqueue(queues, tasks, batchSize);
      return (performance.now() - t0) / 1000;
    } finally {
      await Promise.all(Object.values(queues).map((q) => q.close()));
    }
  },

  async producer(url, workload) {
    const own = part(workload);
    const add = own.add;
    if (!add) throw new Error(`bullmq: workload "${workload.name}" is not paced`);
    const queues = openQueues(own, prefixOf(url));
    return {
      add: (from, count) => add(queues, from, count),
      close: async () => {
        await Promise.all(Object.values(queues).map((q) => q.close()));
      },
    };
  },

  /** finishedOn: set by the worker when it moves the job to completed. */
  async completionLatencies(url, workload) {
    const queues = openQueues(part(workload), prefixOf(url));
    try {
      const out: number[] = [];
      for (const q of Object.values(queues)) {
        for (const job of await q.getCompleted(0, -1)) {
          const at = (job.data as { at?: unknown }).at;
          if (typeof at === "number" && job.finishedOn !== undefined) out.push(job.finishedOn - at);
        }
      }
      return out;
    } finally {
      await Promise.all(Object.values(queues).map((q) => q.close()));
    }
  },

  async monitor(url, workload) {
    const own = part(workload);
    const queues = openQueues(own, prefixOf(url));
    const counts = async () => {
      let remaining = 0;
      let completed = 0;
      for (const q of Object.values(queues)) {
        const c = await q.getJobCounts("waiting", "active", "delayed", "prioritized", "waiting-children", "completed");
        remaining +=
          (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0) + (c["waiting-children"] ?? 0);
        completed += c.completed ?? 0;
      }
      return { remaining, completed };
    };
    return {
      remaining: async () => (await counts()).remaining,
      completed: async () => (await counts()).completed,
      async close() {
        // The run is over: its keys go (as the run's database is dropped).
        for (const q of Object.values(queues)) await q.obliterate({ force: true }).catch(() => undefined);
        await Promise.all(Object.values(queues).map((q) => q.close()));
      },
    };
  },

  async createNode(url, workload, _settings, onDone) {
    const own = part(workload);
    const prefix = prefixOf(url);
    const flow = new FlowProducer({ connection: connection(REDIS_URL), prefix });
    countInto(onDone);
    const workers: Worker[] = [];
    return {
      async start() {
        for (const name of own.queues) {
          const processor = own.processors[name];
          if (!processor) throw new Error(`bullmq: no processor for queue "${name}"`);
          const worker = new Worker(name, (job) => processor(job, { flow }), {
            connection: connection(REDIS_URL),
            prefix,
            concurrency: BULLMQ_CONCURRENCY,
          });
          worker.on("error", (err) => console.error(`bullmq: ${err.message}`));
          worker.on("failed", (_job, err) => console.error(`bullmq job failed: ${err.message}`));
          workers.push(worker);
        }
        await Promise.all(workers.map((w) => w.waitUntilReady()));
      },
      async stop() {
        await Promise.all(workers.map((w) => w.close()));
        await flow.close();
      },
    };
  },
};
