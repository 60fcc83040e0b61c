import type { OnDone, Workload } from "../workloads/index.js";

/** Per-node settings, from the command line. */
export interface NodeSettings {
  /** Weft: maxParallelTasksInNode. */
  readonly capacity: number;
  /** Weft: the planner's batch size. */
  readonly plannerBatchSize: number;
  /** Weft: outcomes per completion statement. */
  readonly completionBatchSize: number;
  /** pg-boss: concurrent fetch/complete loops per node. */
  readonly pgBossWorkers: number;
  /** pg-boss: jobs per fetch. */
  readonly pgBossBatchSize: number;
}

/** A worker node inside a node process: built first, then started when the parent says go. */
export interface BenchNode {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Read-only view of one run's database, used by the parent to see when the run is over. */
export interface Monitor {
  /** Tasks not finished yet (any state but finished). */
  remaining(): Promise<number>;
  /** Tasks finished successfully. */
  completed(): Promise<number>;
  close(): Promise<void>;
}

/** Schedules tasks of a paced workload: tasks \`from\` … \`from + count - 1\`, now. */
export interface Producer {
  add(from: number, count: number): Promise<void>;
  close(): Promise<void>;
}

/** A system under test. Everything but `createNode` runs in the parent process. */
export interface BenchSystem {
  readonly name: string;
  /**
   * Node processes run this script (in \`cwd\`) as \`system\` instead of this
   * checkout's bench/src/node.ts as \`name\`: weft-base runs another checkout's
   * Weft against this one in the same invocation.
   */
  readonly nodeProcess?: () => { readonly script: string; readonly cwd: string; readonly system: string };
  /** A short version string (a commit, a package version). */
  version(): string;
  /** The settings that apply to this system, for the report. */
  describe(settings: NodeSettings): Readonly<Record<string, number>>;
  /**
   * Why the system cannot run on this machine (BullMQ: no Redis answers), or
   * undefined when it can; the bench skips it with that line. Absent: always runs.
   */
  unavailable?(): Promise<string | undefined>;
  /** Facts about the system's setup for the report (BullMQ: Redis's version and persistence). */
  environment?(): Promise<Readonly<Record<string, string>>>;
  /** Whether the workload has a part for this system; the bench skips the system for it otherwise. */
  supports(workload: Workload): boolean;
  /**
   * Installs the system's schema in the (fresh) database at `url`, untimed,
   * then writes the workload's initial tasks in batches. Returns the seconds
   * the writes took.
   */
  enqueue(url: string, workload: Workload, tasks: number, batchSize: number): Promise<number>;
  monitor(url: string, workload: Workload): Promise<Monitor>;
  /** Paced workloads, in the parent process: schedules tasks while the nodes run. */
  producer?(url: string, workload: Workload): Promise<Producer>;
  /**
   * Paced workloads, after the run: schedule→completion of each completed task
   * in ms, from the system's own completion timestamps; undefined when it keeps
   * none (graphile-worker deletes a completed job).
   */
  completionLatencies?(url: string, workload: Workload): Promise<number[] | undefined>;
  /** In a node process: a worker node for `workload`; `onDone` counts finished tasks for progress. */
  createNode(url: string, workload: Workload, settings: NodeSettings, onDone: OnDone): Promise<BenchNode>;
}
