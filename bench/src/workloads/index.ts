import { affinity } from "./affinity.js";
import { fanout } from "./fanout.js";
import { independent } from "./independent.js";
import { latency } from "./latency.js";
import type { Workload } from "./types.js";
import { work } from "./work.js";

export type {
  BullmqProcessor,
  BullmqWorkload,
  GraphileWorkload,
  OnDone,
  PgBossHandler,
  PgBossWorkload,
  WeftWorkload,
  Workload,
} from "./types.js";

/** Every workload by name; add new ones here. */
export const WORKLOADS: Readonly<Record<string, Workload>> = {
  [independent.name]: independent,
  [fanout.name]: fanout,
  [affinity.name]: affinity,
  [latency.name]: latency,
  [work.name]: work,
};

export function getWorkload(name: string): Workload {
  const workload = WORKLOADS[name];
  if (!workload) throw new Error(`unknown workload "${name}"`);
  return workload;
}
