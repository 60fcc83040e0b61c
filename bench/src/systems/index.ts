import { pgBoss } from "./pg-boss.js";
import type { BenchSystem } from "./types.js";
import { weft } from "./weft.js";
import { weftHttp } from "./weft-http.js";
import { weftMetrics, weftOtel } from "./weft-otel.js";

export type { BenchNode, BenchSystem, Monitor, NodeSettings } from "./types.js";

/** Every system by its command-line name. */
export const SYSTEMS: Readonly<Record<string, BenchSystem>> = {
  [weft.name]: weft,
  [weftHttp.name]: weftHttp,
  [weftOtel.name]: weftOtel,
  [weftMetrics.name]: weftMetrics,
  [pgBoss.name]: pgBoss,
};

export function getSystem(name: string): BenchSystem {
  const system = SYSTEMS[name];
  if (!system) throw new Error(`unknown system "${name}"`);
  return system;
}
