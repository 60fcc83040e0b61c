import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import type { BenchSystem } from "./types.js";
import { weft } from "./weft.js";

/**
 * Weft from another checkout (WEFT_BENCH_BASE: its path, dependencies
 * installed), run in the same invocation as this checkout's "weft" so that a
 * change is measured against the code before it with the runs alternating (an
 * A/B on one noisy machine). The tasks are written by this checkout's client,
 * so both checkouts must share the schema; the node processes run the other
 * checkout's bench/src/node.ts, which builds its own Weft.
 */
function baseDir(): string | undefined {
  const dir = process.env.WEFT_BENCH_BASE;
  return dir ? resolve(dir) : undefined;
}

export const weftBase: BenchSystem = {
  ...weft,
  name: "weft-base",
  version: () => {
    const dir = baseDir();
    if (!dir) return "unset";
    try {
      const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: dir, encoding: "utf8" }).trim();
      return `commit ${commit} (${dir})`;
    } catch {
      return dir;
    }
  },
  async unavailable() {
    const dir = baseDir();
    if (!dir) return "WEFT_BENCH_BASE is not set (the path of a checkout to compare with)";
    if (!existsSync(join(dir, "bench/src/node.ts"))) return `${dir} has no bench/src/node.ts`;
    if (!existsSync(join(dir, "node_modules"))) return `${dir} has no node_modules (run pnpm install there)`;
    return undefined;
  },
  nodeProcess: () => {
    const dir = baseDir() ?? ".";
    return { script: join(dir, "bench/src/node.ts"), cwd: dir, system: "weft" };
  },
};
