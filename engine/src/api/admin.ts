import type { pg } from "../db/pg.js";
import type {
  NodeStatusRecord,
  QueueStatRow,
  TaskSlotRecord,
  ThroughputRow,
  WorkflowListFilter,
  WorkflowListPage,
} from "../store/admin.js";
import type { PublishedCron } from "../store/cron.js";
import type { Store } from "../store/index.js";
import type { TaskRecord } from "../store/read.js";

/** Operators' reads: workflow listings, attempts, queue statistics, nodes, cron, health. */
export class AdminApi {
  constructor(
    private readonly store: Store,
    private readonly pool: pg.Pool,
    private readonly nodeDeadAfterMs: number,
  ) {}

  /** One page of workflows, newest first, scanning at most `scan` rows (see AdminStore.listWorkflows). */
  listWorkflows(filter: WorkflowListFilter, limit: number, scan: number): Promise<WorkflowListPage> {
    return this.store.admin.listWorkflows(this.pool, filter, limit, scan);
  }

  workflowTasksPage(
    workflowId: string,
    options: { readonly afterId?: string; readonly state?: string; readonly limit: number },
  ): Promise<TaskRecord[]> {
    return this.store.admin.workflowTasksPage(this.pool, workflowId, options);
  }

  /** A task's attempt log, or null when there is no such task. */
  taskAttempts(taskId: string): Promise<Record<string, unknown>[] | null> {
    return this.store.admin.taskAttempts(this.pool, taskId);
  }

  workflowTaskCounts(workflowId: string): Promise<{ state: string; count: number }[]> {
    return this.store.admin.workflowTaskCounts(this.pool, workflowId);
  }

  queueStats(): Promise<QueueStatRow[]> {
    return this.store.admin.queueStats(this.pool);
  }

  /** Tasks finished per second (COMPLETED, FAILED, CANCELLED) over the last `windowSeconds`, oldest first. */
  throughput(windowSeconds: number): Promise<ThroughputRow[]> {
    return this.store.admin.throughput(this.pool, windowSeconds);
  }

  taskSlot(taskId: string): Promise<TaskSlotRecord | undefined> {
    return this.store.admin.taskSlot(this.pool, taskId);
  }

  nodes(): Promise<NodeStatusRecord[]> {
    return this.store.admin.nodes(this.pool);
  }

  /** Whether the database answers. */
  ping(): Promise<boolean> {
    return this.store.admin.ping(this.pool);
  }

  /** The cron schedules live nodes publish (newest node's wins), by task name. */
  cronSpecs(): Promise<Map<string, PublishedCron>> {
    return this.store.cron.specs(this.pool, this.nodeDeadAfterMs);
  }

  /** Each task's newest recorded tick, and the database clock. */
  cronLastTicks(names: readonly string[]): Promise<{ ticks: Map<string, Date | null>; now: Date }> {
    return this.store.cron.last(this.pool, names);
  }
}
