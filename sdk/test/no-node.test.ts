import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { NoNodeWatch } from "../../engine/src/services/no-node.js";
import { memoryLogger } from "../../engine/test/helpers.js";
import { eventually, freshDatabase } from "../../test/support.js";
import { createClient, createWeft, defineTask, type Weft } from "../src/index.js";
import { engineOf } from "../src/internal.js";

const known = defineTask({ name: "known", input: z.object({}), output: z.null(), run: () => null });
/** Defined in the client only: no node serves it until the second node starts. */
const orphan = defineTask({ name: "orphan", input: z.object({}), output: z.number(), run: () => 7 });

describe("a task no node can run", () => {
  let url: string;
  let node: Weft;
  let client: Weft;
  let late: Weft | undefined;
  const logged = memoryLogger();

  beforeAll(async () => {
    url = await freshDatabase();
    node = createWeft({ connectionString: url, tasks: [known], logger: logged.logger });
    client = createClient({ connectionString: url, tasks: [known, orphan], logLevel: "silent" });
    await node.start();
    await client.start();
  });
  afterAll(async () => {
    await late?.stop();
    await client?.stop();
    await node?.stop();
  });

  it("shows NO_NODE, is warned about by the leader, and runs once a node serves it", async () => {
    const ref = await client.client.schedule(orphan, {});
    const [task] = await client.client.getWorkflowTasks(ref.workflowId);
    expect(task).toMatchObject({ queue: "NEW", state: "PENDING", parkReason: "NO_NODE" });
    expect((await client.client.getTask(ref.taskId)).parkReason).toBe("NO_NODE");

    // A task of a served name is not marked.
    const ok = await client.client.schedule(known, {});
    await client.client.waitForWorkflow(ok.workflowId);
    expect((await client.client.getTask(ok.taskId)).parkReason).toBeNull();

    // The leader runs the check; its own loop checks every 10 s, so the steps below
    // drive one of their own (same store, pool and logger) for a deterministic order.
    await eventually(async () => engineOf(node).activeNoNodeWatch);
    const engine = engineOf(node);
    const watch = new NoNodeWatch(engine.store, engine.pool, engine.config.planner.nodeDeadAfterMs, logged.logger);
    // The leader warns once two checks in a row found the name unserved, then not again for a while.
    expect(await watch.check()).toEqual([]);
    expect(await watch.check()).toEqual(["orphan"]);
    expect(await watch.check()).toEqual([]);
    const warnings = logged.lines.filter((l) => (l.obj as { event?: string }).event === "queue.no_node");
    expect(warnings.length).toBeGreaterThanOrEqual(1);
    expect(warnings[0]).toMatchObject({ level: "warn", obj: { taskName: "orphan" } });

    late = createWeft({ connectionString: url, tasks: [orphan], logLevel: "silent" });
    await late.start();
    expect(await client.client.waitForWorkflow(ref.workflowId, { timeoutMs: 20_000 })).toMatchObject({
      status: "COMPLETED",
    });
    expect((await client.client.getTask(ref.taskId)).parkReason).toBeNull();
    expect(await watch.check()).toEqual([]);
  });
});
