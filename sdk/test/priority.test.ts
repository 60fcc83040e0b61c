import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { freshDatabase } from "../../test/support.js";
import { createWeft, defineTask, type Weft } from "../src/index.js";

/** The order in which attempts started, by label. */
const started: string[] = [];
const make = (name: string) =>
  defineTask({
    name,
    input: z.object({ label: z.string() }),
    output: z.null(),
    run: async (ctx) => {
      started.push(ctx.input.label);
      await new Promise((r) => setTimeout(r, 5));
      return null;
    },
  });
const gate = make("p.gate");
const flood = make("p.flood");
const other = make("p.other");

describe("priority, delayed runs and fair share", () => {
  let weft: Weft;
  let client: Weft;
  beforeAll(async () => {
    const url = await freshDatabase();
    // The client schedules while the node is stopped, so the whole backlog is
    // waiting when planning starts.
    client = createWeft({ connectionString: url, tasks: [], planner: { enabled: false } });
    await client.start();
    weft = createWeft({ connectionString: url, tasks: [gate, flood, other], node: { maxParallelTasksInNode: 1 } });
  });
  afterAll(async () => {
    await weft.stop();
    await client.stop();
  });

  it("runs higher priority first, equal priority in scheduling order, and takes turns between task names", async () => {
    const c = client.client;
    await c.scheduleMany(
      flood,
      Array.from({ length: 30 }, (_, i) => ({ label: `flood-${i}` })),
    );
    await c.scheduleMany(other, [{ label: "other-0" }, { label: "other-1" }]);
    await c.schedule(flood, { label: "urgent-low" }, { priority: 5 });
    await c.schedule(flood, { label: "urgent-high" }, { priority: 10 });
    await weft.start();
    const last = await c.schedule(gate, { label: "last" }, { priority: -1 });
    await weft.client.waitForWorkflow(last.workflowId, { timeoutMs: 30_000 });
    expect(started.slice(0, 2)).toEqual(["urgent-high", "urgent-low"]);
    // Among equal priority the two names take turns: the flood does not hold back "other".
    expect(started.indexOf("other-0")).toBeLessThan(6);
    expect(started.indexOf("other-1")).toBeLessThan(8);
    // Within a name, scheduling order.
    const floods = started.filter((s) => s.startsWith("flood-"));
    expect(floods).toEqual(Array.from({ length: 30 }, (_, i) => `flood-${i}`));
    expect(started.at(-1)).toBe("last");
  });

  it("never starts a task before runAt, and starts it soon after", async () => {
    const runAt = new Date(Date.now() + 1_200);
    const ref = await client.client.schedule(other, { label: "timed" }, { runAt });
    await weft.client.waitForWorkflow(ref.workflowId, { timeoutMs: 10_000 });
    const task = await weft.client.getTask(ref.taskId);
    expect(task.assignedAt?.getTime()).toBeGreaterThanOrEqual(runAt.getTime() - 5);
    // Within the sweep interval plus a polling delay of the default configuration.
    expect((task.assignedAt?.getTime() ?? 0) - runAt.getTime()).toBeLessThan(2_500);
  });
});
