import type pg from "pg";
import type { EventLogger } from "../logger.js";
import type { Sleeps } from "../services/service.js";
import type { Store } from "../store/index.js";
import type { Metrics } from "../telemetry/metrics.js";
import type { Tracing } from "../telemetry/traces.js";

/** What the parts of one worker share (one object per worker). */
export interface WorkerContext {
  readonly store: Store;
  /** The application's pool: reconciles, join inputs, saved states, exactly-once transactions. */
  readonly pool: pg.Pool;
  /** For fetches, completion batches and affinity releases (generic plans; see Engine). */
  readonly hotPool: pg.Pool;
  readonly log: EventLogger;
  /** The grace periods and backoffs of stop() and the flushes: cleared when the worker stops. */
  readonly sleeps: Sleeps;
  /** Weft's spans, when a tracer provider is in use. */
  readonly tracing: Tracing | undefined;
  readonly metrics: Metrics | undefined;
}
