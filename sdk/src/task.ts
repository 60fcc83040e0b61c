import { InvalidArgumentError, type Logger, type ValidationIssue, validateTaskName } from "@weft/engine";
import type { z } from "zod";
import type { ScheduleOptions, TaskRef } from "./types.js";

/** What a task's `run` receives for one attempt. */
export interface TaskContext<Input> {
  /** The validated input. */
  readonly input: Input;
  readonly taskId: string;
  readonly workflowId: string;
  readonly parentId: string | null;
  readonly taskName: string;
  /** 1 for the first attempt. */
  readonly attempt: number;
  readonly nodeId: string;
  /**
   * Aborts when this attempt must stop: the node is shutting down past its grace
   * period, or the assignment was revoked. Pass it to fetch, timers and queries.
   */
  readonly signal: AbortSignal;
  readonly log: Logger;
  /**
   * Schedules a child task in this workflow, with this task as its parent. The
   * child is written in the same transaction that records this task's success,
   * so a failed attempt leaves no children behind and a retry cannot duplicate
   * them. Affinity is inherited unless given.
   */
  schedule<T extends AnyTaskDefinition>(task: T, input: TaskInput<T>, options?: ChildScheduleOptions): TaskRef;
}

export type ChildScheduleOptions = Omit<ScheduleOptions, "workflowId" | "tx">;

export interface TaskDefinitionSpec<I extends z.ZodType, O extends z.ZodType> {
  /** Unique per application: a letter, then letters, digits, `_ . : -` (max 128). */
  readonly name: string;
  /** Validates the input at schedule time and again before each attempt. */
  readonly input: I;
  /** Validates the result when `run` returns. */
  readonly output: O;
  readonly run: (ctx: TaskContext<z.output<I>>) => Promise<z.input<O>> | z.input<O>;
}

declare const taskBrand: unique symbol;

export interface TaskDefinition<I extends z.ZodType = z.ZodType, O extends z.ZodType = z.ZodType>
  extends TaskDefinitionSpec<I, O> {
  readonly [taskBrand]: true;
}

// biome-ignore lint/suspicious/noExplicitAny: variance: a definition of any schemas is assignable here.
export type AnyTaskDefinition = TaskDefinition<any, any>;
/** What a caller passes when scheduling `T` (before zod defaults and transforms). */
export type TaskInput<T extends AnyTaskDefinition> = z.input<T["input"]>;
/** What a completed `T` returns (after its output schema). */
export type TaskOutput<T extends AnyTaskDefinition> = z.output<T["output"]>;

function isZodSchema(value: unknown): value is z.ZodType {
  return typeof value === "object" && value !== null && typeof (value as z.ZodType).safeParse === "function";
}

/**
 * Defines a typed task. The definition is a plain value: register it with the
 * nodes that run it (`createWeft({ tasks })`) and pass it to `schedule`.
 */
export function defineTask<I extends z.ZodType, O extends z.ZodType>(
  spec: TaskDefinitionSpec<I, O>,
): TaskDefinition<I, O> {
  if (typeof spec !== "object" || spec === null) throw new InvalidArgumentError("defineTask", "expected an object");
  validateTaskName(spec.name);
  if (!isZodSchema(spec.input)) throw new InvalidArgumentError(`${spec.name}.input`, "expected a zod schema");
  if (!isZodSchema(spec.output)) throw new InvalidArgumentError(`${spec.name}.output`, "expected a zod schema");
  if (typeof spec.run !== "function") throw new InvalidArgumentError(`${spec.name}.run`, "expected a function");
  return Object.freeze({ ...spec }) as TaskDefinition<I, O>;
}

/** zod issues as `{ path: "a.b.0", message }`. */
export function toIssues(error: z.ZodError): ValidationIssue[] {
  return error.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message }));
}
