// @weft/sdk: the public entry of Weft. Everything exported here is supported API.
export {
  ConfigError,
  DuplicateTaskError,
  InputValidationError,
  InvalidArgumentError,
  InvalidIdentifierError,
  isWeftError,
  type Logger,
  OutputValidationError,
  PayloadTooLargeError,
  type Queryable,
  SchemaTooNewError,
  type TaskErrorInfo,
  TaskNotFoundError,
  UnknownTaskError,
  type ValidationIssue,
  WaitTimeoutError,
  WeftError,
  type WeftErrorCode,
  WorkflowNotFoundError,
  WorkflowNotRunningError,
} from "@weft/engine";
export { WeftClient } from "./client.js";
export {
  type AnyTaskDefinition,
  type ChildScheduleOptions,
  defineTask,
  type TaskContext,
  type TaskDefinition,
  type TaskDefinitionSpec,
  type TaskInput,
  type TaskOutput,
} from "./task.js";
export type {
  ScheduleOptions,
  TaskRef,
  TaskState,
  TaskStatus,
  VirtualQueue,
  WaitOptions,
  WorkflowState,
  WorkflowStatus,
} from "./types.js";
export { createClient, createWeft, Weft, type WeftOptions } from "./weft.js";
