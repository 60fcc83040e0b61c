import type { NodeSettings } from "./systems/index.js";

/** What the parent sends to a node process. */
export type ToNode =
  | {
      readonly type: "init";
      readonly system: string;
      readonly workload: string;
      readonly url: string;
      readonly settings: NodeSettings;
    }
  | { readonly type: "go" }
  | { readonly type: "stop" }
  /**
   * Warm-up, before "init": start a throwaway node on \`url\` (a separate
   * database with its own tasks) and keep it running until "warmup-stop".
   */
  | {
      readonly type: "warmup";
      readonly system: string;
      readonly workload: string;
      readonly url: string;
      readonly settings: NodeSettings;
    }
  | { readonly type: "warmup-stop" };

/** What a node process sends to the parent. */
export type FromNode =
  | { readonly type: "ready"; readonly rssMb: number }
  | { readonly type: "warming" }
  | { readonly type: "warmed"; readonly done: number }
  | { readonly type: "progress"; readonly done: number; readonly rssMb: number }
  | {
      readonly type: "stopped";
      readonly done: number;
      readonly peakRssMb: number;
      readonly startRssMb: number;
      /** CPU time (user + system) of the node process while processing. */
      readonly cpuSeconds: number;
      /** V8 heap in use at the end of processing (after a full GC when run with --expose-gc). */
      readonly heapUsedMb: number;
      /** Paced workloads: schedule→start of each task the measured node ran, in ms. */
      readonly startLatencies: number[];
    }
  | { readonly type: "error"; readonly message: string };

export const SAMPLE_INTERVAL_MS = 100;

export function rssMb(): number {
  return process.memoryUsage.rss() / (1024 * 1024);
}
