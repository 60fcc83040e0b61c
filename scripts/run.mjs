#!/usr/bin/env node
// Runs a workspace tool (tsx, vitest) after making sure dependencies are
// installed, so that `npm run demo` and `npm test` work on a fresh clone with
// nothing but Node.js: pnpm itself is fetched with npx when it is missing.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const [tool, ...rest] = process.argv.slice(2);
// `pnpm demo -- --flag` forwards the "--" after the script's own arguments;
// the tools want the flags without it.
const separator = rest.indexOf("--");
const args = separator === -1 ? rest : [...rest.slice(0, separator), ...rest.slice(separator + 1)];
if (!tool) {
  console.error("usage: node scripts/run.mjs <tool> [args...]");
  process.exit(2);
}

function run(command, commandArgs) {
  const result = spawnSync(command, commandArgs, { cwd: root, stdio: "inherit", shell: process.platform === "win32" });
  if (result.error) throw result.error;
  return result.status ?? 1;
}

if (!existsSync(join(root, "node_modules", ".modules.yaml"))) {
  const pnpm = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).packageManager;
  console.error(`Installing dependencies with ${pnpm} (first run only)...`);
  const hasPnpm = spawnSync("pnpm", ["--version"], { stdio: "ignore" }).status === 0;
  const status = hasPnpm
    ? run("pnpm", ["install", "--frozen-lockfile"])
    : run("npx", ["--yes", pnpm, "install", "--frozen-lockfile"]);
  if (status !== 0) process.exit(status);
}

process.exit(run(join(root, "node_modules", ".bin", tool), args));
