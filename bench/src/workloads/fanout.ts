import { defineJoin, defineTask } from "@weft/sdk";
import { z } from "zod";
import { countDone, countedNoop, countInto } from "./done.js";
import type { Workload } from "./types.js";

const PARENT = "fanout.parent";
const MAP = "fanout.map";
const REDUCE = "fanout.reduce";

const count = z.object({ maps: z.number().int().nonnegative() });

// The three definitions, once for the module (see countDone); each finished
// task is counted once.
const map = countedNoop(MAP);
// Checks that it got every map's outcome: a failed join leaves the run short of
// completed tasks, and the runner fails it.
const reduce = defineJoin({
  name: REDUCE,
  input: count,
  output: z.object({ maps: z.number().int(), completed: z.number().int() }),
  upstream: map,
  run: (ctx) => {
    const completed = ctx.upstream.filter((u) => u.status === "COMPLETED").length;
    if (ctx.upstream.length !== ctx.input.maps || completed !== ctx.input.maps) {
      throw new Error(
        `fanout: the join got ${ctx.upstream.length} outcomes (${completed} completed), expected ${ctx.input.maps}`,
      );
    }
    countDone(1);
    return { maps: ctx.upstream.length, completed };
  },
});
const parent = defineTask({
  name: PARENT,
  input: count,
  output: z.null(),
  run: (ctx) => {
    const maps = Array.from({ length: ctx.input.maps }, (_, i) => ctx.schedule(map, { i }));
    ctx.scheduleJoin(reduce, { maps: maps.length }, maps);
    countDone(1);
    return null;
  },
});

/**
 * One parent task schedules N no-op map tasks and one join over them (written
 * with the parent's outcome); the join runs once all N have finished and
 * receives their N outcomes. BullMQ expresses it with a flow (the parent job
 * adds a join job with the N map jobs as its children; the join reads their
 * results with \`getChildrenValues\`); pg-boss and graphile-worker have no
 * joins, and the bench says "not supported" for them.
 */
export const fanout: Workload = {
  name: "fanout",
  description: "1 parent task -> N no-op map tasks -> 1 join that receives the N outcomes (one workflow)",
  // The size: 10,000 map tasks.
  defaultTasks: 10_000,
  expectedTasks: (tasks) => tasks + 2,
  weft: {
    tasks: (onDone) => {
      countInto(onDone);
      return [parent, map, reduce];
    },
    // The one parent task; its children are written when it completes, during processing.
    async enqueue(client, tasks) {
      await client.schedule(parent, { maps: tasks });
    },
  },
  bullmq: {
    queues: [PARENT, MAP, REDUCE],
    async enqueue(queues, tasks) {
      await queues[PARENT]?.add(PARENT, { maps: tasks });
    },
    processors: {
      [PARENT]: async (job, { flow }) => {
        const { maps } = count.parse(job.data);
        await flow.add({
          name: REDUCE,
          queueName: REDUCE,
          data: { maps },
          children: Array.from({ length: maps }, (_, i) => ({ name: MAP, queueName: MAP, data: { i } })),
        });
        countDone(1);
        return null;
      },
      [MAP]: async () => {
        countDone(1);
        return null;
      },
      [REDUCE]: async (job) => {
        const { maps } = count.parse(job.data);
        const values = Object.keys(await job.getChildrenValues()).length;
        if (values !== maps) throw new Error(`fanout: the join got ${values} results, expected ${maps}`);
        countDone(1);
        return { maps: values };
      },
    },
  },
};
