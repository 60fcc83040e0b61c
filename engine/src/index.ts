// @weft/engine: the runtime behind @weft/sdk. Applications import @weft/sdk;
// this entry exists for the SDK, the bench and the engine's own tests.

export type { EngineApi, NewJoinRow, SlotPick } from "./api/index.js";
export {
  DEFAULTS,
  type EngineConfig,
  type EngineConfigInput,
  engineConfigSchema,
  parseConfig,
  pollingDelayFor,
  type RetryPolicy,
  type RetryPolicyInput,
  retryPolicySchema,
  suggest,
  type TaskSettings,
} from "./config.js";
export { type CronOptionsInput, CronSchedule, parseCronOptions } from "./cron.js";
export { isUlid, quoteSchema, validateTaskName } from "./db/identifiers.js";
export { loadMigrations, MIGRATIONS_DIR, migrate } from "./db/migrate.js";
export { type AppliedMigration, type MigrationStatus, migrationStatus } from "./db/migration-status.js";
export {
  connectClient,
  isConnectionError,
  isRetryable,
  type Queryable,
  RETRYABLE_PG_CODES,
  withSavepoint,
  withTransaction,
} from "./db/pg.js";
export { Engine, type EngineOptions } from "./engine.js";
export * from "./errors.js";
export type {
  ChildSpec,
  CronSpec,
  FailureInfo,
  TaskExecution,
  TaskHandler,
  UpstreamOutcome,
} from "./handler.js";
export { newId } from "./ids.js";
export { createLogger, LOG_EVENTS, LOG_LEVELS, type LogEvent, type Logger, type LogLevel } from "./logger.js";
export { encodePayload } from "./payload.js";
export { decide } from "./planner/decide.js";
export { maxAttempts, retryDelayMs } from "./retry.js";
export {
  MAX_SLOTS_PER_CALL,
  parseInterval,
  type SlotInterval,
  validateRange,
  validateTimeZone,
} from "./slots.js";
export {
  MAX_THROUGHPUT_WINDOW_SECONDS,
  type NodeStatusRecord,
  type QueueStatRow,
  type TaskSlotRecord,
  type ThroughputRow,
  type WorkflowListFilter,
  type WorkflowListPage,
  type WorkflowListRecord,
} from "./store/admin.js";
export type { DeadLetterFilter, DeadLetterRow } from "./store/dead-letters.js";
export { Store } from "./store/index.js";
export type { NodeInfo } from "./store/nodes.js";
export type { TaskRecord, WorkflowRecord } from "./store/read.js";
export type { SlotRow, SlotSeries } from "./store/slots.js";
export type { NewTaskRow } from "./store/types.js";
export type { ResolvedTaskSettings } from "./task-settings.js";
export { activeMeterProvider, Metrics, type QueueDepth, ulidTime } from "./telemetry/metrics.js";
export {
  activeTracerProvider,
  decodeSpanContext,
  encodeSpanContext,
  INSTRUMENTATION_NAME,
  Tracing,
} from "./telemetry/traces.js";
