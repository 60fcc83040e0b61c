import { createRoute, OpenAPIHono, type z } from "@hono/zod-openapi";
import { InvalidArgumentError, type Logger, parseInterval } from "@weft/engine";
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import { HTTPException } from "hono/http-exception";
import { engineOf } from "../internal.js";
import type { SlotSeriesClient } from "../slots.js";
import type { AnyTaskDefinition } from "../task.js";
import type { ScheduleOptions, WorkflowState } from "../types.js";
import type { Weft } from "../weft.js";
import { bearerToken, type TokenScope, type TokenSet } from "./auth.js";
import { errorBody, fromError } from "./errors.js";
import type { MetricsEndpoint } from "./metrics.js";
import * as S from "./schemas.js";

export interface AppSettings {
  /** null: no authentication (auth: "none"). */
  readonly tokens: TokenSet | null;
  readonly readOnly: boolean;
  readonly bodyLimitBytes: number;
  readonly cors: { readonly origin: string | string[] } | null;
  readonly log: Logger;
  /** GET /metrics (Prometheus), or null. */
  readonly metrics: MetricsEndpoint | null;
}

type Env = { Variables: { scope: TokenScope } };

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  content: { "application/json": { schema } },
  description,
});

// Every route answers these besides its own.
const errors = {
  400: json(S.ErrorBody, "A parameter, the body or the input is invalid"),
  401: json(S.ErrorBody, "No valid bearer token"),
  403: json(S.ErrorBody, "The token's scope does not allow this, or the API is read-only"),
  500: json(S.ErrorBody, "Internal error (no details are given)"),
};
const notFound = { 404: json(S.ErrorBody, "Not found") };
const conflict = { 409: json(S.ErrorBody, "The workflow or task is not in a state that allows this") };
const security = [{ bearer: [] }];

/** JSON bodies: dates become ISO strings. */
function wire<T>(value: T): never {
  return JSON.parse(JSON.stringify(value)) as never;
}

function isoDate(s: string | undefined): Date | undefined {
  return s === undefined ? undefined : new Date(s);
}

/** The write endpoints: every method but GET, HEAD and OPTIONS. */
function isWrite(method: string): boolean {
  return method !== "GET" && method !== "HEAD" && method !== "OPTIONS";
}

function zodIssues(error: z.ZodError, target: string) {
  return error.issues.map((i) => ({
    path: [target, ...i.path.map(String)].join("."),
    message: i.message,
    code: i.code,
  }));
}

export function buildApp(weft: Weft, settings: AppSettings): OpenAPIHono<Env> {
  const client = weft.client;
  const app = new OpenAPIHono<Env>({
    defaultHook: (result, c) => {
      if (!result.success) {
        return c.json(
          errorBody("BAD_REQUEST", `invalid ${result.target}`, { issues: zodIssues(result.error, result.target) }),
          400,
        );
      }
    },
  });

  app.onError((error, c) => {
    if (error instanceof HTTPException) {
      // Raised by the framework (malformed JSON, a body over the limit...): its message is its own.
      const status = error.status;
      const code = status === 413 ? "PAYLOAD_TOO_LARGE" : status === 415 ? "UNSUPPORTED_MEDIA_TYPE" : "BAD_REQUEST";
      return c.json(errorBody(code, error.message || "bad request"), status);
    }
    const { status, body } = fromError(error);
    if (status >= 500)
      settings.log.error({ err: error, method: c.req.method, path: c.req.path }, "weft http: request failed");
    return c.json(body, status);
  });
  app.notFound((c) => c.json(errorBody("NOT_FOUND", `no endpoint ${c.req.method} ${c.req.path}`), 404));

  if (settings.cors)
    app.use("*", cors({ origin: settings.cors.origin, allowHeaders: ["Authorization", "Content-Type"] }));

  const auth: MiddlewareHandler<Env> = async (c, next) => {
    if (c.req.method === "OPTIONS") return next();
    let scope: TokenScope = "write";
    if (settings.tokens) {
      const token = bearerToken(c.req.header("authorization"));
      const found = token === null ? null : settings.tokens.scopeOf(token);
      if (found === null) {
        c.header("WWW-Authenticate", 'Bearer realm="weft"');
        return c.json(
          errorBody("UNAUTHORIZED", "a valid bearer token is required (Authorization: Bearer <token>)"),
          401,
        );
      }
      scope = found;
    }
    if (isWrite(c.req.method)) {
      if (settings.readOnly) return c.json(errorBody("READ_ONLY", "this API is read-only"), 403);
      if (scope !== "write") return c.json(errorBody("FORBIDDEN", "this endpoint needs a token with write scope"), 403);
    }
    c.set("scope", scope);
    return next();
  };
  const limit = bodyLimit({
    maxSize: settings.bodyLimitBytes,
    onError: (c) =>
      c.json(errorBody("PAYLOAD_TOO_LARGE", `the request body is over ${settings.bodyLimitBytes} bytes`), 413),
  });

  // Public: load balancers probe it without a token.
  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/health",
      summary: "Whether this node and its database answer",
      tags: ["health"],
      responses: { 200: json(S.Health, "Healthy"), 503: json(S.Health, "The database does not answer") },
    }),
    async (c) => {
      const ok = await engineOf(weft)
        .api.admin.ping()
        .catch(() => false);
      const body = { status: ok ? "ok" : "unavailable", nodeId: weft.nodeId ?? null, isLeader: weft.isLeader } as const;
      return ok ? c.json(body, 200) : c.json({ ...body, status: "unavailable" as const }, 503);
    },
  );

  const metrics = settings.metrics;
  if (metrics) {
    if (!metrics.public) app.use("/metrics", auth);
    app.get("/metrics", async (c) =>
      c.text(await metrics.render(), 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }),
    );
  }

  // Every route below this line needs a token (health, above, answered first).
  app.use("/v1/*", auth);
  app.use("/v1/*", async (c, next) => (isWrite(c.req.method) ? limit(c, next) : next()));

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/tasks/{name}",
      summary: "Schedule a task by name",
      description:
        "The input is validated by the task's own zod schema; the node must know the task's definition. " +
        "Starts a new workflow unless options.workflowId names a RUNNING one.",
      tags: ["tasks"],
      security,
      request: {
        params: S.NameParam,
        body: { content: { "application/json": { schema: S.ScheduleBody } }, required: true },
      },
      responses: {
        201: json(S.TaskRef, "Scheduled"),
        ...errors,
        404: json(S.ErrorBody, "Unknown task (error.known lists the known ones) or workflow"),
        409: json(S.ErrorBody, "The workflow is not RUNNING, or the idempotency key was used with a different input"),
        413: json(S.ErrorBody, "The body or the encoded input is too large"),
      },
    }),
    async (c) => {
      const { name } = c.req.valid("param");
      const { input, options = {} } = c.req.valid("json");
      const scheduleOptions: ScheduleOptions = {
        ...(options.workflowId !== undefined ? { workflowId: options.workflowId } : {}),
        ...(options.priority !== undefined ? { priority: options.priority } : {}),
        ...(options.runAt !== undefined ? { runAt: new Date(options.runAt) } : {}),
        ...(options.delayMs !== undefined ? { delayMs: options.delayMs } : {}),
        ...(options.affinityGroup !== undefined ? { affinityGroup: options.affinityGroup } : {}),
        ...(options.affinity !== undefined ? { affinity: options.affinity } : {}),
        ...(options.idempotencyKey !== undefined ? { idempotencyKey: options.idempotencyKey } : {}),
      };
      const ref = await client.scheduleByName(name, input, scheduleOptions);
      return c.json(ref, 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/tasks/{id}",
      summary: "A task: its state, result or error",
      tags: ["tasks"],
      security,
      request: { params: S.IdParam },
      responses: { 200: json(S.TaskStatus, "The task"), ...errors, ...notFound },
    }),
    async (c) => c.json(wire(await client.getTask(c.req.valid("param").id)), 200),
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/workflows",
      summary: "List workflows, newest first",
      description:
        "Keyset pagination: pass nextCursor as cursor. Each call reads a bounded window of ids, so with filters " +
        "a page may be short (even empty) while nextCursor is not null; null means the end.",
      tags: ["workflows"],
      security,
      request: { query: S.WorkflowListQuery },
      responses: { 200: json(S.WorkflowPage, "A page of workflows"), ...errors },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const page = await client.listWorkflows({
        ...(q.status !== undefined ? { status: q.status.split(",").map((s) => s.trim()) as WorkflowState[] } : {}),
        ...(q.rootTaskName !== undefined ? { rootTaskName: q.rootTaskName } : {}),
        ...(q.createdAfter !== undefined ? { createdAfter: isoDate(q.createdAfter) } : {}),
        ...(q.createdBefore !== undefined ? { createdBefore: isoDate(q.createdBefore) } : {}),
        ...(q.limit !== undefined ? { limit: q.limit } : {}),
        ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
      });
      return c.json(wire(page), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/workflows/{id}",
      summary: "A workflow's status and its task counts by state",
      tags: ["workflows"],
      security,
      request: { params: S.IdParam },
      responses: { 200: json(S.WorkflowDetail, "The workflow"), ...errors, ...notFound },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const [workflow, counts] = await Promise.all([client.getWorkflow(id), client.workflowTaskCounts(id)]);
      return c.json(wire({ workflow, counts }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/workflows/{id}/tasks",
      summary: "A workflow's tasks, oldest first, a page at a time",
      tags: ["workflows"],
      security,
      request: { params: S.IdParam, query: S.TaskPageQuery },
      responses: { 200: json(S.TaskPage, "A page of tasks"), ...errors, ...notFound },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const q = c.req.valid("query");
      const page = await client.getWorkflowTasksPage(id, {
        ...(q.limit !== undefined ? { limit: q.limit } : {}),
        ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
        ...(q.state !== undefined ? { state: q.state } : {}),
      });
      return c.json(wire(page), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/workflows/{id}/graph",
      summary: "A workflow's DAG: tasks as nodes, spawn and join edges, layout levels",
      tags: ["workflows"],
      security,
      request: { params: S.IdParam },
      responses: { 200: json(S.WorkflowGraph, "The graph"), ...errors, ...notFound },
    }),
    async (c) => c.json(wire(await client.getWorkflowGraph(c.req.valid("param").id)), 200),
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/workflows/{id}/cancel",
      summary: "Cancel a workflow",
      description:
        "Every unfinished task becomes CANCELLED; running ones are aborted. cancelled is false when it had finished.",
      tags: ["workflows"],
      security,
      request: { params: S.IdParam, body: { content: { "application/json": { schema: S.CancelBody } } } },
      responses: { 200: json(S.CancelResult, "Done"), ...errors, ...notFound },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const { reason } = c.req.valid("json");
      return c.json({ cancelled: await client.cancelWorkflow(id, reason) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/dead-letters",
      summary: "Dead letters, newest first",
      tags: ["dead letters"],
      security,
      request: { query: S.DeadLetterQuery },
      responses: { 200: json(S.DeadLetterList, "Dead letters"), ...errors },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const items = await client.deadLetters.list({
        ...(q.taskName !== undefined ? { taskName: q.taskName } : {}),
        ...(q.workflowId !== undefined ? { workflowId: q.workflowId } : {}),
        ...(q.failedFrom !== undefined ? { failedFrom: isoDate(q.failedFrom) } : {}),
        ...(q.failedTo !== undefined ? { failedTo: isoDate(q.failedTo) } : {}),
        ...(q.limit !== undefined ? { limit: q.limit } : {}),
      });
      return c.json(wire({ items }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/dead-letters/{taskId}",
      summary: "A dead letter with its attempts, its workflow and its slot",
      tags: ["dead letters"],
      security,
      request: { params: S.TaskIdParam },
      responses: { 200: json(S.DeadLetterDetail, "The dead letter"), ...errors, ...notFound },
    }),
    async (c) => {
      const { taskId } = c.req.valid("param");
      const deadLetter = await client.deadLetters.get(taskId);
      if (!deadLetter) return c.json(errorBody("DEAD_LETTER_NOT_FOUND", `no dead letter for task ${taskId}`), 404);
      const [workflow, slot] = await Promise.all([
        client.getWorkflow(deadLetter.workflowId).catch((e: unknown) => {
          if ((e as { code?: string }).code === "WORKFLOW_NOT_FOUND") return null;
          throw e;
        }),
        client.taskSlot(taskId),
      ]);
      return c.json(wire({ deadLetter, workflow, slot }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/dead-letters/{taskId}/requeue",
      summary: "Requeue a dead letter: the task runs again with a fresh attempt budget",
      tags: ["dead letters"],
      security,
      request: { params: S.TaskIdParam },
      responses: { 200: json(S.RequeueResult, "Requeued"), ...errors, ...notFound, ...conflict },
    }),
    async (c) => c.json({ requeued: await client.deadLetters.requeue([c.req.valid("param").taskId]) }, 200),
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/v1/dead-letters/{taskId}",
      summary: "Delete a dead letter (its task stays until the cleaner's retention)",
      tags: ["dead letters"],
      security,
      request: { params: S.TaskIdParam },
      responses: { 200: json(S.DeleteResult, "Deleted"), ...errors, ...notFound },
    }),
    async (c) => {
      const { taskId } = c.req.valid("param");
      const deleted = await client.deadLetters.purge({ taskIds: [taskId] });
      if (deleted === 0) return c.json(errorBody("DEAD_LETTER_NOT_FOUND", `no dead letter for task ${taskId}`), 404);
      return c.json({ deleted }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/queues",
      summary: "Unfinished tasks by virtual queue and task name, ready lag, PARKED by reason",
      tags: ["cluster"],
      security,
      responses: { 200: json(S.QueueStats, "Queue statistics"), ...errors },
    }),
    async (c) => c.json(wire(await client.queueStats()), 200),
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/throughput",
      summary: "Tasks finished per second (completed, failed, cancelled) over the last `window` seconds",
      tags: ["cluster"],
      security,
      request: { query: S.ThroughputQuery },
      responses: { 200: json(S.Throughput, "One bucket per second, oldest first"), ...errors },
    }),
    async (c) => c.json(wire(await client.throughput({ windowSeconds: c.req.valid("query").window })), 200),
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/nodes",
      summary: "The registered nodes: capacity, running tasks, heartbeat age, leader flag",
      tags: ["cluster"],
      security,
      responses: { 200: json(S.NodeList, "Nodes"), ...errors },
    }),
    async (c) => c.json(wire({ items: await client.listNodes() }), 200),
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/cron",
      summary: "Cron schedules with their last and next ticks",
      tags: ["cluster"],
      security,
      responses: { 200: json(S.CronList, "Cron schedules"), ...errors },
    }),
    async (c) => c.json(wire({ items: await client.listCron() }), 200),
  );

  /** A slot series by name: a known slot task's own, else a pull-mode series that needs `every`. */
  const series = (name: string, every: string | undefined, timeZone: string | undefined): SlotSeriesClient => {
    const def = client.definition(name) as AnyTaskDefinition | undefined;
    if (def?.slot) {
      const own = client.slots(def);
      // Normalised intervals compared: "60m" is "1h".
      if (every !== undefined && parseInterval(every).key !== own.every) {
        throw new InvalidArgumentError("every", `"${name}" is a slot task of every ${own.every}, not ${every}`);
      }
      return own;
    }
    if (every === undefined) {
      throw new InvalidArgumentError(
        "every",
        `"${name}" is not a slot task this node knows: give the series' interval`,
      );
    }
    return client.slots(name, { every, ...(timeZone !== undefined ? { timeZone } : {}) });
  };

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/slots/{name}/coverage",
      summary: "Coverage of a slot series over a range: every slot's state, counts, gaps, a grid",
      tags: ["slots"],
      security,
      request: { params: S.NameParam, query: S.CoverageQuery },
      responses: { 200: json(S.SlotCoverage, "Coverage"), ...errors },
    }),
    async (c) => {
      const { name } = c.req.valid("param");
      const q = c.req.valid("query");
      const coverage = await series(name, q.every, q.timeZone).coverage({ from: new Date(q.from), to: new Date(q.to) });
      return c.json(wire(coverage), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/slots/{name}/reopen",
      summary: "Re-open the finished slots of a range for reprocessing",
      tags: ["slots"],
      security,
      request: {
        params: S.NameParam,
        body: { content: { "application/json": { schema: S.ReopenBody } }, required: true },
      },
      responses: { 200: json(S.ReopenResult, "Re-opened"), ...errors },
    }),
    async (c) => {
      const { name } = c.req.valid("param");
      const b = c.req.valid("json");
      const reopened = await series(name, b.every, b.timeZone).reopen(
        { from: new Date(b.from), to: new Date(b.to) },
        b.status ? { status: b.status } : {},
      );
      return c.json({ reopened }, 200);
    },
  );

  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    description: "A token configured with read scope (GET endpoints) or write scope (all)",
  });
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "Weft HTTP API",
      version: "1",
      description: "Operate a Weft cluster: schedule, inspect and cancel workflows, dead letters, queues, slots.",
    },
  });
  return app;
}
