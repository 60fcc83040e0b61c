import { execFileSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import { createClient, createWeft, type Weft } from "@weft/sdk";
import type { OnDone, Workload } from "../workloads/index.js";
import { latencies, sqlMonitor } from "./monitor.js";
import type { BenchSystem, NodeSettings } from "./types.js";

const SCHEMA = "weft";

function gitCommit(): string {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    return "unknown";
  }
}

/** One Weft node of a bench run. */
export function weftNode(url: string, workload: Workload, settings: NodeSettings, onDone: OnDone): Weft {
  return createWeft({
    connectionString: url,
    schema: SCHEMA,
    tasks: workload.weft.tasks(onDone),
    node: { maxParallelTasksInNode: settings.capacity, completionBatchSize: settings.completionBatchSize },
    planner: { batchSize: settings.plannerBatchSize },
  });
}

/** Weft: enqueue with a pure client's scheduleMany; each node process is one Weft node (and planner candidate). */
export const weft: BenchSystem = {
  name: "weft",
  version: () => `commit ${gitCommit()}`,
  describe: (s) => ({
    maxParallelTasksInNode: s.capacity,
    plannerBatchSize: s.plannerBatchSize,
    completionBatchSize: s.completionBatchSize,
  }),
  supports: () => true,

  async enqueue(url, workload, tasks, batchSize) {
    const client = createClient({ connectionString: url, schema: SCHEMA, tasks: workload.weft.tasks(() => undefined) });
    await client.start(); // applies the migrations: not part of the timing
    try {
      const t0 = performance.now();
      await workload.weft.enqueue(client.client, tasks, batchSize);
      return (performance.now() - t0) / 1000;
    } finally {
      await client.stop();
    }
  },

  async producer(url, workload) {
    const add = workload.weft.add;
    if (!add) throw new Error(`weft: workload "${workload.name}" is not paced`);
    const client = createClient({ connectionString: url, schema: SCHEMA, tasks: workload.weft.tasks(() => undefined) });
    await client.start();
    return { add: (from, count) => add(client.client, from, count), close: () => client.stop() };
  },

  completionLatencies: (url) =>
    latencies(
      url,
      `SELECT (extract(epoch FROM finished_at) * 1000 - (input ->> 'at')::float8)::float8 AS ms
         FROM ${SCHEMA}.tasks WHERE state = 'COMPLETED' AND input ? 'at'`,
    ),

  monitor: (url) =>
    sqlMonitor(
      url,
      `SELECT count(*)::int AS n FROM ${SCHEMA}.tasks WHERE queue <> 'DELETED'`,
      `SELECT count(*)::int AS n FROM ${SCHEMA}.tasks WHERE queue = 'DELETED' AND state = 'COMPLETED'`,
    ),

  async createNode(url, workload, settings, onDone) {
    const node = weftNode(url, workload, settings, onDone);
    return { start: () => node.start(), stop: () => node.stop() };
  },
};
