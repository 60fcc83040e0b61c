import { type pg, withTransaction } from "../db/pg.js";
import type { DeadLetterFilter, DeadLetterRow } from "../store/dead-letters.js";
import type { Store } from "../store/index.js";

/** The dead-letter table: list, look up, re-queue (one transaction), purge. */
export class DeadLetterApi {
  constructor(
    private readonly store: Store,
    private readonly pool: pg.Pool,
  ) {}

  list(filter: DeadLetterFilter, limit: number): Promise<DeadLetterRow[]> {
    return this.store.deadLetters.list(this.pool, filter, limit);
  }

  get(taskId: string): Promise<DeadLetterRow | undefined> {
    return this.store.deadLetters.get(this.pool, taskId);
  }

  /** Schedules each dead letter's task again and removes the letter; returns the new task ids. */
  requeue(taskIds: readonly string[]): Promise<string[]> {
    return withTransaction(this.pool, (tx) => this.store.deadLetters.requeue(tx, taskIds));
  }

  purge(target: { taskIds: readonly string[] } | DeadLetterFilter): Promise<number> {
    return this.store.deadLetters.purge(this.pool, target);
  }
}
