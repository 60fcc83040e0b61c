import { pgBoss } from "./pg-boss.js";
import type { BenchSystem } from "./types.js";
import { weft } from "./weft.js";

export type { BenchNode, BenchSystem, Monitor, NodeSettings } from "./types.js";

/** Every system by its command-line name. */
export const SYSTEMS: Readonly<Record<string, BenchSystem>> = {
  [weft.name]: weft,
  [pgBoss.name]: pgBoss,
};

export function getSystem(name: string): BenchSystem {
  const system = SYSTEMS[name];
  if (!system) throw new Error(`unknown system "${name}"`);
  return system;
}
