import { type pg, withTransaction } from "../db/pg.js";
import type { Store } from "../store/index.js";
import type { TaskRecord, WorkflowRecord } from "../store/read.js";

/** Reading tasks and workflows (single statements on the pool). */
export class ReadApi {
  constructor(
    private readonly store: Store,
    private readonly pool: pg.Pool,
    private readonly nodeDeadAfterMs: number,
  ) {}

  task(taskId: string): Promise<TaskRecord | undefined> {
    return this.store.read.task(this.pool, taskId);
  }

  workflow(workflowId: string): Promise<WorkflowRecord | undefined> {
    return this.store.read.workflow(this.pool, workflowId);
  }

  workflowTasks(workflowId: string): Promise<TaskRecord[]> {
    return this.store.read.workflowTasks(this.pool, workflowId);
  }

  /** Join edges of a workflow (upstream -> join). */
  graphEdges(workflowId: string): Promise<{ join_task_id: string; upstream_task_id: string; position: number }[]> {
    return this.store.read.graphEdges(this.pool, workflowId);
  }

  /**
   * A workflow's tasks and join edges from one snapshot (a REPEATABLE READ,
   * READ ONLY transaction): read apart, a fan-out committed between the two
   * reads gave edges into a join the tasks did not hold yet.
   */
  workflowGraphRows(workflowId: string): Promise<{
    tasks: TaskRecord[];
    edges: { join_task_id: string; upstream_task_id: string; position: number }[];
  }> {
    return withTransaction(this.pool, async (tx) => {
      await tx.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
      const tasks = await this.store.read.workflowTasks(tx, workflowId);
      const edges = await this.store.read.graphEdges(tx, workflowId);
      return { tasks, edges };
    });
  }

  /** The task whose result is the workflow's (its root, or the join it ends with). */
  resultTask(workflowId: string): Promise<TaskRecord | undefined> {
    return this.store.read.resultTask(this.pool, workflowId);
  }

  /** The failed tasks that failed their workflow. */
  unhandledFailures(workflowId: string): Promise<{ id: string; task_name: string; error: unknown }[]> {
    return this.store.read.unhandledFailures(this.pool, workflowId);
  }

  queueCounts(): Promise<{ queue: string; state: string; count: number }[]> {
    return this.store.read.queueCounts(this.pool);
  }

  /** Task names some live node serves. */
  servedNames(): Promise<Set<string>> {
    return this.store.nodes.servedNames(this.pool, this.nodeDeadAfterMs);
  }
}
