import { connectClient, type pg, type Queryable, withTransaction } from "../db/pg.js";
import type { Store } from "../store/index.js";
import type { SlotRow, SlotSeries, SlotTasks } from "../store/slots.js";

/** Which slots a pull-mode caller may take, and in what order. */
export interface SlotPick {
  readonly statuses: readonly ("AVAILABLE" | "FAILED")[];
  readonly from: Date;
  readonly to: Date;
  readonly order: "oldest" | "newest";
}

/**
 * Time slots: ensure and read on the pool, re-open in a transaction of the
 * API's own, and pull mode (DTC style) inside a transaction the caller holds or
 * one `process` holds for it.
 */
export class SlotApi {
  constructor(
    private readonly store: Store,
    private readonly pool: pg.Pool,
  ) {}

  /** The aligned slot boundaries of [from, to). */
  boundaries(series: SlotSeries, from: Date, to: Date): Promise<{ start: Date; end: Date }[]> {
    return this.store.slots.boundaries(this.pool, series, from, to);
  }

  /** Creates the missing slots of [from, to) (and their tasks, engine-run); returns how many. */
  ensure(series: SlotSeries, from: Date, to: Date, tasks: SlotTasks | null): Promise<number> {
    return this.store.slots.ensure(this.pool, series, from, to, tasks);
  }

  coverage(series: SlotSeries, from: Date, to: Date): Promise<SlotRow[]> {
    return this.store.slots.coverage(this.pool, series, from, to);
  }

  /** How the series runs, as the database records it (engine-run when its slots have tasks), or null. */
  mode(series: SlotSeries): Promise<SlotTasks | null> {
    return this.store.slots.mode(this.pool, series);
  }

  /** Re-opens the finished slots of [from, to) with `statuses`; returns how many. */
  reopen(
    series: SlotSeries,
    from: Date,
    to: Date,
    statuses: readonly string[],
    tasks: SlotTasks | null,
  ): Promise<number> {
    return withTransaction(this.pool, (tx) => this.store.slots.reopen(tx, series, from, to, statuses, tasks));
  }

  /**
   * Locks the first slot matching `pick` inside `tx` (FOR UPDATE SKIP LOCKED);
   * a FAILED slot taken again is AVAILABLE while `tx` holds it.
   */
  async acquire(tx: Queryable, series: SlotSeries, pick: SlotPick): Promise<SlotRow | undefined> {
    const row = await this.store.slots.acquire(tx, series, pick.statuses, pick.from, pick.to, pick.order);
    if (row?.status === "FAILED") await this.store.slots.revive(tx, row.id);
    return row;
  }

  /** Finishes an acquired slot in `tx`; its new status, or undefined if it was not AVAILABLE at `generation`. */
  finish(
    tx: Queryable,
    slot: { readonly id: string; readonly generation: number },
    status: "COMPLETE" | "SKIP" | "AVAILABLE",
    message: string | null,
    workerName: string | null,
    maxAttempts: number,
  ): Promise<string | undefined> {
    return this.store.slots.finish(tx, slot.id, slot.generation, status, message, workerName, maxAttempts);
  }

  /**
   * Pull mode with the transaction held here: acquires a slot, runs `work` in a
   * savepoint; when it throws, its writes are undone and `failed` records the
   * failure in the same transaction; then commits. Returns the slot, or
   * undefined when none was free.
   */
  async process(
    series: SlotSeries,
    pick: SlotPick,
    work: (row: SlotRow, tx: Queryable) => Promise<void>,
    failed: (row: SlotRow, tx: Queryable, error: unknown) => Promise<void>,
  ): Promise<SlotRow | undefined> {
    const client = await connectClient(this.pool);
    try {
      await client.query("BEGIN");
      const row = await this.acquire(client, series, pick);
      if (row) {
        await client.query("SAVEPOINT weft_slot_work");
        try {
          await work(row, client);
        } catch (error) {
          await client.query("ROLLBACK TO SAVEPOINT weft_slot_work");
          await failed(row, client, error);
        }
      }
      await client.query("COMMIT");
      return row;
    } catch (error) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }
}
