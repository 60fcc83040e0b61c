import type { AddressInfo } from "node:net";
import express from "express";
import Fastify from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { eventually, freshDatabase } from "../../test/support.js";
import { createHttpApi } from "../src/http/index.js";
import { createWeft, defineTask, type Weft } from "../src/index.js";

// The API mounted the way docs/operations.md shows, in a real Express and a
// real Fastify next to the application's own routes: a read, a schedule with a
// JSON body (which neither framework may consume first), auth, and the
// application's routes left alone.

const TOKEN = "mount-token-0123456789abcdef";

const echo = defineTask({
  name: "m.echo",
  input: z.object({ n: z.number().int() }),
  output: z.object({ doubled: z.number() }),
  run: ({ input }) => ({ doubled: input.n * 2 }),
});

let weft: Weft;

beforeAll(async () => {
  const url = await freshDatabase();
  weft = createWeft({ connectionString: url, tasks: [echo], node: { heartbeatIntervalMs: 200 } });
  await weft.start();
});

afterAll(async () => {
  await weft?.stop(1_000);
});

async function exercise(base: string, prefix: string): Promise<void> {
  const auth = { authorization: `Bearer ${TOKEN}` };
  // The application's own route still answers.
  const own = await fetch(`${base}/hello`);
  expect(own.status).toBe(200);
  expect(await own.text()).toBe("own route");

  expect((await fetch(`${base}${prefix}/v1/health`)).status).toBe(200);
  expect((await fetch(`${base}${prefix}/v1/nodes`)).status).toBe(401);
  const nodes = await fetch(`${base}${prefix}/v1/nodes`, { headers: auth });
  expect(nodes.status).toBe(200);
  const listed = (await nodes.json()) as { items: { id: string }[] };
  expect(listed.items.map((n) => n.id)).toContain(weft.nodeId);

  const scheduled = await fetch(`${base}${prefix}/v1/tasks/m.echo`, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify({ input: { n: 21 } }),
  });
  expect(scheduled.status).toBe(201);
  const ref = (await scheduled.json()) as { taskId: string; workflowId: string };
  const done = await eventually(async () => {
    const r = await fetch(`${base}${prefix}/v1/tasks/${ref.taskId}`, { headers: auth });
    const task = (await r.json()) as { state: string; result: unknown };
    return task.state === "COMPLETED" ? task : undefined;
  });
  expect(done.result).toEqual({ doubled: 42 });

  // A bad body is the API's 400, not the framework's.
  const bad = await fetch(`${base}${prefix}/v1/tasks/m.echo`, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify({ input: { n: "x" } }),
  });
  expect(bad.status).toBe(400);
  expect(((await bad.json()) as { error: { code: string } }).error.code).toBe("INPUT_INVALID");
}

describe("the HTTP API mounted in other servers", () => {
  it("Express: app.use('/weft', api.handler), before any body parser", async () => {
    const api = createHttpApi(weft, { tokens: [{ token: TOKEN, scope: "write" }] });
    const app = express();
    app.get("/hello", (_req, res) => {
      res.send("own route");
    });
    app.use("/weft", api.handler);
    const server = app.listen(0, "127.0.0.1");
    await new Promise<void>((resolve) => server.once("listening", () => resolve()));
    try {
      await exercise(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, "/weft");
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it("Fastify: a hijacked wildcard route under the API's basePath", async () => {
    const api = createHttpApi(weft, { tokens: [{ token: TOKEN, scope: "write" }], basePath: "/weft" });
    const app = Fastify();
    app.get("/hello", async () => "own route");
    app.route({
      method: ["GET", "POST", "DELETE", "OPTIONS"],
      url: "/weft/*",
      onRequest: (request, reply, done) => {
        reply.hijack();
        api.handler(request.raw, reply.raw);
        done();
      },
      handler: async () => undefined,
    });
    await app.listen({ port: 0, host: "127.0.0.1" });
    try {
      await exercise(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, "/weft");
    } finally {
      await app.close();
    }
  });
});
