// A worker node process, forked by the runner (bench/src/runner.ts) with an IPC
// channel. It builds one node of the system under test, starts it on "go",
// samples its own RSS every 100 ms, and reports progress and the peak RSS.
// Before that, a warm-up may run a throwaway node of the same system on
// another database: its code is then compiled by V8's optimising tiers, as in
// a node that has been running for a while, and the measured run does not
// spend its first second compiling.

import { type FromNode, rssMb, SAMPLE_INTERVAL_MS, type ToNode } from "./protocol.js";
import type { BenchNode } from "./systems/index.js";
import { getSystem } from "./systems/index.js";
import { takeStartLatencies } from "./workloads/done.js";
import { getWorkload } from "./workloads/index.js";

function send(message: FromNode): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected || !process.send) resolve();
    else process.send(message, undefined, {}, () => resolve());
  });
}

function fail(err: unknown): void {
  const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
  void send({ type: "error", message }).finally(() => process.exit(1));
}

if (!process.send) {
  console.error("bench/src/node.ts is started by the bench runner, not directly");
  process.exit(2);
}

let node: BenchNode | undefined;
let warmup: BenchNode | undefined;
/** Tasks finished: by the warm-up node now running, and by the measured node. */
const WARMUP = 0 as const;
const MEASURED = 1 as const;
const tally: [number, number] = [0, 0];
const measuredDone = () => tally[MEASURED];
/** A progress report is queued for the end of this turn of the event loop. */
let reportQueued = false;
let startRss = 0;
let peakRss = 0;
let sampler: NodeJS.Timeout | undefined;
let cpuAtGo: NodeJS.CpuUsage | undefined;

/**
 * Counts finished tasks for every node this process builds, warm-up or
 * measured: one function, not one closure per node, so that the measured node
 * calls the very function the warm-up node's optimised code was built around
 * (a new closure there made V8 throw that code away in the measured run).
 */
function countDone(count: number): void {
  // The same statements in both phases: a branch the warm-up never took would
  // have no type feedback, and V8 would drop optimised code on reaching it.
  tally[warmup === undefined ? MEASURED : WARMUP] += count;
  // Reported at once (coalesced per turn), not only with the 100 ms RSS
  // sample: the parent stops the clock when the count is complete, and
  // a sample's delay would add up to 100 ms to a run of half a second.
  if (!reportQueued) {
    reportQueued = true;
    setImmediate(reportProgress);
  }
}

function reportProgress(): void {
  reportQueued = false;
  if (warmup === undefined && sampler !== undefined)
    void send({ type: "progress", done: measuredDone(), rssMb: sample() });
}

const sample = () => {
  const rss = rssMb();
  if (rss > peakRss) peakRss = rss;
  return rss;
};

async function handle(message: ToNode): Promise<void> {
  switch (message.type) {
    case "init": {
      const system = getSystem(message.system);
      const workload = getWorkload(message.workload);
      node = await system.createNode(message.url, workload, message.settings, countDone);
      startRss = sample();
      await send({ type: "ready", rssMb: startRss });
      return;
    }
    case "warmup": {
      const system = getSystem(message.system);
      const workload = getWorkload(message.workload);
      const warming = await system.createNode(message.url, workload, message.settings, countDone);
      tally[WARMUP] = 0;
      warmup = warming;
      await warming.start();
      await send({ type: "warming" });
      return;
    }
    case "warmup-stop": {
      if (!warmup) throw new Error("warmup-stop before warmup");
      const warming = warmup;
      await warming.stop();
      // Cleared only now: the warm-up node's last tasks still count as its own.
      warmup = undefined;
      await send({ type: "warmed", done: tally[WARMUP] });
      return;
    }
    case "go": {
      if (!node) throw new Error("go before init");
      peakRss = 0;
      sample();
      cpuAtGo = process.cpuUsage();
      // The warm-up's latencies are not the run's.
      takeStartLatencies();
      sampler = setInterval(
        () => void send({ type: "progress", done: measuredDone(), rssMb: sample() }),
        SAMPLE_INTERVAL_MS,
      );
      await node.start();
      return;
    }
    case "stop": {
      sample();
      if (sampler) clearInterval(sampler);
      const peak = peakRss;
      const cpu = process.cpuUsage(cpuAtGo);
      await node?.stop();
      const cpuSeconds = (cpu.user + cpu.system) / 1e6;
      // With BENCH_NODE_ARGS=--expose-gc the heap figure is what is really retained.
      (globalThis as { gc?: () => void }).gc?.();
      const heapUsedMb = process.memoryUsage().heapUsed / (1024 * 1024);
      await send({
        type: "stopped",
        done: measuredDone(),
        peakRssMb: peak,
        startRssMb: startRss,
        cpuSeconds,
        heapUsedMb,
        startLatencies: takeStartLatencies(),
      });
      process.disconnect();
      return;
    }
  }
}

process.on("message", (message: ToNode) => {
  handle(message).catch(fail);
});
// The parent went away: nothing to report to any more.
process.on("disconnect", () => process.exit(0));
process.on("uncaughtException", fail);
process.on("unhandledRejection", fail);
