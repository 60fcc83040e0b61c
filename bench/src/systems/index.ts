import { bullmq } from "./bullmq.js";
import { graphileWorker, graphileWorkerBatched } from "./graphile-worker.js";
import { pgBoss } from "./pg-boss.js";
import type { BenchSystem } from "./types.js";
import { weft } from "./weft.js";
import { weftBase } from "./weft-base.js";
import { weftHttp } from "./weft-http.js";
import { weftMetrics, weftOtel } from "./weft-otel.js";

export type { BenchNode, BenchSystem, Monitor, NodeSettings, Producer } from "./types.js";

/** Every system, one per line: add a new one here (its file in this folder). */
// biome-ignore format: one system per line, so that branches adding systems merge cleanly
const ALL: readonly BenchSystem[] = [
  weft,
  weftBase,
  weftHttp,
  weftOtel,
  weftMetrics,
  pgBoss,
  graphileWorkerBatched,
  graphileWorker,
  bullmq,
];

/**
 * The systems a plain `pnpm bench` runs. On request: weft-base (WEFT_BENCH_BASE), weft-http, weft-otel, weft-metrics; graphile-worker
 * with its defaults (one job at a time: 20,000 tasks and the warm-up take minutes).
 */
export const DEFAULT_SYSTEMS: readonly string[] = ["weft", "pg-boss", "graphile-worker-batched", "bullmq"];

/** Every system by its command-line name. */
export const SYSTEMS: Readonly<Record<string, BenchSystem>> = Object.fromEntries(ALL.map((s) => [s.name, s]));

export function getSystem(name: string): BenchSystem {
  const system = SYSTEMS[name];
  if (!system) throw new Error(`unknown system "${name}"`);
  return system;
}
