import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { eventually, freshDatabase } from "../../test/support.js";
import { createWeft, defineJoin, defineTask, type Weft, WorkflowFailedError } from "../src/index.js";

/** Start and end of every execution in this process, by task id. */
const timeline = new Map<string, { name: string; start: number; end: number }>();
const track = async <T>(ctx: { taskId: string; taskName: string }, work: () => Promise<T> | T): Promise<T> => {
  const start = performance.now();
  try {
    return await work();
  } finally {
    timeline.set(ctx.taskId, { name: ctx.taskName, start, end: performance.now() });
  }
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// --- map-reduce
const square = defineTask({
  name: "mr.square",
  input: z.object({ n: z.number().int(), fail: z.boolean().default(false) }),
  output: z.object({ square: z.number() }),
  run: ({ input }) => {
    if (input.fail) throw new Error(`map ${input.n} failed`);
    return { square: input.n * input.n };
  },
});
const sum = defineJoin({
  name: "mr.sum",
  input: z.object({ failIfAnyFailed: z.boolean().default(false) }),
  output: z.object({ total: z.number(), order: z.array(z.string()), failed: z.array(z.string()) }),
  upstream: square,
  run: (ctx) => {
    const failed = ctx.upstream.filter((u) => u.status !== "COMPLETED").map((u) => u.error?.message ?? "");
    if (ctx.input.failIfAnyFailed && failed.length > 0) throw new Error("a map failed");
    let total = 0;
    for (const u of ctx.upstream) if (u.status === "COMPLETED") total += u.result.square;
    return { total, order: ctx.upstream.map((u) => u.taskId), failed };
  },
});
const mapReduce = defineTask({
  name: "mr.parent",
  input: z.object({ n: z.number().int(), failAt: z.number().int().default(-1), failJoin: z.boolean().default(false) }),
  output: z.object({ maps: z.array(z.string()), join: z.string() }),
  run: (ctx) => {
    const maps = Array.from({ length: ctx.input.n }, (_, i) =>
      ctx.schedule(square, { n: i, fail: i === ctx.input.failAt }),
    );
    const join = ctx.scheduleJoin(sum, { failIfAnyFailed: ctx.input.failJoin }, maps);
    return { maps: maps.map((m) => m.taskId), join: join.taskId };
  },
});

// --- the DTF ParentTask DAG: parent -> 2 level-one children -> 4 level-two children
// -> 2 level-two joins -> 2 children-from-join -> 1 level-one join
const childFromJoin = defineTask({
  name: "dag.childFromJoin",
  input: z.object({}),
  output: z.null(),
  run: (ctx) => track(ctx, () => sleep(30).then(() => null)),
});
const levelTwo = defineTask({
  name: "dag.levelTwo",
  input: z.object({ ms: z.number() }),
  output: z.null(),
  run: (ctx) => track(ctx, () => sleep(ctx.input.ms).then(() => null)),
});
const joinLevelTwo = defineJoin({
  name: "dag.joinLevelTwo",
  input: z.object({}),
  output: z.number(),
  upstream: levelTwo,
  run: (ctx) =>
    track(ctx, () => {
      ctx.schedule(childFromJoin, {});
      return ctx.upstream.length;
    }),
});
const levelOne = defineTask({
  name: "dag.levelOne",
  input: z.object({ ms: z.number() }),
  output: z.null(),
  run: (ctx) =>
    track(ctx, () => {
      const a = ctx.schedule(levelTwo, { ms: ctx.input.ms });
      const b = ctx.schedule(levelTwo, { ms: ctx.input.ms * 2 });
      ctx.scheduleJoin(joinLevelTwo, {}, [a, b]);
      return null;
    }),
});
const joinLevelOne = defineJoin({
  name: "dag.joinLevelOne",
  input: z.object({}),
  output: z.number(),
  upstream: levelOne,
  run: (ctx) => track(ctx, () => ctx.upstream.filter((u) => u.status === "COMPLETED").length),
});
const dagParent = defineTask({
  name: "dag.parent",
  input: z.object({}),
  output: z.null(),
  run: (ctx) =>
    track(ctx, () => {
      const a = ctx.schedule(levelOne, { ms: 40 });
      const b = ctx.schedule(levelOne, { ms: 80 });
      ctx.scheduleJoin(joinLevelOne, {}, [a, b]);
      return null;
    }),
});

// --- forks and grandchildren
const slow = defineTask({
  name: "sub.slow",
  input: z.object({ ms: z.number() }),
  output: z.null(),
  run: (ctx) => track(ctx, () => sleep(ctx.input.ms).then(() => null)),
});
const spawner = defineTask({
  name: "sub.spawner",
  input: z.object({}),
  output: z.null(),
  run: (ctx) =>
    track(ctx, () => {
      ctx.schedule(slow, { ms: 400 }); // a grandchild of the parent: the join waits for it
      ctx.fork(slow, { ms: 1_500 }); // a fork: the join does not wait for it
      return null;
    }),
});
const afterAllJoin = defineJoin({
  name: "sub.join",
  input: z.object({}),
  output: z.null(),
  upstream: spawner,
  run: (ctx) => track(ctx, () => null),
});
const subParent = defineTask({
  name: "sub.parent",
  input: z.object({}),
  output: z.null(),
  run: (ctx) => {
    const s = ctx.schedule(spawner, {});
    ctx.scheduleJoin(afterAllJoin, {}, [s]);
    return null;
  },
});
const badJoin = defineTask({
  name: "bad.join",
  input: z.object({}),
  output: z.null(),
  run: (ctx) => {
    ctx.schedule(square, { n: 1 });
    ctx.scheduleJoin(sum, {}, ["01ARZ3NDEKTSV4RRFFQ69G5FAV"]);
    return null;
  },
});

// --- a task upstream of several joins (BullMQ flows allow one parent only)
const twoJoins = defineTask({
  name: "multi.parent",
  input: z.object({}),
  output: z.object({ a: z.string(), b: z.string() }),
  run: (ctx) => {
    const x = ctx.schedule(square, { n: 2 });
    const y = ctx.schedule(square, { n: 3 });
    const a = ctx.scheduleJoin(sum, {}, [x, y]);
    const b = ctx.scheduleJoin(sum, {}, [y]);
    return { a: a.taskId, b: b.taskId };
  },
});
/** Spawns a slow child, so a join scheduled from the client must wait for it. */
const withSlowChild = defineTask({
  name: "client.withSlowChild",
  input: z.object({}),
  output: z.object({ square: z.number() }),
  run: (ctx) => {
    ctx.schedule(slow, { ms: 600 });
    return { square: 1 };
  },
});

// --- a failure deeper than the listed tasks is not delivered to the join: unhandled
const failingSpawner = defineTask({
  name: "deep.spawner",
  input: z.object({}),
  output: z.object({ square: z.number() }),
  run: (ctx) => {
    ctx.schedule(square, { n: 1, fail: true });
    return { square: 0 };
  },
});
const deepParent = defineTask({
  name: "deep.parent",
  input: z.object({}),
  output: z.null(),
  run: (ctx) => {
    ctx.scheduleJoin(sum, {}, [ctx.schedule(failingSpawner, {})]);
    return null;
  },
});

// --- messages from a join's subtree to the join
const noisyChild = defineTask({
  name: "msg.child",
  input: z.object({ from: z.string() }),
  output: z.null(),
  run: (ctx) => {
    ctx.sendToJoin(tally, { note: `child of ${ctx.input.from}` });
    return null;
  },
});
const noisy = defineTask({
  name: "msg.noisy",
  input: z.object({ name: z.string(), fail: z.boolean() }),
  output: z.null(),
  run: (ctx) => {
    ctx.sendToJoin(tally, { note: ctx.input.name });
    ctx.schedule(noisyChild, { from: ctx.input.name });
    if (ctx.input.fail) throw new Error("fails after sending");
    return null;
  },
});
const tally = defineJoin({
  name: "msg.tally",
  input: z.object({}),
  output: z.array(z.string()),
  upstream: noisy,
  messages: z.object({ note: z.string() }),
  run: (ctx) => ctx.messages.map((m) => m.note).sort(),
});
const noisyParent = defineTask({
  name: "msg.parent",
  input: z.object({}),
  output: z.null(),
  run: (ctx) => {
    const refs = ["a", "b", "c"].map((name) => ctx.schedule(noisy, { name, fail: name === "c" }));
    ctx.scheduleJoin(tally, {}, refs);
    return null;
  },
});

describe("joins and map-reduce", () => {
  let weft: Weft;
  beforeAll(async () => {
    weft = createWeft({
      connectionString: await freshDatabase(),
      // Failures here are final at once; retries have their own tests.
      taskDefaults: { retry: { mode: "OFF" } },
      tasks: [
        square,
        sum,
        mapReduce,
        childFromJoin,
        levelTwo,
        joinLevelTwo,
        levelOne,
        joinLevelOne,
        dagParent,
        slow,
        spawner,
        afterAllJoin,
        subParent,
        badJoin,
        twoJoins,
        withSlowChild,
        tally,
        noisyChild,
        noisy,
        noisyParent,
        failingSpawner,
        deepParent,
      ],
      node: { maxParallelTasksInNode: 50 },
    });
    await weft.start();
  });
  afterAll(() => weft.stop());

  it("a reduce join receives every map's typed result, in the order given", async () => {
    const ref = await weft.client.schedule(mapReduce, { n: 60 });
    const wf = await weft.client.waitForWorkflow(ref.workflowId, { timeoutMs: 30_000 });
    expect(wf.status).toBe("COMPLETED");
    expect(wf.totalTasks).toBe(62);
    const root = await weft.client.getTask(ref.taskId, mapReduce);
    const join = await weft.client.getTask(root.result?.join ?? "", sum);
    expect(join.result?.total).toBe(Array.from({ length: 60 }, (_, i) => i * i).reduce((a, b) => a + b, 0));
    expect(join.result?.order).toEqual(root.result?.maps);
    expect(join.parentId).toBe(ref.taskId);
    // The join ran after the last map finished.
    const maps = await Promise.all((root.result?.maps ?? []).map((id) => weft.client.getTask(id)));
    const lastMap = Math.max(...maps.map((m) => m.finishedAt?.getTime() ?? 0));
    expect(join.assignedAt?.getTime()).toBeGreaterThanOrEqual(lastMap);
  });

  it("a failed map is delivered to the join; a join that succeeds handles it", async () => {
    const ref = await weft.client.schedule(mapReduce, { n: 5, failAt: 2 });
    const wf = await weft.client.waitForWorkflow(ref.workflowId, { timeoutMs: 30_000 });
    expect(wf.status).toBe("COMPLETED");
    expect(wf.failedTasks).toBe(0);
    const root = await weft.client.getTask(ref.taskId, mapReduce);
    const join = await weft.client.getTask(root.result?.join ?? "", sum);
    expect(join.result?.failed).toEqual(["map 2 failed"]);
    expect(join.result?.total).toBe(0 + 1 + 9 + 16);
  });

  it("a join that fails on a failed map fails the workflow", async () => {
    const ref = await weft.client.schedule(mapReduce, { n: 3, failAt: 0, failJoin: true });
    const wf = await weft.client.waitForWorkflow(ref.workflowId, { timeoutMs: 30_000 });
    expect(wf.status).toBe("FAILED");
    expect(wf.failedTasks).toBe(1);
  });

  it("reproduces the DTF ParentTask DAG and runs it in the order of its edges", async () => {
    timeline.clear();
    const ref = await weft.client.schedule(dagParent, {});
    const wf = await weft.client.waitForWorkflow(ref.workflowId, { timeoutMs: 30_000 });
    expect(wf.status).toBe("COMPLETED");
    const tasks = await weft.client.getWorkflowTasks(ref.workflowId);
    const count = (name: string) => tasks.filter((t) => t.name === name).length;
    expect([
      count("dag.parent"),
      count("dag.levelOne"),
      count("dag.levelTwo"),
      count("dag.joinLevelTwo"),
      count("dag.childFromJoin"),
      count("dag.joinLevelOne"),
    ]).toEqual([1, 2, 4, 2, 2, 1]);
    expect(tasks.every((t) => t.state === "COMPLETED")).toBe(true);
    const byId = new Map(tasks.map((t) => [t.id, t]));
    const t = (id: string) => timeline.get(id) ?? { name: "?", start: Number.NaN, end: Number.NaN };
    // Each level-two join starts after both of its level-two children ended.
    for (const j of tasks.filter((x) => x.name === "dag.joinLevelTwo")) {
      const siblings = tasks.filter((x) => x.name === "dag.levelTwo" && x.parentId === j.parentId);
      expect(siblings).toHaveLength(2);
      for (const s of siblings) expect(t(j.id).start).toBeGreaterThanOrEqual(t(s.id).end);
      expect(byId.get(j.parentId ?? "")?.name).toBe("dag.levelOne");
    }
    // The level-one join starts after everything else ended, children-from-join included.
    const top = tasks.find((x) => x.name === "dag.joinLevelOne");
    for (const other of tasks.filter((x) => x.id !== top?.id && x.name !== "dag.parent")) {
      expect(t(top?.id ?? "").start).toBeGreaterThanOrEqual(t(other.id).end);
    }
    const joinResult = await weft.client.getTask(top?.id ?? "", joinLevelOne);
    expect(joinResult.result).toBe(2);

    // The DAG as nodes and edges, validated and layered.
    const graph = await weft.client.workflow(ref.workflowId).graph();
    expect(graph.nodes).toHaveLength(12);
    expect(graph.edges.filter((e) => e.kind === "spawn")).toHaveLength(11);
    expect(graph.edges.filter((e) => e.kind === "join")).toHaveLength(2 + 2 + 2);
    // The level-one join also waits for the 4 level-two children, 2 level-two joins and 2 children-from-join.
    expect(graph.edges.filter((e) => e.kind === "awaits")).toHaveLength(8);
    expect(graph.levels.at(-1)).toEqual([top?.id]);
    expect(graph.nodes.filter((n) => n.kind === "join")).toHaveLength(3);
    const level = new Map(graph.nodes.map((n) => [n.id, n.level]));
    for (const e of graph.edges) expect(level.get(e.to)).toBeGreaterThan(level.get(e.from) ?? Number.POSITIVE_INFINITY);
    expect(graph.levels[0]).toEqual([ref.taskId]);
  });

  it("a join waits for grandchildren but not for forks", async () => {
    timeline.clear();
    const ref = await weft.client.schedule(subParent, {});
    const tasks = async () => weft.client.getWorkflowTasks(ref.workflowId);
    let all = await tasks();
    for (let i = 0; i < 100 && !all.some((x) => x.name === "sub.join" && x.state === "COMPLETED"); i++) {
      await sleep(50);
      all = await tasks();
    }
    const join = all.find((x) => x.name === "sub.join");
    const slows = all.filter((x) => x.name === "sub.slow");
    expect(slows).toHaveLength(2);
    const grandchild = slows.find(
      (s) => timeline.get(s.id) && (timeline.get(s.id)?.end ?? 0) - (timeline.get(s.id)?.start ?? 0) < 1_000,
    );
    expect(join?.state).toBe("COMPLETED");
    expect(grandchild).toBeDefined();
    expect(timeline.get(join?.id ?? "")?.start).toBeGreaterThanOrEqual(
      timeline.get(grandchild?.id ?? "")?.end ?? Number.NaN,
    );
    // The fork is still running when the join has finished; the workflow waits for it.
    const fork = slows.find((s) => s.id !== grandchild?.id);
    expect(fork?.state).not.toBe("COMPLETED");
    const wf = await weft.client.waitForWorkflow(ref.workflowId, { timeoutMs: 10_000 });
    expect(wf.status).toBe("COMPLETED");
  });

  it("a join over a task this attempt did not schedule fails the parent and writes nothing", async () => {
    const ref = await weft.client.schedule(badJoin, {});
    const wf = await weft.client.waitForWorkflow(ref.workflowId, { timeoutMs: 10_000 });
    expect(wf.status).toBe("FAILED");
    const tasks = await weft.client.getWorkflowTasks(ref.workflowId);
    expect(tasks).toHaveLength(1);
    expect(tasks[0]?.error?.code).toBe("INVALID_ARGUMENT");
  });

  it("workflow(id).result() returns the final join's typed result, or throws a typed error", async () => {
    const ok = await weft.client.schedule(mapReduce, { n: 4 });
    const result = await weft.client.workflow(ok.workflowId).result(sum, { timeoutMs: 20_000 });
    expect(result.total).toBe(0 + 1 + 4 + 9);
    await expect(weft.client.workflow(ok.workflowId).result(square)).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });

    const single = await weft.client.schedule(square, { n: 7 });
    expect(await weft.client.workflow(single.workflowId).result(square)).toEqual({ square: 49 });

    const failing = await weft.client.schedule(mapReduce, { n: 2, failAt: 1, failJoin: true });
    const error = await weft.client
      .workflow(failing.workflowId)
      .result()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkflowFailedError);
    expect((error as WorkflowFailedError).failures.map((f) => f.taskName)).toEqual(["mr.sum"]);
    expect((error as WorkflowFailedError).failures[0]?.error?.message).toBe("a map failed");
  });

  it("a task may be upstream of several joins", async () => {
    const ref = await weft.client.schedule(twoJoins, {});
    const wf = await weft.client.waitForWorkflow(ref.workflowId, { timeoutMs: 20_000 });
    expect(wf.status).toBe("COMPLETED");
    const root = await weft.client.getTask(ref.taskId, twoJoins);
    expect((await weft.client.getTask(root.result?.a ?? "", sum)).result?.total).toBe(4 + 9);
    expect((await weft.client.getTask(root.result?.b ?? "", sum)).result?.total).toBe(9);
  });

  it("the client joins existing tasks: finished ones at once, running ones and their subtrees when they end", async () => {
    const done1 = await weft.client.schedule(square, { n: 5 });
    await weft.client.waitForWorkflow(done1.workflowId);
    // A join on a finished task of a finished workflow is refused: the workflow cannot grow.
    await expect(weft.client.scheduleJoin(sum, {}, [done1])).rejects.toMatchObject({ code: "WORKFLOW_NOT_RUNNING" });

    // Within a running workflow: one finished task, one with a running subtree.
    const anchor = await weft.client.schedule(slow, { ms: 1_500 });
    const finished = await weft.client.schedule(square, { n: 4 }, { workflowId: anchor.workflowId });
    await eventually(async () =>
      (await weft.client.getTask(finished.taskId)).state === "COMPLETED" ? true : undefined,
    );
    const parent = await weft.client.schedule(withSlowChild, {}, { workflowId: anchor.workflowId });
    await eventually(async () => ((await weft.client.getTask(parent.taskId)).state === "COMPLETED" ? true : undefined));
    const join = await weft.client.scheduleJoin(sum, {}, [finished, parent]);
    expect(join.workflowId).toBe(anchor.workflowId);
    const waiting = await weft.client.getTask(join.taskId);
    expect(waiting.queue).toBe("PARKED");
    const children = (await weft.client.getWorkflowTasks(anchor.workflowId)).filter(
      (t) => t.parentId === parent.taskId,
    );
    expect(children).toHaveLength(1);
    const result = await eventually(async () => {
      const j = await weft.client.getTask(join.taskId, sum);
      return j.state === "COMPLETED" ? j : undefined;
    }, 10_000);
    expect(result.result?.order).toEqual([finished.taskId, parent.taskId]);
    expect(result.assignedAt?.getTime()).toBeGreaterThanOrEqual(
      (await weft.client.getTask(children[0]?.id ?? "")).finishedAt?.getTime() ?? Number.POSITIVE_INFINITY,
    );
  });

  it("a client join on unknown ids or on tasks of two workflows is refused and writes nothing", async () => {
    const a = await weft.client.schedule(slow, { ms: 500 });
    const b = await weft.client.schedule(slow, { ms: 500 });
    const before = (await weft.client.getWorkflowTasks(a.workflowId)).length;
    await expect(weft.client.scheduleJoin(sum, {}, [a, "01ARZ3NDEKTSV4RRFFQ69G5FAV"])).rejects.toMatchObject({
      code: "TASK_NOT_FOUND",
    });
    await expect(weft.client.scheduleJoin(sum, {}, [a, b])).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(weft.client.scheduleJoin(sum, {}, [a, a])).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    expect((await weft.client.getWorkflowTasks(a.workflowId)).length).toBe(before);
    expect((await weft.client.getTask(a.taskId)).state).not.toBe("CANCELLED");
  });

  it("tasks of a join's subtree send it typed messages, written with their outcome", async () => {
    const ref = await weft.client.schedule(noisyParent, {});
    const wf = await weft.client.waitForWorkflow(ref.workflowId, { timeoutMs: 20_000 });
    expect(wf.status).toBe("COMPLETED");
    const join = (await weft.client.getWorkflowTasks(ref.workflowId)).find((t) => t.name === "msg.tally");
    // "c" failed after sending: neither its message nor its child exists.
    expect((await weft.client.getTask(join?.id ?? "", tally)).result).toEqual(["a", "b", "child of a", "child of b"]);
  });

  it("a failure deeper than the listed tasks is waited for but not delivered: the workflow FAILS", async () => {
    const ref = await weft.client.schedule(deepParent, {});
    const wf = await weft.client.waitForWorkflow(ref.workflowId, { timeoutMs: 20_000 });
    expect(wf.status).toBe("FAILED");
    const tasks = await weft.client.getWorkflowTasks(ref.workflowId);
    const join = tasks.find((t) => t.name === "mr.sum");
    const failed = tasks.find((t) => t.state === "FAILED");
    expect(join?.state).toBe("COMPLETED");
    expect(join?.assignedAt?.getTime()).toBeGreaterThanOrEqual(
      failed?.finishedAt?.getTime() ?? Number.POSITIVE_INFINITY,
    );
    const error = await weft.client
      .workflow(ref.workflowId)
      .result()
      .catch((e: unknown) => e);
    expect((error as { failures: { taskName: string }[] }).failures.map((f) => f.taskName)).toEqual(["mr.square"]);
  });
});
