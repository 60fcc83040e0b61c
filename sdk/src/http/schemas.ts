import { z } from "@hono/zod-openapi";

/**
 * The HTTP API's schemas: they validate every request and generate the
 * OpenAPI document. Responses carry dates as ISO 8601 strings.
 */

const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const TASK_NAME = /^[A-Za-z][A-Za-z0-9_.:-]{0,127}$/;
const MAX_LIMIT = 500;

export const Ulid = z.string().regex(ULID, "expected a ULID (26 characters of Crockford base32)");
const DateTime = z.iso.datetime({ offset: true });
const Timestamp = z.string().openapi({ format: "date-time", example: "2026-01-31T12:00:00.000Z" });
const NullableTimestamp = Timestamp.nullable();

const limit = (fallback: number) =>
  z.coerce
    .number()
    .int()
    .min(1)
    .max(MAX_LIMIT)
    .optional()
    .openapi({ description: `At most this many items (1-${MAX_LIMIT}, default ${fallback})`, example: fallback });

export const WorkflowState = z.enum(["RUNNING", "COMPLETED", "FAILED", "CANCELLED"]);
export const TaskState = z.enum(["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"]);
const VirtualQueue = z.enum(["NEW", "READY", "PARKED", "DELETED"]);

export const IdParam = z.object({
  id: Ulid.openapi({ param: { name: "id", in: "path" }, example: "01ARZ3NDEKTSV4RRFFQ69G5FAV" }),
});
export const TaskIdParam = z.object({
  taskId: Ulid.openapi({ param: { name: "taskId", in: "path" } }),
});
export const NameParam = z.object({
  name: z
    .string()
    .regex(TASK_NAME, "expected a task name: a letter, then letters, digits, '_', '.', ':' or '-' (1-128)")
    .openapi({ param: { name: "name", in: "path" }, example: "send-invoice" }),
});

export const ErrorBody = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: "INVALID_ARGUMENT" }),
      message: z.string(),
      issues: z
        .array(z.object({ path: z.string(), message: z.string(), code: z.string().optional() }))
        .optional()
        .openapi({ description: "What was wrong and where (zod issues)" }),
      known: z.array(z.string()).optional().openapi({ description: "On UNKNOWN_TASK: the tasks this node knows" }),
    }),
  })
  .openapi("Error");

export const ScheduleBody = z
  .object({
    input: z.unknown().optional().openapi({ description: "The task's input, validated by its own schema" }),
    options: z
      .object({
        workflowId: Ulid.optional().openapi({ description: "Add the task to this RUNNING workflow" }),
        priority: z.number().int().min(-2_147_483_647).max(2_147_483_647).optional(),
        runAt: DateTime.optional().openapi({ description: "Not started before this time" }),
        delayMs: z
          .number()
          .int()
          .min(0)
          .max(10 * 365 * 24 * 3600 * 1000)
          .optional(),
        affinityGroup: z.string().min(1).max(256).optional(),
        affinity: z.string().min(1).max(256).optional(),
        idempotencyKey: z
          .string()
          .min(1)
          .max(255)
          .optional()
          .openapi({
            description:
              "Schedule at most once per key and task name within idempotency.windowMs: a repeat gets the first " +
              "schedule's ids (201), a repeat with a different input a 409 IDEMPOTENCY_CONFLICT",
          }),
      })
      .strict()
      .optional(),
  })
  .strict()
  .openapi("ScheduleRequest");

export const TaskRef = z.object({ taskId: z.string(), workflowId: z.string() }).openapi("TaskRef");

const TaskError = z
  .object({ name: z.string(), message: z.string(), code: z.string().optional() })
  .catchall(z.unknown())
  .nullable();

export const TaskStatus = z
  .object({
    id: z.string(),
    workflowId: z.string(),
    parentId: z.string().nullable(),
    name: z.string(),
    state: TaskState,
    queue: VirtualQueue,
    parkReason: z.string().nullable(),
    attempt: z.number().int(),
    priority: z.number().int(),
    input: z.unknown(),
    result: z.unknown(),
    error: TaskError,
    node: z.string().nullable(),
    runAfter: NullableTimestamp,
    createdAt: Timestamp,
    assignedAt: NullableTimestamp,
    finishedAt: NullableTimestamp,
  })
  .openapi("TaskStatus");

export const WorkflowStatus = z
  .object({
    id: z.string(),
    status: WorkflowState,
    rootTaskId: z.string().nullable(),
    pendingTasks: z.number().int(),
    totalTasks: z.number().int(),
    failedTasks: z.number().int(),
    createdAt: Timestamp,
    finishedAt: NullableTimestamp,
  })
  .openapi("WorkflowStatus");

export const WorkflowSummary = WorkflowStatus.extend({ rootTaskName: z.string().nullable() }).openapi(
  "WorkflowSummary",
);

const Counts = z.object(
  Object.fromEntries(TaskState.options.map((s) => [s, z.number().int()])) as Record<
    z.infer<typeof TaskState>,
    z.ZodNumber
  >,
);

export const WorkflowDetail = z
  .object({ workflow: WorkflowStatus, counts: Counts.openapi({ description: "Its tasks by state" }) })
  .openapi("WorkflowDetail");

export const WorkflowListQuery = z.object({
  status: z.string().optional().openapi({ description: "Comma-separated workflow states", example: "RUNNING,FAILED" }),
  rootTaskName: z.string().regex(TASK_NAME).optional(),
  createdAfter: DateTime.optional().openapi({ description: "Created at or after (inclusive)" }),
  createdBefore: DateTime.optional().openapi({ description: "Created before (exclusive)" }),
  limit: limit(50),
  cursor: z.string().max(64).optional().openapi({ description: "nextCursor of the previous page" }),
});

export const WorkflowPage = z
  .object({
    items: z.array(WorkflowSummary),
    nextCursor: z.string().nullable().openapi({
      description:
        "Pass as cursor for the next page; null at the end. A page may be short (even empty) before the end.",
    }),
  })
  .openapi("WorkflowPage");

export const TaskPageQuery = z.object({
  limit: limit(50),
  cursor: z.string().max(64).optional(),
  state: TaskState.optional(),
});

export const TaskPage = z.object({ items: z.array(TaskStatus), nextCursor: z.string().nullable() }).openapi("TaskPage");

export const WorkflowGraph = z
  .object({
    workflowId: z.string(),
    nodes: z.array(
      z.object({
        id: z.string(),
        name: z.string(),
        kind: z.enum(["task", "join", "fork"]),
        state: TaskState,
        queue: VirtualQueue,
        parentId: z.string().nullable(),
        joinPending: z.number().int().nullable(),
        level: z.number().int(),
      }),
    ),
    edges: z.array(
      z.object({
        from: z.string(),
        to: z.string(),
        kind: z.enum(["spawn", "join", "awaits"]),
        position: z.number().int().optional(),
      }),
    ),
    levels: z.array(z.array(z.string())),
  })
  .openapi("WorkflowGraph");

export const CancelBody = z
  .object({ reason: z.string().max(2_000).optional() })
  .strict()
  .openapi("CancelRequest");
export const CancelResult = z
  .object({ cancelled: z.boolean().openapi({ description: "false when the workflow had already finished" }) })
  .openapi("CancelResult");

const Attempt = z.object({
  attempt: z.number().int(),
  node: z.string().nullable(),
  startedAt: NullableTimestamp,
  endedAt: Timestamp,
  error: TaskError,
});

export const DeadLetter = z
  .object({
    taskId: z.string(),
    workflowId: z.string(),
    parentId: z.string().nullable(),
    taskName: z.string(),
    input: z.unknown(),
    error: TaskError,
    attempts: z.array(Attempt),
    taskCreatedAt: Timestamp,
    failedAt: Timestamp,
  })
  .openapi("DeadLetter");

export const DeadLetterQuery = z.object({
  taskName: z.string().regex(TASK_NAME).optional(),
  workflowId: Ulid.optional(),
  failedFrom: DateTime.optional().openapi({ description: "Failed at or after" }),
  failedTo: DateTime.optional().openapi({ description: "Failed before" }),
  limit: limit(100),
});

export const DeadLetterList = z.object({ items: z.array(DeadLetter) }).openapi("DeadLetterList");

export const DeadLetterDetail = z
  .object({
    deadLetter: DeadLetter,
    workflow: WorkflowStatus.nullable(),
    slot: z
      .object({
        taskName: z.string(),
        every: z.string(),
        start: Timestamp,
        end: Timestamp,
        status: z.string(),
        generation: z.number().int(),
      })
      .nullable()
      .openapi({ description: "The slot a slot task ran for" }),
  })
  .openapi("DeadLetterDetail");

export const RequeueResult = z.object({ requeued: z.array(z.string()) }).openapi("RequeueResult");
export const DeleteResult = z.object({ deleted: z.number().int() }).openapi("DeleteResult");

export const QueueStats = z
  .object({
    queues: z.array(z.object({ queue: VirtualQueue, taskName: z.string(), count: z.number().int() })),
    readyLag: z.array(z.object({ taskName: z.string(), oldestReadyAgeMs: z.number() })),
    parked: z.array(z.object({ reason: z.string(), count: z.number().int() })),
  })
  .openapi("QueueStats");

export const ThroughputQuery = z.object({
  window: z.coerce
    .number()
    .int()
    .min(1)
    .max(3600)
    .optional()
    .openapi({ description: "The last this many seconds (1-3600, default 900)", example: 900 }),
});

export const Throughput = z
  .object({
    from: Timestamp.openapi({ description: "The start of the first bucket" }),
    to: Timestamp.openapi({ description: "The end of the last bucket (the current second, still counted)" }),
    buckets: z.array(
      z.object({
        at: Timestamp,
        completed: z.number().int(),
        failed: z.number().int(),
        cancelled: z.number().int(),
      }),
    ),
  })
  .openapi("Throughput");

export const NodeList = z
  .object({
    items: z.array(
      z.object({
        id: z.string(),
        appName: z.string(),
        host: z.string(),
        pid: z.number().int(),
        capacity: z.number().int(),
        taskNames: z.array(z.string()),
        cpuLoad: z.number().nullable(),
        draining: z.boolean(),
        startedAt: Timestamp,
        heartbeatAt: Timestamp,
        heartbeatAgeMs: z.number(),
        isLeader: z.boolean(),
        running: z.number().int(),
      }),
    ),
  })
  .openapi("NodeList");

export const CronList = z
  .object({
    items: z.array(
      z.object({
        taskName: z.string(),
        pattern: z.string(),
        timezone: z.string().nullable(),
        lastTickAt: NullableTimestamp,
        nextTickAt: NullableTimestamp,
      }),
    ),
  })
  .openapi("CronList");

const SeriesFields = {
  every: z
    .string()
    .max(32)
    .optional()
    .openapi({ description: "The series' interval (15m, 1h, 1d...); a slot task's own when omitted", example: "1h" }),
  timeZone: z.string().max(64).optional().openapi({ description: "For calendar intervals (default UTC)" }),
  from: DateTime.openapi({ description: "Slots starting at or after" }),
  to: DateTime.openapi({ description: "Slots starting before" }),
};

export const CoverageQuery = z.object(SeriesFields);

export const ReopenBody = z
  .object({
    ...SeriesFields,
    status: z
      .array(z.enum(["COMPLETE", "SKIP", "FAILED"]))
      .min(1)
      .optional(),
  })
  .strict()
  .openapi("ReopenRequest");

export const SlotCoverage = z
  .object({
    from: Timestamp,
    to: Timestamp,
    every: z.string(),
    slots: z.array(
      z.object({
        start: Timestamp,
        end: Timestamp,
        status: z.enum(["AVAILABLE", "ACQUIRED", "COMPLETE", "SKIP", "FAILED", "MISSING"]),
        generation: z.number().int(),
        attempts: z.number().int(),
        message: z.string().nullable(),
        completedAt: NullableTimestamp,
        completedBy: z.string().nullable(),
        history: z.array(z.record(z.string(), z.unknown())),
      }),
    ),
    counts: z.object({
      total: z.number().int(),
      complete: z.number().int(),
      skipped: z.number().int(),
      pending: z.number().int(),
      acquired: z.number().int(),
      failed: z.number().int(),
      missing: z.number().int(),
    }),
    gaps: z.array(z.object({ from: Timestamp, to: Timestamp })),
    grid: z.string().openapi({ description: "# complete, - skipped, . pending, > acquired, x failed, ? missing" }),
  })
  .openapi("SlotCoverage");

export const ReopenResult = z.object({ reopened: z.number().int() }).openapi("ReopenResult");

export const Health = z
  .object({
    status: z.enum(["ok", "unavailable"]),
    nodeId: z.string().nullable(),
    isLeader: z.boolean(),
  })
  .openapi("Health");
