#!/usr/bin/env node
// Builds the published packages: @weft/engine, then @weft/sdk (whose types
// import the engine's built ones), each with tsc into its dist/ as ESM
// JavaScript and .d.ts. The engine's dist/ also gets a copy of the repository's
// migrations/ (the one source of the SQL files), which the installed package
// reads, and the sdk's dist/ the built dashboard. The workspace itself never
// needs this: it runs the TypeScript sources (and serves dashboard/dist).
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const tsc = join(root, "node_modules", "typescript", "bin", "tsc");

function fail(message) {
  console.error(`build: ${message}`);
  process.exit(1);
}

function compile(pkg) {
  const started = Date.now();
  rmSync(join(root, pkg, "dist"), { recursive: true, force: true });
  const result = spawnSync(process.execPath, [tsc, "-p", join(root, pkg, "tsconfig.build.json")], {
    cwd: root,
    stdio: "inherit",
  });
  if (result.error) fail(`${pkg}: could not run tsc: ${result.error.message}`);
  if (result.status !== 0) fail(`${pkg}: tsc failed (exit ${result.status})`);
  console.log(`built ${pkg}/dist in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

// `build.mjs engine` builds the engine alone (its prepack); `build.mjs sdk` and
// no argument build both, the engine first.
const only = process.argv[2];
if (only !== undefined && only !== "engine" && only !== "sdk") fail(`unknown package "${only}" (engine or sdk)`);

compile("engine");

const sqlFiles = readdirSync(join(root, "migrations")).filter((f) => f.endsWith(".sql"));
if (sqlFiles.length === 0) fail("no SQL files in migrations/");
const target = join(root, "engine", "dist", "migrations");
mkdirSync(target, { recursive: true });
for (const file of sqlFiles) copyFileSync(join(root, "migrations", file), join(target, file));
console.log(`copied ${sqlFiles.length} migrations to engine/dist/migrations`);

if (only === "engine") process.exit(0);

compile("sdk");

// The web dashboard: built by Vite into dashboard/dist, shipped as static files
// in the sdk's dist/dashboard (the HTTP handler serves them; no build at a
// user's runtime, nothing from a CDN).
{
  const started = Date.now();
  const vite = join(root, "dashboard", "node_modules", "vite", "bin", "vite.js");
  if (!existsSync(vite)) fail("dashboard: vite is not installed (pnpm install)");
  const result = spawnSync(process.execPath, [vite, "build", "--logLevel", "warn"], {
    cwd: join(root, "dashboard"),
    stdio: "inherit",
  });
  if (result.error) fail(`dashboard: could not run vite: ${result.error.message}`);
  if (result.status !== 0) fail(`dashboard: vite build failed (exit ${result.status})`);
  if (!existsSync(join(root, "dashboard", "dist", "index.html"))) fail("dashboard: vite wrote no index.html");
  cpSync(join(root, "dashboard", "dist"), join(root, "sdk", "dist", "dashboard"), { recursive: true });
  console.log(`built dashboard into sdk/dist/dashboard in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

// The CLI is the package's bin: it must start with a shebang (tsc keeps the
// source's) and be executable when run from the repository's build.
const cli = join(root, "sdk", "dist", "cli", "main.js");
if (existsSync(cli)) {
  if (!readFileSync(cli, "utf8").startsWith("#!/usr/bin/env node\n"))
    fail(
      "sdk/dist/cli/main.js does not start with #!/usr/bin/env node (add it as the first line of sdk/src/cli/main.ts)",
    );
  chmodSync(cli, 0o755);
}
