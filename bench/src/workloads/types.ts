import type { AnyDefinition, WeftClient } from "@weft/sdk";
import type { Queue } from "bullmq";
import type { TaskList, WorkerUtils } from "graphile-worker";
import type PgBoss from "pg-boss";

/** Called by a node each time `count` more tasks have finished (for progress only; completion is read from the database). */
export type OnDone = (count: number) => void;

/** How a workload runs on Weft. */
export interface WeftWorkload {
  /** The task (and join) definitions a node registers; their `run` functions call `onDone`. */
  tasks(onDone: OnDone): AnyDefinition[];
  /** Writes the initial tasks, `batchSize` per statement. */
  enqueue(client: WeftClient, tasks: number, batchSize: number): Promise<void>;
  /** Paced workloads: schedules tasks \`from\` … \`from + count - 1\` now (one statement). */
  add?(client: WeftClient, from: number, count: number): Promise<void>;
}

/** A pg-boss job handler: the jobs of one fetch, completed together after it resolves (and counted then). */
export type PgBossHandler = (jobs: PgBoss.Job<object>[], boss: PgBoss) => Promise<void>;

/** How a workload runs on pg-boss. */
export interface PgBossWorkload {
  /** The queues the workload uses (created before enqueueing). */
  readonly queues: readonly string[];
  /** Writes the initial jobs, `batchSize` per statement. */
  enqueue(boss: PgBoss, tasks: number, batchSize: number): Promise<void>;
  /** Paced workloads: schedules jobs \`from\` … \`from + count - 1\` now. */
  add?(boss: PgBoss, from: number, count: number): Promise<void>;
  /** One handler per queue. */
  readonly handlers: Readonly<Record<string, PgBossHandler>>;
}

/** How a workload runs on graphile-worker. */
export interface GraphileWorkload {
  /** Writes the initial jobs with \`addJobs\`, \`batchSize\` per call. */
  enqueue(utils: WorkerUtils, tasks: number, batchSize: number): Promise<void>;
  /** Paced workloads: schedules jobs \`from\` … \`from + count - 1\` now. */
  add?(utils: WorkerUtils, from: number, count: number): Promise<void>;
  /** The task handlers (module-level, see countDone). */
  readonly taskList: TaskList;
}

/** How a workload runs on BullMQ: one queue per task kind, a processor per queue. */
export interface BullmqWorkload {
  readonly queues: readonly string[];
  /** Writes the initial jobs, \`batchSize\` per \`addBulk\`; \`queues\` by name, with the run's prefix. */
  enqueue(queues: Readonly<Record<string, Queue>>, tasks: number, batchSize: number): Promise<void>;
  /** Paced workloads: schedules jobs \`from\` … \`from + count - 1\` now. */
  add?(queues: Readonly<Record<string, Queue>>, from: number, count: number): Promise<void>;
  /**
   * A processor per queue; \`context.flow\` adds flows (BullMQ's parent/children jobs)
   * on the run's Redis connection and prefix.
   */
  readonly processors: Readonly<Record<string, BullmqProcessor>>;
}

export type BullmqProcessor = (
  job: import("bullmq").Job,
  context: { readonly flow: import("bullmq").FlowProducer },
) => Promise<unknown>;

/**
 * A benchmark workload: the same logical work expressed for each system.
 * `--tasks N` is the number of initial tasks; `expectedTasks(N)` is how many
 * tasks finish in total (more than N when tasks spawn others). A system the
 * workload has no part for (pg-boss has no joins or DAGs) is skipped for it.
 */
export interface Workload {
  readonly name: string;
  readonly description: string;
  /** `--tasks` when it is not given. */
  readonly defaultTasks: number;
  /**
   * Paced: \`--tasks\` is a rate per second; the bench's parent schedules that
   * many tasks a second for \`--duration\` seconds while the nodes run (through
   * each part's \`add\`), and nothing is enqueued before.
   */
  readonly paced?: boolean;
  expectedTasks(tasks: number): number;
  readonly weft: WeftWorkload;
  /** Absent when pg-boss cannot express the workload. */
  readonly pgBoss?: PgBossWorkload;
  /** Absent when graphile-worker cannot express the workload (no joins). */
  readonly graphile?: GraphileWorkload;
  /** Absent when BullMQ cannot express the workload. */
  readonly bullmq?: BullmqWorkload;
}
