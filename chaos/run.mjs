#!/usr/bin/env node
// `pnpm test:chaos [--long] [vitest args]`: runs the fault tests with their own
// vitest config. `--long` (or CHAOS_LONG=1) runs the long scenarios and scales
// every scenario up; CI runs the short set.
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2).filter((a) => a !== "--");
const long = args.includes("--long");
const rest = args.filter((a) => a !== "--long");
const env = { ...process.env, ...(long ? { CHAOS_LONG: "1" } : {}) };
// The chaos servers are private; the shared server must never be used.
delete env.DATABASE_URL;
const started = Date.now();
const result = spawnSync(
  process.execPath,
  [join(root, "scripts", "run.mjs"), "vitest", "run", "--config", "chaos/vitest.config.ts", ...rest],
  { cwd: root, stdio: "inherit", env },
);
console.log(`chaos ${long ? "long" : "short"} set: ${Math.round((Date.now() - started) / 1000)} s`);
process.exit(result.status ?? 1);
