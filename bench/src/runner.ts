import { type ChildProcess, fork } from "node:child_process";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { createDatabase, dropDatabase } from "@weft/engine/testing";
import pg from "pg";
import type { FromNode, ToNode } from "./protocol.js";
import { type Percentiles, percentiles } from "./report.js";
import type { BenchSystem, Monitor, NodeSettings, Producer } from "./systems/index.js";
import type { Workload } from "./workloads/index.js";

const NODE_SCRIPT = fileURLToPath(new URL("./node.ts", import.meta.url));
const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
/**
 * Parent-side polling: the database while counters say work is left, the
 * counters, and the database once they say it is all done (the last outcomes
 * are committed shortly after their tasks ran).
 */
const SLOW_POLL_MS = 1_000;
const FAST_POLL_MS = 10;
const FINAL_POLL_MS = 2;

export interface RunSpec {
  readonly serverUrl: string;
  readonly system: BenchSystem;
  readonly workload: Workload;
  readonly tasks: number;
  readonly nodes: number;
  readonly settings: NodeSettings;
  readonly enqueueBatchSize: number;
  readonly timeoutMs: number;
  /** ANALYZE the database after enqueueing (untimed). */
  readonly analyze: boolean;
  /** 1-based run number of this system, workload and task count. */
  readonly run: number;
  /** Unique within the bench invocation: names the run's database. */
  readonly index: number;
  /**
   * Tasks each run's node processes work through first, untimed, in a
   * database of their own (0: none; the run measures freshly started processes).
   */
  readonly warmupTasks: number;
  /** Paced workloads: seconds of scheduling at \`tasks\` per second. */
  readonly paceSeconds: number;
  /** Called as the measured run goes: tasks counted by the nodes so far, of \`total\`. */
  readonly onProgress?: (done: number, total: number) => void;
}

export interface RunResult {
  readonly run: number;
  /** Processing wall time: from starting the nodes until the database shows every task finished. */
  readonly seconds: number;
  readonly tasksPerSec: number;
  readonly enqueueSeconds: number;
  /** Peak RSS of each node process while processing, in MiB. */
  readonly peakRssMb: number[];
  /** RSS of each node process when ready, before processing, in MiB. */
  readonly startRssMb: number[];
  /** CPU seconds (user + system) of each node process while processing. */
  readonly cpuSeconds: number[];
  /** V8 heap in use in each node process when processing ended, in MiB. */
  readonly heapUsedMb: number[];
  /** Paced workloads: schedule→start percentiles over every task of the run, in ms. */
  readonly startLatencyMs?: Percentiles;
  /** Paced workloads: schedule→completion percentiles, in ms; absent when the system keeps no completion time. */
  readonly completionLatencyMs?: Percentiles;
}

interface NodeReport {
  readonly startLatencies: number[];
  readonly peakRssMb: number;
  readonly startRssMb: number;
  readonly cpuSeconds: number;
  readonly heapUsedMb: number;
}

async function analyze(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query("ANALYZE");
  } finally {
    await client.end();
  }
}

/** The system name the node processes are told (see BenchSystem.nodeProcess). */
function nodeSystemName(system: BenchSystem): string {
  return system.nodeProcess?.().system ?? system.name;
}

/** A forked node process with its latest report. */
class NodeProcess {
  readonly child: ChildProcess;
  done = 0;
  ready: Promise<number>;
  stopped: Promise<NodeReport>;
  /** Resolved by the next "warming" and "warmed" messages (see warmUp). */
  private onWarming: (() => void) | undefined;
  private onWarmed: ((done: number) => void) | undefined;
  private failure: Error | undefined;
  private readonly failed: Promise<never>;

  constructor(index: number, system: BenchSystem) {
    const other = system.nodeProcess?.();
    this.child = fork(other?.script ?? NODE_SCRIPT, [], {
      cwd: other?.cwd ?? REPO_ROOT,
      // BENCH_NODE_ARGS adds Node options to the node processes, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
      execArgv: ["--import", "tsx", ...(process.env.BENCH_NODE_ARGS?.split(" ").filter((a) => a !== "") ?? [])],
      // stdout goes to our stderr so that --json output stays clean.
      stdio: ["ignore", "pipe", "inherit", "ipc"],
    });
    this.child.stdout?.on("data", (chunk: Buffer) => process.stderr.write(chunk));
    let onReady: (rss: number) => void = () => undefined;
    let onStopped: (r: NodeReport) => void = () => undefined;
    let onFailed: (err: Error) => void = () => undefined;
    this.ready = new Promise((resolve) => {
      onReady = resolve;
    });
    this.stopped = new Promise((resolve) => {
      onStopped = resolve;
    });
    this.failed = new Promise<never>((_, reject) => {
      onFailed = reject;
    });
    this.failed.catch(() => undefined);
    const fail = (err: Error) => {
      this.failure ??= err;
      onFailed(this.failure);
    };
    this.child.on("message", (message: FromNode) => {
      switch (message.type) {
        case "ready":
          onReady(message.rssMb);
          break;
        case "warming":
          this.onWarming?.();
          break;
        case "warmed":
          this.onWarmed?.(message.done);
          break;
        case "progress":
          this.done = message.done;
          break;
        case "stopped":
          this.done = message.done;
          onStopped(message);
          break;
        case "error":
          fail(new Error(`node process ${index} failed: ${message.message}`));
          break;
      }
    });
    this.child.on("error", (err) => fail(err));
    this.child.on("exit", (code, signal) => {
      fail(new Error(`node process ${index} exited (code ${code}, signal ${signal})`));
    });
    // Whichever settles first: a result or a failure of this process.
    this.ready = Promise.race([this.ready, this.failed]);
    this.stopped = Promise.race([this.stopped, this.failed]);
    // A failure is also seen through check(); whoever awaits these gets it too.
    this.ready.catch(() => undefined);
    this.stopped.catch(() => undefined);
  }

  /** Sends \`message\` and waits for the reply \`register\` hooks up, or for this process's failure. */
  private exchange<T>(message: ToNode, register: (resolve: (value: T) => void) => void): Promise<T> {
    const reply = new Promise<T>((resolve) => register(resolve));
    this.send(message);
    return Promise.race([reply, this.failed]);
  }

  /** Starts the warm-up node on \`url\`; resolves once it runs. */
  startWarmup(message: Extract<ToNode, { type: "warmup" }>): Promise<void> {
    return this.exchange<void>(message, (resolve) => {
      this.onWarming = () => resolve();
    });
  }

  /** Stops the warm-up node; resolves with the tasks it ran. */
  stopWarmup(): Promise<number> {
    return this.exchange<number>({ type: "warmup-stop" }, (resolve) => {
      this.onWarmed = resolve;
    });
  }

  /** Throws if the process has failed. */
  check(): void {
    if (this.failure) throw this.failure;
  }

  send(message: ToNode): void {
    if (this.child.connected) this.child.send(message);
  }

  /** Ends the process if it is still there: waits `graceMs` for it to exit by itself, then SIGTERM, then SIGKILL. */
  async kill(graceMs = 0): Promise<void> {
    const gone = () => this.child.exitCode !== null || this.child.signalCode !== null;
    if (gone()) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    const timers = [
      setTimeout(() => this.child.kill("SIGTERM"), graceMs),
      setTimeout(() => this.child.kill("SIGKILL"), graceMs + 3_000),
    ];
    await exited;
    for (const t of timers) clearTimeout(t);
  }
}

/** Every node process started by this bench and still running, for cleanup on exit. */
export const liveNodes = new Set<NodeProcess>();

export async function killAllNodes(): Promise<void> {
  await Promise.all([...liveNodes].map((n) => n.kill()));
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms / 1000} s waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * The warm-up: the node processes run \`warmupTasks\` of the workload in a
 * database of their own, untimed, and stop that node again. A service's node
 * runs for hours; without this, a run of half a second measures V8 compiling
 * the hot path (a third of a fresh node process's CPU in such a run) more than
 * the system.
 */
async function warmUp(spec: RunSpec, nodes: readonly NodeProcess[]): Promise<void> {
  const { system, workload } = spec;
  const dbName = `bench_${system.name.replace(/\W/g, "_")}_${workload.name}_${spec.index}_warmup`;
  const url = await createDatabase(spec.serverUrl, dbName);
  let monitor: Monitor | undefined;
  try {
    await system.enqueue(url, workload, spec.warmupTasks, spec.enqueueBatchSize);
    monitor = await system.monitor(url, workload);
    const message: Extract<ToNode, { type: "warmup" }> = {
      type: "warmup",
      system: nodeSystemName(system),
      workload: workload.name,
      url,
      settings: spec.settings,
    };
    await withTimeout(Promise.all(nodes.map((n) => n.startWarmup(message))), 60_000, "the warm-up to start");
    const deadline = performance.now() + spec.timeoutMs;
    while ((await monitor.remaining()) > 0) {
      for (const node of nodes) node.check();
      if (performance.now() > deadline)
        throw new Error(`${system.name}: warm-up not finished after ${spec.timeoutMs / 1000} s`);
      await sleep(FAST_POLL_MS);
    }
    await withTimeout(Promise.all(nodes.map((n) => n.stopWarmup())), 60_000, "the warm-up to stop");
  } finally {
    await monitor?.close().catch(() => undefined);
    await dropDatabase(spec.serverUrl, dbName).catch(() => undefined);
  }
}

/** Tasks that finish in a run: a paced workload's rate × seconds, else the workload's count. */
export function expectedTasks(workload: Workload, tasks: number, paceSeconds: number): number {
  return workload.paced ? Math.max(1, Math.round(tasks * paceSeconds)) : workload.expectedTasks(tasks);
}

/** Schedules \`total\` tasks at \`rate\` per second: every millisecond, those due by then. */
async function pace(producer: Producer, rate: number, total: number): Promise<void> {
  const start = performance.now();
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate) + 1);
    if (due > sent) {
      await producer.add(sent, due - sent);
      sent = due;
    }
    await sleep(1);
  }
}

/**
 * One measured run in a fresh database: warm the node processes up (see
 * warmUp), enqueue everything (timed separately), start the nodes together,
 * and time until the database shows every task finished.
 */
export async function runOnce(spec: RunSpec): Promise<RunResult> {
  const { system, workload, tasks } = spec;
  const paced = workload.paced === true;
  const expected = expectedTasks(workload, tasks, spec.paceSeconds);
  const dbName = `bench_${system.name.replace(/\W/g, "_")}_${workload.name}_${spec.index}`;
  const nodes: NodeProcess[] = [];
  const spawn = () => {
    for (let i = 0; i < spec.nodes; i++) {
      const node = new NodeProcess(i, system);
      nodes.push(node);
      liveNodes.add(node);
    }
  };
  let monitor: Monitor | undefined;
  let producer: Producer | undefined;
  try {
    if (spec.warmupTasks > 0) {
      spawn();
      // Two rounds: stopping the first node changes fields that the optimised
      // code had taken for constants, and V8 throws that code away; the second
      // round compiles it again, so the measured node does not.
      await warmUp(spec, nodes);
      await warmUp(spec, nodes);
    }
    const url = await createDatabase(spec.serverUrl, dbName);
    // A paced workload's tasks are scheduled while the nodes run.
    const enqueueSeconds = await system.enqueue(url, workload, paced ? 0 : tasks, spec.enqueueBatchSize);
    monitor = await system.monitor(url, workload);
    // Statistics as a database in steady use would have them (autovacuum keeps
    // them current); a burst into never-analyzed tables is --no-analyze.
    if (spec.analyze) await analyze(url);

    // Without a warm-up, the processes start only now: loading them would disturb the enqueue.
    if (nodes.length === 0) spawn();
    for (const node of nodes) {
      node.send({
        type: "init",
        system: nodeSystemName(system),
        workload: workload.name,
        url,
        settings: spec.settings,
      });
    }
    await withTimeout(Promise.all(nodes.map((n) => n.ready)), 60_000, "node processes to get ready");

    if (paced && !system.producer) throw new Error(`${system.name}: cannot schedule a paced workload`);
    producer = paced ? await system.producer?.(url, workload) : undefined;

    const t0 = performance.now();
    for (const node of nodes) node.send({ type: "go" });
    let scheduled = producer === undefined;
    const pacing = producer
      ? pace(producer, tasks, expected).then(() => {
          scheduled = true;
        })
      : undefined;
    pacing?.catch(() => undefined);
    const deadline = t0 + spec.timeoutMs;
    let lastCheck = t0;
    for (;;) {
      for (const node of nodes) node.check();
      const now = performance.now();
      const counted = nodes.reduce((sum, n) => sum + n.done, 0);
      spec.onProgress?.(Math.min(counted, expected), expected);
      if (counted >= expected || now - lastCheck >= SLOW_POLL_MS) {
        lastCheck = now;
        // A paced run is over only once every task has been scheduled.
        if (scheduled && (await monitor.remaining()) === 0) break;
      }
      if (now > deadline) {
        throw new Error(`${system.name}: not finished after ${spec.timeoutMs / 1000} s (${counted} of ${expected})`);
      }
      await sleep(counted >= expected ? FINAL_POLL_MS : FAST_POLL_MS);
    }
    const seconds = (performance.now() - t0) / 1000;
    await pacing;

    for (const node of nodes) node.send({ type: "stop" });
    const reports = await withTimeout(Promise.all(nodes.map((n) => n.stopped)), 60_000, "node processes to stop");
    // They exit by themselves after reporting (and write a --cpu-prof profile if asked to).
    await Promise.all(nodes.map((n) => n.kill(10_000)));
    const completed = await monitor.completed();
    if (completed !== expected) {
      throw new Error(`${system.name}: ${completed} tasks completed, expected ${expected}`);
    }
    const starts = reports.flatMap((r) => r.startLatencies);
    const completions = paced ? await system.completionLatencies?.(url, workload) : undefined;
    return {
      ...(paced && starts.length > 0 ? { startLatencyMs: percentiles(starts) } : {}),
      ...(completions && completions.length > 0 ? { completionLatencyMs: percentiles(completions) } : {}),
      run: spec.run,
      seconds,
      tasksPerSec: expected / seconds,
      enqueueSeconds,
      peakRssMb: reports.map((r) => r.peakRssMb),
      startRssMb: reports.map((r) => r.startRssMb),
      cpuSeconds: reports.map((r) => r.cpuSeconds),
      heapUsedMb: reports.map((r) => r.heapUsedMb),
    };
  } finally {
    await Promise.all(nodes.map((n) => n.kill()));
    for (const node of nodes) liveNodes.delete(node);
    await monitor?.close().catch(() => undefined);
    await producer?.close().catch(() => undefined);
    // BENCH_KEEP_DB=1 keeps the run's database for a look at its tasks afterwards.
    if (process.env.BENCH_KEEP_DB !== "1") await dropDatabase(spec.serverUrl, dbName).catch(() => undefined);
  }
}
