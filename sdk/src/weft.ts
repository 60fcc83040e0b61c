import type { MeterProvider, TracerProvider } from "@opentelemetry/api";
import {
  type ChildSpec,
  ConfigError,
  DuplicateTaskError,
  Engine,
  type EngineConfigInput,
  encodePayload,
  type FailureInfo,
  InputValidationError,
  InvalidArgumentError,
  type Logger,
  type LogLevel,
  OutputValidationError,
  type Queryable,
  retryPolicySchema,
  suggest,
  type TaskExecution,
  type TaskHandler,
  type TaskSettings,
} from "@weft/engine";
import type pg from "pg";
import { WeftClient } from "./client.js";
import { registerEngine } from "./internal.js";
import { resolvePlacement } from "./options.js";
import type {
  AnyDefinition,
  AnyJoinDefinition,
  AnyTaskDefinition,
  JoinContext,
  JoinMessageInput,
  TaskContext,
  TaskInput,
  UpstreamOutcome,
} from "./task.js";
import { isJoinDefinition, toIssues } from "./task.js";
import type { ChildScheduleOptions, TaskRef } from "./types.js";

export interface WeftOptions extends EngineConfigInput {
  /** PostgreSQL connection string; defaults to DATABASE_URL. */
  readonly connectionString?: string;
  /**
   * Behind a transaction-mode pooler (PgBouncer): a connection string with
   * session semantics (the server, or a session-mode pool) for the LISTEN and
   * leader connections. See docs/guarantees.md.
   */
  readonly sessionConnectionString?: string;
  /** Or an existing pg Pool (Weft opens two more dedicated connections with its options). */
  readonly pool?: pg.Pool;
  /** The tasks this process can run (and schedule by name). */
  readonly tasks?: readonly AnyDefinition[];
  /**
   * A pino-compatible logger; Weft writes to a child of it bound with
   * \`name: "weft"\`. Default: pino at WEFT_LOG_LEVEL or "warn".
   */
  readonly logger?: Logger;
  /**
   * The level of Weft's lines: "fatal", "error", "warn", "info", "debug",
   * "trace" or "silent". With \`logger\`, the level of Weft's child (the
   * application's logger keeps its own).
   */
  readonly logLevel?: LogLevel;
  /** Source of this node's CPU load (0..1); default: the system load average per core. */
  readonly cpuLoad?: () => number;
  /**
   * The OpenTelemetry tracer provider for Weft's spans. Default: the global
   * provider, if an SDK registered one before this call; with none, Weft does
   * no tracing work (docs/observability.md).
   */
  readonly tracerProvider?: TracerProvider;
  /**
   * The OpenTelemetry meter provider for Weft's metrics (meter \`weft\`).
   * Default: the global provider, if an SDK registered one before this call
   * (docs/observability.md); the HTTP API's \`metrics\` option can attach one.
   */
  readonly meterProvider?: MeterProvider;
}

const OWN_KEYS = [
  "connectionString",
  "sessionConnectionString",
  "pool",
  "tasks",
  "logger",
  "logLevel",
  "cpuLoad",
  "tracerProvider",
  "meterProvider",
] as const;
const CONFIG_KEYS = [
  "schema",
  "appName",
  "maxPayloadBytes",
  "preparedStatements",
  "node",
  "planner",
  "cleaner",
  "idempotency",
  "taskDefaults",
  "taskOverrides",
] as const;

/** A Weft process: a client, and (when it has tasks) a worker node and a planner candidate. */
export class Weft {
  readonly client: WeftClient;
  private readonly engine: Engine;

  /** @internal use createWeft() */
  constructor(options: WeftOptions) {
    if (typeof options !== "object" || options === null) throw new ConfigError("(root)", "expected an options object");
    for (const key of Object.keys(options)) {
      if (!(OWN_KEYS as readonly string[]).includes(key) && !(CONFIG_KEYS as readonly string[]).includes(key)) {
        const hint = suggest(key, [...OWN_KEYS, ...CONFIG_KEYS]);
        throw new ConfigError(key, `unknown key${hint ? `; did you mean "${hint}"?` : ""}`);
      }
    }
    const {
      connectionString,
      sessionConnectionString,
      pool,
      tasks = [],
      logger,
      logLevel,
      cpuLoad,
      tracerProvider,
      meterProvider,
      ...config
    } = options;
    if (!Array.isArray(tasks)) throw new ConfigError("tasks", "expected an array of task definitions");
    const registry = new Map<string, AnyDefinition>();
    for (const t of tasks) {
      if (typeof t?.name !== "string" || typeof t.run !== "function") {
        throw new ConfigError("tasks", "every entry must come from defineTask()");
      }
      if (registry.has(t.name)) throw new DuplicateTaskError(t.name);
      registry.set(t.name, t);
    }
    this.engine = new Engine({
      ...(connectionString !== undefined ? { connectionString } : {}),
      ...(sessionConnectionString !== undefined ? { sessionConnectionString } : {}),
      ...(pool !== undefined ? { pool } : {}),
      ...(logger !== undefined ? { logger } : {}),
      ...(logLevel !== undefined ? { logLevel } : {}),
      ...(cpuLoad !== undefined ? { cpuLoad } : {}),
      ...(tracerProvider !== undefined ? { tracerProvider } : {}),
      ...(meterProvider !== undefined ? { meterProvider } : {}),
      config,
      handlers: [...registry.values()].map((t) => toHandler(t, this.engineLimit())),
    });
    registerEngine(this, this.engine);
    this.client = new WeftClient(this.engine, registry);
  }

  private engineLimit(): () => number {
    return () => this.engine.config.maxPayloadBytes;
  }

  /** Applies migrations, then starts the node's services. */
  start(): Promise<void> {
    return this.engine.start();
  }

  /**
   * Graceful stop: no new tasks are taken, running ones get `graceMs` (default
   * `node.shutdownGraceMs`), then unfinished ones are released for re-planning.
   */
  stop(graceMs?: number): Promise<void> {
    return this.engine.stop(graceMs);
  }

  /** This node's id while it runs tasks. */
  get nodeId(): string | undefined {
    return this.engine.nodeId;
  }

  /** Whether this process currently leads the planner. */
  get isLeader(): boolean {
    return this.engine.isLeader;
  }
}

/** Creates a Weft process. Call `start()` before use and `stop()` at the end. */
export function createWeft(options: WeftOptions): Weft {
  return new Weft(options);
}

/** A process that only schedules and reads: no node, no planner. */
export function createClient(options: Omit<WeftOptions, "node" | "planner" | "cleaner" | "cpuLoad">): Weft {
  return new Weft({ ...options, node: { enabled: false }, planner: { enabled: false }, cleaner: { enabled: false } });
}

/** A task's context for one attempt; prototype methods, since one is made per task. */
class Context implements TaskContext<unknown> {
  constructor(
    protected readonly exec: TaskExecution,
    readonly input: unknown,
    private readonly limit: () => number,
    private readonly definition: AnyDefinition,
  ) {}

  get state(): unknown {
    const saved = this.exec.savedState;
    if (saved === undefined) return undefined;
    const schema = (this.definition as AnyTaskDefinition).state;
    if (!schema) return saved;
    const parsed = schema.safeParse(saved);
    if (!parsed.success)
      throw new InputValidationError(`${this.definition.name} (saved state)`, toIssues(parsed.error));
    return parsed.data;
  }

  async saveState(state: unknown): Promise<void> {
    const schema = (this.definition as AnyTaskDefinition).state;
    let value = state;
    if (schema) {
      const parsed = schema.safeParse(state);
      if (!parsed.success) throw new InputValidationError(`${this.definition.name} (state)`, toIssues(parsed.error));
      value = parsed.data;
    }
    await this.exec.saveState(encodePayload(this.definition.name, "input", value, this.limit()));
  }

  get tx(): Queryable {
    const tx = this.exec.tx;
    if (!tx) {
      throw new InvalidArgumentError(
        "ctx.tx",
        `task "${this.definition.name}" is not exactly-once; define it with guarantee: "exactly-once" to use ctx.tx`,
      );
    }
    return tx;
  }

  protected get execution(): TaskExecution {
    return this.exec;
  }

  get taskId(): string {
    return this.exec.taskId;
  }
  get workflowId(): string {
    return this.exec.workflowId;
  }
  get parentId(): string | null {
    return this.exec.parentId;
  }
  get taskName(): string {
    return this.exec.taskName;
  }
  get attempt(): number {
    return this.exec.attempt;
  }
  get nodeId(): string {
    return this.exec.nodeId;
  }
  /** Made on first use: most tasks never look at it. */
  get signal(): AbortSignal {
    return this.exec.signal;
  }
  get log(): Logger {
    return this.exec.log;
  }

  schedule<T extends AnyTaskDefinition>(child: T, input: TaskInput<T>, options?: ChildScheduleOptions): TaskRef {
    const taskId = this.exec.spawn(this.childSpec(child, input, options));
    return { taskId, workflowId: this.exec.workflowId };
  }

  fork<T extends AnyTaskDefinition>(child: T, input: TaskInput<T>, options?: ChildScheduleOptions): TaskRef {
    const taskId = this.exec.spawn({ ...this.childSpec(child, input, options), fork: true });
    return { taskId, workflowId: this.exec.workflowId };
  }

  scheduleJoin<J extends AnyJoinDefinition>(
    join: J,
    input: TaskInput<J>,
    upstream: readonly (TaskRef | string)[],
    options?: ChildScheduleOptions,
  ): TaskRef {
    if (!isJoinDefinition(join)) throw new InvalidArgumentError("join", "expected a join definition from defineJoin()");
    if (!Array.isArray(upstream)) throw new InvalidArgumentError("upstream", "expected an array of task ids or refs");
    const ids = upstream.map((u) => (typeof u === "string" ? u : u?.taskId));
    const taskId = this.exec.spawnJoin(this.childSpec(join, input, options), ids);
    return { taskId, workflowId: this.exec.workflowId };
  }

  sendToJoin<J extends AnyJoinDefinition>(join: J, message: JoinMessageInput<J>): void {
    if (!isJoinDefinition(join)) throw new InvalidArgumentError("join", "expected a join definition from defineJoin()");
    const schema = join.messages;
    if (schema === undefined) throw new InvalidArgumentError("join", `join "${join.name}" declares no messages schema`);
    const parsed = schema.safeParse(message);
    if (!parsed.success) throw new InputValidationError(`${join.name} (message)`, toIssues(parsed.error));
    this.exec.sendToJoin(join.name, encodePayload(join.name, "input", parsed.data, this.limit()));
  }

  private childSpec(child: AnyDefinition, input: unknown, options: ChildScheduleOptions | undefined): ChildSpec {
    if (typeof child?.name !== "string" || typeof child.input?.safeParse !== "function") {
      throw new InvalidArgumentError("task", "expected a task definition from defineTask()");
    }
    const placement = resolvePlacement(options);
    const childInput = child.input.safeParse(input);
    if (!childInput.success) throw new InputValidationError(child.name, toIssues(childInput.error));
    return {
      taskName: child.name,
      input: encodePayload(child.name, "input", childInput.data, this.limit()),
      priority: placement.priority,
      runAfter: placement.runAfter,
      delayMs: placement.delayMs,
      ...(options?.fork ? { fork: true } : {}),
      ...(placement.affinityGroup !== undefined
        ? { affinityGroup: placement.affinityGroup, affinity: placement.affinity ?? null }
        : {}),
    };
  }
}

/** A join's context: its upstream outcomes come with the attempt. */
class JoinTaskContext extends Context implements JoinContext<unknown, unknown, unknown> {
  get upstream(): readonly UpstreamOutcome<unknown>[] {
    return (this.execution.upstream ?? []) as readonly UpstreamOutcome<unknown>[];
  }
  get messages(): readonly unknown[] {
    return this.execution.messages ?? [];
  }
}

function toHandler(task: AnyDefinition, limit: () => number): TaskHandler {
  const join = isJoinDefinition(task);
  const settings: TaskSettings = {
    ...(task.maxParallelInCluster !== undefined ? { maxParallelInCluster: task.maxParallelInCluster } : {}),
    ...(task.retry !== undefined ? { retry: retryPolicySchema.parse(task.retry) } : {}),
    ...(task.timeoutMs !== undefined ? { timeoutMs: task.timeoutMs } : {}),
    ...(task.deadLetter !== undefined ? { deadLetter: task.deadLetter } : {}),
  };
  const onFailure = task.onFailure;
  const guarantee = join ? undefined : (task as AnyTaskDefinition).guarantee;
  return new DefinitionHandler(task, join, limit, {
    name: task.name,
    settings,
    ...(onFailure ? { onFailure: (failure: FailureInfo) => onFailure(failure) } : {}),
    ...(guarantee ? { guarantee } : {}),
    ...(!join && (task as AnyTaskDefinition).slot ? { slot: (task as AnyTaskDefinition).slot } : {}),
    ...(!join && (task as AnyTaskDefinition).cron ? { cron: (task as AnyTaskDefinition).cron } : {}),
  });
}

/**
 * A definition as the engine runs it. \`execute\` is a method, not a closure
 * made per app: the worker's call to it stays the same function in every app
 * of the process, so V8 keeps the code it optimised for it.
 */
class DefinitionHandler implements TaskHandler {
  readonly name: string;
  readonly settings: TaskSettings;
  readonly onFailure?: TaskHandler["onFailure"];
  readonly guarantee?: TaskHandler["guarantee"];
  readonly slot?: TaskHandler["slot"];
  readonly cron?: TaskHandler["cron"];

  constructor(
    private readonly task: AnyDefinition,
    private readonly join: boolean,
    private readonly limit: () => number,
    fields: Omit<TaskHandler, "execute">,
  ) {
    this.name = fields.name;
    this.settings = fields.settings ?? {};
    if (fields.onFailure) this.onFailure = fields.onFailure;
    if (fields.guarantee) this.guarantee = fields.guarantee;
    if (fields.slot) this.slot = fields.slot;
    if (fields.cron) this.cron = fields.cron;
  }

  /** The run's result, validated; a promise of it only if \`run\` returned one (see TaskHandler.execute). */
  execute(exec: TaskExecution): unknown {
    const task = this.task;
    const parsed = task.input.safeParse(exec.input);
    if (!parsed.success) throw new InputValidationError(task.name, toIssues(parsed.error));
    const value: unknown = this.join
      ? task.run(new JoinTaskContext(exec, parsed.data, this.limit, task))
      : (task as AnyTaskDefinition).run(new Context(exec, parsed.data, this.limit, task));
    // Any thenable, as \`await\` would take it.
    if (value !== null && typeof value === "object" && typeof (value as { then?: unknown }).then === "function") {
      return Promise.resolve(value).then((v: unknown) => this.validOutput(v));
    }
    return this.validOutput(value);
  }

  private validOutput(value: unknown): unknown {
    const result = this.task.output.safeParse(value);
    if (!result.success) throw new OutputValidationError(this.task.name, toIssues(result.error));
    return result.data;
  }
}
