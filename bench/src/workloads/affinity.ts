import { defineTask } from "@weft/sdk";
import { z } from "zod";
import type { OnDone, Workload } from "./types.js";

const TASK = "affinity.noop";
/** The shape: 1,000 keys, each with N / 1,000 single-task workflows. */
const KEYS = 1_000;

function definition(onDone: OnDone) {
  return defineTask({
    name: TASK,
    input: z.object({ i: z.number().int() }),
    output: z.null(),
    run: () => {
      onDone(1);
      return null;
    },
  });
}

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
    tasks: (onDone) => [definition(onDone)],
    async enqueue(client, tasks, batchSize) {
      const task = definition(() => undefined);
      // One statement per key and round of up to `batchSize` / KEYS workflows,
      // so each key's workflows are created in order.
      const perKey = Math.ceil(tasks / KEYS);
      const perCall = Math.max(1, Math.floor(batchSize / KEYS));
      for (let from = 0; from < perKey; from += perCall) {
        for (let k = 0; k < KEYS; k++) {
          const inputs: { i: number }[] = [];
          for (let r = from; r < Math.min(perKey, from + perCall); r++) {
            const i = r * KEYS + k;
            if (i < tasks) inputs.push({ i });
          }
          if (inputs.length > 0) {
            await client.scheduleMany(task, inputs, { affinityGroup: "bench", affinity: `key-${k}` });
          }
        }
      }
    },
  },
};
