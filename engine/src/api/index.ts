import type { pg } from "../db/pg.js";
import type { PlannerNudge } from "../services/listener.js";
import type { Store } from "../store/index.js";
import type { Tracing } from "../telemetry/traces.js";
import { AdminApi } from "./admin.js";
import { CancelApi } from "./cancel.js";
import { DeadLetterApi } from "./dead-letters.js";
import { ReadApi } from "./read.js";
import { ScheduleApi } from "./schedule.js";
import { SlotApi } from "./slots.js";

/**
 * What the SDK may do with the database: every operation of a client, each
 * owning its transaction (or joining the caller's where it takes one). The SDK
 * reaches neither the store nor the pool.
 */
export class EngineApi {
  readonly schedule: ScheduleApi;
  readonly cancel: CancelApi;
  readonly read: ReadApi;
  readonly deadLetters: DeadLetterApi;
  readonly slots: SlotApi;
  readonly admin: AdminApi;

  constructor(
    store: Store,
    pool: pg.Pool,
    nudge: PlannerNudge,
    tracing: Tracing | undefined,
    settings: { readonly nodeDeadAfterMs: number; readonly idempotencyWindowMs: number },
  ) {
    this.schedule = new ScheduleApi(store, pool, nudge, tracing, settings.idempotencyWindowMs);
    this.cancel = new CancelApi(store, pool);
    this.read = new ReadApi(store, pool, settings.nodeDeadAfterMs);
    this.deadLetters = new DeadLetterApi(store, pool);
    this.slots = new SlotApi(store, pool);
    this.admin = new AdminApi(store, pool, settings.nodeDeadAfterMs);
  }
}

export type { NewJoinRow } from "./schedule.js";
export type { SlotPick } from "./slots.js";
