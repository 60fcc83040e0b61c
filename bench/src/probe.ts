import { z } from "zod";
import { createDatabase, startDatabase } from "../../engine/src/testing/index.js";
import { createWeft, defineTask } from "../../sdk/src/index.js";

const noop = defineTask({ name: "noop", input: z.object({ i: z.number() }), output: z.null(), run: () => null });
const N = Number(process.env.N ?? 20000);
const server = await startDatabase();
const url = await createDatabase(server.url, "probe");
const weft = createWeft({
  connectionString: url,
  tasks: [noop],
  node: { maxParallelTasksInNode: Number(process.env.CAP ?? 1000) },
  planner: { batchSize: Number(process.env.BATCH ?? 2000) },
});
await weft.start();
const t0 = Date.now();
for (let i = 0; i < N; i += 5000)
  await weft.client.scheduleMany(
    noop,
    Array.from({ length: Math.min(5000, N - i) }, (_, j) => ({ i: i + j })),
  );
const t1 = Date.now();
console.log("scheduled", N, "in", t1 - t0, "ms");
for (;;) {
  const { rows } = await weft.client.pool.query("select count(*)::int c from weft.tasks where queue <> 'DELETED'");
  if (rows[0].c === 0) break;
  await new Promise((r) => setTimeout(r, 50));
}
const t2 = Date.now();
console.log(
  "processed",
  N,
  "in",
  t2 - t1,
  "ms =>",
  Math.round(N / ((t2 - t1) / 1000)),
  "tasks/s; total",
  Math.round(N / ((t2 - t0) / 1000)),
);
console.log("planner cycles", weft._engine.activePlanner?.cycles);
await weft.stop();
await server.stop();
