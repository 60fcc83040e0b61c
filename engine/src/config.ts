import { z } from "zod";
import { ConfigError } from "./errors.js";
import { suggest } from "./suggest.js";

export { suggest };

/** Defaults as named constants, so docs/configuration.md and the code agree. */
export const DEFAULTS = {
  schema: "weft",
  appName: "weft",
  maxPayloadBytes: 1024 * 1024,
  maxParallelTasksInNode: 100,
  heartbeatIntervalMs: 2_000,
  nodeDeadAfterMs: 15_000,
  reconcileIntervalMs: 5_000,
  shutdownGraceMs: 10_000,
  completionBatchSize: 1_000,
  plannerBatchSize: 1_000,
  pollingDelay: { 0: 1_000, 100: 500, 1000: 250 } as Record<number, number>,
  leaderRetryMs: 1_000,
  deadNodeSweepMs: 1_000,
  cleanerIntervalMs: 60_000,
  cleanerBatchSize: 1_000,
  retentionMs: 7 * 24 * 3600 * 1000,
  deadLetterRetentionMs: 30 * 24 * 3600 * 1000,
  timeoutGraceMs: 5_000,
  cronMisfireGraceMs: 60_000,
  idempotencyWindowMs: 24 * 3600 * 1000,
  /** The default retry policy (BACKOFF): 1 s, 2 s, 4 s, ... up to 10 retries within an hour. */
  backoff: { initialDelayMs: 1_000, delayPeriodMs: 1_000, maxRetries: 10, maxIntervalMs: 3_600_000, jitter: 0.2 },
  fixed: { delayMs: 10_000, maxRetries: 10, maxIntervalMs: 24 * 3_600_000 },
} as const;

const ms = (max = 7 * 24 * 3600 * 1000) => z.number().int().min(0).max(max);

export const nodeConfigSchema = z
  .object({
    /** Run tasks in this process. A pure client (`enabled: false`) only schedules and reads. */
    enabled: z.boolean().default(true),
    maxParallelTasksInNode: z.number().int().min(1).max(100_000).default(DEFAULTS.maxParallelTasksInNode),
    heartbeatIntervalMs: ms(600_000).min(50).default(DEFAULTS.heartbeatIntervalMs),
    reconcileIntervalMs: ms(600_000).min(50).default(DEFAULTS.reconcileIntervalMs),
    shutdownGraceMs: ms().default(DEFAULTS.shutdownGraceMs),
    completionBatchSize: z.number().int().min(1).max(10_000).default(DEFAULTS.completionBatchSize),
    /** Stop gracefully on SIGTERM and SIGINT. */
    handleSignals: z.boolean().default(false),
  })
  .strict();

export const plannerConfigSchema = z
  .object({
    /** Take part in the leader election; the leader runs the planner and the cleaner. */
    enabled: z.boolean().default(true),
    batchSize: z.number().int().min(1).max(50_000).default(DEFAULTS.plannerBatchSize),
    /**
     * Fallback polling when no notification arrives: `{ tasksInLastCycle: delayMs }`;
     * the entry with the largest key not above the last cycle's count applies.
     * A full batch always re-plans at once.
     */
    pollingDelay: z
      .record(z.string().regex(/^\d+$/, "keys are task counts"), ms(3_600_000))
      .default(Object.fromEntries(Object.entries(DEFAULTS.pollingDelay).map(([k, v]) => [String(k), v]))),
    nodeDeadAfterMs: ms().min(100).default(DEFAULTS.nodeDeadAfterMs),
    deadNodeSweepMs: ms().min(10).default(DEFAULTS.deadNodeSweepMs),
    leaderRetryMs: ms(600_000).min(10).default(DEFAULTS.leaderRetryMs),
    /** A node reporting a CPU load (0..1) above this gets no new tasks; unset: no limit. */
    nodeCpuLoadingLimit: z.number().min(0).max(1).optional(),
    /**
     * An attempt of a task with a timeout is re-planned by the planner once its
     * timeout plus this grace has passed on the database clock, even if its node
     * is alive (the node itself aborts it at the timeout).
     */
    timeoutGraceMs: ms().default(DEFAULTS.timeoutGraceMs),
    /**
     * A cron tick later than this (no leader was running) is "missed": its task's
     * \`missed\` policy decides whether it still fires.
     */
    cronMisfireGraceMs: ms().min(1_000).default(DEFAULTS.cronMisfireGraceMs),
    /**
     * ANALYZE the task table (skipped if autovacuum holds it) before placing
     * work once it has more than doubled since its statistics were taken or
     * this leader started: plans cached while it was small would otherwise
     * scan it whole until autovacuum's next ANALYZE. Needs the table's owner
     * (or MAINTAIN); without it PostgreSQL only warns.
     */
    refreshStatisticsOnGrowth: z.boolean().default(true),
  })
  .strict();

const maxRetries = z.number().int().min(0).max(1_000_000);
const day = 24 * 3_600_000;

/**
 * How a failed attempt is retried (DTF's retry modes). A policy is replaced
 * whole by one of higher precedence, never merged field by field.
 */
export const retryPolicySchema = z.discriminatedUnion("mode", [
  z.object({ mode: z.literal("OFF") }).strict(),
  z
    .object({
      mode: z.literal("FIXED"),
      /** Delay before every retry. */
      delayMs: ms().default(DEFAULTS.fixed.delayMs),
      maxRetries: maxRetries.default(DEFAULTS.fixed.maxRetries),
      /** No retry starts later than this after the first failure. */
      maxIntervalMs: ms(3650 * day).default(DEFAULTS.fixed.maxIntervalMs),
    })
    .strict(),
  z
    .object({
      mode: z.literal("BACKOFF"),
      /** Delay before the first retry. */
      initialDelayMs: ms().default(DEFAULTS.backoff.initialDelayMs),
      /** Retry n > 1 waits delayPeriodMs × 2^(n-1). */
      delayPeriodMs: ms().default(DEFAULTS.backoff.delayPeriodMs),
      maxRetries: maxRetries.default(DEFAULTS.backoff.maxRetries),
      /** No retry starts later than this after the first failure (DTF's max-delay). */
      maxIntervalMs: ms(3650 * day).default(DEFAULTS.backoff.maxIntervalMs),
      /** Each delay is shortened by a random fraction up to this (0: none), so retries of many tasks spread out. */
      jitter: z.number().min(0).max(1).default(DEFAULTS.backoff.jitter),
    })
    .strict(),
]);
export type RetryPolicyInput = z.input<typeof retryPolicySchema>;
export type RetryPolicy = z.output<typeof retryPolicySchema>;

/** Settings a task may have: in its definition, per task in \`taskOverrides\`, or as \`taskDefaults\`. */
export const taskSettingsSchema = z
  .object({
    /** Most attempts of the task running at once in the whole cluster. */
    maxParallelInCluster: z.number().int().min(1).max(1_000_000).optional(),
    /** Retry policy; default BACKOFF with the defaults above. */
    retry: retryPolicySchema.optional(),
    /** An attempt running longer fails (its signal aborts); unset: no timeout. */
    timeoutMs: z
      .number()
      .int()
      .min(1)
      .max(30 * day)
      .optional(),
    /** Copy a task that failed its last attempt to the dead-letter table (default true). */
    deadLetter: z.boolean().optional(),
  })
  .strict();
export type TaskSettings = z.output<typeof taskSettingsSchema>;

export const cleanerConfigSchema = z
  .object({
    enabled: z.boolean().default(true),
    /** How long finished tasks and workflows stay visible (virtual queue DELETED). */
    retentionMs: ms(3650 * 24 * 3600 * 1000).default(DEFAULTS.retentionMs),
    /**
     * How long dead letters are kept. Their tasks follow \`retentionMs\`: a dead
     * letter whose task was purged can be read but not requeued.
     */
    deadLetterRetentionMs: ms(3650 * 24 * 3600 * 1000).default(DEFAULTS.deadLetterRetentionMs),
    intervalMs: ms().min(10).default(DEFAULTS.cleanerIntervalMs),
    batchSize: z.number().int().min(1).max(100_000).default(DEFAULTS.cleanerBatchSize),
  })
  .strict();

export const idempotencyConfigSchema = z
  .object({
    /**
     * How long an idempotency key holds after the schedule that used it first:
     * a schedule with the key within this time gets the first one's ids.
     */
    windowMs: ms(365 * 24 * 3600 * 1000)
      .min(1)
      .default(DEFAULTS.idempotencyWindowMs),
  })
  .strict();

export const engineConfigSchema = z
  .object({
    schema: z.string().default(DEFAULTS.schema),
    appName: z.string().min(1).max(200).default(DEFAULTS.appName),
    maxPayloadBytes: z
      .number()
      .int()
      .min(1)
      .max(256 * 1024 * 1024)
      .default(DEFAULTS.maxPayloadBytes),
    /**
     * Prepare the hot-path statements (planner, fetch, completion, affinity
     * release) by name and run them with generic plans on connections of their
     * own. Turn off behind a transaction-mode pooler that cannot keep
     * prepared statements or session settings (PgBouncer before 1.21).
     */
    preparedStatements: z.boolean().default(true),
    node: nodeConfigSchema.default(() => nodeConfigSchema.parse({})),
    planner: plannerConfigSchema.default(() => plannerConfigSchema.parse({})),
    cleaner: cleanerConfigSchema.default(() => cleanerConfigSchema.parse({})),
    idempotency: idempotencyConfigSchema.default(() => idempotencyConfigSchema.parse({})),
    /** Defaults for every task (lowest precedence). */
    taskDefaults: taskSettingsSchema.default({}),
    /** Per task name (highest precedence, over the task definition). */
    taskOverrides: z.record(z.string(), taskSettingsSchema).default({}),
  })
  .strict();

export type EngineConfigInput = z.input<typeof engineConfigSchema>;
export type EngineConfig = z.output<typeof engineConfigSchema>;
export type NodeConfig = z.output<typeof nodeConfigSchema>;
export type PlannerConfig = z.output<typeof plannerConfigSchema>;
export type CleanerConfig = z.output<typeof cleanerConfigSchema>;
export type IdempotencyConfig = z.output<typeof idempotencyConfigSchema>;

function shapeKeys(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let current: unknown = schema;
  for (const segment of path) {
    current = unwrap(current);
    const shape = (current as { shape?: Record<string, unknown> }).shape;
    if (!shape) return [];
    current = shape[String(segment)];
  }
  const shape = (unwrap(current) as { shape?: Record<string, unknown> }).shape;
  return shape ? Object.keys(shape) : [];
}

function unwrap(schema: unknown): unknown {
  let s = schema as { unwrap?: () => unknown; def?: { innerType?: unknown } } | undefined;
  while (s?.def?.innerType) s = s.def.innerType as typeof s;
  return s;
}

/** Parses configuration with `schema`, turning the first problem into a ConfigError that names the key. */
export function parseConfig<S extends z.ZodType>(schema: S, input: unknown, root = ""): z.output<S> {
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0] as z.core.$ZodIssue;
  const base = [root, ...issue.path.map(String)].filter((p) => p !== "").join(".");
  if (issue.code === "unrecognized_keys") {
    const known = shapeKeys(schema, issue.path);
    const key = issue.keys[0] ?? "";
    const hint = suggest(key, known);
    throw new ConfigError(
      base === "" ? key : `${base}.${key}`,
      `unknown key${hint ? `; did you mean "${hint}"?` : known.length > 0 ? `; known keys: ${known.join(", ")}` : ""}`,
    );
  }
  throw new ConfigError(base === "" ? "(root)" : base, issue.message);
}

/**
 * A rule between two settings that each pass their own bounds but contradict
 * each other: \`min(config)\` is the least value \`key\` may have, given \`other\`.
 */
interface PairRule {
  readonly key: string;
  readonly other: string;
  readonly rule: string;
  readonly applies: (c: EngineConfig) => boolean;
  readonly value: (c: EngineConfig) => number;
  readonly otherValue: (c: EngineConfig) => number;
  readonly min: (c: EngineConfig) => number;
  readonly why: string;
}

/** The rules between settings, checked at construction (see docs/configuration.md#rules-between-settings). */
export const CONFIG_RULES: readonly PairRule[] = [
  {
    key: "planner.nodeDeadAfterMs",
    other: "node.heartbeatIntervalMs",
    rule: "nodeDeadAfterMs >= 2 × heartbeatIntervalMs",
    // A process that runs no node sends no heartbeat; its planner still judges
    // other nodes' by this process's setting, which is all it can check.
    applies: () => true,
    value: (c) => c.planner.nodeDeadAfterMs,
    otherValue: (c) => c.node.heartbeatIntervalMs,
    min: (c) => 2 * c.node.heartbeatIntervalMs,
    why: "a live node would be declared dead between two heartbeats (or after one late one) and re-register over and over",
  },
  {
    key: "planner.nodeDeadAfterMs",
    other: "planner.leaderRetryMs",
    rule: "nodeDeadAfterMs >= 3 × leaderRetryMs",
    applies: (c) => c.planner.enabled,
    value: (c) => c.planner.nodeDeadAfterMs,
    otherValue: (c) => c.planner.leaderRetryMs,
    min: (c) => 3 * c.planner.leaderRetryMs,
    why:
      "the leader renews its lease (a statement on its session) every leaderRetryMs, and the server ends a " +
      "leader session idle for nodeDeadAfterMs: the lease is then stretched to 3 × leaderRetryMs so that a " +
      "healthy leader keeps it, and a frozen leader is replaced later than nodeDeadAfterMs",
  },
];

/**
 * Checks the rules between settings (each setting's own bounds are checked by
 * the schema); throws a ConfigError naming both keys and the rule.
 */
export function checkConfigRules(config: EngineConfig): void {
  for (const r of CONFIG_RULES) {
    if (!r.applies(config)) continue;
    const value = r.value(config);
    const min = r.min(config);
    if (value < min) {
      throw new ConfigError(
        r.key,
        `${value} contradicts ${r.other} (${r.otherValue(config)}): the rule is ${r.rule}, so at least ${min}; ` +
          `otherwise ${r.why}`,
      );
    }
  }
}

/** Delay before the next planning cycle after one that handled `count` tasks. */
export function pollingDelayFor(pollingDelay: Record<string, number>, count: number): number {
  let delay = DEFAULTS.pollingDelay[0] as number;
  let bestKey = -1;
  for (const [k, v] of Object.entries(pollingDelay)) {
    const key = Number(k);
    if (key <= count && key > bestKey) {
      bestKey = key;
      delay = v;
    }
  }
  return delay;
}
