import type { MeterProvider, TracerProvider } from "@opentelemetry/api";
import pg from "pg";
import { EngineApi } from "./api/index.js";
import {
  checkConfigRules,
  type EngineConfig,
  type EngineConfigInput,
  engineConfigSchema,
  parseConfig,
} from "./config.js";
import { migrate } from "./db/migrate.js";
import { AlreadyStartedError, ConfigError, DuplicateTaskError } from "./errors.js";
import type { TaskHandler } from "./handler.js";
import { type EventLogger, type Logger, weftLogger } from "./logger.js";
import { Planner } from "./planner/cycle.js";
import { Cleaner } from "./services/cleaner.js";
import { CronService } from "./services/cron.js";
import { LeaderElector } from "./services/leader.js";
import { Listener, PlannerNudge } from "./services/listener.js";
import { NoNodeWatch } from "./services/no-node.js";
import { NodeRegistry, systemCpuLoad } from "./services/node-registry.js";
import { ServiceGroup } from "./services/registry.js";
import type { PublishedCron } from "./store/cron.js";
import { Store } from "./store/index.js";
import { resolveTaskSettings } from "./task-settings.js";
import { activeMeterProvider, Metrics, type QueueDepth } from "./telemetry/metrics.js";
import { activeTracerProvider, Tracing } from "./telemetry/traces.js";
import { Worker } from "./worker/worker.js";

/**
 * The hot-path statements are the same every time with different batches; the
 * plan PostgreSQL would choose per batch is the same too, so it is planned once
 * (planning the completion statement took about 1.2 ms per batch).
 */
const GENERIC_PLANS_OPTION = "-c plan_cache_mode=force_generic_plan";

/**
 * \`config\` with a server option added at connection start. An \`options\`
 * parameter in the connection string would replace the one in the config (pg
 * gives the string precedence), so it is moved into the config and combined.
 */
function withStartupOption(config: pg.PoolConfig, option: string): pg.PoolConfig {
  let { connectionString } = config;
  let existing = config.options;
  if (connectionString !== undefined) {
    try {
      const url = new URL(connectionString);
      const fromUrl = url.searchParams.get("options");
      if (fromUrl !== null) {
        existing = [existing, fromUrl].filter(Boolean).join(" ");
        url.searchParams.delete("options");
        connectionString = url.toString();
      }
    } catch {
      // Not a URL (a keyword/value string): leave it as it is.
    }
  }
  return { ...config, connectionString, options: [existing, option].filter(Boolean).join(" ") };
}

export interface EngineOptions {
  /** A connection string, or `pool` (whose options are reused for the dedicated connections). */
  readonly connectionString?: string;
  /**
   * For the two connections that need a session of their own (LISTEN, and the
   * leader's advisory lock) when \`connectionString\` or \`pool\` goes through a
   * transaction-mode pooler such as PgBouncer: the server directly, or a
   * session-mode pool. Default: the same as the pool.
   */
  readonly sessionConnectionString?: string;
  readonly pool?: pg.Pool;
  readonly config?: EngineConfigInput;
  readonly handlers?: readonly TaskHandler[];
  readonly logger?: Logger;
  /**
   * The level of Weft's logger (pino's levels, or "silent"). With \`logger\`, the
   * level of Weft's child of it; default: the logger's own level, or
   * WEFT_LOG_LEVEL, or "warn".
   */
  readonly logLevel?: string;
  /** Source of this node's CPU load (0..1) for the planner's CPU limit. */
  readonly cpuLoad?: () => number;
  /**
   * The OpenTelemetry tracer provider for Weft's spans. Default: the global
   * one, if an SDK has registered it by the time the engine is made; with none,
   * Weft does no tracing work at all (docs/observability.md).
   */
  readonly tracerProvider?: TracerProvider;
  /**
   * The OpenTelemetry meter provider for Weft's metrics (meter \`weft\`).
   * Default: the global one, if an SDK has registered it by the time the
   * engine is made; \`useMeterProvider\` attaches one later.
   */
  readonly meterProvider?: MeterProvider;
}

/** How long the leader's queue depth reading serves scrapes. */
const QUEUE_DEPTH_FRESH_MS = 5_000;

/**
 * One Weft process: a pool, the LISTEN connection, and the services this
 * process runs (a node: registry + worker; a candidate leader: planner +
 * cleaner). A process with the node disabled is a pure client.
 */
export class Engine {
  readonly config: EngineConfig;
  readonly store: Store;
  readonly pool: pg.Pool;
  readonly log: EventLogger;
  readonly listener: Listener;
  readonly nudge: PlannerNudge;
  /** Every database operation of the SDK (see api/index.ts). */
  readonly api: EngineApi;
  readonly registry: NodeRegistry | undefined;
  /** Weft's spans; undefined when no tracer provider is in use (no tracing work then). */
  readonly tracing: Tracing | undefined;
  /** Weft's metrics; \`metrics.instruments\` is undefined while no meter provider is in use. */
  readonly metrics: Metrics;
  private queueDepth: { at: number; rows: Promise<readonly QueueDepth[] | undefined> } | undefined;
  readonly worker: Worker | undefined;
  readonly elector: LeaderElector | undefined;
  private planner: Planner | undefined;
  /** Cron, the cleaner and the no-node watch while this process leads. */
  private leaderDuties: ServiceGroup | undefined;
  private readonly ownsPool: boolean;
  /** Connections for the worker's hot path (see preparedStatements). */
  private hotPool: pg.Pool | undefined;
  private readonly clientConfig: pg.ClientConfig;
  private state: "new" | "starting" | "started" | "stopping" | "stopped" = "new";
  private readonly signalHandler = () => void this.stop();
  /** The node's services, started in order after the migrations (see start). */
  private readonly nodeServices: ServiceGroup;
  /** The grace the worker's stop gets (stop's argument). */
  private stopGraceMs: number | undefined;

  constructor(options: EngineOptions) {
    this.config = parseConfig(engineConfigSchema, options.config ?? {});
    checkConfigRules(this.config);
    if (options.tracerProvider !== undefined && typeof options.tracerProvider?.getTracer !== "function") {
      throw new ConfigError("tracerProvider", "expected an OpenTelemetry TracerProvider (with getTracer)");
    }
    if (options.meterProvider !== undefined && typeof options.meterProvider?.getMeter !== "function") {
      throw new ConfigError("meterProvider", "expected an OpenTelemetry MeterProvider (with getMeter)");
    }
    const tracerProvider = activeTracerProvider(options.tracerProvider);
    this.tracing = tracerProvider ? new Tracing(tracerProvider) : undefined;
    this.store = new Store(this.config.schema, {
      preparedStatements: this.config.preparedStatements,
      traced: this.tracing !== undefined,
    });
    this.metrics = new Metrics({
      node: () =>
        this.worker === undefined
          ? undefined
          : { capacity: this.config.node.maxParallelTasksInNode, inFlight: this.worker.activeCount },
      queues: () => this.readQueueDepth(),
    });
    const meterProvider = activeMeterProvider(options.meterProvider);
    if (meterProvider !== undefined) this.metrics.use(meterProvider);
    this.log = this.metrics.countEvents(weftLogger(options.logger, options.logLevel));
    let poolConfig: pg.PoolConfig;
    if (options.pool) {
      this.pool = options.pool;
      this.ownsPool = false;
      poolConfig = { ...(options.pool as unknown as { options: pg.PoolConfig }).options };
      this.clientConfig = { ...poolConfig };
    } else {
      const connectionString = options.connectionString ?? process.env.DATABASE_URL;
      this.clientConfig = { connectionString };
      poolConfig = { connectionString, max: 10, keepAlive: true };
      this.pool = new pg.Pool(poolConfig);
      this.ownsPool = true;
    }
    if (options.sessionConnectionString !== undefined) {
      this.clientConfig = { connectionString: options.sessionConnectionString };
    }
    this.pool.on("error", (err) => this.log.debug({ event: "db.connection_error", err }, "idle pool connection error"));
    this.listener = new Listener(this.clientConfig, this.store.channel, this.log);
    this.nudge = new PlannerNudge(this.pool, this.store.channel, this.log);
    this.api = new EngineApi(this.store, this.pool, this.nudge, this.tracing, {
      nodeDeadAfterMs: this.config.planner.nodeDeadAfterMs,
      idempotencyWindowMs: this.config.idempotency.windowMs,
    });

    const handlers = new Map<string, TaskHandler>();
    for (const h of options.handlers ?? []) {
      if (handlers.has(h.name)) throw new DuplicateTaskError(h.name);
      handlers.set(h.name, h);
    }
    const settings = resolveTaskSettings(this.config, handlers);
    const taskLimits: Record<string, number> = {};
    const taskTimeouts: Record<string, number> = {};
    const taskCrons: Record<string, PublishedCron> = {};
    for (const h of handlers.values()) {
      if (h.cron) taskCrons[h.name] = { ...h.cron, ...(h.slot ? { slot: h.slot } : {}) };
    }
    for (const [name, t] of settings) {
      if (t.maxParallelInCluster !== undefined) taskLimits[name] = t.maxParallelInCluster;
      if (t.timeoutMs !== undefined) taskTimeouts[name] = t.timeoutMs;
    }
    const { node, planner } = this.config;
    if (node.enabled && handlers.size > 0 && this.config.preparedStatements) {
      // The worker's fetches, completion batches and affinity releases run
      // with generic plans on connections of their own: the pool the
      // application shares (exactly-once tasks run their SQL on it) keeps
      // PostgreSQL's default plan choice.
      this.hotPool = new pg.Pool({ ...withStartupOption(poolConfig, GENERIC_PLANS_OPTION), max: 3, keepAlive: true });
      this.hotPool.on("error", (err) =>
        this.log.debug({ event: "db.connection_error", err }, "idle pool connection error"),
      );
    }
    if (node.enabled && handlers.size > 0) {
      const registry = new NodeRegistry(
        this.store,
        this.pool,
        {
          appName: this.config.appName,
          capacity: node.maxParallelTasksInNode,
          taskNames: [...handlers.keys()],
          taskLimits,
          taskTimeouts,
          taskCrons,
        },
        node.heartbeatIntervalMs,
        this.log,
        async () => this.worker?.abandonAll(),
        options.cpuLoad ?? systemCpuLoad,
      );
      this.registry = registry;
      this.worker = new Worker(
        this.store,
        this.pool,
        this.hotPool ?? this.pool,
        node,
        this.config.maxPayloadBytes,
        handlers,
        settings,
        registry,
        this.listener,
        this.log,
        this.tracing,
        this.metrics,
      );
    }
    if (planner.enabled) {
      this.elector = new LeaderElector(
        // The leader connection runs only the planner's statements.
        this.config.preparedStatements ? withStartupOption(this.clientConfig, GENERIC_PLANS_OPTION) : this.clientConfig,
        this.config.schema,
        planner.leaderRetryMs,
        {
          elected: (client) => this.becomeLeader(client),
          deposed: () => this.stopLeaderServices(),
        },
        this.log,
        planner.nodeDeadAfterMs,
      );
    }
    const worker = this.worker;
    this.nodeServices = new ServiceGroup("node", [
      ...(this.registry ? [this.registry] : []),
      ...(this.elector ? [this.elector] : []),
      ...(worker ? [{ name: "worker", start: () => worker.start(), stop: () => worker.stop(this.stopGraceMs) }] : []),
    ]);
  }

  get nodeId(): string | undefined {
    return this.registry?.nodeId;
  }

  get isLeader(): boolean {
    return this.elector?.isLeader ?? false;
  }

  /**
   * Records Weft's metrics into \`provider\`'s meter \`weft\` from now on (the
   * HTTP handler's \`/metrics\` does); ignored when metrics are already on.
   */
  useMeterProvider(provider: MeterProvider): void {
    if (typeof provider?.getMeter !== "function") {
      throw new ConfigError("meterProvider", "expected an OpenTelemetry MeterProvider (with getMeter)");
    }
    this.metrics.use(provider);
  }

  /** Queue depths while this process leads (one reading per QUEUE_DEPTH_FRESH_MS); undefined otherwise. */
  private readQueueDepth(): Promise<readonly QueueDepth[] | undefined> {
    if (!this.isLeader || this.state !== "started") return Promise.resolve(undefined);
    const now = performance.now();
    if (this.queueDepth === undefined || now - this.queueDepth.at >= QUEUE_DEPTH_FRESH_MS) {
      this.queueDepth = {
        at: now,
        rows: this.store.admin.queueDepth(this.pool).catch((error: unknown) => {
          this.log.debug({ event: "db.connection_error", err: error }, "could not read queue depth for metrics");
          return undefined;
        }),
      };
    }
    return this.queueDepth.rows;
  }

  get activeNoNodeWatch(): NoNodeWatch | undefined {
    return this.leaderDuties?.members.find((s): s is NoNodeWatch => s instanceof NoNodeWatch);
  }

  /** This process's worker, if it runs tasks (tests hand it assignments). */
  get localWorker(): Worker | undefined {
    return this.worker;
  }

  /** The planner while this process leads (tests drive cycles through it). */
  get activePlanner(): Planner | undefined {
    return this.planner;
  }

  async start(): Promise<void> {
    if (this.state !== "new") throw new AlreadyStartedError(this.state);
    this.state = "starting";
    try {
      this.listener.on("planner", () => this.planner?.wake());
      this.listener.on("due", (ms) => this.planner?.dueIn(Number(ms[0])));
      this.listener.onReconnect(() => this.planner?.wake());
      // The listener and the election connection need no schema: they open
      // while the migrations are checked. Both are ready before the worker and
      // the planner start, which rely on notifications and the node row.
      const [setup, listening] = await Promise.allSettled([
        migrate(this.pool, this.config.schema, this.log),
        this.listener.start(),
        this.elector?.connect(),
      ]);
      // The migration's error first: a listener that could not connect usually failed for the same reason.
      if (setup.status === "rejected") throw setup.reason;
      if (listening.status === "rejected") throw listening.reason;
      // The node row first (the planner places on it), then the election (in
      // the background: its first attempt overlaps the worker's first fetch),
      // then the worker.
      await this.nodeServices.start();
      // The worker's first fetch opens a hot connection; a second is opened
      // now for the completion batches, after the connections the start needed.
      void this.warmHotPool();
      if (this.config.node.handleSignals) {
        process.once("SIGTERM", this.signalHandler);
        process.once("SIGINT", this.signalHandler);
      }
      this.state = "started";
    } catch (error) {
      this.state = "started";
      await this.stop().catch(() => undefined);
      throw error;
    }
  }

  private stopping: Promise<void> | undefined;
  /** The planner's read connection while this process leads. */
  private plannerReader: pg.Client | undefined;
  private plannerReaderOpening: Promise<void> | undefined;

  /**
   * Opens a hot connection ahead of the first completion batch. Best effort: a
   * failure here is met again, and reported, by the statement that needs the
   * connection.
   */
  private async warmHotPool(): Promise<void> {
    const pool = this.hotPool;
    if (!pool || !this.worker) return;
    await pool.connect().then(
      (client) => client.release(),
      () => undefined,
    );
  }

  /** Graceful stop: see Worker.stop. Safe to call more than once. */
  stop(graceMs?: number): Promise<void> {
    this.stopping ??= this.doStop(graceMs);
    return this.stopping;
  }

  private async doStop(graceMs?: number): Promise<void> {
    this.state = "stopping";
    process.off("SIGTERM", this.signalHandler);
    process.off("SIGINT", this.signalHandler);
    if (this.registry) await this.registry.drain().catch(() => undefined);
    this.stopGraceMs = graceMs;
    // Reverse order: the worker (within the grace), the election, the node row.
    await this.nodeServices.stop();
    await this.listener.stop();
    if (this.ownsPool) await this.pool.end();
    await this.hotPool?.end();
    this.state = "stopped";
    this.log.info({ event: "node.stopped", node: this.registry?.nodeId ?? null }, "stopped");
  }

  private async becomeLeader(client: pg.Client): Promise<void> {
    const epoch = await this.store.planner.takeLeadership(client, this.nodeId ?? "client");
    this.log.info({ event: "planner.started", epoch }, "planner started");
    const planner = new Planner(
      this.store,
      client,
      this.config.planner,
      this.log,
      () => this.elector?.connectionLost(),
      epoch,
      undefined,
      this.metrics,
    );
    this.planner = planner;
    if (this.worker) planner.handOffTo(this.worker);
    // The read connection opens once the first cycle has sent its apply (the
    // cycles read on the leader connection until it is there).
    this.plannerReaderOpening = planner.started.then(async () => {
      const reader = this.planner === planner ? await this.openPlannerReader() : undefined;
      if (reader === undefined) return;
      if (this.planner !== planner) {
        await reader.end().catch(() => undefined);
        return;
      }
      this.plannerReader = reader;
      planner.attachReader(reader);
    });
    await planner.start();
    const cron = new CronService(
      this.store,
      this.pool,
      { nodeDeadAfterMs: this.config.planner.nodeDeadAfterMs, misfireGraceMs: this.config.planner.cronMisfireGraceMs },
      epoch,
      this.log,
      () => this.elector?.connectionLost(),
    );
    const cleaner = this.config.cleaner.enabled
      ? new Cleaner(this.store, this.pool, this.config.cleaner, this.log)
      : undefined;
    const noNodeWatch = new NoNodeWatch(this.store, this.pool, this.config.planner.nodeDeadAfterMs, this.log);
    const duties = new ServiceGroup("leader duties", cleaner ? [cron, cleaner, noNodeWatch] : [cron, noNodeWatch], {
      parallelStop: true,
    });
    this.leaderDuties = duties;
    // The duties start once the first cycle has sent its apply: a new leader's
    // first statements place the backlog. A group stopped meanwhile (leadership
    // ended) starts nothing.
    void planner.started
      .then(() => duties.start())
      .catch((error: unknown) =>
        this.log.error({ event: "planner.duties_failed", err: error }, "the leader's duties could not start"),
      );
  }

  /**
   * The planner's second connection, for the reads it overlaps with its
   * applies (see Planner). Best effort: without it the planner reads on the
   * leader connection.
   */
  private async openPlannerReader(): Promise<pg.Client | undefined> {
    const config = this.config.preparedStatements
      ? withStartupOption(this.clientConfig, GENERIC_PLANS_OPTION)
      : this.clientConfig;
    const reader = new pg.Client({ ...config, keepAlive: true });
    reader.on("error", (err) => this.log.debug({ event: "db.connection_error", err }, "planner read connection error"));
    try {
      await reader.connect();
      return reader;
    } catch (error) {
      this.log.debug(
        { event: "planner.reader_failed", err: error },
        "could not open the planner's read connection; reading on the leader connection",
      );
      await reader.end().catch(() => undefined);
      return undefined;
    }
  }

  private async stopLeaderServices(): Promise<void> {
    const p = this.planner;
    const duties = this.leaderDuties;
    const opening = this.plannerReaderOpening;
    this.planner = undefined;
    this.leaderDuties = undefined;
    this.plannerReaderOpening = undefined;
    await Promise.all([p?.stop(), duties?.stop()]);
    // A reader still opening sees the planner gone and closes itself.
    await opening;
    const reader = this.plannerReader;
    this.plannerReader = undefined;
    await reader?.end().catch(() => undefined);
  }
}
