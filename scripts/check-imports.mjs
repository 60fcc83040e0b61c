#!/usr/bin/env node
// Checks the engine's and the SDK's module graph: no import cycle (type imports
// count: a cycle of types is still two modules that cannot be read apart) and
// no import that runs upward (a lower layer reaching into a higher one, or a
// module importing its own package's public entry). Part of `pnpm lint`.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const root = resolve(dirname(new URL(import.meta.url).pathname), "..");
const packages = ["engine/src", "sdk/src"];

/**
 * The engine's layers, lowest first: a module may import from its own layer
 * and the ones below. Paths are relative to engine/src; the first matching
 * prefix wins.
 */
const ENGINE_LAYERS = [
  // Foundations: no engine state, no SQL of the engine's tables.
  ["errors.ts", "ids.ts", "logger.ts", "payload.ts", "retry.ts", "suggest.ts", "config.ts", "cron.ts", "slots.ts"],
  // store/locks.ts: the advisory-lock classes, which the migration runner takes too.
  ["db/", "handler.ts", "store/locks.ts"],
  // The SQL of the engine's tables.
  ["store/"],
  // Traces and metrics of what the store records.
  ["telemetry/"],
  // Services and their contracts.
  ["handoff.ts", "task-settings.ts", "services/", "worker/", "planner/"],
  // The engine's operations and wiring.
  ["api/", "engine.ts", "testing/"],
  ["index.ts"],
];

function layerOf(path) {
  if (!path.startsWith("engine/src/")) return undefined;
  const inner = path.slice("engine/src/".length);
  for (let i = 0; i < ENGINE_LAYERS.length; i++) {
    if (ENGINE_LAYERS[i].some((prefix) => (prefix.endsWith("/") ? inner.startsWith(prefix) : inner === prefix))) {
      return i;
    }
  }
  return undefined;
}

function filesUnder(dir) {
  const out = [];
  for (const name of readdirSync(join(root, dir))) {
    const path = `${dir}/${name}`;
    if (statSync(join(root, path)).isDirectory()) out.push(...filesUnder(path));
    else if (path.endsWith(".ts") && !path.endsWith(".d.ts")) out.push(path);
  }
  return out;
}

const SPECIFIER =
  /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|(?:^|[\s;])import\s*["']([^"']+)["']/gm;

function importsOf(path) {
  const text = readFileSync(join(root, path), "utf8");
  const out = new Set();
  for (const m of text.matchAll(SPECIFIER)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (!spec?.startsWith(".")) continue;
    const target = relative(root, resolve(root, dirname(path), spec)).replace(/\.js$/, ".ts");
    out.add(target);
  }
  return [...out];
}

const files = packages.flatMap(filesUnder);
const known = new Set(files);
const graph = new Map(files.map((f) => [f, importsOf(f).filter((t) => known.has(t))]));
const problems = [];

for (const [from, targets] of graph) {
  for (const to of targets) {
    const entry = packages.find((p) => from.startsWith(`${p}/`));
    if (entry && to === `${entry}/index.ts` && from !== to) {
      problems.push(`${from} imports its package's public entry ${to}`);
    }
    const a = layerOf(from);
    const b = layerOf(to);
    if (a !== undefined && b !== undefined && b > a) {
      problems.push(`${from} (layer ${a}) imports upward: ${to} (layer ${b})`);
    }
  }
}

// Tarjan's strongly connected components: every component of more than one
// module (or a module importing itself) is a cycle.
let index = 0;
const indices = new Map();
const low = new Map();
const stack = [];
const onStack = new Set();
function connect(v) {
  indices.set(v, index);
  low.set(v, index);
  index++;
  stack.push(v);
  onStack.add(v);
  for (const w of graph.get(v) ?? []) {
    if (!indices.has(w)) {
      connect(w);
      low.set(v, Math.min(low.get(v), low.get(w)));
    } else if (onStack.has(w)) {
      low.set(v, Math.min(low.get(v), indices.get(w)));
    }
  }
  if (low.get(v) === indices.get(v)) {
    const component = [];
    let w;
    do {
      w = stack.pop();
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || (graph.get(v) ?? []).includes(v)) {
      problems.push(`import cycle among: ${component.sort().join(", ")}`);
    }
  }
}
for (const f of files) if (!indices.has(f)) connect(f);

for (const f of files) {
  if (f.startsWith("engine/src/") && layerOf(f) === undefined) {
    problems.push(`${f} is in no layer of scripts/check-imports.mjs (add it where it belongs)`);
  }
}

if (problems.length > 0) {
  for (const p of problems) console.error(`check-imports: ${p}`);
  process.exit(1);
}
console.log(`check-imports: ${files.length} modules, no cycle, no upward import`);
