// The web dashboard's server side: its static files (built by Vite into
// dashboard/dist, shipped in the package's dist/dashboard), GET /v1/whoami and
// the server-sent events of a workflow. Mounted by createHttpApi; the UI only
// talks to the /v1 API.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { ConfigError, type Logger } from "@weft/engine";
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import { taskAttempts } from "../admin.js";
import { engineOf } from "../internal.js";
import type { TaskState, WorkflowStatus } from "../types.js";
import type { Weft } from "../weft.js";
import type { TokenScope } from "./auth.js";
import * as S from "./schemas.js";

export interface DashboardOptions {
  /** Where the UI is served, e.g. "/" (the default) or "/ui". The API stays at /v1. */
  readonly path?: string;
}

type Env = { Variables: { scope: TokenScope } };

/** Validates `dashboard` of the HTTP options: the path the UI is served at, or null when disabled. */
export function dashboardPath(option: unknown): string | null {
  if (option === false) return null;
  if (option === undefined || option === true) return "/";
  if (typeof option !== "object" || option === null) {
    throw new ConfigError("http.dashboard", "expected false or { path }");
  }
  for (const key of Object.keys(option)) {
    if (key !== "path") throw new ConfigError(`http.dashboard.${key}`, "unknown option; known: path");
  }
  const path = (option as DashboardOptions).path ?? "/";
  if (typeof path !== "string" || (path !== "/" && !/^(\/[A-Za-z0-9._~-]+)+$/.test(path))) {
    throw new ConfigError("http.dashboard.path", 'expected "/" or a path such as "/ui" (no trailing slash)');
  }
  if (path === "/v1" || path.startsWith("/v1/") || path === "/openapi.json") {
    throw new ConfigError("http.dashboard.path", "the API's own paths (/v1, /openapi.json) cannot hold the dashboard");
  }
  return path;
}

// ---------------------------------------------------------------------------
// Static files

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".txt": "text/plain; charset=utf-8",
};

/** Where the built files are: the package's dist/dashboard, else (in the repository) dashboard/dist. */
function candidates(): string[] {
  return [
    fileURLToPath(new URL("../dashboard/", import.meta.url)),
    fileURLToPath(new URL("../../../dashboard/dist/", import.meta.url)),
  ];
}

interface StaticFiles {
  /** Relative path ("index.html", "assets/index-abc.js") to its bytes and type. */
  readonly files: ReadonlyMap<string, { readonly body: Buffer; readonly type: string }>;
}

function listFiles(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) out.push(...listFiles(dir, rel));
    else if (entry.isFile()) out.push(rel);
  }
  return out;
}

/**
 * Loads the built files once (they are small: the whole UI is under 200 kB).
 * Only files found at load are ever served: a request path is looked up in
 * this map, never joined to a directory, so no path can escape it.
 */
function loadStatic(): StaticFiles | null {
  for (const dir of candidates()) {
    if (!existsSync(join(dir, "index.html")) || !statSync(dir).isDirectory()) continue;
    const files = new Map<string, { body: Buffer; type: string }>();
    for (const rel of listFiles(dir)) {
      files.set(rel, {
        body: readFileSync(join(dir, rel)),
        type: TYPES[extname(rel)] ?? "application/octet-stream",
      });
    }
    return { files };
  }
  return null;
}

const NOT_BUILT = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Weft dashboard not built</title></head>
<body style="font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;line-height:1.5">
<h1>Dashboard not built</h1>
<p>The dashboard's files are missing: run <code>pnpm build</code> (or <code>pnpm --filter @weft/dashboard build</code>)
in the repository. The HTTP API under <code>/v1</code> works without them.</p></body></html>`;

// ---------------------------------------------------------------------------
// Live updates of a workflow

export interface WorkflowSnapshot {
  readonly workflow: WorkflowStatus;
  readonly counts: Record<TaskState, number>;
}

type Subscriber = (snapshot: WorkflowSnapshot) => void;

/** After a notification, the workflow's counts are read again at most this often (per workflow). */
const READ_INTERVAL_MS = 250;
/** Without any notification (one lost while the LISTEN connection was down), read again after this long. */
const FALLBACK_MS = 5_000;

/**
 * The workflows watched by open event streams. One LISTEN connection (the
 * engine's) tells when tasks changed somewhere: `p` after every batch of
 * outcomes and every schedule, `n:` when tasks were assigned, `r:` and `w:`
 * on cancellations and finished workflows. On one, every watched workflow's
 * counts by state are read once (throttled, shared by all the streams of that
 * workflow) and pushed when they changed: a few reads per second per watched
 * workflow, whatever the number of its tasks or of open pages.
 */
class WorkflowWatches {
  private readonly watches = new Map<
    string,
    { subs: Set<Subscriber>; last: string; timer: NodeJS.Timeout | null; reading: boolean; again: boolean }
  >();
  private listening: Promise<void> | null = null;
  private fallback: NodeJS.Timeout | null = null;

  constructor(
    private readonly weft: Weft,
    private readonly log: Logger,
  ) {}

  async read(id: string): Promise<WorkflowSnapshot> {
    const [workflow, counts] = await Promise.all([
      this.weft.client.getWorkflow(id),
      this.weft.client.workflowTaskCounts(id),
    ]);
    return { workflow, counts };
  }

  private listen(): Promise<void> {
    this.listening ??= (async () => {
      const listener = engineOf(this.weft).listener;
      await listener.start();
      const all = () => {
        for (const id of this.watches.keys()) this.schedule(id);
      };
      for (const kind of ["planner", "nodes", "workflows", "reconcile"] as const) listener.on(kind, all);
      listener.onReconnect(all);
    })();
    return this.listening;
  }

  async subscribe(id: string, sub: Subscriber, first: WorkflowSnapshot): Promise<() => void> {
    await this.listen();
    let watch = this.watches.get(id);
    if (!watch) {
      watch = { subs: new Set(), last: JSON.stringify(first), timer: null, reading: false, again: false };
      this.watches.set(id, watch);
    }
    watch.subs.add(sub);
    this.fallback ??= setInterval(() => {
      for (const key of this.watches.keys()) this.schedule(key);
    }, FALLBACK_MS);
    this.fallback.unref();
    // Anything that changed between the first read and the subscription.
    this.schedule(id);
    return () => {
      const w = this.watches.get(id);
      if (!w) return;
      w.subs.delete(sub);
      if (w.subs.size === 0) {
        if (w.timer) clearTimeout(w.timer);
        this.watches.delete(id);
      }
      if (this.watches.size === 0 && this.fallback) {
        clearInterval(this.fallback);
        this.fallback = null;
      }
    };
  }

  private schedule(id: string): void {
    const watch = this.watches.get(id);
    if (!watch) return;
    if (watch.reading) {
      watch.again = true;
      return;
    }
    if (watch.timer) return;
    watch.timer = setTimeout(() => {
      watch.timer = null;
      watch.reading = true;
      this.read(id)
        .then((snapshot) => {
          const key = JSON.stringify(snapshot);
          if (key === watch.last) return;
          watch.last = key;
          for (const sub of watch.subs) sub(snapshot);
        })
        .catch((error: unknown) =>
          this.log.warn({ event: "dashboard.read_failed", err: error, workflowId: id }, "workflow events: read failed"),
        )
        .finally(() => {
          watch.reading = false;
          if (watch.again) {
            watch.again = false;
            this.schedule(id);
          }
        });
    }, READ_INTERVAL_MS);
    watch.timer.unref();
  }
}

// ---------------------------------------------------------------------------

export interface DashboardSettings {
  /** The UI's path, or null when the dashboard is disabled (whoami and the events stay: they are API). */
  readonly path: string | null;
  /** The prefix the whole API is mounted under ("" or e.g. "/weft"), which the UI prefixes to /v1. */
  readonly basePath: string;
  readonly readOnly: boolean;
  readonly auth: "bearer" | "none";
  readonly log: Logger;
}

const Whoami = z
  .object({
    scope: z.enum(["read", "write"]).openapi({ description: "write when this token may call the write endpoints" }),
    auth: z.enum(["bearer", "none"]),
    readOnly: z.boolean().openapi({ description: "The whole API refuses writes (then scope is read)" }),
  })
  .openapi("Whoami");

const errors = {
  401: { content: { "application/json": { schema: S.ErrorBody } }, description: "No valid bearer token" },
};

/** Adds whoami, the workflow events and (unless disabled) the UI's files to the API's app. */
export function mountDashboard(app: OpenAPIHono<Env>, weft: Weft, settings: DashboardSettings): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/whoami",
      summary: "What the presented token may do (the dashboard hides the actions it cannot take)",
      tags: ["health"],
      security: [{ bearer: [] }],
      responses: { 200: { content: { "application/json": { schema: Whoami } }, description: "Its scope" }, ...errors },
    }),
    (c) =>
      c.json(
        {
          scope: settings.readOnly ? ("read" as const) : c.get("scope"),
          auth: settings.auth,
          readOnly: settings.readOnly,
        },
        200,
      ),
  );

  const Attempts = z
    .object({
      items: z.array(
        z.object({
          attempt: z.number().int(),
          node: z.string().nullable(),
          startedAt: z.string().nullable(),
          endedAt: z.string(),
          error: z.record(z.string(), z.unknown()).nullable(),
        }),
      ),
    })
    .openapi("TaskAttempts");
  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/tasks/{id}/attempts",
      summary: "A task's earlier attempts: each failed or lost one with its node, times and error, oldest first",
      description: "The attempt the task is on (or finished with) is the task's own: attempt, node, assignedAt.",
      tags: ["tasks"],
      security: [{ bearer: [] }],
      request: { params: S.IdParam },
      responses: {
        200: { content: { "application/json": { schema: Attempts } }, description: "Its attempts" },
        ...errors,
        404: { content: { "application/json": { schema: S.ErrorBody } }, description: "No such task" },
      },
    }),
    async (c) => {
      const items = await taskAttempts(engineOf(weft), c.req.valid("param").id);
      return c.json(JSON.parse(JSON.stringify({ items })) as z.infer<typeof Attempts>, 200);
    },
  );

  const watches = new WorkflowWatches(weft, settings.log);
  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/workflows/{id}/events",
      summary: "Server-sent events: the workflow's status and task counts, pushed when they change",
      description:
        "An event `snapshot` (data: { workflow, counts }) at once, then one each time the workflow's tasks change " +
        "state (fed by the engine's LISTEN/NOTIFY, read again at most 4 times a second), and a comment every " +
        "15 s to keep the connection open. The stream ends after the workflow finished.",
      tags: ["workflows"],
      security: [{ bearer: [] }],
      request: { params: S.IdParam },
      responses: {
        200: { content: { "text/event-stream": { schema: z.string() } }, description: "The event stream" },
        ...errors,
        404: { content: { "application/json": { schema: S.ErrorBody } }, description: "No such workflow" },
      },
    }),
    // The first read before the stream opens: an unknown workflow is a 404 like elsewhere.
    async (c) => {
      const { id } = c.req.valid("param");
      const first = await watches.read(id);
      return streamSSE(c, async (stream) => {
        let closed = false;
        let wake: () => void = () => undefined;
        const queue: WorkflowSnapshot[] = [first];
        const unsubscribe = await watches.subscribe(
          id,
          (s) => {
            queue.push(s);
            wake();
          },
          first,
        );
        stream.onAbort(() => {
          closed = true;
          wake();
        });
        try {
          let seq = 0;
          while (!closed) {
            const next = queue.shift();
            if (next) {
              await stream.writeSSE({ event: "snapshot", id: String(++seq), data: JSON.stringify(next) });
              if (next.workflow.status !== "RUNNING" && queue.length === 0) break;
              continue;
            }
            await new Promise<void>((resolve) => {
              const keepAlive = setTimeout(() => {
                void stream.write(": keep-alive\n\n").finally(resolve);
              }, 15_000);
              wake = () => {
                clearTimeout(keepAlive);
                resolve();
              };
            });
          }
        } finally {
          unsubscribe();
        }
      });
    },
  );

  const path = settings.path;
  if (path === null) return;
  let loaded: StaticFiles | null = null;
  // Paths the build has (and, before a build, the page and its assets): any
  // other falls through to the routes after this one and the JSON not-found.
  const serve = (c: Context<Env>, rel: string, next: () => Promise<void>) => {
    const page = rel === "" || rel === "index.html";
    loaded ??= loadStatic();
    if (!loaded) return page || rel.startsWith("assets/") ? c.html(NOT_BUILT, 503) : next();
    const file = loaded.files.get(page ? "index.html" : rel);
    if (!file) return next();
    if (page) {
      // The UI finds the API through this: the prefix the API is mounted under.
      const html = file.body.toString("utf8").replace('content="__WEFT_API_BASE__"', `content="${settings.basePath}"`);
      return c.body(html, 200, {
        "content-type": file.type,
        "cache-control": "no-cache",
        "x-content-type-options": "nosniff",
        "content-security-policy":
          "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
      });
    }
    return c.body(new Uint8Array(file.body), 200, {
      "content-type": file.type,
      // Vite names assets by their content hash.
      "cache-control": rel.startsWith("assets/") ? "public, max-age=31536000, immutable" : "no-cache",
      "x-content-type-options": "nosniff",
    });
  };
  const base = path === "/" ? "" : path;
  if (base !== "") app.get(base, (c) => c.redirect(`${settings.basePath}${base}/`, 302));
  app.get(`${base}/`, (c, next) => serve(c, "", next));
  app.get(`${base}/*`, (c, next) => {
    const rel = c.req.path.slice(settings.basePath.length + base.length + 1);
    if (base === "" && (rel.startsWith("v1/") || rel === "openapi.json")) return next();
    return serve(c, rel, next);
  });
}
