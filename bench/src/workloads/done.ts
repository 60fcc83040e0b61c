import { defineTask } from "@weft/sdk";
import { z } from "zod";
import type { OnDone } from "./types.js";

let sink: OnDone = () => undefined;

/**
 * Counts finished tasks for the node that registered a workload's definitions
 * last (see `countInto`). Workloads define their tasks once per module, not once
 * per node, and their `run` functions call this: like pg-boss's handlers, which
 * are module-level too, the measured node then runs the very functions that the
 * warm-up node's optimised code was built around. (Definitions made per node
 * gave V8 new closures in the measured run, and it threw that code away.)
 */
export function countDone(count: number): void {
  sink(count);
}

/** Where `countDone` counts from now on: called by `WeftWorkload.tasks(onDone)`. */
export function countInto(onDone: OnDone): void {
  sink = onDone;
}

/**
 * A no-op task on input \`{ i }\` that counts itself with \`countDone\`. Call it
 * once per module (see countDone).
 */
export function countedNoop(name: string) {
  return defineTask({
    name,
    input: z.object({ i: z.number().int() }),
    output: z.null(),
    run: () => {
      countDone(1);
      return null;
    },
  });
}

/** Milliseconds since the epoch, with the fraction: the same clock in every process on the machine. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

let starts: number[] = [];

/** Workload \`latency\`: a task scheduled at \`at\` (epochMs) has started now. */
export function recordStart(at: number): void {
  starts.push(epochMs() - at);
}

/** The schedule→start latencies recorded since the last call, in ms. */
export function takeStartLatencies(): number[] {
  const out = starts;
  starts = [];
  return out;
}
