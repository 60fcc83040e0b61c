import { performance } from "node:perf_hooks";
import { context } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import { BasicTracerProvider, BatchSpanProcessor, type SpanExporter } from "@opentelemetry/sdk-trace-base";
import { createClient, createWeft, type WeftOptions } from "@weft/sdk";
import type { OnDone, Workload } from "../workloads/index.js";
import type { BenchNode, BenchSystem, NodeSettings } from "./types.js";
import { weft } from "./weft.js";

/** Drops every span: what tracing costs Weft, without an exporter's own cost. */
const noopExporter: SpanExporter = {
  export: (_spans, done) => done({ code: 0 }),
  shutdown: async () => undefined,
};

/** A node as \`weft\` makes it (bench/src/systems/weft.ts), with OpenTelemetry options. */
function otelNode(
  url: string,
  workload: Workload,
  settings: NodeSettings,
  onDone: OnDone,
  telemetry: Pick<WeftOptions, "tracerProvider" | "meterProvider">,
  shutdown: () => Promise<void>,
): BenchNode {
  const node = createWeft({
    connectionString: url,
    schema: "weft",
    tasks: workload.weft.tasks(onDone),
    node: { maxParallelTasksInNode: settings.capacity, completionBatchSize: settings.completionBatchSize },
    planner: { batchSize: settings.plannerBatchSize },
    ...telemetry,
  });
  return {
    start: () => node.start(),
    stop: async () => {
      await node.stop();
      await shutdown();
    },
  };
}

/**
 * Weft traced: an SDK tracer provider (every span sampled, a batch span
 * processor) with an exporter that drops the spans, and the AsyncLocalStorage
 * context manager, as a service that traces would run. Run beside \`weft\` in
 * one invocation, it shows what tracing costs the hot path.
 */
export const weftOtel: BenchSystem = {
  ...weft,
  name: "weft-otel",
  // Enqueued by a traced client too: every task carries the context of its
  // publish span, and each attempt's span is that span's child.
  async enqueue(url, workload, tasks, batchSize) {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(noopExporter)] });
    const client = createClient({
      connectionString: url,
      schema: "weft",
      tasks: workload.weft.tasks(() => undefined),
      tracerProvider: provider,
    });
    await client.start();
    try {
      const t0 = performance.now();
      await workload.weft.enqueue(client.client, tasks, batchSize);
      return (performance.now() - t0) / 1000;
    } finally {
      await client.stop();
      await provider.shutdown();
    }
  },
  async createNode(url, workload, settings, onDone) {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(noopExporter)] });
    return otelNode(url, workload, settings, onDone, { tracerProvider: provider }, () => provider.shutdown());
  },
};

/** Weft with metrics on: an SDK meter provider read by a Prometheus exporter (nobody scrapes it). */
export const weftMetrics: BenchSystem = {
  ...weft,
  name: "weft-metrics",
  async createNode(url, workload, settings, onDone) {
    const provider = new MeterProvider({ readers: [new PrometheusExporter({ preventServerStart: true })] });
    return otelNode(url, workload, settings, onDone, { meterProvider: provider }, () => provider.shutdown());
  },
};
