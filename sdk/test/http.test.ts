import { createHash } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { compileErrors, validate } from "@readme/openapi-parser";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { eventually, freshDatabase } from "../../test/support.js";
import { createHttpApi, type HttpServer } from "../src/http/index.js";
import {
  ConfigError,
  createClient,
  createWeft,
  defineCronTask,
  defineSlotTask,
  defineTask,
  type Weft,
} from "../src/index.js";

// The HTTP API over real HTTP against a real node: every endpoint, every auth
// case, bad input of every kind.

const WRITE = "write-token-0123456789abcdef";
const READ = "read-token-0123456789abcdef";
const UNKNOWN_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
const gates = new Map<string, () => void>();

const echo = defineTask({
  name: "h.echo",
  input: z.object({ n: z.number().int() }),
  output: z.object({ doubled: z.number() }),
  run: ({ input }) => ({ doubled: input.n * 2 }),
});

const child = defineTask({ name: "h.child", input: z.object({}), output: z.null(), run: () => null });

const parent = defineTask({
  name: "h.parent",
  input: z.object({ children: z.number().int() }),
  output: z.null(),
  run: (ctx) => {
    for (let i = 0; i < ctx.input.children; i++) ctx.schedule(child, {});
    return null;
  },
});

const failing = defineTask({
  name: "h.failing",
  input: z.object({ why: z.string() }),
  output: z.null(),
  run: ({ input }) => {
    throw new Error(input.why);
  },
});

const gated = defineTask({
  name: "h.gated",
  input: z.object({ key: z.string() }),
  output: z.null(),
  run: (ctx) =>
    new Promise<null>((resolve) => {
      gates.set(ctx.input.key, () => resolve(null));
      ctx.signal.addEventListener("abort", () => resolve(null));
    }),
});

const hourly = defineSlotTask({ name: "h.hourly", every: "1h", output: z.null(), run: () => null });

const ticker = defineCronTask({ name: "h.ticker", cron: "0 3 * * *", output: z.null(), run: () => null });

interface Reply {
  status: number;
  headers: Headers;
  body: unknown;
  text: string;
}

function client(base: string) {
  return async (
    method: string,
    path: string,
    options: { token?: string | null; body?: unknown; raw?: string | Buffer; headers?: Record<string, string> } = {},
  ): Promise<Reply> => {
    const headers: Record<string, string> = { ...options.headers };
    const token = options.token === undefined ? WRITE : options.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let body: string | Buffer | undefined;
    if (options.raw !== undefined) body = options.raw;
    else if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers["content-type"] ??= "application/json";
    }
    const res = await fetch(`${base}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
    const text = await res.text();
    let parsed: unknown = null;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
    return { status: res.status, headers: res.headers, body: parsed, text };
  };
}

// biome-ignore lint/suspicious/noExplicitAny: response bodies are read loosely in assertions
type Json = Record<string, any>;

describe("HTTP API", () => {
  let weft: Weft;
  let server: HttpServer;
  let call: ReturnType<typeof client>;
  let url: string;

  beforeAll(async () => {
    url = await freshDatabase();
    weft = createWeft({
      connectionString: url,
      tasks: [echo, child, parent, failing, gated, hourly, ticker],
      taskDefaults: { retry: { mode: "OFF" } },
    });
    await weft.start();
    const api = createHttpApi(weft, {
      tokens: [
        { token: WRITE, scope: "write" },
        { sha256: createHash("sha256").update(READ).digest("hex"), scope: "read" },
      ],
      bodyLimitBytes: 64 * 1024,
    });
    server = await api.serve({ port: 0 });
    call = client(server.url);
  });
  afterAll(async () => {
    for (const open of gates.values()) open();
    await server?.close();
    await weft?.stop();
  });

  it("serves a valid OpenAPI 3.1 document generated from the route schemas", async () => {
    const res = await call("GET", "/openapi.json", { token: null });
    expect(res.status).toBe(200);
    const doc = res.body as Json;
    expect(doc.openapi).toBe("3.1.0");
    const result = await validate(structuredClone(doc) as never);
    expect(result.valid, result.valid ? "" : compileErrors(result)).toBe(true);
    expect(Object.keys(doc.paths).sort()).toEqual(
      [
        "/v1/cron",
        "/v1/dead-letters",
        "/v1/dead-letters/{taskId}",
        "/v1/dead-letters/{taskId}/requeue",
        "/v1/health",
        "/v1/nodes",
        "/v1/queues",
        "/v1/throughput",
        "/v1/slots/{name}/coverage",
        "/v1/slots/{name}/reopen",
        "/v1/tasks/{id}",
        "/v1/tasks/{name}",
        "/v1/workflows",
        "/v1/workflows/{id}",
        "/v1/workflows/{id}/cancel",
        "/v1/workflows/{id}/graph",
        "/v1/workflows/{id}/tasks",
        "/v1/whoami",
        "/v1/workflows/{id}/events",
        "/v1/tasks/{id}/attempts",
      ].sort(),
    );
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" });
    expect(doc.paths["/v1/workflows"].get.parameters.map((p: Json) => p.name)).toContain("cursor");
  });

  it("authenticates every endpoint but health with bearer tokens and scopes", async () => {
    const health = await call("GET", "/v1/health", { token: null });
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: "ok", nodeId: weft.nodeId, isLeader: true });

    const reads = [
      "/v1/workflows",
      "/v1/queues",
      "/v1/throughput",
      "/v1/nodes",
      "/v1/cron",
      "/v1/dead-letters",
      `/v1/tasks/${UNKNOWN_ID}`,
      "/v1/whoami",
      `/v1/workflows/${UNKNOWN_ID}/events`,
      `/v1/tasks/${UNKNOWN_ID}/attempts`,
    ];
    for (const path of reads) {
      for (const header of [
        undefined,
        "Bearer wrong-token-0123456789",
        "Basic d2VmdDp3ZWZ0",
        "Bearer",
        `Bearer  ${WRITE}x`,
      ]) {
        const res = await call("GET", path, { token: null, headers: header ? { authorization: header } : {} });
        expect(res.status, `${path} ${header}`).toBe(401);
        expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
        expect((res.body as Json).error.code).toBe("UNAUTHORIZED");
      }
      expect((await call("GET", path, { token: READ })).status).not.toBe(401);
      expect((await call("GET", path, { token: WRITE })).status).not.toBe(401);
    }
    // Scheme names are case-insensitive.
    expect((await call("GET", "/v1/nodes", { token: null, headers: { authorization: `bearer ${READ}` } })).status).toBe(
      200,
    );
    // A read token on every write endpoint: 403, and nothing written.
    const writes: [string, string, unknown][] = [
      ["POST", "/v1/tasks/h.echo", { input: { n: 1 } }],
      ["POST", `/v1/workflows/${UNKNOWN_ID}/cancel`, {}],
      ["POST", `/v1/dead-letters/${UNKNOWN_ID}/requeue`, undefined],
      ["DELETE", `/v1/dead-letters/${UNKNOWN_ID}`, undefined],
      ["POST", "/v1/slots/h.hourly/reopen", { from: "2026-01-01T00:00:00Z", to: "2026-01-01T03:00:00Z" }],
    ];
    const before = await weft.client.queueStats();
    for (const [method, path, body] of writes) {
      const res = await call(method, path, { token: READ, body });
      expect(res.status, path).toBe(403);
      expect((res.body as Json).error.code).toBe("FORBIDDEN");
      expect((await call(method, path, { token: null, body })).status).toBe(401);
    }
    expect(await weft.client.queueStats()).toEqual(before);
    expect((await call("POST", "/v1/tasks/h.echo", { token: WRITE, body: { input: { n: 1 } } })).status).toBe(201);
  });

  it("refuses to start without tokens unless auth is none, and validates its options", async () => {
    expect(() => createHttpApi(weft, {})).toThrow(ConfigError);
    expect(() => createHttpApi(weft, { tokens: [] })).toThrow(/auth: "none"/);
    expect(() => createHttpApi(weft, { tokens: [{ token: "short", scope: "write" }] })).toThrow(/16 characters/);
    expect(() => createHttpApi(weft, { tokens: [{ sha256: "abc", scope: "read" }] })).toThrow(/64 hexadecimal/);
    expect(() => createHttpApi(weft, { tokens: [{ token: WRITE, scope: "admin" as never }] })).toThrow(/scope/);
    expect(() => createHttpApi(weft, { auth: "none", tokens: [{ token: WRITE, scope: "read" }] })).toThrow(ConfigError);
    expect(() => createHttpApi(weft, { auth: "none", bodyLimitBytes: -1 })).toThrow(/bodyLimitBytes/);
    expect(() => createHttpApi(weft, { auth: "none", cors: { origin: [] } })).toThrow(/cors/);
    expect(() => createHttpApi(weft, { auth: "none", basePath: "weft/" })).toThrow(/basePath/);
    expect(() => createHttpApi(weft, { auth: "none", tokenz: [] } as never)).toThrow(/unknown option/);

    const open = await createHttpApi(weft, { auth: "none" }).serve({ port: 0 });
    try {
      const res = await fetch(`${open.url}/v1/nodes`);
      expect(res.status).toBe(200);
      // CORS is off unless configured.
      expect(res.headers.get("access-control-allow-origin")).toBeNull();
    } finally {
      await open.close();
    }
  });

  it("read-only mode refuses every write endpoint", async () => {
    const ro = await createHttpApi(weft, { tokens: [{ token: WRITE, scope: "write" }], readOnly: true }).serve({
      port: 0,
    });
    try {
      const roCall = client(ro.url);
      const res = await roCall("POST", "/v1/tasks/h.echo", { body: { input: { n: 1 } } });
      expect(res.status).toBe(403);
      expect((res.body as Json).error.code).toBe("READ_ONLY");
      expect((await roCall("DELETE", `/v1/dead-letters/${UNKNOWN_ID}`)).status).toBe(403);
      expect((await roCall("GET", "/v1/queues")).status).toBe(200);
    } finally {
      await ro.close();
    }
  });

  it("CORS answers the configured origin only", async () => {
    const api = createHttpApi(weft, {
      tokens: [{ token: WRITE, scope: "write" }],
      cors: { origin: "https://ops.example" },
    });
    const preflight = await api.fetch(
      new Request("http://x/v1/workflows", {
        method: "OPTIONS",
        headers: { origin: "https://ops.example", "access-control-request-method": "GET" },
      }),
    );
    expect(preflight.status).toBeLessThan(300);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("https://ops.example");
    const get = await api.fetch(
      new Request("http://x/v1/nodes", {
        headers: { origin: "https://evil.example", authorization: `Bearer ${WRITE}` },
      }),
    );
    expect(get.status).toBe(200);
    expect(get.headers.get("access-control-allow-origin")).not.toBe("https://evil.example");
  });

  it("schedules a task by name, validated by the task's own schema", async () => {
    const res = await call("POST", "/v1/tasks/h.echo", { body: { input: { n: 21 }, options: { priority: 5 } } });
    expect(res.status).toBe(201);
    const ref = res.body as Json;
    expect(ref.taskId).toBe(ref.workflowId);
    await weft.client.waitForWorkflow(ref.workflowId, { timeoutMs: 20_000 });
    const task = await call("GET", `/v1/tasks/${ref.taskId}`, { token: READ });
    expect(task.status).toBe(200);
    expect(task.body).toMatchObject({ id: ref.taskId, name: "h.echo", state: "COMPLETED", result: { doubled: 42 } });
    expect(typeof (task.body as Json).createdAt).toBe("string");
    expect(new Date((task.body as Json).finishedAt).getTime()).toBeGreaterThan(0);

    // Placement: delayed (parked), affinity, into an existing workflow.
    const delayed = (
      await call("POST", "/v1/tasks/h.echo", { body: { input: { n: 1 }, options: { delayMs: 3_600_000 } } })
    ).body as Json;
    const parked = await eventually(async () => {
      const t = await weft.client.getTask(delayed.taskId);
      return t.queue === "PARKED" ? t : undefined;
    }, 20_000);
    expect(parked.parkReason).toBe("RUN_AFTER");
    const runAt = new Date(Date.now() + 3_600_000).toISOString();
    const later = (await call("POST", "/v1/tasks/h.echo", { body: { input: { n: 1 }, options: { runAt } } }))
      .body as Json;
    expect((await weft.client.getTask(later.taskId)).runAfter?.toISOString()).toBe(runAt);
    const joined = await call("POST", "/v1/tasks/h.echo", {
      body: { input: { n: 2 }, options: { workflowId: delayed.workflowId, affinityGroup: "g", affinity: "k" } },
    });
    expect(joined.status).toBe(201);
    expect((joined.body as Json).workflowId).toBe(delayed.workflowId);
    await weft.client.cancelWorkflow(delayed.workflowId);
    await weft.client.cancelWorkflow(later.workflowId);
    // Into a finished workflow: 409.
    const finished = await call("POST", "/v1/tasks/h.echo", {
      body: { input: { n: 2 }, options: { workflowId: ref.workflowId } },
    });
    expect(finished.status).toBe(409);
    expect((finished.body as Json).error.code).toBe("WORKFLOW_NOT_RUNNING");
  });

  it("schedules once per idempotency key: a repeat gets the first ids, a different input a 409", async () => {
    const body = { input: { n: 7 }, options: { idempotencyKey: "http-order-1" } };
    const first = await call("POST", "/v1/tasks/h.echo", { body });
    expect(first.status).toBe(201);
    const again = await call("POST", "/v1/tasks/h.echo", { body });
    expect(again.status).toBe(201);
    expect(again.body).toEqual(first.body);
    const other = await call("POST", "/v1/tasks/h.echo", {
      body: { input: { n: 8 }, options: { idempotencyKey: "http-order-1" } },
    });
    expect(other.status).toBe(409);
    expect((other.body as Json).error.code).toBe("IDEMPOTENCY_CONFLICT");
    expect((other.body as Json).error.message).toContain((first.body as Json).taskId);
    const tooLong = await call("POST", "/v1/tasks/h.echo", {
      body: { input: { n: 8 }, options: { idempotencyKey: "k".repeat(256) } },
    });
    expect(tooLong.status).toBe(400);
    const empty = await call("POST", "/v1/tasks/h.echo", {
      body: { input: { n: 8 }, options: { idempotencyKey: "" } },
    });
    expect(empty.status).toBe(400);
    const tasks = await weft.client.getWorkflowTasks((first.body as Json).workflowId);
    expect(tasks).toHaveLength(1);
  });

  it("answers bad input of every kind with a 400 (or 404/413/415) and the issues", async () => {
    const unknown = await call("POST", "/v1/tasks/h.nope", { body: { input: {} } });
    expect(unknown.status).toBe(404);
    expect((unknown.body as Json).error.code).toBe("UNKNOWN_TASK");
    expect((unknown.body as Json).error.known).toEqual(expect.arrayContaining(["h.echo", "h.parent"]));

    const invalid = await call("POST", "/v1/tasks/h.echo", { body: { input: { n: "two" } } });
    expect(invalid.status).toBe(400);
    expect((invalid.body as Json).error.code).toBe("INPUT_INVALID");
    expect((invalid.body as Json).error.issues).toEqual([expect.objectContaining({ path: "n" })]);

    const cases: [
      string,
      string,
      { body?: unknown; raw?: string; headers?: Record<string, string> },
      number,
      string,
    ][] = [
      [
        "POST",
        "/v1/tasks/h.echo",
        { body: { input: { n: 1 }, options: { priority: "high" } } },
        400,
        "json.options.priority",
      ],
      [
        "POST",
        "/v1/tasks/h.echo",
        { body: { input: { n: 1 }, options: { delayMs: -1 } } },
        400,
        "json.options.delayMs",
      ],
      [
        "POST",
        "/v1/tasks/h.echo",
        { body: { input: { n: 1 }, options: { runAt: "tomorrow" } } },
        400,
        "json.options.runAt",
      ],
      [
        "POST",
        "/v1/tasks/h.echo",
        { body: { input: { n: 1 }, options: { workflowId: "'; DROP TABLE tasks; --" } } },
        400,
        "json.options.workflowId",
      ],
      ["POST", "/v1/tasks/h.echo", { body: { input: { n: 1 }, options: { tx: {} } } }, 400, "json.options"],
      ["POST", "/v1/tasks/h.echo", { body: { input: { n: 1 }, extra: true } }, 400, "json"],
      ["POST", "/v1/tasks/h.echo", { body: [1, 2] }, 400, "json"],
      ["POST", "/v1/tasks/h.echo'%3B%20DROP%20TABLE%20tasks", { body: { input: {} } }, 400, "param.name"],
      ["GET", "/v1/tasks/1%20OR%201%3D1", {}, 400, "param.id"],
      ["GET", "/v1/workflows/robert'%3B--", {}, 400, "param.id"],
      ["GET", "/v1/workflows?limit=-1", {}, 400, "query.limit"],
      ["GET", "/v1/workflows?limit=0", {}, 400, "query.limit"],
      ["GET", "/v1/workflows?limit=501", {}, 400, "query.limit"],
      ["GET", "/v1/workflows?limit=abc", {}, 400, "query.limit"],
      ["GET", "/v1/workflows?limit=2.5", {}, 400, "query.limit"],
      ["GET", "/v1/workflows?createdAfter=yesterday", {}, 400, "query.createdAfter"],
      ["GET", "/v1/workflows?rootTaskName=x'%20OR%20'1'%3D'1", {}, 400, "query.rootTaskName"],
      ["GET", `/v1/workflows/${UNKNOWN_ID}/tasks?state=DONE`, {}, 400, "query.state"],
      ["GET", "/v1/dead-letters?limit=1000", {}, 400, "query.limit"],
      ["GET", "/v1/throughput?window=0", {}, 400, "query.window"],
      ["GET", "/v1/throughput?window=3601", {}, 400, "query.window"],
      ["GET", "/v1/throughput?window=1.5", {}, 400, "query.window"],
      ["GET", "/v1/throughput?window=abc", {}, 400, "query.window"],
      ["GET", "/v1/dead-letters?failedFrom=notadate", {}, 400, "query.failedFrom"],
      ["GET", "/v1/slots/h.hourly/coverage?from=2026-01-01T00:00:00Z", {}, 400, "query.to"],
      ["POST", `/v1/workflows/${UNKNOWN_ID}/cancel`, { body: { reason: "x".repeat(2_001) } }, 400, "json.reason"],
      ["POST", `/v1/workflows/${UNKNOWN_ID}/cancel`, { body: { reason: 42 } }, 400, "json.reason"],
    ];
    for (const [method, path, options, status, where] of cases) {
      const res = await call(method, path, options);
      expect(res.status, `${method} ${path}`).toBe(status);
      const error = (res.body as Json).error;
      expect(error.code, path).toBe("BAD_REQUEST");
      expect(error.issues.map((i: Json) => i.path).join(" "), path).toContain(where);
    }
    // Values the schemas let through but the client refuses: still 400, with the argument named.
    for (const path of [
      "/v1/workflows?status=DONE",
      "/v1/workflows?cursor=not-a-cursor",
      `/v1/workflows?cursor=${Buffer.from(`t1:${UNKNOWN_ID}`).toString("base64url")}`,
      "/v1/workflows?createdAfter=2026-01-02T00:00:00Z&createdBefore=2026-01-01T00:00:00Z",
      `/v1/workflows/${UNKNOWN_ID}/tasks?cursor=%27%3B--`,
      "/v1/slots/h.hourly/coverage?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
      "/v1/slots/h.hourly/coverage?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z&every=15m",
      "/v1/slots/h.pull/coverage?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z",
      "/v1/slots/h.pull/coverage?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z&every=7m",
    ]) {
      const res = await call("GET", path);
      expect(res.status, path).toBe(400);
      expect(["INVALID_ARGUMENT", "INVALID_RANGE", "INVALID_INTERVAL"], path).toContain((res.body as Json).error.code);
    }
    const runAtAndDelay = await call("POST", "/v1/tasks/h.echo", {
      body: { input: { n: 1 }, options: { delayMs: 5, runAt: new Date().toISOString() } },
    });
    expect(runAtAndDelay.status).toBe(400);
    expect((runAtAndDelay.body as Json).error.message).toMatch(/options\.runAt/);

    const malformed = await call("POST", "/v1/tasks/h.echo", {
      raw: "{ not json",
      headers: { "content-type": "application/json" },
    });
    expect(malformed.status).toBe(400);
    expect((malformed.body as Json).error.code).toBe("BAD_REQUEST");
    const noType = await call("POST", "/v1/tasks/h.echo", { raw: JSON.stringify({ input: { n: 1 } }) });
    expect(noType.status).toBe(415);
    const huge = await call("POST", "/v1/tasks/h.echo", { body: { input: { n: 1, pad: "x".repeat(100 * 1024) } } });
    expect(huge.status).toBe(413);
    expect((huge.body as Json).error.code).toBe("PAYLOAD_TOO_LARGE");
    // Without a Content-Length (chunked), the limit holds while the body streams in.
    const chunked = await fetch(`${server.url}/v1/tasks/h.echo`, {
      method: "POST",
      headers: { authorization: `Bearer ${WRITE}`, "content-type": "application/json" },
      body: new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode(`{"input":{"n":1,"pad":"${"y".repeat(80 * 1024)}"}}`));
          controller.close();
        },
      }),
      duplex: "half",
    } as RequestInit);
    expect(chunked.status).toBe(413);
    const noRoute = await call("GET", "/v1/nothing-here");
    expect(noRoute.status).toBe(404);
    expect((noRoute.body as Json).error.code).toBe("NOT_FOUND");
    // Nothing in any of these bodies is a stack trace.
    for (const r of [unknown, invalid, malformed, huge]) expect(r.text).not.toMatch(/\n\s+at |\.ts:\d+/);
  });

  it("lists workflows with filters and cursors; shows one with counts, tasks, graph; cancels", async () => {
    const start = new Date(Date.now() - 1).toISOString();
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      ids.push(
        ((await call("POST", "/v1/tasks/h.parent", { body: { input: { children: 3 } } })).body as Json).workflowId,
      );
    }
    for (const id of ids) await weft.client.waitForWorkflow(id, { timeoutMs: 20_000 });
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q = new URLSearchParams({
        rootTaskName: "h.parent",
        createdAfter: start,
        limit: "3",
        status: "COMPLETED,FAILED",
      });
      if (cursor) q.set("cursor", cursor);
      const res = await call("GET", `/v1/workflows?${q}`, { token: READ });
      expect(res.status).toBe(200);
      const page = res.body as Json;
      seen.push(...page.items.map((w: Json) => w.id));
      for (const w of page.items)
        expect(w).toMatchObject({ rootTaskName: "h.parent", status: "COMPLETED", totalTasks: 4 });
      cursor = page.nextCursor;
      pages++;
    } while (cursor && pages < 50);
    expect(seen).toEqual([...ids].reverse());
    expect(pages).toBeGreaterThanOrEqual(3);

    const id = ids[0] as string;
    const show = await call("GET", `/v1/workflows/${id}`, { token: READ });
    expect(show.status).toBe(200);
    expect(show.body).toMatchObject({
      workflow: { id, status: "COMPLETED", totalTasks: 4, pendingTasks: 0 },
      counts: { PENDING: 0, RUNNING: 0, COMPLETED: 4, FAILED: 0, CANCELLED: 0 },
    });
    const page1 = (await call("GET", `/v1/workflows/${id}/tasks?limit=3`, { token: READ })).body as Json;
    expect(page1.items).toHaveLength(3);
    expect(page1.items[0].id).toBe(id);
    const page2 = (await call("GET", `/v1/workflows/${id}/tasks?limit=3&cursor=${page1.nextCursor}`, { token: READ }))
      .body as Json;
    expect(page2.items).toHaveLength(1);
    expect(page2.nextCursor).toBeNull();
    const graph = (await call("GET", `/v1/workflows/${id}/graph`, { token: READ })).body as Json;
    expect(graph.nodes).toHaveLength(4);
    expect(graph.edges.filter((e: Json) => e.kind === "spawn")).toHaveLength(3);
    expect(graph.levels[0]).toEqual([id]);
    for (const path of [
      `/v1/workflows/${UNKNOWN_ID}`,
      `/v1/workflows/${UNKNOWN_ID}/tasks`,
      `/v1/workflows/${UNKNOWN_ID}/graph`,
      `/v1/tasks/${UNKNOWN_ID}`,
    ]) {
      const res = await call("GET", path, { token: READ });
      expect(res.status, path).toBe(404);
      expect((res.body as Json).error.code).toMatch(/NOT_FOUND$/);
    }

    // Cancel a running workflow, with a reason.
    const running = ((await call("POST", "/v1/tasks/h.gated", { body: { input: { key: "c1" } } })).body as Json)
      .workflowId;
    await eventually(async () => (gates.has("c1") ? true : undefined), 20_000);
    const cancel = await call("POST", `/v1/workflows/${running}/cancel`, { body: { reason: "operator says so" } });
    expect(cancel.status).toBe(200);
    expect(cancel.body).toEqual({ cancelled: true });
    const after = (await call("GET", `/v1/workflows/${running}`, { token: READ })).body as Json;
    expect(after.workflow.status).toBe("CANCELLED");
    expect(after.counts.CANCELLED).toBe(1);
    expect((await call("POST", `/v1/workflows/${running}/cancel`, {})).body).toEqual({ cancelled: false });
    expect((await call("POST", `/v1/workflows/${running}/cancel`)).status).toBe(200);
    expect((await call("POST", `/v1/workflows/${UNKNOWN_ID}/cancel`, { body: {} })).status).toBe(404);
    const cancelled = (
      await call("GET", `/v1/workflows?status=CANCELLED&createdAfter=${encodeURIComponent(start)}`, {
        token: READ,
      })
    ).body as Json;
    expect(cancelled.items.map((w: Json) => w.id)).toEqual([running]);
  });

  it("lists, shows, requeues and deletes dead letters", async () => {
    const ref = (await call("POST", "/v1/tasks/h.failing", { body: { input: { why: "broken on purpose" } } }))
      .body as Json;
    await weft.client.waitForWorkflow(ref.workflowId, { timeoutMs: 20_000 });
    const list = await call("GET", "/v1/dead-letters?taskName=h.failing&limit=10", { token: READ });
    expect(list.status).toBe(200);
    expect((list.body as Json).items.map((d: Json) => d.taskId)).toEqual([ref.taskId]);
    expect((await call("GET", `/v1/dead-letters?workflowId=${UNKNOWN_ID}`, { token: READ })).body).toEqual({
      items: [],
    });
    const show = await call("GET", `/v1/dead-letters/${ref.taskId}`, { token: READ });
    expect(show.status).toBe(200);
    const detail = show.body as Json;
    expect(detail.deadLetter).toMatchObject({
      taskId: ref.taskId,
      taskName: "h.failing",
      input: { why: "broken on purpose" },
    });
    expect(detail.deadLetter.error.message).toBe("broken on purpose");
    expect(detail.deadLetter.attempts).toHaveLength(1);
    expect(detail.workflow).toMatchObject({ id: ref.workflowId, status: "FAILED" });
    expect(detail.slot).toBeNull();

    const requeue = await call("POST", `/v1/dead-letters/${ref.taskId}/requeue`);
    expect(requeue.status).toBe(200);
    expect(requeue.body).toEqual({ requeued: [ref.taskId] });
    // It fails again and is copied anew, with both attempts.
    const again = await eventually(async () => {
      const r = await call("GET", `/v1/dead-letters/${ref.taskId}`, { token: READ });
      return r.status === 200 && (r.body as Json).deadLetter.attempts.length === 2 ? r : undefined;
    }, 20_000);
    expect((again.body as Json).workflow.status).toBe("FAILED");
    const del = await call("DELETE", `/v1/dead-letters/${ref.taskId}`);
    expect(del.status).toBe(200);
    expect(del.body).toEqual({ deleted: 1 });
    for (const [method, path] of [
      ["DELETE", `/v1/dead-letters/${ref.taskId}`],
      ["GET", `/v1/dead-letters/${ref.taskId}`],
      ["POST", `/v1/dead-letters/${ref.taskId}/requeue`],
    ] as const) {
      const res = await call(method, path);
      expect(res.status, `${method} ${path}`).toBe(404);
      expect((res.body as Json).error.code).toBe("DEAD_LETTER_NOT_FOUND");
    }
  });

  it("reports queues, nodes and cron", async () => {
    const count = (body: Json, queue: string, taskName: string) =>
      body.queues.find((q: Json) => q.queue === queue && q.taskName === taskName)?.count ?? 0;
    const reason = (body: Json, r: string) => body.parked.find((p: Json) => p.reason === r)?.count ?? 0;
    const before = (await call("GET", "/v1/queues", { token: READ })).body as Json;
    const parked = (
      (await call("POST", "/v1/tasks/h.echo", { body: { input: { n: 1 }, options: { delayMs: 3_600_000 } } }))
        .body as Json
    ).workflowId;
    const queues = await eventually(async () => {
      const q = (await call("GET", "/v1/queues", { token: READ })).body as Json;
      return reason(q, "RUN_AFTER") === reason(before, "RUN_AFTER") + 1 ? q : undefined;
    }, 20_000);
    expect(count(queues, "PARKED", "h.echo")).toBe(count(before, "PARKED", "h.echo") + 1);
    expect(Array.isArray(queues.readyLag)).toBe(true);
    await weft.client.cancelWorkflow(parked);

    // The cancelled task, in the throughput's last minute (default window: 900 one-second buckets).
    const throughput = (await call("GET", "/v1/throughput?window=60", { token: READ })).body as Json;
    expect(throughput.buckets).toHaveLength(60);
    expect(new Date(throughput.to).getTime() - new Date(throughput.from).getTime()).toBe(60_000);
    expect(throughput.buckets.reduce((n: number, b: Json) => n + b.cancelled, 0)).toBeGreaterThanOrEqual(1);
    expect(Object.keys(throughput.buckets[0]).sort()).toEqual(["at", "cancelled", "completed", "failed"]);
    expect(((await call("GET", "/v1/throughput", { token: READ })).body as Json).buckets).toHaveLength(900);

    const nodes = (await call("GET", "/v1/nodes", { token: READ })).body as Json;
    expect(nodes.items).toHaveLength(1);
    expect(nodes.items[0]).toMatchObject({ id: weft.nodeId, isLeader: true, draining: false });
    expect(nodes.items[0].taskNames).toContain("h.echo");
    expect(typeof nodes.items[0].heartbeatAgeMs).toBe("number");

    const cron = (await call("GET", "/v1/cron", { token: READ })).body as Json;
    expect(cron.items).toHaveLength(1);
    expect(cron.items[0]).toMatchObject({ taskName: "h.ticker", pattern: "0 3 * * *", timezone: "UTC" });
    // The leader records where a new schedule starts (a tick at its first sight), or nothing yet.
    const last = cron.items[0].lastTickAt;
    expect(last === null || !Number.isNaN(new Date(last).getTime())).toBe(true);
    expect(new Date(cron.items[0].nextTickAt).getUTCHours()).toBe(3);
  });

  it("reports slot coverage and re-opens slots", async () => {
    const from = "2026-01-01T00:00:00.000Z";
    const to = "2026-01-01T04:00:00.000Z";
    await weft.client.slots(hourly).ensure({ from: new Date(from), to: new Date(to) });
    const coverage = await eventually(async () => {
      const r = await call("GET", `/v1/slots/h.hourly/coverage?from=${from}&to=${to}`, { token: READ });
      return r.status === 200 && (r.body as Json).counts.complete === 4 ? (r.body as Json) : undefined;
    }, 20_000);
    expect(coverage).toMatchObject({ every: "1h", grid: "####", from, to, gaps: [] });
    expect(
      (await call("GET", `/v1/slots/h.hourly/coverage?from=${from}&to=${to}&every=60m`, { token: READ })).status,
    ).toBe(200);
    const reopen = await call("POST", "/v1/slots/h.hourly/reopen", {
      body: { from, to: "2026-01-01T02:00:00.000Z", status: ["COMPLETE"] },
    });
    expect(reopen.status).toBe(200);
    expect(reopen.body).toEqual({ reopened: 2 });
    const after = await eventually(async () => {
      const r = (await call("GET", `/v1/slots/h.hourly/coverage?from=${from}&to=${to}`, { token: READ })).body as Json;
      return r.counts.complete === 4 && r.slots[0].generation === 2 ? r : undefined;
    }, 20_000);
    expect(after.slots.map((s: Json) => s.generation)).toEqual([2, 2, 1, 1]);
    // A pull-mode series by name and interval: nothing ensured yet.
    const pull = (await call("GET", `/v1/slots/h.pull/coverage?from=${from}&to=${to}&every=1h`, { token: READ }))
      .body as Json;
    expect(pull.grid).toBe("????");
  });

  it("mounts as a node:http listener under a prefix, and as a fetch handler", async () => {
    const api = createHttpApi(weft, { tokens: [{ token: READ, scope: "read" }], basePath: "/ops/weft" });
    const host = createServer((req, res) => {
      if (req.url?.startsWith("/ops/weft/")) return api.handler(req, res);
      res.writeHead(200, { "content-type": "text/plain" }).end("the app's own route");
    });
    await new Promise<void>((resolve) => host.listen(0, "127.0.0.1", resolve));
    try {
      const base = `http://127.0.0.1:${(host.address() as AddressInfo).port}`;
      expect(await (await fetch(`${base}/hello`)).text()).toBe("the app's own route");
      const nodes = await fetch(`${base}/ops/weft/v1/nodes`, { headers: { authorization: `Bearer ${READ}` } });
      expect(nodes.status).toBe(200);
      expect(((await nodes.json()) as Json).items).toHaveLength(1);
      expect((await fetch(`${base}/ops/weft/openapi.json`)).status).toBe(200);
      // Under a prefix as at the root: no token, no data; health stays open.
      expect((await fetch(`${base}/ops/weft/v1/nodes`)).status).toBe(401);
      expect((await fetch(`${base}/ops/weft/v1/health`)).status).toBe(200);
      expect(
        (await fetch(`${base}/ops/weft/v1/nothing`, { headers: { authorization: `Bearer ${READ}` } })).status,
      ).toBe(404);
    } finally {
      await new Promise((r) => host.close(r));
    }
    const viaFetch = await api.fetch(new Request("http://x/ops/weft/v1/health"));
    expect(viaFetch.status).toBe(200);
  });

  it("answers an internal error with a generic 500, never its message or stack", async () => {
    // A client whose pool has been closed: every query throws a pg error.
    const logged: object[] = [];
    const logger = {
      debug: () => undefined,
      info: () => undefined,
      warn: () => undefined,
      error: (obj: object) => void logged.push(obj),
      child: () => logger,
    };
    const broken = createClient({ connectionString: url, tasks: [echo], logger });
    await broken.start();
    await broken.stop();
    const api = createHttpApi(broken, { tokens: [{ token: WRITE, scope: "write" }] });
    for (const [method, path, body] of [
      ["GET", "/v1/workflows"],
      ["GET", "/v1/queues"],
      ["POST", "/v1/tasks/h.echo", { input: { n: 1 } }],
    ] as const) {
      const res = await api.fetch(
        new Request(`http://x${path}`, {
          method,
          headers: { authorization: `Bearer ${WRITE}`, "content-type": "application/json" },
          ...(body ? { body: JSON.stringify(body) } : {}),
        }),
      );
      expect(res.status, path).toBe(500);
      const text = await res.text();
      expect(JSON.parse(text)).toEqual({ error: { code: "INTERNAL", message: expect.any(String) } });
      expect(text).not.toMatch(/pool|Cannot|\bat\b|\.ts/);
    }
    // The server's log has what the client was not told.
    expect(logged).toHaveLength(3);
    expect(String((logged[0] as { err?: Error }).err?.message)).toMatch(/pool/);
    const health = await api.fetch(new Request("http://x/v1/health"));
    expect(health.status).toBe(503);
  });
});
