import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { eventually, freshDatabase } from "../../test/support.js";
import { createWeft, defineJoin, defineTask, type Weft, WorkflowCancelledError } from "../src/index.js";
import { engineOf } from "../src/internal.js";

const aborted = new Map<string, number>();
const started = new Map<string, number>();
/** Runs that returned (the slow parent ignores its signal). */
const returned = new Set<string>();

const sleeper = defineTask({
  name: "c.sleeper",
  input: z.object({ ms: z.number() }),
  output: z.null(),
  run: (ctx) =>
    new Promise<null>((resolve, reject) => {
      started.set(ctx.taskId, Date.now());
      const timer = setTimeout(() => resolve(null), ctx.input.ms);
      ctx.signal.addEventListener("abort", () => {
        aborted.set(ctx.taskId, Date.now());
        clearTimeout(timer);
        reject(ctx.signal.reason);
      });
    }),
});
const gather = defineJoin({
  name: "c.gather",
  input: z.object({}),
  output: z.number(),
  upstream: sleeper,
  run: (ctx) => ctx.upstream.length,
});
/** Schedules children late in a long run: if it is cancelled meanwhile, they must never be written. */
const slowParent = defineTask({
  name: "c.slowParent",
  input: z.object({ children: z.number() }),
  output: z.null(),
  run: async (ctx) => {
    started.set(ctx.taskId, Date.now());
    await new Promise((r) => setTimeout(r, 800));
    for (let i = 0; i < ctx.input.children; i++) ctx.schedule(sleeper, { ms: 10 });
    returned.add(ctx.taskId);
    return null;
  },
});
const root = defineTask({
  name: "c.root",
  input: z.object({}),
  output: z.null(),
  run: (ctx) => {
    const refs = [ctx.schedule(sleeper, { ms: 30_000 }), ctx.schedule(sleeper, { ms: 30_000 })];
    ctx.scheduleJoin(gather, {}, refs);
    ctx.schedule(sleeper, { ms: 60_000 }, { delayMs: 60_000 }); // parked
    ctx.schedule(slowParent, { children: 5 });
    return null;
  },
});

describe("cancelling a workflow", () => {
  let weft: Weft;
  beforeAll(async () => {
    weft = createWeft({
      connectionString: await freshDatabase(),
      tasks: [sleeper, gather, slowParent, root],
      node: { maxParallelTasksInNode: 20, reconcileIntervalMs: 30_000 },
    });
    await weft.start();
  });
  afterAll(() => weft.stop());

  it("cancels every unfinished task wherever it is; running ones see ctx.signal abort within a second", async () => {
    const ref = await weft.client.schedule(root, {});
    const tasks = () => weft.client.getWorkflowTasks(ref.workflowId);
    // Three running: the two sleepers and the slow parent, each started on the node.
    await eventually(async () => {
      const all = await tasks();
      const running = all.filter((t) => t.state === "RUNNING");
      return running.length === 3 && running.every((t) => started.has(t.id)) ? true : undefined;
    });
    const before = await tasks();
    expect(before.find((t) => t.name === "c.gather")?.queue).toBe("PARKED");
    expect(before.find((t) => t.runAfter !== null)?.queue).toBe("PARKED");

    const cancelledAt = Date.now();
    expect(await weft.client.cancelWorkflow(ref.workflowId, "operator said so")).toBe(true);
    const wf = await weft.client.getWorkflow(ref.workflowId);
    expect(wf.status).toBe("CANCELLED");
    const after = await tasks();
    expect(after.filter((t) => t.state !== "COMPLETED").every((t) => t.state === "CANCELLED")).toBe(true);
    expect(after.filter((t) => t.state === "CANCELLED")).toHaveLength(5);

    // The running sleepers and the slow parent are aborted on their node within a second.
    const running = before.filter((t) => t.state === "RUNNING" && t.name === "c.sleeper");
    await eventually(async () => (running.every((t) => aborted.has(t.id)) ? true : undefined), 5_000);
    for (const t of running) expect((aborted.get(t.id) ?? Number.POSITIVE_INFINITY) - cancelledAt).toBeLessThan(1_000);

    // The slow parent finishes its run later: its outcome and its children are refused.
    // Once it has returned and the node holds no attempt any more, its outcome went
    // to a completion batch and was refused there.
    const parent = before.find((t) => t.name === "c.slowParent");
    await eventually(
      async () => (returned.has(parent?.id ?? "") && engineOf(weft).worker?.activeCount === 0 ? true : undefined),
      10_000,
    );
    const final = await tasks();
    expect(final).toHaveLength(after.length);
    expect(final.find((t) => t.name === "c.slowParent")?.state).toBe("CANCELLED");
    expect(final.some((t) => t.state === "RUNNING" || t.queue !== "DELETED")).toBe(false);
  });

  it("refuses to schedule into a cancelled workflow; a second cancel says it was finished; result() throws", async () => {
    const ref = await weft.client.schedule(sleeper, { ms: 10_000 });
    await weft.client.cancelWorkflow(ref.workflowId);
    await expect(weft.client.schedule(sleeper, { ms: 1 }, { workflowId: ref.workflowId })).rejects.toMatchObject({
      code: "WORKFLOW_NOT_RUNNING",
    });
    expect(await weft.client.cancelWorkflow(ref.workflowId)).toBe(false);
    const error = await weft.client
      .workflow(ref.workflowId)
      .result()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkflowCancelledError);
    await expect(weft.client.cancelWorkflow("01ARZ3NDEKTSV4RRFFQ69G5FAV")).rejects.toMatchObject({
      code: "WORKFLOW_NOT_FOUND",
    });
  });

  it("cancelTask cancels the task, its descendants and the joins that depend on it; the rest goes on", async () => {
    const ref = await weft.client.schedule(root, {});
    const tasks = () => weft.client.getWorkflowTasks(ref.workflowId);
    await eventually(async () =>
      (await tasks()).filter((t) => t.state === "RUNNING").length === 3 ? true : undefined,
    );
    const all = await tasks();
    const sleepers = all.filter((t) => t.name === "c.sleeper" && t.state === "RUNNING");
    const target = sleepers[0];
    expect(await weft.client.cancelTask(target?.id ?? "")).toBe(2); // the sleeper and the join over it
    const after = await tasks();
    const byId = new Map(after.map((t) => [t.id, t]));
    expect(byId.get(target?.id ?? "")?.state).toBe("CANCELLED");
    expect(after.find((t) => t.name === "c.gather")?.state).toBe("CANCELLED");
    expect(byId.get(sleepers[1]?.id ?? "")?.state).toBe("RUNNING");
    expect((await weft.client.getWorkflow(ref.workflowId)).status).toBe("RUNNING");
    await eventually(async () => (aborted.has(target?.id ?? "") ? true : undefined), 5_000);
    // Cancelling the root takes everything left, and ends the workflow CANCELLED.
    await weft.client.cancelTask(ref.taskId);
    expect((await weft.client.getWorkflow(ref.workflowId)).status).toBe("CANCELLED");
    expect((await tasks()).every((t) => t.queue === "DELETED")).toBe(true);
    await expect(weft.client.cancelTask("01ARZ3NDEKTSV4RRFFQ69G5FAV")).rejects.toMatchObject({
      code: "TASK_NOT_FOUND",
    });
  });
});
