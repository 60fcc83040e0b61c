import {
  type Engine,
  encodePayload,
  InputValidationError,
  InvalidArgumentError,
  type NewTaskRow,
  newId,
  type TaskErrorInfo,
  TaskNotFoundError,
  UnknownTaskError,
  WaitTimeoutError,
  WorkflowCancelledError,
  WorkflowFailedError,
  WorkflowNotFoundError,
} from "@weft/engine";

import {
  type CronStatus,
  getWorkflowTasksPage,
  listCron,
  listNodes,
  listWorkflows,
  type NodeStatus,
  type Page,
  type QueueStats,
  queueStats,
  type TaskPageOptions,
  type TaskSlot,
  type Throughput,
  type ThroughputOptions,
  taskSlot,
  throughput,
  toTaskStatus,
  toWorkflowStatus,
  type WorkflowListOptions,
  type WorkflowSummary,
  workflowTaskCounts,
} from "./admin.js";
import { DeadLetters } from "./dead-letters.js";
import { buildWorkflowGraph, type WorkflowGraph } from "./graph.js";
import { resolveIdempotencyKeys, resolvePlacement, validateIdempotencyKey, validateWorkflowId } from "./options.js";

import { SlotSeriesClient, type SlotSeriesOptions } from "./slots.js";
import {
  type AnyDefinition,
  type AnyJoinDefinition,
  type AnyTaskDefinition,
  isJoinDefinition,
  type TaskInput,
  type TaskOutput,
  toIssues,
} from "./task.js";
import type {
  Placement,
  ScheduleManyOptions,
  ScheduleOptions,
  TaskRef,
  TaskState,
  TaskStatus,
  VirtualQueue,
  WaitOptions,
  WorkflowStatus,
} from "./types.js";

/** The placement fields of ScheduleOptions (see ScheduleManyOptions.placement). */
const PLACEMENT_KEYS = [
  "priority",
  "runAt",
  "delayMs",
  "affinityGroup",
  "affinity",
] as const satisfies readonly (keyof Placement)[];

const FINAL_WORKFLOW: ReadonlySet<string> = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

/**
 * Schedules tasks and reads their state. Every method validates its input
 * before anything is written; a rejected call writes nothing.
 */
export class WeftClient {
  private readonly waiters = new Map<string, Set<() => void>>();
  private listening: Promise<void> | undefined;
  /** Tasks that failed their last attempt: list, inspect, requeue, purge. */
  readonly deadLetters: DeadLetters;

  /** @internal created by createWeft / createClient */
  constructor(
    private readonly engine: Engine,
    private readonly registry: ReadonlyMap<string, AnyDefinition>,
  ) {
    this.deadLetters = new DeadLetters(engine);
  }

  /** Schedules `task` with `input` as the root of a new workflow (or into `options.workflowId`). */
  async schedule<T extends AnyTaskDefinition>(
    task: T,
    input: TaskInput<T>,
    options?: ScheduleOptions,
  ): Promise<TaskRef> {
    const key = options?.idempotencyKey;
    if (key === undefined) {
      const [ref] = await this.scheduleMany(task, [input], options as Omit<ScheduleOptions, "idempotencyKey">);
      return ref as TaskRef;
    }
    validateIdempotencyKey(key, "options.idempotencyKey");
    const [ref] = await this.scheduleMany(task, [input], { ...options, idempotencyKey: () => key });
    return ref as TaskRef;
  }

  /** Schedules a registered task by name (for callers without the definition, e.g. an HTTP API). */
  async scheduleByName(name: string, input: unknown, options?: ScheduleOptions): Promise<TaskRef> {
    const task = this.registry.get(name);
    if (!task || isJoinDefinition(task)) {
      throw new UnknownTaskError(
        name,
        [...this.registry.values()].filter((t) => !isJoinDefinition(t)).map((t) => t.name),
      );
    }
    return this.schedule(task, input, options);
  }

  /**
   * Schedules many instances of `task` in one statement: each input becomes the
   * root of its own workflow (or all join `options.workflowId`).
   */
  async scheduleMany<T extends AnyTaskDefinition>(
    task: T,
    inputs: readonly TaskInput<T>[],
    options?: ScheduleManyOptions<TaskInput<T>>,
  ): Promise<TaskRef[]> {
    if (
      typeof task !== "object" ||
      task === null ||
      typeof task.name !== "string" ||
      typeof task.input?.safeParse !== "function"
    ) {
      throw new InvalidArgumentError("task", "expected a task definition from defineTask()");
    }
    if (!Array.isArray(inputs)) throw new InvalidArgumentError("inputs", "expected an array");
    const shared = resolvePlacement(options);
    const perInput = options?.placement;
    if (perInput !== undefined) {
      if (typeof perInput !== "function") {
        throw new InvalidArgumentError("options.placement", "expected a function (input, index) => placement");
      }
      const own = PLACEMENT_KEYS.filter((k) => options?.[k] !== undefined);
      if (own.length > 0) {
        throw new InvalidArgumentError(
          "options.placement",
          `give placement either for the batch (${own.join(", ")}) or per input, not both`,
        );
      }
    }
    const existing =
      options?.workflowId !== undefined ? validateWorkflowId(options.workflowId, "options.workflowId") : undefined;
    const keys = resolveIdempotencyKeys(inputs, options?.idempotencyKey, existing);
    const tx = options?.tx;
    if (tx !== undefined && typeof tx?.query !== "function") {
      throw new InvalidArgumentError("options.tx", "expected a pg client inside a transaction");
    }
    const limit = this.engine.config.maxPayloadBytes;
    const rows: NewTaskRow[] = inputs.map((input, i) => {
      const parsed = task.input.safeParse(input);
      if (!parsed.success) throw new InputValidationError(task.name, toIssues(parsed.error));
      const placement = perInput ? resolvePlacement(perInput(input, i), `options.placement(inputs[${i}])`) : shared;
      const id = newId();
      return {
        id,
        workflowId: existing ?? id,
        parentId: null,
        taskName: task.name,
        input: encodePayload(task.name, "input", parsed.data, limit),
        priority: placement.priority,
        runAfter: placement.runAfter,
        delayMs: placement.delayMs,
        affinityGroup: placement.affinityGroup ?? null,
        affinity: placement.affinity ?? null,
      };
    });
    if (rows.length === 0) return [];
    if (keys) return this.engine.api.schedule.keyed(rows, keys, tx);
    // A new workflow takes the id of its root task.
    const newWorkflows = new Set(existing ? [] : rows.map((r) => r.id));
    await this.engine.api.schedule.tasks(rows, newWorkflows, tx);
    return rows.map((r) => ({ taskId: r.id, workflowId: r.workflowId }));
  }

  /**
   * Schedules a join over existing tasks of one workflow (finished or not): it
   * runs once they and everything they spawned (forks excepted) have finished,
   * and receives their outcomes in the order given. Throws TaskNotFoundError for
   * an unknown id, InvalidArgumentError for ids of several workflows, and
   * WorkflowNotRunningError when the workflow has finished; nothing is written then.
   */
  async scheduleJoin<J extends AnyJoinDefinition>(
    join: J,
    input: TaskInput<J>,
    upstream: readonly (TaskRef | string)[],
    options?: Omit<ScheduleOptions, "workflowId" | "idempotencyKey">,
  ): Promise<TaskRef> {
    if (!isJoinDefinition(join)) throw new InvalidArgumentError("join", "expected a join definition from defineJoin()");
    if (!Array.isArray(upstream) || upstream.length === 0) {
      throw new InvalidArgumentError("upstream", "expected a non-empty array of task ids or refs");
    }
    const ids = upstream.map((u, i) => validateWorkflowId(typeof u === "string" ? u : u?.taskId, `upstream[${i}]`));
    if (new Set(ids).size !== ids.length) throw new InvalidArgumentError("upstream", "a task is listed twice");
    const placement = resolvePlacement(options);
    const parsed = join.input.safeParse(input);
    if (!parsed.success) throw new InputValidationError(join.name, toIssues(parsed.error));
    const encoded = encodePayload(join.name, "input", parsed.data, this.engine.config.maxPayloadBytes);
    const tx = options?.tx;
    if (tx !== undefined && typeof tx?.query !== "function") {
      throw new InvalidArgumentError("options.tx", "expected a pg client inside a transaction");
    }
    const id = newId();
    const workflowId = await this.engine.api.schedule.join(
      {
        id,
        parentId: null,
        taskName: join.name,
        input: encoded,
        priority: placement.priority,
        runAfter: placement.runAfter,
        delayMs: placement.delayMs,
        affinityGroup: placement.affinityGroup ?? null,
        affinity: placement.affinity ?? null,
      },
      ids,
      tx,
    );
    return { taskId: id, workflowId };
  }

  /** A task's state; with its definition, the result is typed. Throws TaskNotFoundError. */
  async getTask<T extends AnyDefinition>(taskId: string, task?: T): Promise<TaskStatus<TaskOutput<T>>> {
    validateWorkflowId(taskId, "taskId");
    const row = await this.engine.api.read.task(taskId);
    if (!row) throw new TaskNotFoundError(taskId);
    if (task !== undefined && row.task_name !== task.name) {
      throw new InvalidArgumentError("task", `task ${taskId} is a "${row.task_name}", not a "${task.name}"`);
    }
    return (await this.withNoNode([toTaskStatus(row)]))[0] as TaskStatus<TaskOutput<T>>;
  }

  /**
   * Marks the tasks waiting to be placed that no live node serves with
   * \`parkReason: "NO_NODE"\` (computed when read: the task stays where it is,
   * and is placed once a node serving its name starts). Reads the nodes only
   * when some task waits.
   */
  private async withNoNode(tasks: TaskStatus[]): Promise<TaskStatus[]> {
    if (!tasks.some(waitsForPlacement)) return tasks;
    const served = await this.engine.api.read.servedNames();
    return tasks.map((t) => (waitsForPlacement(t) && !served.has(t.name) ? { ...t, parkReason: "NO_NODE" } : t));
  }

  /** A workflow's state. Throws WorkflowNotFoundError. */
  async getWorkflow(workflowId: string): Promise<WorkflowStatus> {
    validateWorkflowId(workflowId);
    const row = await this.engine.api.read.workflow(workflowId);
    if (!row) throw new WorkflowNotFoundError(workflowId);
    return toWorkflowStatus(row);
  }

  /** Every task of a workflow, oldest first. */
  async getWorkflowTasks(workflowId: string): Promise<TaskStatus[]> {
    validateWorkflowId(workflowId);
    return this.withNoNode((await this.engine.api.read.workflowTasks(workflowId)).map(toTaskStatus));
  }

  /**
   * Waits until the workflow is COMPLETED, FAILED or CANCELLED and returns its
   * status. Wakes on the notification sent by the transaction that finished it
   * (no busy polling); re-checks every few seconds in case one was missed.
   */
  async waitForWorkflow(workflowId: string, options: WaitOptions = {}): Promise<WorkflowStatus> {
    validateWorkflowId(workflowId);
    const timeoutMs = options.timeoutMs ?? 60_000;
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0)
      throw new InvalidArgumentError("options.timeoutMs", "expected a non-negative number");
    await this.ensureListening();
    const deadline = Date.now() + timeoutMs;
    let wake: () => void = () => undefined;
    let set = this.waiters.get(workflowId);
    if (!set) {
      set = new Set();
      this.waiters.set(workflowId, set);
    }
    const waiterSet = set;
    let signalled = false;
    const waiter = () => {
      signalled = true;
      wake();
    };
    waiterSet.add(waiter);
    try {
      for (;;) {
        signalled = false;
        const status = await this.getWorkflow(workflowId);
        if (FINAL_WORKFLOW.has(status.status)) return status;
        const left = deadline - Date.now();
        if (left <= 0) throw new WaitTimeoutError(`workflow ${workflowId}`, timeoutMs);
        if (signalled) continue;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(left, 5_000));
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    } finally {
      waiterSet.delete(waiter);
      if (waiterSet.size === 0) this.waiters.delete(workflowId);
    }
  }

  /**
   * Cancels a workflow: every task of it that has not finished becomes
   * CANCELLED, wherever it is (NEW, READY, PARKED, running); nodes running one
   * are notified at once and its \`ctx.signal\` aborts; its late outcome, and
   * anything it scheduled, is refused. Nothing can be scheduled into the
   * workflow afterwards. Returns false when the workflow had already finished.
   */
  async cancelWorkflow(workflowId: string, reason?: string): Promise<boolean> {
    validateWorkflowId(workflowId);
    if (reason !== undefined && (typeof reason !== "string" || reason.length > 2_000)) {
      throw new InvalidArgumentError("reason", "expected a string of at most 2000 characters");
    }
    const result = await this.engine.api.cancel.workflow(workflowId, reason ?? null);
    if (!result) throw new WorkflowNotFoundError(workflowId);
    return result.cancelled;
  }

  /** The workflow's DAG: tasks as nodes, spawn and join edges, validated (acyclic, endpoints present), with layout levels. */
  async getWorkflowGraph(workflowId: string): Promise<WorkflowGraph> {
    validateWorkflowId(workflowId);
    const read = this.engine.api.read;
    const { tasks, edges } = await read.workflowGraphRows(workflowId);
    if (tasks.length === 0 && !(await read.workflow(workflowId))) throw new WorkflowNotFoundError(workflowId);
    return buildWorkflowGraph(workflowId, tasks, edges);
  }

  /**
   * Cancels one task with its descendants and the joins that depend on it (and
   * theirs): the unfinished ones become CANCELLED, running ones are aborted, and
   * their late outcomes are refused. Returns how many tasks were cancelled (0
   * when all had finished). Throws TaskNotFoundError.
   */
  async cancelTask(taskId: string): Promise<number> {
    validateWorkflowId(taskId, "taskId");
    const result = await this.engine.api.cancel.task(taskId);
    if (!result) throw new TaskNotFoundError(taskId);
    return result.tasks;
  }

  /**
   * A series of time slots: of a slot task (\`defineSlotTask\`: engine-run, one
   * task per slot), or, by name with an interval, a pull-mode series that
   * callers process with \`acquire\` / \`process\`.
   */
  slots(task: AnyTaskDefinition): SlotSeriesClient;
  slots(name: string, options: SlotSeriesOptions): SlotSeriesClient;
  slots(task: AnyTaskDefinition | string, options?: SlotSeriesOptions): SlotSeriesClient {
    if (typeof task === "string") {
      if (typeof options !== "object" || options === null) {
        throw new InvalidArgumentError("options", "a pull-mode series needs { every }");
      }
      const def = this.registry.get(task) as AnyTaskDefinition | undefined;
      if (def?.slot) {
        throw new InvalidArgumentError("task", `"${task}" is a slot task: pass its definition for engine-run slots`);
      }
      return new SlotSeriesClient(this.engine, task, options, null);
    }
    if (!task?.slot) {
      throw new InvalidArgumentError("task", "expected a definition from defineSlotTask(), or a name and { every }");
    }
    return new SlotSeriesClient(
      this.engine,
      task.name,
      { every: task.slot.every, timeZone: task.slot.timeZone },
      { ordered: task.slot.ordered },
    );
  }

  /** A handle on one workflow: its status, a wait, and its result. */
  workflow(workflowId: string): WorkflowHandle {
    validateWorkflowId(workflowId);
    return new WorkflowHandle(this, workflowId);
  }

  /**
   * Waits for the workflow and returns its result: the result of its last
   * top-level join, or of its root task when it has none. Throws
   * WorkflowFailedError (with the unhandled failures) or WorkflowCancelledError.
   * With the definition of the task that produces the result, the result is typed.
   */
  async workflowResult<T extends AnyDefinition>(
    workflowId: string,
    task?: T,
    options: WaitOptions = {},
  ): Promise<TaskOutput<T>> {
    const status = await this.waitForWorkflow(workflowId, options);
    const read = this.engine.api.read;
    if (status.status === "FAILED") {
      const failures = await read.unhandledFailures(workflowId);
      throw new WorkflowFailedError(
        workflowId,
        failures.map((f) => ({
          taskId: f.id,
          taskName: f.task_name,
          error: (f.error as TaskErrorInfo | null) ?? null,
        })),
      );
    }
    if (status.status === "CANCELLED") {
      const row = await read.workflow(workflowId);
      throw new WorkflowCancelledError(workflowId, row?.cancel_reason ?? null);
    }
    const row = await read.resultTask(workflowId);
    if (!row) throw new WorkflowNotFoundError(workflowId);
    if (task !== undefined && row.task_name !== task.name) {
      throw new InvalidArgumentError(
        "task",
        `the result of workflow ${workflowId} comes from a "${row.task_name}", not a "${task.name}"`,
      );
    }
    return row.result as TaskOutput<T>;
  }

  /** The nodes currently registered, with their load, heartbeat age and the leader flag. */
  listNodes(): Promise<NodeStatus[]> {
    return listNodes(this.engine);
  }

  /**
   * Workflows, newest first (solo workflows included), a page at a time: pass
   * \`nextCursor\` back as \`cursor\`; null means the end. Each call reads a
   * bounded window of ids, so with filters a page may come back short (even
   * empty) with a cursor to go on from. Throws InvalidArgumentError.
   */
  listWorkflows(filter?: WorkflowListOptions): Promise<Page<WorkflowSummary>> {
    return listWorkflows(this.engine, filter);
  }

  /** A workflow's tasks, oldest first, a page at a time. Throws WorkflowNotFoundError. */
  getWorkflowTasksPage(workflowId: string, options?: TaskPageOptions): Promise<Page<TaskStatus>> {
    return getWorkflowTasksPage(this.engine, workflowId, options);
  }

  /** How many of a workflow's tasks are in each state (every state present). Throws WorkflowNotFoundError. */
  workflowTaskCounts(workflowId: string): Promise<Record<TaskState, number>> {
    return workflowTaskCounts(this.engine, workflowId);
  }

  /** Unfinished tasks by virtual queue and task name, the ready lag per task name, PARKED by reason. */
  queueStats(): Promise<QueueStats> {
    return queueStats(this.engine);
  }

  /**
   * Tasks finished per second (completed, failed, cancelled) over the last
   * `windowSeconds` (1 to 3600, default 900), one bucket per second on the
   * database clock. Reads the tasks finished in the window (not purged yet by
   * the cleaner). Throws InvalidArgumentError.
   */
  throughput(options?: ThroughputOptions): Promise<Throughput> {
    return throughput(this.engine, options);
  }

  /** The slot a slot task runs (or ran) for, or null for a task of no slot. */
  taskSlot(taskId: string): Promise<TaskSlot | null> {
    return taskSlot(this.engine, taskId);
  }

  /** The definition registered under \`name\`, if any (for callers that only have names, like the HTTP API). */
  definition(name: string): AnyDefinition | undefined {
    return this.registry.get(name);
  }

  /** The cron schedules the live nodes publish, with their last and next ticks. */
  listCron(): Promise<CronStatus[]> {
    return listCron(this.engine);
  }

  /** Task counts by virtual queue and state, for operators. */
  async queueCounts(): Promise<{ queue: VirtualQueue; state: TaskState; count: number }[]> {
    return (await this.engine.api.read.queueCounts()) as {
      queue: VirtualQueue;
      state: TaskState;
      count: number;
    }[];
  }

  private ensureListening(): Promise<void> {
    this.listening ??= (async () => {
      const listener = this.engine.listener;
      await listener.start();
      listener.on("workflows", (ids) => {
        for (const id of ids) for (const w of this.waiters.get(id) ?? []) w();
      });
      listener.onReconnect(() => {
        for (const set of this.waiters.values()) for (const w of set) w();
      });
    })();
    return this.listening;
  }
}

/** One workflow, by id: `await client.workflow(id).result()`. */
export class WorkflowHandle {
  constructor(
    private readonly client: WeftClient,
    readonly id: string,
  ) {}

  status(): Promise<WorkflowStatus> {
    return this.client.getWorkflow(this.id);
  }

  wait(options?: WaitOptions): Promise<WorkflowStatus> {
    return this.client.waitForWorkflow(this.id, options);
  }

  result<T extends AnyDefinition>(task?: T, options?: WaitOptions): Promise<TaskOutput<T>> {
    return this.client.workflowResult(this.id, task, options);
  }

  tasks(): Promise<TaskStatus[]> {
    return this.client.getWorkflowTasks(this.id);
  }

  graph(): Promise<WorkflowGraph> {
    return this.client.getWorkflowGraph(this.id);
  }

  cancel(reason?: string): Promise<boolean> {
    return this.client.cancelWorkflow(this.id, reason);
  }
}

/** A task the planner has yet to place: NEW or READY, on no node. */
function waitsForPlacement(t: TaskStatus): boolean {
  return (t.queue === "NEW" || t.queue === "READY") && t.node === null && t.state === "PENDING";
}
