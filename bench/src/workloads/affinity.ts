import { countedNoop, countInto } from "./done.js";
import type { Workload } from "./types.js";

const TASK = "affinity.noop";
/** The shape: 1,000 keys, each with N / 1,000 single-task workflows. */
const KEYS = 1_000;

// One definition for the module, not one per node (see countDone).
const noop = countedNoop(TASK);

/**
 * N no-op tasks, each its own workflow, spread over 1,000 affinity keys: the
 * workflows of one key run strictly one after the other (in creation order), the
 * keys in parallel. Weft only: pg-boss has no equivalent of a key held by a
 * workflow.
 */
export const affinity: Workload = {
  name: "affinity",
  description: "N single-task workflows over 1,000 affinity keys (one key's workflows run one after the other)",
  // The size: 1,000 keys x 20 workflows.
  defaultTasks: 20_000,
  expectedTasks: (tasks) => tasks,
  weft: {
    tasks: (onDone) => {
      countInto(onDone);
      return [noop];
    },
    async enqueue(client, tasks, batchSize) {
      const task = noop;
      // Task i is workflow i / 1,000 of key i % 1,000: in order of i, each key's
      // workflows are created in order. One statement per batch, each input with its own key.
      for (let from = 0; from < tasks; from += batchSize) {
        const inputs = Array.from({ length: Math.min(batchSize, tasks - from) }, (_, j) => ({ i: from + j }));
        await client.scheduleMany(task, inputs, {
          placement: (input) => ({ affinityGroup: "bench", affinity: `key-${input.i % KEYS}` }),
        });
      }
    },
  },
};
