import { context, type Span, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { freshDatabase } from "../../test/support.js";
import { createWeft, defineJoin, defineSlotTask, defineTask, type Logger, type Weft } from "../src/index.js";
import { engineOf } from "../src/internal.js";

const MAPS = 5;

/** Retries \`check\` (an assertion) until it passes, for at most 20 s. */
async function eventually(check: () => unknown | Promise<unknown>): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await check();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

describe("traces (OpenTelemetry)", () => {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const contextManager = new AsyncLocalStorageContextManager();
  const tracer = provider.getTracer("test");
  let weft: Weft;
  const logged: Record<string, unknown>[] = [];
  const logger = (bindings: Record<string, unknown>): Logger => ({
    level: "info",
    debug: () => undefined,
    info: (obj) => {
      logged.push({ ...bindings, ...obj });
    },
    warn: () => undefined,
    error: () => undefined,
    child: (more) => logger({ ...bindings, ...more }),
  });

  const map = defineTask({
    name: "tr.map",
    input: z.object({ i: z.number() }),
    output: z.number(),
    run: ({ input }) => {
      // A span of the handler's own nests under the attempt's span.
      tracer.startActiveSpan("user work", (s) => s.end());
      return input.i * 2;
    },
  });
  const reduce = defineJoin({
    name: "tr.reduce",
    input: z.object({}),
    output: z.number(),
    upstream: map,
    run: (ctx) => ctx.upstream.reduce((a, u) => a + (u.status === "COMPLETED" ? u.result : 0), 0),
  });
  const split = defineTask({
    name: "tr.split",
    input: z.object({ n: z.number() }),
    output: z.object({}),
    run: (ctx) => {
      ctx.log.info({ note: "splitting" }, "hello from a task");
      const maps = Array.from({ length: ctx.input.n }, (_, i) => ctx.schedule(map, { i }));
      ctx.scheduleJoin(reduce, {}, maps);
      return {};
    },
  });
  let flakyRuns = 0;
  const flaky = defineTask({
    name: "tr.flaky",
    input: z.object({}),
    output: z.number(),
    retry: { mode: "FIXED", delayMs: 50, maxRetries: 3 },
    run: () => {
      flakyRuns++;
      if (flakyRuns === 1) throw new Error("first attempt fails");
      return flakyRuns;
    },
  });
  const waits = defineTask({
    name: "tr.waits",
    input: z.object({}),
    output: z.object({}),
    run: (ctx) =>
      new Promise((_, reject) => {
        ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason));
      }),
  });

  const hourly = defineSlotTask({ name: "tr.hourly", every: "1h", output: z.null(), run: () => null });

  beforeAll(async () => {
    context.setGlobalContextManager(contextManager.enable());
    const url = await freshDatabase();
    weft = createWeft({
      connectionString: url,
      tasks: [split, map, reduce, flaky, waits, hourly],
      tracerProvider: provider,
      logger: logger({}),
      logLevel: "info",
    });
    await weft.start();
  });

  afterAll(async () => {
    await weft?.stop();
    context.disable();
  });

  const spans = () => exporter.getFinishedSpans();
  const of = (name: string) => spans().filter((s) => s.name === name);
  const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;

  it("a map-reduce scheduled inside an outer span is one connected trace; the join links to every map", async () => {
    const outer: Span = tracer.startSpan("http request");
    const ref = await context.with(trace.setSpan(context.active(), outer), () =>
      weft.client.schedule(split, { n: MAPS }),
    );
    outer.end();
    await weft.client.workflow(ref.workflowId).result(reduce, { timeoutMs: 30_000 });
    await eventually(() => expect(of("process tr.reduce")).toHaveLength(1));

    const ours = spans().filter((s) => s.attributes["weft.workflow.id"] === ref.workflowId);
    // publish + process for split, every map and the reduce.
    expect(ours).toHaveLength(2 * (MAPS + 2));
    for (const s of [...ours, ...of("user work")]) expect(s.spanContext().traceId).toBe(outer.spanContext().traceId);

    const [publishSplit] = of("publish tr.split");
    const [processSplit] = of("process tr.split");
    const [publishReduce] = of("publish tr.reduce");
    const [processReduce] = of("process tr.reduce");
    if (!publishSplit || !processSplit || !publishReduce || !processReduce) throw new Error("spans missing");
    expect(publishSplit.kind).toBe(SpanKind.PRODUCER);
    expect(processSplit.kind).toBe(SpanKind.CONSUMER);
    expect(parentOf(publishSplit)).toBe(outer.spanContext().spanId);
    expect(parentOf(processSplit)).toBe(publishSplit.spanContext().spanId);
    expect(parentOf(publishReduce)).toBe(processSplit.spanContext().spanId);
    expect(parentOf(processReduce)).toBe(publishReduce.spanContext().spanId);
    expect(processSplit.attributes).toMatchObject({
      "messaging.system": "weft",
      "messaging.operation.type": "process",
      "messaging.destination.name": "tr.split",
      "messaging.message.id": ref.taskId,
      "weft.workflow.id": ref.workflowId,
      "weft.task.attempt": 1,
      "weft.node.id": weft.nodeId,
    });
    expect(publishSplit.attributes).toMatchObject({ "messaging.operation.type": "publish" });

    const processMaps = of("process tr.map");
    expect(processMaps).toHaveLength(MAPS);
    for (const m of processMaps) {
      const publish = of("publish tr.map").find(
        (p) => p.attributes["messaging.message.id"] === m.attributes["messaging.message.id"],
      );
      expect(parentOf(m)).toBe(publish?.spanContext().spanId);
      expect(parentOf(publish as ReadableSpan)).toBe(processSplit.spanContext().spanId);
      const own = of("user work").find((u) => parentOf(u) === m.spanContext().spanId);
      expect(own, "the handler's own span nests under its attempt").toBeDefined();
    }
    const linked = processReduce.links.map((l) => l.context.spanId).sort();
    expect(linked).toEqual(processMaps.map((m) => m.spanContext().spanId).sort());

    const line = logged.find((l) => l.note === "splitting");
    expect(line).toMatchObject({
      trace_id: outer.spanContext().traceId,
      span_id: processSplit.spanContext().spanId,
    });
  });

  it("a retried task has two attempt spans: the failed one ERROR, the second linked to it", async () => {
    const ref = await weft.client.schedule(flaky, {});
    expect(await weft.client.workflow(ref.workflowId).result(flaky, { timeoutMs: 30_000 })).toBe(2);
    await eventually(() => expect(of("process tr.flaky")).toHaveLength(2));
    const [first, second] = of("process tr.flaky").sort(
      (a, b) => Number(a.attributes["weft.task.attempt"]) - Number(b.attributes["weft.task.attempt"]),
    );
    if (!first || !second) throw new Error("spans missing");
    const [publish] = of("publish tr.flaky");
    expect(first.attributes["weft.task.attempt"]).toBe(1);
    expect(second.attributes["weft.task.attempt"]).toBe(2);
    expect(first.status.code).toBe(SpanStatusCode.ERROR);
    expect(first.events.map((e) => e.name)).toContain("exception");
    expect(first.attributes["weft.task.outcome"]).toBe("retried");
    expect(second.status.code).not.toBe(SpanStatusCode.ERROR);
    expect(parentOf(first)).toBe(publish?.spanContext().spanId);
    expect(parentOf(second)).toBe(publish?.spanContext().spanId);
    expect(second.links.map((l) => l.context.spanId)).toEqual([first.spanContext().spanId]);
  });

  it("a slot task's span carries its slot", async () => {
    const from = new Date("2026-11-02T05:00:00Z");
    await weft.client.slots(hourly).ensure({ from, to: new Date(from.getTime() + 3_600_000) });
    await eventually(() => expect(of("process tr.hourly")).toHaveLength(1));
    const [span] = of("process tr.hourly");
    expect(new Date(String(span?.attributes["weft.slot.start"])).getTime()).toBe(from.getTime());
    expect(new Date(String(span?.attributes["weft.slot.end"])).getTime()).toBe(from.getTime() + 3_600_000);
  });

  it("finds a provider only when one is registered or given; with none, no tracer and no instruments", () => {
    const bare = createWeft({ connectionString: "postgres://127.0.0.1:1/unused", tasks: [map] });
    expect(engineOf(bare).tracing).toBeUndefined();
    expect(engineOf(bare).metrics.instruments).toBeUndefined();
    trace.setGlobalTracerProvider(provider);
    try {
      const found = createWeft({ connectionString: "postgres://127.0.0.1:1/unused", tasks: [map] });
      expect(engineOf(found).tracing).toBeDefined();
    } finally {
      trace.disable();
    }
    expect(() => createWeft({ tasks: [map], tracerProvider: {} as never })).toThrow(/tracerProvider/);
  });

  it("a cancelled running task's span ends with a cancel event", async () => {
    const ref = await weft.client.schedule(waits, {});
    await eventually(async () => expect((await weft.client.getTask(ref.taskId)).state).toBe("RUNNING"));
    expect(await weft.client.cancelWorkflow(ref.workflowId, "test cancels")).toBe(true);
    await eventually(() => expect(of("process tr.waits")).toHaveLength(1));
    const [span] = of("process tr.waits");
    expect(span?.events.map((e) => e.name)).toContain("cancel");
    expect(span?.attributes["weft.task.outcome"]).toBe("cancelled");
  });
});
