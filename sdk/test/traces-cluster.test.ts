import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freshDatabase, type NodeMessage, type NodeProcess, ROOT, spawnNode } from "../../test/support.js";
import { createClient, type Weft } from "../src/index.js";
import { CHILDREN, gather, root, tracedTasks } from "./fixtures/traced-tasks.js";

// One trace across processes: a traced client schedules inside a request span;
// two traced node processes run the tasks and send their spans back over IPC.

describe("traces across nodes", () => {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  let client: Weft;
  let nodes: NodeProcess[] = [];

  beforeAll(async () => {
    const url = await freshDatabase();
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    client = createClient({ connectionString: url, tasks: tracedTasks, tracerProvider: provider });
    await client.start();
    nodes = [0, 1].map(() =>
      spawnNode(`${ROOT}/sdk/test/fixtures/traced-node.ts`, { DATABASE_URL: url, CAPACITY: "2" }),
    );
    await Promise.all(nodes.map((n) => n.waitFor((m) => m.type === "ready")));
  });

  afterAll(async () => {
    for (const n of nodes) n.send({ type: "stop" });
    await Promise.all(nodes.map((n) => n.exited));
    await client?.stop();
    await provider.shutdown();
    context.disable();
  });

  it("a request → root → children on two nodes → join is one trace, the join linked to every child", async () => {
    const request = provider.getTracer("test").startSpan("POST /jobs");
    const ref = await context.with(trace.setSpan(context.active(), request), () => client.client.schedule(root, {}));
    request.end();
    await client.client.workflow(ref.workflowId).result(gather, { timeoutMs: 60_000 });
    const joinSpan = await Promise.race(
      nodes.map((n) => n.waitFor((m) => m.type === "span" && m.name === "process tc.gather")),
    );

    const spans = nodes.flatMap((n) => n.messages.filter((m) => m.type === "span")) as (NodeMessage & {
      name: string;
      traceId: string;
      spanId: string;
      parentSpanId: string | null;
      links: string[];
      attributes: Record<string, unknown>;
    })[];
    const [publishRoot] = exporter.getFinishedSpans().filter((s) => s.name === "publish tc.root");
    expect(publishRoot?.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
    for (const s of spans) expect(s.traceId, s.name).toBe(request.spanContext().traceId);
    const processRoot = spans.find((s) => s.name === "process tc.root");
    expect(processRoot?.parentSpanId).toBe(publishRoot?.spanContext().spanId);
    const leaves = spans.filter((s) => s.name === "process tc.leaf");
    expect(leaves).toHaveLength(CHILDREN);
    for (const l of leaves) {
      const publish = spans.find(
        (s) =>
          s.name === "publish tc.leaf" && s.attributes["messaging.message.id"] === l.attributes["messaging.message.id"],
      );
      expect(publish?.parentSpanId).toBe(processRoot?.spanId);
      expect(l.parentSpanId).toBe(publish?.spanId);
    }
    // The children ran on both nodes, and the join links to each wherever it ran.
    expect(new Set(leaves.map((l) => l.attributes["weft.node.id"])).size).toBe(2);
    expect([...(joinSpan as unknown as { links: string[] }).links].sort()).toEqual(leaves.map((l) => l.spanId).sort());
  });
});
