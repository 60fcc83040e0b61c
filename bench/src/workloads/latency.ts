import { defineTask } from "@weft/sdk";
import { z } from "zod";
import { countDone, countInto, epochMs, recordStart } from "./done.js";
import type { Workload } from "./types.js";

const QUEUE = "latency";

/** A task's input: its number and when it was scheduled (epochMs, in the scheduling process). */
const input = z.object({ i: z.number().int(), at: z.number() });
type Input = z.infer<typeof input>;

const stamped = (from: number, count: number): Input[] =>
  Array.from({ length: count }, (_, k) => ({ i: from + k, at: epochMs() }));

function record(data: unknown): void {
  const parsed = input.safeParse(data);
  if (parsed.success) recordStart(parsed.data.at);
  countDone(1);
}

// One definition for the module, not one per node (see countDone).
const task = defineTask({
  name: QUEUE,
  input,
  output: z.null(),
  run: (ctx) => {
    record(ctx.input);
    return null;
  },
});

/**
 * No-op tasks scheduled at a fixed rate (\`--tasks\` is the rate per second)
 * for \`--duration\` seconds by the bench's parent process, while the nodes
 * (other processes) run them. Each task carries its scheduling time: the node
 * records schedule→start when its handler runs; schedule→completion is read
 * afterwards from the system's own completion timestamp, where it keeps one.
 */
export const latency: Workload = {
  name: "latency",
  description: "no-op tasks scheduled at a fixed rate (--tasks per second) for --duration seconds",
  defaultTasks: 100,
  paced: true,
  expectedTasks: (tasks) => tasks,
  weft: {
    tasks: (onDone) => {
      countInto(onDone);
      return [task];
    },
    async enqueue(client, tasks, batchSize) {
      for (let from = 0; from < tasks; from += batchSize)
        await client.scheduleMany(task, stamped(from, Math.min(batchSize, tasks - from)));
    },
    async add(client, from, count) {
      await client.scheduleMany(task, stamped(from, count));
    },
  },
  pgBoss: {
    queues: [QUEUE],
    async enqueue(boss, tasks, batchSize) {
      for (let from = 0; from < tasks; from += batchSize)
        await boss.insert(stamped(from, Math.min(batchSize, tasks - from)).map((data) => ({ name: QUEUE, data })));
    },
    async add(boss, from, count) {
      await boss.insert(stamped(from, count).map((data) => ({ name: QUEUE, data })));
    },
    handlers: {
      [QUEUE]: async (jobs) => {
        for (const job of jobs) {
          const parsed = input.safeParse(job.data);
          if (parsed.success) recordStart(parsed.data.at);
        }
      },
    },
  },
  graphile: {
    async enqueue(utils, tasks, batchSize) {
      for (let from = 0; from < tasks; from += batchSize)
        await utils.addJobs(
          stamped(from, Math.min(batchSize, tasks - from)).map((payload) => ({ identifier: QUEUE, payload })),
        );
    },
    async add(utils, from, count) {
      await utils.addJobs(stamped(from, count).map((payload) => ({ identifier: QUEUE, payload })));
    },
    taskList: {
      [QUEUE]: async (payload) => {
        record(payload);
      },
    },
  },
  bullmq: {
    queues: [QUEUE],
    async enqueue(queues, tasks, batchSize) {
      for (let from = 0; from < tasks; from += batchSize)
        await queues[QUEUE]?.addBulk(
          stamped(from, Math.min(batchSize, tasks - from)).map((data) => ({ name: QUEUE, data })),
        );
    },
    async add(queues, from, count) {
      await queues[QUEUE]?.addBulk(stamped(from, count).map((data) => ({ name: QUEUE, data })));
    },
    processors: {
      [QUEUE]: async (job) => {
        record(job.data);
        return null;
      },
    },
  },
};
