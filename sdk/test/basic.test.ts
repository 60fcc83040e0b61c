import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { eventually, freshDatabase } from "../../test/support.js";
import { createWeft, defineTask, type Weft } from "../src/index.js";

const executions = new Map<string, number>();

const add = defineTask({
  name: "add",
  input: z.object({ a: z.number(), b: z.number() }),
  output: z.object({ sum: z.number() }),
  run: ({ input }) => ({ sum: input.a + input.b }),
});

const count = defineTask({
  name: "count",
  input: z.object({ i: z.number().int() }),
  output: z.number(),
  run: (ctx) => {
    executions.set(ctx.taskId, (executions.get(ctx.taskId) ?? 0) + 1);
    return ctx.input.i;
  },
});

const child = defineTask({
  name: "child",
  input: z.object({ n: z.number(), sleepMs: z.number().default(0) }),
  output: z.object({ doubled: z.number() }),
  run: async ({ input }) => {
    await new Promise((r) => setTimeout(r, input.sleepMs));
    return { doubled: input.n * 2 };
  },
});

const parent = defineTask({
  name: "parent",
  input: z.object({ children: z.number().int(), fail: z.boolean().default(false), sleepMs: z.number().default(0) }),
  output: z.object({ scheduled: z.array(z.string()) }),
  run: (ctx) => {
    const ids: string[] = [];
    for (let n = 0; n < ctx.input.children; n++) {
      ids.push(ctx.schedule(child, { n, sleepMs: ctx.input.sleepMs }).taskId);
    }
    if (ctx.input.fail) throw new Error("parent failed after scheduling");
    return { scheduled: ids };
  },
});

const badOutput = defineTask({
  name: "badOutput",
  input: z.object({}),
  output: z.object({ ok: z.literal(true) }),
  // @ts-expect-error the result does not match the output schema: that is the test
  run: () => ({ ok: "yes" }),
});

describe("tasks, workflows and children", () => {
  let weft: Weft;
  let url: string;
  beforeAll(async () => {
    url = await freshDatabase();
    weft = createWeft({
      connectionString: url,
      tasks: [add, count, child, parent, badOutput],
      node: { maxParallelTasksInNode: 200 },
      // Failures here are final at once; retries have their own tests.
      taskDefaults: { retry: { mode: "OFF" } },
    });
    await weft.start();
  });
  afterAll(() => weft.stop());

  it("runs a task and returns its typed result", async () => {
    const ref = await weft.client.schedule(add, { a: 2, b: 3 });
    expect(ref.workflowId).toBe(ref.taskId);
    const wf = await weft.client.waitForWorkflow(ref.workflowId, { timeoutMs: 10_000 });
    expect(wf.status).toBe("COMPLETED");
    expect(wf.rootTaskId).toBe(ref.taskId);
    const task = await weft.client.getTask(ref.taskId, add);
    expect(task.state).toBe("COMPLETED");
    expect(task.queue).toBe("DELETED");
    expect(task.result).toEqual({ sum: 5 });
    expect(task.attempt).toBe(1);
    expect(task.node).toBe(weft.nodeId);
  });

  it("completes 10,000 tasks exactly once each", async () => {
    const inputs = Array.from({ length: 10_000 }, (_, i) => ({ i }));
    const refs = [];
    for (let i = 0; i < inputs.length; i += 2_500)
      refs.push(...(await weft.client.scheduleMany(count, inputs.slice(i, i + 2_500))));
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    try {
      await eventually(async () => {
        const { rows } = await pool.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM weft.tasks WHERE task_name = 'count' AND state = 'COMPLETED'",
        );
        return rows[0]?.n === 10_000 ? true : undefined;
      }, 60_000);
      // Each is a solo workflow: no workflow row, its status is its task's.
      const { rows } = await pool.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM weft.workflows w WHERE w.id = ANY($1)",
        [refs.map((r) => r.workflowId)],
      );
      expect(rows[0]?.n).toBe(0);
      for (const ref of refs.slice(0, 20)) {
        const wf = await weft.client.getWorkflow(ref.workflowId);
        expect(wf).toMatchObject({ status: "COMPLETED", pendingTasks: 0, totalTasks: 1, rootTaskId: ref.taskId });
      }
    } finally {
      await pool.end();
    }
    expect(refs.every((r) => executions.get(r.taskId) === 1)).toBe(true);
    expect(executions.size).toBe(10_000);
  });

  it("writes children in the parent's workflow, and ends the workflow after the last child", async () => {
    // Children sleep long enough that the workflow is still RUNNING when the
    // test has seen all 21 tasks, even on a loaded machine.
    const ref = await weft.client.schedule(parent, { children: 20, sleepMs: 1_000 });
    const running = await eventually(async () => {
      const tasks = await weft.client.getWorkflowTasks(ref.workflowId);
      return tasks.length === 21 ? tasks : undefined;
    });
    expect((await weft.client.getWorkflow(ref.workflowId)).status).toBe("RUNNING");
    const wf = await weft.client.waitForWorkflow(ref.workflowId, { timeoutMs: 20_000 });
    expect(wf.status).toBe("COMPLETED");
    expect(wf.totalTasks).toBe(21);
    const tasks = await weft.client.getWorkflowTasks(ref.workflowId);
    const root = tasks.find((t) => t.id === ref.taskId);
    const children = tasks.filter((t) => t.id !== ref.taskId);
    expect(children).toHaveLength(20);
    expect(running.map((t) => t.id).sort()).toEqual(tasks.map((t) => t.id).sort());
    for (const c of children) {
      expect(c.workflowId).toBe(ref.workflowId);
      expect(c.parentId).toBe(ref.taskId);
      expect(c.state).toBe("COMPLETED");
      expect(wf.finishedAt?.getTime()).toBeGreaterThanOrEqual(c.finishedAt?.getTime() ?? Number.POSITIVE_INFINITY);
    }
    expect((root?.result as { scheduled: string[] } | undefined)?.scheduled.sort()).toEqual(
      children.map((c) => c.id).sort(),
    );
  });

  it("a parent that throws leaves no children behind", async () => {
    const ref = await weft.client.schedule(parent, { children: 5, fail: true });
    const wf = await weft.client.waitForWorkflow(ref.workflowId, { timeoutMs: 10_000 });
    expect(wf.status).toBe("FAILED");
    expect(wf.failedTasks).toBe(1);
    const tasks = await weft.client.getWorkflowTasks(ref.workflowId);
    expect(tasks).toHaveLength(1);
    expect(tasks[0]?.state).toBe("FAILED");
    expect(tasks[0]?.error?.message).toBe("parent failed after scheduling");
  });

  it("a result that fails its output schema fails the task with OUTPUT_INVALID", async () => {
    const ref = await weft.client.schedule(badOutput, {});
    const wf = await weft.client.waitForWorkflow(ref.workflowId, { timeoutMs: 10_000 });
    expect(wf.status).toBe("FAILED");
    const task = await weft.client.getTask(ref.taskId);
    expect(task.error?.code).toBe("OUTPUT_INVALID");
    expect(task.error?.message).toContain("ok");
  });

  it("does not start a delayed task before its time", async () => {
    const before = Date.now();
    const ref = await weft.client.schedule(add, { a: 1, b: 1 }, { delayMs: 1_500 });
    const queued = await weft.client.getTask(ref.taskId);
    expect(queued.state).toBe("PENDING");
    await weft.client.waitForWorkflow(ref.workflowId, { timeoutMs: 15_000 });
    const task = await weft.client.getTask(ref.taskId);
    expect(task.assignedAt?.getTime()).toBeGreaterThanOrEqual((task.runAfter?.getTime() ?? 0) - 1);
    expect(Date.now() - before).toBeGreaterThanOrEqual(1_400);
  });

  it("schedules inside the caller's transaction: rollback writes nothing, commit runs the task", async () => {
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    const client = await pool.connect();
    try {
      await client.query("BEGIN");
      const rolledBack = await weft.client.schedule(add, { a: 1, b: 2 }, { tx: client });
      await client.query("ROLLBACK");
      await expect(weft.client.getTask(rolledBack.taskId)).rejects.toMatchObject({ code: "TASK_NOT_FOUND" });

      await client.query("BEGIN");
      const committed = await weft.client.schedule(add, { a: 1, b: 2 }, { tx: client });
      await client.query("COMMIT");
      const wf = await weft.client.waitForWorkflow(committed.workflowId, { timeoutMs: 10_000 });
      expect(wf.status).toBe("COMPLETED");
    } finally {
      client.release();
      await pool.end();
    }
  });

  it("runs without prepared statements (for a transaction-mode pooler)", async () => {
    const plain = createWeft({
      connectionString: url,
      schema: "weft_plain",
      tasks: [add],
      preparedStatements: false,
    });
    await plain.start();
    try {
      const ids = await Promise.all(Array.from({ length: 50 }, (_, i) => plain.client.schedule(add, { a: i, b: 1 })));
      for (const [i, { workflowId }] of ids.entries()) {
        expect(await plain.client.workflow(workflowId).result(add)).toEqual({ sum: i + 1 });
      }
    } finally {
      await plain.stop();
    }
  });

  it("adds a task to an existing running workflow", async () => {
    const root = await weft.client.schedule(child, { n: 1, sleepMs: 500 });
    const extra = await weft.client.schedule(add, { a: 4, b: 4 }, { workflowId: root.workflowId });
    expect(extra.workflowId).toBe(root.workflowId);
    const wf = await weft.client.waitForWorkflow(root.workflowId, { timeoutMs: 10_000 });
    expect(wf.totalTasks).toBe(2);
    expect(wf.status).toBe("COMPLETED");
    await expect(weft.client.schedule(add, { a: 1, b: 1 }, { workflowId: root.workflowId })).rejects.toMatchObject({
      code: "WORKFLOW_NOT_RUNNING",
    });
  });
});
