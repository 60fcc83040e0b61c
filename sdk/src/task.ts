import {
  type CronOptionsInput,
  InvalidArgumentError,
  type Logger,
  parseCronOptions,
  parseInterval,
  type Queryable,
  type RetryPolicyInput,
  retryPolicySchema,
  type TaskErrorInfo,
  type ValidationIssue,
  validateTaskName,
  validateTimeZone,
} from "@weft/engine";
import { z } from "zod";
import type { ChildScheduleOptions, TaskRef } from "./types.js";

/** What a task's `run` receives for one attempt. */
export interface TaskContext<Input, State = unknown> {
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
  /** Weft's logger bound to this attempt: its lines carry taskId, workflowId, taskName and attempt. */
  readonly log: Logger;
  /**
   * The state an earlier attempt of this task saved with \`saveState\` (validated
   * by the definition's \`state\` schema), or undefined on a first attempt.
   */
  readonly state: State | undefined;
  /**
   * Saves a small state for the next attempts (a cursor, say, so that a retry
   * resumes). Written at once, fenced by this attempt: a revoked attempt's save
   * is refused with an error.
   */
  saveState(state: State): Promise<void>;
  /**
   * Exactly-once tasks (\`guarantee: 'exactly-once'\`) only: the transaction that
   * records this attempt's outcome, its children and join updates. Database work
   * done through it commits if and only if the attempt completes and its outcome
   * is recorded. Throws on other tasks.
   */
  readonly tx: Queryable;
  /**
   * Schedules a child task in this workflow, with this task as its parent. The
   * child is written in the same transaction that records this task's success,
   * so a failed attempt leaves no children behind and a retry cannot duplicate
   * them. Affinity is inherited unless given.
   */
  schedule<T extends AnyTaskDefinition>(task: T, input: TaskInput<T>, options?: ChildScheduleOptions): TaskRef;
  /** Schedules a child that the joins waiting for this task do not wait for. */
  fork<T extends AnyTaskDefinition>(task: T, input: TaskInput<T>, options?: ChildScheduleOptions): TaskRef;
  /**
   * Schedules a join over tasks this attempt scheduled: it runs once they and
   * everything they spawn (forks excepted) have finished, succeeded or not, and
   * receives their outcomes in the order given. Written with this task's outcome.
   */
  scheduleJoin<J extends AnyJoinDefinition>(
    join: J,
    input: TaskInput<J>,
    upstream: readonly (TaskRef | string)[],
    options?: ChildScheduleOptions,
  ): TaskRef;
  /**
   * Sends a message to the joins of type \`join\` that wait for this task (or for
   * one of its ancestors), validated by the join's \`messages\` schema. Written
   * with this task's outcome: a failed attempt sends nothing.
   */
  sendToJoin<J extends AnyJoinDefinition>(join: J, message: JoinMessageInput<J>): void;
}

/** One listed upstream task's outcome, as a join receives it; `result` typed by the upstream's output schema. */
export type UpstreamOutcome<Result> =
  | { readonly taskId: string; readonly status: "COMPLETED"; readonly result: Result; readonly error: null }
  | {
      readonly taskId: string;
      /** PURGED: the upstream finished longer ago than the retention. */
      readonly status: "FAILED" | "CANCELLED" | "PURGED";
      readonly result: null;
      readonly error: TaskErrorInfo | null;
    };

/** What a join's \`run\` receives: a task context plus its upstream outcomes and messages. */
export interface JoinContext<Input, UpstreamResult, Message = never> extends TaskContext<Input> {
  readonly upstream: readonly UpstreamOutcome<UpstreamResult>[];
  /** Messages sent to this join by its subtree (\`ctx.sendToJoin\`), oldest first. */
  readonly messages: readonly Message[];
}

/** What \`onFailure\` receives after a failed attempt. */
export interface FailureContext<Input> {
  readonly taskId: string;
  readonly workflowId: string;
  readonly taskName: string;
  /** The input as stored (not re-validated: it may be what failed). */
  readonly input: Input | unknown;
  /** The attempt that failed (1 for the first). */
  readonly attempt: number;
  readonly error: unknown;
  /** Whether the retry policy will retry. */
  readonly willRetry: boolean;
  /** No further attempts: the task fails now (and goes to the dead-letter table if enabled). */
  stopRetrying(): void;
}

/** Failure handling shared by tasks and joins. */
export interface FailureSettings<Input> {
  /**
   * Retry policy: BACKOFF (default), FIXED or OFF. \`taskOverrides\` in the
   * configuration wins over it; \`taskDefaults\` applies without it.
   */
  readonly retry?: RetryPolicyInput;
  /** An attempt running longer fails: its signal aborts and the retry policy applies. */
  readonly timeoutMs?: number;
  /** Copy the task to the dead-letter table after its last attempt (default true). */
  readonly deadLetter?: boolean;
  /** Called after every failed attempt; may stop further retries. */
  readonly onFailure?: (ctx: FailureContext<Input>) => void | Promise<void>;
}

export interface TaskDefinitionSpec<I extends z.ZodType, O extends z.ZodType, S extends z.ZodType = z.ZodUnknown>
  extends FailureSettings<z.output<I>> {
  /** Unique per application: a letter, then letters, digits, `_ . : -` (max 128). */
  readonly name: string;
  /** Validates the input at schedule time and again before each attempt. */
  readonly input: I;
  /** Validates the result when `run` returns. */
  readonly output: O;
  /** Schema of the state saved across attempts (\`ctx.saveState\`, \`ctx.state\`). */
  readonly state?: S;
  /**
   * 'exactly-once': the attempt's database work runs through \`ctx.tx\`, which
   * commits together with its outcome. Default 'at-least-once' (the task must
   * be idempotent).
   */
  readonly guarantee?: "at-least-once" | "exactly-once";
  readonly run: (ctx: TaskContext<z.output<I>, z.output<S>>) => Promise<z.input<O>> | z.input<O>;
  /**
   * Most attempts of this task running at once in the whole cluster.
   * \`taskOverrides\` in the configuration wins over it; \`taskDefaults\` applies without it.
   */
  readonly maxParallelInCluster?: number;
}

declare const taskBrand: unique symbol;

export interface TaskDefinition<
  I extends z.ZodType = z.ZodType,
  O extends z.ZodType = z.ZodType,
  S extends z.ZodType = z.ZodUnknown,
> extends TaskDefinitionSpec<I, O, S> {
  readonly [taskBrand]: true;
  /** Set by defineSlotTask: the series whose slots this task runs. */
  readonly slot?: { readonly every: string; readonly timeZone: string; readonly ordered: boolean };
  /** Set by defineCronTask (or defineSlotTask with \`cron\`): the schedule the leader fires. */
  readonly cron?: {
    readonly expression: string;
    readonly timeZone: string;
    readonly missed: "skip" | "catch-up";
    readonly maxCatchUp: number;
  };
}

// biome-ignore lint/suspicious/noExplicitAny: variance: a definition of any schemas is assignable here.
export type AnyTaskDefinition = TaskDefinition<any, any, any>;

export interface JoinDefinitionSpec<
  I extends z.ZodType,
  O extends z.ZodType,
  U extends AnyTaskDefinition,
  M extends z.ZodType = z.ZodNever,
> extends FailureSettings<z.output<I>> {
  readonly name: string;
  readonly input: I;
  readonly output: O;
  /** The task definitions whose outcomes this join receives (types its \`upstream\`). */
  readonly upstream: U | readonly U[];
  /** The schema of messages its subtree may send it with \`ctx.sendToJoin\`. */
  readonly messages?: M;
  /** As for tasks: most attempts of this join running at once in the cluster. */
  readonly maxParallelInCluster?: number;
  readonly run: (ctx: JoinContext<z.output<I>, TaskOutput<U>, z.output<M>>) => Promise<z.input<O>> | z.input<O>;
}

declare const joinBrand: unique symbol;

export interface JoinDefinition<
  I extends z.ZodType = z.ZodType,
  O extends z.ZodType = z.ZodType,
  U extends AnyTaskDefinition = AnyTaskDefinition,
  M extends z.ZodType = z.ZodNever,
> extends Omit<JoinDefinitionSpec<I, O, U, M>, "upstream"> {
  readonly upstream: readonly U[];
  readonly [joinBrand]: true;
}

// biome-ignore lint/suspicious/noExplicitAny: variance, as for AnyTaskDefinition.
export type AnyJoinDefinition = JoinDefinition<any, any, any, any>;
/** What a task passes to \`sendToJoin\` for join \`J\`. */
export type JoinMessageInput<J extends AnyJoinDefinition> =
  J extends JoinDefinition<z.ZodType, z.ZodType, AnyTaskDefinition, infer M> ? z.input<M> : never;
/** Any definition a node can run: a task or a join. */
export type AnyDefinition = AnyTaskDefinition | AnyJoinDefinition;
/** What a caller passes when scheduling `T` (before zod defaults and transforms). */
export type TaskInput<T extends AnyDefinition> = z.input<T["input"]>;
/** What a completed `T` returns (after its output schema). */
export type TaskOutput<T extends AnyDefinition> = z.output<T["output"]>;

function isZodSchema(value: unknown): value is z.ZodType {
  return typeof value === "object" && value !== null && typeof (value as z.ZodType).safeParse === "function";
}

/**
 * Defines a typed task. The definition is a plain value: register it with the
 * nodes that run it (`createWeft({ tasks })`) and pass it to `schedule`.
 */
export function defineTask<I extends z.ZodType, O extends z.ZodType, S extends z.ZodType = z.ZodUnknown>(
  spec: TaskDefinitionSpec<I, O, S>,
): TaskDefinition<I, O, S> {
  if (typeof spec !== "object" || spec === null) throw new InvalidArgumentError("defineTask", "expected an object");
  for (const key of ["slot", "cron", "every"] as const) {
    if (key in spec) {
      throw new InvalidArgumentError(
        `${spec.name}.${key}`,
        "slot and cron tasks are defined with defineSlotTask / defineCronTask (their input is fixed)",
      );
    }
  }
  validateTaskName(spec.name);
  if (!isZodSchema(spec.input)) throw new InvalidArgumentError(`${spec.name}.input`, "expected a zod schema");
  if (!isZodSchema(spec.output)) throw new InvalidArgumentError(`${spec.name}.output`, "expected a zod schema");
  if (typeof spec.run !== "function") throw new InvalidArgumentError(`${spec.name}.run`, "expected a function");
  const limit = spec.maxParallelInCluster;
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > 1_000_000)) {
    throw new InvalidArgumentError(`${spec.name}.maxParallelInCluster`, "expected an integer from 1 to 1000000");
  }
  validateFailureSettings(spec.name, spec);
  if (spec.state !== undefined && !isZodSchema(spec.state)) {
    throw new InvalidArgumentError(`${spec.name}.state`, "expected a zod schema");
  }
  if (spec.guarantee !== undefined && spec.guarantee !== "at-least-once" && spec.guarantee !== "exactly-once") {
    throw new InvalidArgumentError(`${spec.name}.guarantee`, `expected "at-least-once" or "exactly-once"`);
  }
  return Object.freeze({ ...spec }) as TaskDefinition<I, O, S>;
}

/**
 * Defines a join: a task that runs after the tasks it is scheduled over (and
 * everything they spawn) have finished, and receives their outcomes, typed by
 * \`upstream\`.
 */
export function defineJoin<
  I extends z.ZodType,
  O extends z.ZodType,
  U extends AnyTaskDefinition,
  M extends z.ZodType = z.ZodNever,
>(spec: JoinDefinitionSpec<I, O, U, M>): JoinDefinition<I, O, U, M> {
  if (typeof spec !== "object" || spec === null) throw new InvalidArgumentError("defineJoin", "expected an object");
  const upstream = (Array.isArray(spec.upstream) ? spec.upstream : [spec.upstream]) as readonly U[];
  if (upstream.length === 0 || upstream.some((u) => typeof u?.name !== "string" || !isZodSchema(u.output))) {
    throw new InvalidArgumentError(`${spec.name}.upstream`, "expected one or more task definitions");
  }
  if (spec.messages !== undefined && !isZodSchema(spec.messages)) {
    throw new InvalidArgumentError(`${spec.name}.messages`, "expected a zod schema");
  }
  defineTask({ ...spec, run: () => undefined } as never);
  return Object.freeze({ ...spec, upstream }) as unknown as JoinDefinition<I, O, U, M>;
}

function validateFailureSettings(name: string, spec: FailureSettings<unknown>): void {
  if (spec.retry !== undefined) {
    const parsed = retryPolicySchema.safeParse(spec.retry);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const path = issue?.path.length ? `.${issue.path.join(".")}` : "";
      throw new InvalidArgumentError(`${name}.retry${path}`, issue?.message ?? "invalid retry policy");
    }
  }
  const t = spec.timeoutMs;
  if (t !== undefined && (!Number.isInteger(t) || t < 1 || t > 30 * 24 * 3_600_000)) {
    throw new InvalidArgumentError(`${name}.timeoutMs`, "expected an integer number of ms from 1 to 30 days");
  }
  if (spec.deadLetter !== undefined && typeof spec.deadLetter !== "boolean") {
    throw new InvalidArgumentError(`${name}.deadLetter`, "expected a boolean");
  }
  if (spec.onFailure !== undefined && typeof spec.onFailure !== "function") {
    throw new InvalidArgumentError(`${name}.onFailure`, "expected a function");
  }
}

/** The input of a slot task: its slot's start and end. */
export const slotInput = z.object({ start: z.coerce.date(), end: z.coerce.date() });
/** The input of a cron task: the tick it fires for. */
export const cronInput = z.object({ tick: z.coerce.date() });

export interface SlotTaskSpec<O extends z.ZodType, S extends z.ZodType = z.ZodUnknown>
  extends Omit<TaskDefinitionSpec<typeof slotInput, O, S>, "input" | "guarantee"> {
  /** The slot interval: a divisor of a day (15m, 1h, 8h: epoch-aligned) or 1d / 1w (calendar, in \`timeZone\`). */
  readonly every: string;
  /** For 1d and 1w slots, and for \`cron\` (default UTC). */
  readonly timeZone?: string;
  /** Run slots one at a time in time order: slot t starts after t-1 has finished. */
  readonly ordered?: boolean;
  /** At each tick, ensure (and so run) the slots that closed since the previous tick. */
  readonly cron?: string | CronOptionsInput;
}

/**
 * Defines a task that runs time slots (DTM): one task per slot of its series,
 * created by \`client.slots(def).ensure(range)\` (or by its \`cron\`), run by the
 * planner like any task; its outcome completes or fails the slot. The task gets
 * the slot as \`ctx.input\` ({ start, end }).
 */
export function defineSlotTask<O extends z.ZodType, S extends z.ZodType = z.ZodUnknown>(
  spec: SlotTaskSpec<O, S>,
): TaskDefinition<typeof slotInput, O, S> {
  if (typeof spec !== "object" || spec === null) throw new InvalidArgumentError("defineSlotTask", "expected an object");
  const { every, timeZone = "UTC", ordered = false, cron, ...rest } = spec;
  const interval = parseInterval(every);
  validateTimeZone(timeZone);
  if (typeof ordered !== "boolean") throw new InvalidArgumentError(`${spec.name}.ordered`, "expected a boolean");
  const def = defineTask({ ...rest, input: slotInput } as TaskDefinitionSpec<typeof slotInput, O, S>);
  return Object.freeze({
    ...def,
    slot: { every: interval.key, timeZone, ordered },
    ...(cron !== undefined
      ? {
          cron: parseCronOptions(`${spec.name}.cron`, typeof cron === "string" ? { expression: cron, timeZone } : cron),
        }
      : {}),
  }) as TaskDefinition<typeof slotInput, O, S>;
}

export interface CronTaskSpec<O extends z.ZodType, S extends z.ZodType = z.ZodUnknown>
  extends Omit<TaskDefinitionSpec<typeof cronInput, O, S>, "input"> {
  /** A cron expression (5 fields, or 6 with seconds first), or options with a time zone and the missed-tick policy. */
  readonly cron: string | CronOptionsInput;
}

/**
 * Defines a task that the planner's leader fires at every tick of its cron
 * schedule, exactly once per tick across the cluster. The task gets the tick as
 * \`ctx.input.tick\`.
 */
export function defineCronTask<O extends z.ZodType, S extends z.ZodType = z.ZodUnknown>(
  spec: CronTaskSpec<O, S>,
): TaskDefinition<typeof cronInput, O, S> {
  if (typeof spec !== "object" || spec === null) throw new InvalidArgumentError("defineCronTask", "expected an object");
  const { cron, ...rest } = spec;
  const parsed = parseCronOptions(`${spec.name}.cron`, cron);
  const def = defineTask({ ...rest, input: cronInput } as TaskDefinitionSpec<typeof cronInput, O, S>);
  return Object.freeze({ ...def, cron: parsed }) as TaskDefinition<typeof cronInput, O, S>;
}

/** Whether a definition is a join (it has an \`upstream\` list). */
export function isJoinDefinition(def: AnyDefinition): def is AnyJoinDefinition {
  return Array.isArray((def as { upstream?: unknown }).upstream);
}

/** zod issues as `{ path: "a.b.0", message }`. */
export function toIssues(error: z.ZodError): ValidationIssue[] {
  return error.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message }));
}
