// @weft/sdk/http: Weft's HTTP API, to mount in a server of your own or to run standalone.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { getRequestListener } from "@hono/node-server";
import { ConfigError } from "@weft/engine";
import { Hono } from "hono";
import { engineOf } from "../internal.js";
import type { Weft } from "../weft.js";
import { buildApp } from "./app.js";
import { type HttpToken, type TokenScope, TokenSet } from "./auth.js";
import { type DashboardOptions, dashboardPath, mountDashboard } from "./dashboard.js";
import { errorBody } from "./errors.js";
import { type HttpMetricsOption, metricsEndpoint } from "./metrics.js";

export type { DashboardOptions } from "./dashboard.js";
export type { ErrorResponse } from "./errors.js";
export type { HttpMetricsOption } from "./metrics.js";
export type { HttpToken, TokenScope };

export interface HttpApiOptions {
  /**
   * Bearer tokens and their scopes: `read` may call the GET endpoints, `write`
   * all of them. Give each as `token` or, to keep secrets out of
   * configuration, as `sha256` (its SHA-256 digest, hex). Required unless
   * `auth: "none"`.
   */
  readonly tokens?: readonly HttpToken[];
  /** `"none"`: serve without authentication (only behind a gateway that authenticates). Must be explicit. */
  readonly auth?: "none" | "bearer";
  /** Refuse every write endpoint (403 READ_ONLY). Default false. */
  readonly readOnly?: boolean;
  /** Largest request body accepted, in bytes (413 above it). Default 1 MiB. */
  readonly bodyLimitBytes?: number;
  /** CORS is off unless configured: the origins allowed to call the API from a browser. */
  readonly cors?: { readonly origin: string | readonly string[] };
  /** Where the API is mounted when the host server does not strip the prefix, e.g. "/weft". Default none. */
  readonly basePath?: string;
  /** The web dashboard: served at "/" unless given another `path`, or not at all with `false` (see docs/dashboard.md). */
  readonly dashboard?: false | DashboardOptions;
  /**
   * Serve Weft's metrics at GET /metrics in Prometheus' text format, with a
   * read token unless \`public\` (docs/observability.md). Default off.
   */
  readonly metrics?: HttpMetricsOption;
}

export interface HttpServeOptions {
  /** Default 8080; 0 picks a free port. */
  readonly port?: number;
  /** Default 127.0.0.1. */
  readonly host?: string;
}

/** A started standalone server. */
export interface HttpServer {
  readonly server: Server;
  readonly port: number;
  readonly host: string;
  /** e.g. http://127.0.0.1:8080 */
  readonly url: string;
  /** Stops accepting connections and closes the open ones. */
  close(): Promise<void>;
}

export interface HttpApi {
  /** A standard fetch handler, for Hono, Bun, Deno or any server that speaks Request/Response. */
  readonly fetch: (request: Request) => Promise<Response>;
  /**
   * A node:http request listener. Also Express middleware (`app.use("/weft", api.handler)`, before any
   * body parser) and, from Fastify, through the raw request (see docs/operations.md).
   */
  readonly handler: (req: IncomingMessage, res: ServerResponse) => void;
  /** Starts a standalone node:http server on `port` and `host` (what `weft serve` runs). */
  serve(options?: HttpServeOptions): Promise<HttpServer>;
}

/** The API under a prefix: its routes, error handling and not-found answers all beneath it. */
function mount(basePath: string, api: ReturnType<typeof buildApp>): Hono {
  const outer = new Hono();
  outer.route(basePath, api);
  outer.notFound((c) => c.json(errorBody("NOT_FOUND", `no endpoint ${c.req.method} ${c.req.path}`), 404));
  return outer;
}

const DEFAULT_BODY_LIMIT = 1024 * 1024;
const KNOWN = ["tokens", "auth", "readOnly", "bodyLimitBytes", "cors", "basePath", "dashboard", "metrics"];

/**
 * Weft's HTTP API over `weft` (a started Weft; it needs the task definitions
 * to schedule by name). Refuses to start without tokens unless
 * `auth: "none"` is given. The OpenAPI 3.1 document is at /openapi.json.
 */
export function createHttpApi(weft: Weft, options: HttpApiOptions): HttpApi {
  if (typeof weft?.client?.scheduleByName !== "function") {
    throw new ConfigError("weft", "expected a Weft from createWeft() or createClient()");
  }
  if (typeof options !== "object" || options === null) throw new ConfigError("http", "expected an options object");
  for (const key of Object.keys(options)) {
    if (!KNOWN.includes(key)) throw new ConfigError(`http.${key}`, `unknown option; known: ${KNOWN.join(", ")}`);
  }
  if (options.auth !== undefined && options.auth !== "none" && options.auth !== "bearer") {
    throw new ConfigError("http.auth", 'expected "bearer" (the default) or "none"');
  }
  let tokens: TokenSet | null = null;
  if (options.auth === "none") {
    if (options.tokens !== undefined) throw new ConfigError("http.tokens", 'give tokens or auth: "none", not both');
  } else {
    if (!Array.isArray(options.tokens) || options.tokens.length === 0) {
      throw new ConfigError(
        "http.tokens",
        'the HTTP API needs at least one bearer token; to serve without authentication, say auth: "none"',
      );
    }
    tokens = new TokenSet(options.tokens);
  }
  const bodyLimitBytes = options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT;
  if (!Number.isInteger(bodyLimitBytes) || bodyLimitBytes < 1 || bodyLimitBytes > 1024 * 1024 * 1024) {
    throw new ConfigError("http.bodyLimitBytes", "expected an integer from 1 to 1073741824");
  }
  if (options.readOnly !== undefined && typeof options.readOnly !== "boolean") {
    throw new ConfigError("http.readOnly", "expected a boolean");
  }
  let cors: { origin: string | string[] } | null = null;
  if (options.cors !== undefined) {
    const origin = options.cors?.origin;
    const list = typeof origin === "string" ? [origin] : Array.isArray(origin) ? [...origin] : [];
    if (list.length === 0 || list.some((o) => typeof o !== "string" || o.length === 0)) {
      throw new ConfigError("http.cors.origin", "expected an origin (e.g. https://ops.example.com) or a list of them");
    }
    cors = { origin: typeof origin === "string" ? origin : list };
  }
  const basePath = options.basePath ?? "";
  if (typeof basePath !== "string" || (basePath !== "" && !/^(\/[A-Za-z0-9._~-]+)+$/.test(basePath))) {
    throw new ConfigError("http.basePath", 'expected a path such as "/weft" (no trailing slash)');
  }

  const api = buildApp(weft, {
    tokens,
    readOnly: options.readOnly ?? false,
    bodyLimitBytes,
    cors,
    log: engineOf(weft).log,
    metrics: metricsEndpoint(weft, options.metrics),
  });
  mountDashboard(api, weft, {
    path: dashboardPath(options.dashboard),
    basePath,
    readOnly: options.readOnly ?? false,
    auth: tokens ? "bearer" : "none",
    log: engineOf(weft).log,
  });
  const app = basePath === "" ? api : mount(basePath, api);
  const fetch = async (request: Request): Promise<Response> => app.fetch(request);
  const listener = getRequestListener(fetch);
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    void listener(req, res);
  };

  return {
    fetch,
    handler,
    async serve(serveOptions: HttpServeOptions = {}): Promise<HttpServer> {
      const port = serveOptions.port ?? 8080;
      const host = serveOptions.host ?? "127.0.0.1";
      if (!Number.isInteger(port) || port < 0 || port > 65_535) {
        throw new ConfigError("port", "expected an integer from 0 to 65535");
      }
      if (typeof host !== "string" || host.length === 0)
        throw new ConfigError("host", "expected a host name or address");
      const server = createServer(handler);
      // Bounded header and request times: a slow client cannot hold a socket forever.
      server.headersTimeout = 30_000;
      server.requestTimeout = 60_000;
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          resolve();
        });
      });
      const bound = (server.address() as AddressInfo).port;
      const urlHost = host.includes(":") ? `[${host}]` : host;
      return {
        server,
        port: bound,
        host,
        url: `http://${urlHost}:${bound}`,
        close: () =>
          new Promise<void>((resolve, reject) => {
            server.close((error) => (error ? reject(error) : resolve()));
            server.closeAllConnections();
          }),
      };
    },
  };
}
