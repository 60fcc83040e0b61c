import { defineTask } from "@weft/sdk";
import { z } from "zod";
import { countDone, countInto } from "./done.js";
import type { Workload } from "./types.js";

const QUEUE = "work";
/** CPU time each task spends, in ms. */
export const WORK_MS = 2;

function* batches(tasks: number, batchSize: number): Generator<{ i: number }[]> {
  for (let start = 0; start < tasks; start += batchSize) {
    const size = Math.min(batchSize, tasks - start);
    yield Array.from({ length: size }, (_, k) => ({ i: start + k }));
  }
}

/** Spins for WORK_MS of wall time on this thread (hashing a counter, so that it is not optimised away). */
let sink = 0;
function spin(i: number): void {
  const until = performance.now() + WORK_MS;
  let x = i;
  while (performance.now() < until) x = (Math.imul(x, 2654435761) + 1) | 0;
  sink ^= x;
}

// One definition for the module, not one per node (see countDone).
const task = defineTask({
  name: QUEUE,
  input: z.object({ i: z.number().int() }),
  output: z.number().int(),
  run: (ctx) => {
    spin(ctx.input.i);
    countDone(1);
    return sink;
  },
});

/**
 * N tasks that each spend ~2 ms of CPU in the handler: no-op tasks favour
 * whoever batches most, and this shows what is left of each system's overhead
 * when the node's thread is mostly busy with the tasks themselves (the
 * ceiling is 500 tasks/s per node process).
 */
export const work: Workload = {
  name: "work",
  description: `N independent tasks that each spend ~${WORK_MS} ms of CPU`,
  defaultTasks: 2_000,
  expectedTasks: (tasks) => tasks,
  weft: {
    tasks: (onDone) => {
      countInto(onDone);
      return [task];
    },
    async enqueue(client, tasks, batchSize) {
      for (const batch of batches(tasks, batchSize)) await client.scheduleMany(task, batch);
    },
  },
  pgBoss: {
    queues: [QUEUE],
    async enqueue(boss, tasks, batchSize) {
      for (const batch of batches(tasks, batchSize)) await boss.insert(batch.map((data) => ({ name: QUEUE, data })));
    },
    handlers: {
      [QUEUE]: async (jobs) => {
        for (const job of jobs) spin((job.data as { i: number }).i);
      },
    },
  },
  graphile: {
    async enqueue(utils, tasks, batchSize) {
      for (const batch of batches(tasks, batchSize))
        await utils.addJobs(batch.map((payload) => ({ identifier: QUEUE, payload })));
    },
    taskList: {
      [QUEUE]: async (payload) => {
        spin((payload as { i: number }).i);
        countDone(1);
      },
    },
  },
  bullmq: {
    queues: [QUEUE],
    async enqueue(queues, tasks, batchSize) {
      for (const batch of batches(tasks, batchSize))
        await queues[QUEUE]?.addBulk(batch.map((data) => ({ name: QUEUE, data })));
    },
    processors: {
      [QUEUE]: async (job) => {
        spin((job.data as { i: number }).i);
        countDone(1);
        return sink;
      },
    },
  },
};
