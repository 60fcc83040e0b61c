import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { Command } from "commander";
import { createHttpApi, type HttpToken } from "../../http/index.js";
import type { AnyDefinition } from "../../task.js";
import { action, common, UsageError } from "../context.js";

/**
 * Tokens as `scope:token` or `scope:sha256=<hex digest>`, scope `read` or
 * `write`; several separated by commas in WEFT_API_TOKENS.
 */
export function parseToken(spec: string, where: string): HttpToken {
  const colon = spec.indexOf(":");
  const scope = colon === -1 ? "" : spec.slice(0, colon);
  const secret = colon === -1 ? "" : spec.slice(colon + 1);
  if ((scope !== "read" && scope !== "write") || secret === "") {
    throw new UsageError(`${where}: expected read:<token>, write:<token> or <scope>:sha256=<hex>`);
  }
  return secret.startsWith("sha256=") ? { scope, sha256: secret.slice("sha256=".length) } : { scope, token: secret };
}

function isDefinition(value: unknown): value is AnyDefinition {
  const v = value as { name?: unknown; run?: unknown; input?: { safeParse?: unknown } } | null;
  return (
    typeof v === "object" &&
    v !== null &&
    typeof v.name === "string" &&
    typeof v.run === "function" &&
    typeof v.input?.safeParse === "function"
  );
}

/** The task definitions a module exports (named exports, and the values of an exported object or array). */
async function loadTasks(file: string): Promise<AnyDefinition[]> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(resolve(file)).href)) as Record<string, unknown>;
  } catch (error) {
    throw new UsageError(`--tasks ${file}: could not import it: ${(error as Error).message}`);
  }
  const found = new Map<string, AnyDefinition>();
  const visit = (value: unknown) => {
    if (isDefinition(value)) found.set(value.name, value);
    else if (Array.isArray(value)) value.forEach(visit);
    else if (typeof value === "object" && value !== null && Object.getPrototypeOf(value) === Object.prototype) {
      for (const v of Object.values(value)) if (isDefinition(v)) found.set(v.name, v);
    }
  };
  for (const value of Object.values(mod)) visit(value);
  if (found.size === 0) throw new UsageError(`--tasks ${file}: the module exports no task definitions`);
  return [...found.values()];
}

export function serveCommand(program: Command): void {
  common(
    program
      .command("serve")
      .description(
        "run the HTTP API (with its OpenAPI document at /openapi.json) and the web dashboard (at /) until SIGINT or SIGTERM",
      )
      .option("--port <port>", "port to listen on (0: any free port)", "8080")
      .option("--host <host>", "address to listen on", "127.0.0.1")
      .option(
        "--token <scope:token>",
        "a bearer token: read:<token>, write:<token> or <scope>:sha256=<hex>; repeatable (also $WEFT_API_TOKENS, comma-separated)",
        (value: string, list: string[] = []) => [...list, value],
      )
      .option("--read-only", "refuse every write endpoint")
      .option("--no-auth", "serve without authentication (only behind a gateway that authenticates)")
      .option("--tasks <module>", "a module exporting task definitions, so the API can schedule them by name")
      .option("--no-dashboard", "serve the API only, without the web dashboard at /"),
  ).action(
    action(async (session) => {
      const o = session.opts<{
        port: string;
        host: string;
        token?: string[];
        readOnly?: boolean;
        auth: boolean;
        tasks?: string;
        dashboard: boolean;
      }>();
      if (!/^\d+$/.test(o.port) || Number(o.port) > 65_535) throw new UsageError("--port: expected 0 to 65535");
      const specs = [
        ...(o.token ?? []).map((t, i) => parseToken(t, `--token #${i + 1}`)),
        ...(process.env.WEFT_API_TOKENS ?? "")
          .split(",")
          .map((t) => t.trim())
          .filter((t) => t !== "")
          .map((t, i) => parseToken(t, `WEFT_API_TOKENS entry ${i + 1}`)),
      ];
      if (o.auth && specs.length === 0) {
        throw new UsageError(
          "no tokens: give --token read:<token> (or write:), set WEFT_API_TOKENS, or pass --no-auth",
        );
      }
      if (!o.auth && specs.length > 0) throw new UsageError("give tokens or --no-auth, not both");
      const tasks = o.tasks !== undefined ? await loadTasks(o.tasks) : [];
      session.database(10);
      const weft = session.weftClient(tasks);
      const api = createHttpApi(weft, {
        ...(o.auth ? { tokens: specs } : { auth: "none" as const }),
        readOnly: o.readOnly === true,
        ...(o.dashboard ? {} : { dashboard: false as const }),
      });
      const server = await api.serve({ port: Number(o.port), host: o.host });
      session.emit(
        {
          url: server.url,
          port: server.port,
          host: server.host,
          readOnly: o.readOnly === true,
          auth: o.auth ? "bearer" : "none",
          tasks: tasks.map((t) => t.name),
          dashboard: o.dashboard ? `${server.url}/` : null,
        },
        (c, d) =>
          `${c.bold("weft serve")} listening on ${d.url} (${d.auth === "none" ? c.yellow("no authentication") : `${specs.length} token(s)`}${d.readOnly ? ", read-only" : ""}${d.tasks.length > 0 ? `, tasks: ${d.tasks.join(", ")}` : ""}); OpenAPI at ${d.url}/openapi.json${d.dashboard ? `\n  dashboard: ${c.bold(d.dashboard)} (sign in with a token)` : ""}`,
      );
      await new Promise<void>((done) => {
        process.once("SIGINT", done);
        process.once("SIGTERM", done);
      });
      await server.close();
    }),
  );
}
