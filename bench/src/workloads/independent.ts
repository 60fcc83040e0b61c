import { countDone, countedNoop, countInto } from "./done.js";
import type { Workload } from "./types.js";

const QUEUE = "noop";

function* batches(tasks: number, batchSize: number): Generator<{ i: number }[]> {
  for (let start = 0; start < tasks; start += batchSize) {
    const size = Math.min(batchSize, tasks - start);
    yield Array.from({ length: size }, (_, k) => ({ i: start + k }));
  }
}

// One definition for the module, not one per node (see countDone).
const noop = countedNoop(QUEUE);

/** N independent no-op tasks: each is its own workflow (Weft) or job (pg-boss). Measures pure queue overhead. */
export const independent: Workload = {
  name: "independent",
  description: "N independent no-op tasks, each its own workflow",
  defaultTasks: 20_000,
  expectedTasks: (tasks) => tasks,
  weft: {
    tasks: (onDone) => {
      countInto(onDone);
      return [noop];
    },
    async enqueue(client, tasks, batchSize) {
      for (const batch of batches(tasks, batchSize)) await client.scheduleMany(noop, batch);
    },
  },
  pgBoss: {
    queues: [QUEUE],
    async enqueue(boss, tasks, batchSize) {
      for (const batch of batches(tasks, batchSize)) await boss.insert(batch.map((data) => ({ name: QUEUE, data })));
    },
    handlers: {
      [QUEUE]: async () => undefined,
    },
  },
  graphile: {
    async enqueue(utils, tasks, batchSize) {
      for (const batch of batches(tasks, batchSize))
        await utils.addJobs(batch.map((payload) => ({ identifier: QUEUE, payload })));
    },
    taskList: {
      [QUEUE]: async () => {
        countDone(1);
      },
    },
  },
  bullmq: {
    queues: [QUEUE],
    async enqueue(queues, tasks, batchSize) {
      const queue = queues[QUEUE];
      if (!queue) throw new Error(`bullmq: no queue ${QUEUE}`);
      for (const batch of batches(tasks, batchSize)) await queue.addBulk(batch.map((data) => ({ name: QUEUE, data })));
    },
    processors: {
      [QUEUE]: async () => {
        countDone(1);
        return null;
      },
    },
  },
};
