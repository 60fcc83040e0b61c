import { type pg, withTransaction } from "../db/pg.js";
import type { CancelResult } from "../store/cancel.js";
import type { Store } from "../store/index.js";

/**
 * Cancelling, each in a transaction of its own; once it commits, the
 * workflow's affinity keys pass to the next workflows in line.
 */
export class CancelApi {
  constructor(
    private readonly store: Store,
    private readonly pool: pg.Pool,
  ) {}

  /** The workflow's unfinished tasks become CANCELLED; undefined when there is no such workflow. */
  async workflow(workflowId: string, reason: string | null): Promise<CancelResult | undefined> {
    const result = await withTransaction(this.pool, (tx) => this.store.cancel.cancelWorkflow(tx, workflowId, reason));
    if (result?.cancelled) await this.store.affinity.releaseWorkflow(this.pool, workflowId);
    return result;
  }

  /** A task, its descendants and the joins on them; undefined when there is no such task. */
  async task(taskId: string): Promise<{ workflowId: string; tasks: number } | undefined> {
    const result = await withTransaction(this.pool, (tx) => this.store.cancel.cancelTask(tx, taskId));
    if (result && result.tasks > 0) await this.store.affinity.releaseWorkflow(this.pool, result.workflowId);
    return result;
  }
}
