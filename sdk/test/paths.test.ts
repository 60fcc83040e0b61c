import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { parseConfig, plannerConfigSchema } from "../../engine/src/config.js";
import { Planner } from "../../engine/src/planner/cycle.js";
import { Store } from "../../engine/src/store/index.js";
import { memoryLogger, newTask } from "../../engine/test/helpers.js";
import { eventually, freshDatabase, poolFor } from "../../test/support.js";
import { createClient, createWeft, defineTask, type Weft, WorkflowGraphError } from "../src/index.js";
import { engineOf } from "../src/internal.js";

/** Paths of the engine that only unit tests (or none) covered: each on a real database. */

describe("attempts lost on dead nodes use up the retry budget", () => {
  let url: string;
  let pool: pg.Pool;
  let runs = 0;
  /** Two attempts (one retry); its run is never reached here. */
  const doomed = defineTask({
    name: "doomed",
    input: z.object({}),
    output: z.null(),
    retry: { mode: "FIXED", delayMs: 10, maxRetries: 1 },
    run: () => {
      runs++;
      return null;
    },
  });
  const store = new Store("weft");

  beforeAll(async () => {
    url = await freshDatabase();
    pool = poolFor(url);
  });

  it("two lost attempts of two allowed: the next assignment fails ATTEMPTS_EXHAUSTED without running, dead-lettered", async () => {
    const client = createClient({ connectionString: url, tasks: [doomed] });
    await client.start();
    // The test plans itself: no process leads, so nothing else assigns the task.
    const planner = new Planner(
      store,
      pool,
      parseConfig(plannerConfigSchema, { nodeDeadAfterMs: 1_000, deadNodeSweepMs: 10 }),
      memoryLogger().logger,
      () => undefined,
    );
    const node = createWeft({
      connectionString: url,
      tasks: [doomed],
      planner: { enabled: false },
      node: { heartbeatIntervalMs: 200 },
    });
    try {
      const ref = await client.client.schedule(doomed, {});
      const row = async () =>
        (
          await pool.query<{ queue: string; state: string; attempt: number; assigned_node: string | null }>(
            "SELECT queue, state, attempt, assigned_node FROM weft.tasks WHERE id = $1",
            [ref.taskId],
          )
        ).rows[0];
      // Two nodes in turn take the task and die with it (their heartbeat goes stale).
      for (const ghost of ["GHOST1", "GHOST2"]) {
        await pool.query(
          "INSERT INTO weft.nodes (id, app_name, host, pid, capacity, task_names) VALUES ($1, 'ghost', 'h', 1, 5, '{doomed}')",
          [ghost],
        );
        await planner.cycle();
        expect(await row()).toMatchObject({ queue: "READY", assigned_node: ghost });
        await pool.query("UPDATE weft.nodes SET heartbeat_at = now() - interval '1 minute' WHERE id = $1", [ghost]);
        // The sweep (every deadNodeSweepMs) declares it dead and puts the task back.
        await eventually(async () => {
          await planner.cycle();
          const r = await row();
          return r?.assigned_node === null && r.queue === "READY" ? r : undefined;
        }, 10_000);
      }
      expect((await row())?.attempt).toBe(2);
      // A live node gets attempt 3, beyond the policy's two: it fails at once.
      await node.start();
      await eventually(async () => {
        await planner.cycle();
        return (await row())?.queue === "DELETED" ? true : undefined;
      }, 20_000);
      const task = await client.client.getTask(ref.taskId);
      expect(task.state).toBe("FAILED");
      expect(task.attempt).toBe(3);
      expect(task.error?.code).toBe("ATTEMPTS_EXHAUSTED");
      expect(runs).toBe(0);
      const letter = await client.client.deadLetters.get(ref.taskId);
      expect(letter?.attempts.map((a) => [a.attempt, a.node, a.error?.code])).toEqual([
        [1, "GHOST1", "ATTEMPT_LOST"],
        [2, "GHOST2", "ATTEMPT_LOST"],
        [3, node.nodeId, "ATTEMPTS_EXHAUSTED"],
      ]);
      expect((await client.client.getWorkflow(ref.workflowId)).status).toBe("FAILED");
    } finally {
      await node.stop();
      await client.stop();
    }
  });
});

describe("reads on a real database", () => {
  let weft: Weft;
  let pool: pg.Pool;
  const store = new Store("weft");
  const gate = defineTask({
    name: "gate",
    input: z.object({ key: z.string() }),
    output: z.null(),
    retry: { mode: "OFF" },
    run: async (ctx) => {
      if (ctx.input.key === "fail") throw new Error("fails");
      while (!ctx.signal.aborted) {
        const { rows } = await pool.query("SELECT 1 FROM public.open_gates WHERE key = $1", [ctx.input.key]);
        if (rows.length > 0) return null;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw ctx.signal.reason;
    },
  });

  beforeAll(async () => {
    const url = await freshDatabase();
    pool = poolFor(url);
    await pool.query(
      "CREATE TABLE public.open_gates (key text PRIMARY KEY); INSERT INTO public.open_gates VALUES ('now')",
    );
    weft = createWeft({ connectionString: url, tasks: [gate] });
    await weft.start();
  });
  afterAll(() => weft.stop());

  it("queueCounts counts every task by virtual queue and state", async () => {
    const counts = async () =>
      (await weft.client.queueCounts()).sort((a, b) => `${a.queue}${a.state}`.localeCompare(`${b.queue}${b.state}`));
    expect(await counts()).toEqual([]);
    const done = await weft.client.scheduleMany(gate, [{ key: "now" }, { key: "now" }]);
    const failed = await weft.client.schedule(gate, { key: "fail" });
    for (const r of [...done, failed]) await weft.client.workflow(r.workflowId).wait();
    const delayed = await weft.client.schedule(gate, { key: "now" }, { delayMs: 3_600_000 });
    const cancelled = await weft.client.schedule(gate, { key: "now" }, { delayMs: 3_600_000 });
    await weft.client.cancelWorkflow(cancelled.workflowId);
    const held = await weft.client.schedule(gate, { key: "later" });
    await eventually(async () => ((await weft.client.getTask(held.taskId)).state === "RUNNING" ? true : undefined));
    expect(await counts()).toEqual([
      { queue: "DELETED", state: "CANCELLED", count: 1 },
      { queue: "DELETED", state: "COMPLETED", count: 2 },
      { queue: "DELETED", state: "FAILED", count: 1 },
      { queue: "PARKED", state: "PENDING", count: 1 },
      { queue: "READY", state: "RUNNING", count: 1 },
    ]);
    await pool.query("INSERT INTO public.open_gates VALUES ('later')");
    await weft.client.workflow(held.workflowId).wait();
    await weft.client.cancelWorkflow(delayed.workflowId);
    expect(await counts()).toEqual([
      { queue: "DELETED", state: "CANCELLED", count: 2 },
      { queue: "DELETED", state: "COMPLETED", count: 3 },
      { queue: "DELETED", state: "FAILED", count: 1 },
    ]);
  });

  it("a malformed stored graph (a cycle through a join) throws WorkflowGraphError; a sound one does not", async () => {
    // Written below the API, as a damaged or hand-edited database would hold it:
    // root R spawns join J, J spawns K, and J lists K as its upstream (K -> J -> K).
    const root = newTask({ taskName: "nobody" });
    const join = newTask({ taskName: "nobody", workflowId: root.id, parentId: root.id, joinPending: 1 });
    const child = newTask({ taskName: "nobody", workflowId: root.id, parentId: join.id });
    await store.schedule.insert(pool, [root, join, child], new Set([root.id]));
    const sound = await weft.client.getWorkflowGraph(root.id);
    expect(sound.levels).toEqual([[root.id], [join.id], [child.id]]);
    await store.schedule.insertEdges(pool, [{ joinId: join.id, upstream: [child.id], parentId: join.id }]);
    const error = await weft.client.getWorkflowGraph(root.id).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkflowGraphError);
    expect((error as Error).message).toBe(`workflow ${root.id} has a cycle`);
    await weft.client.cancelWorkflow(root.id);
  });

  it("reads a workflow's graph from one snapshot: a fan-out committed between its two reads is not half seen", async () => {
    const root = newTask({ taskName: "nobody" });
    await store.schedule.insert(pool, [root], new Set([root.id]));
    // The interleaving that broke the dashboard's live graph: the tasks read, then
    // a join with its upstream committed, then the edges read.
    const read = engineOf(weft).store.read;
    const { workflowTasks, graphEdges } = read;
    let committed: Promise<void> = Promise.resolve();
    let join: ReturnType<typeof newTask> | undefined;
    read.workflowTasks = async (q, id) => {
      const rows = await workflowTasks.call(read, q, id);
      join = newTask({ taskName: "nobody", workflowId: root.id, parentId: root.id, joinPending: 1 });
      const upstream = newTask({ taskName: "nobody", workflowId: root.id, parentId: root.id });
      committed = (async () => {
        await store.schedule.insert(pool, [upstream, join as ReturnType<typeof newTask>], new Set());
        await store.schedule.insertEdges(pool, [
          { joinId: (join as ReturnType<typeof newTask>).id, upstream: [upstream.id], parentId: root.id },
        ]);
      })();
      return rows;
    };
    read.graphEdges = async (q, id) => {
      // Until the tasks were read and the fan-out committed.
      while (join === undefined) await new Promise((r) => setTimeout(r, 5));
      await committed;
      return graphEdges.call(read, q, id);
    };
    try {
      const first = await weft.client.getWorkflowGraph(root.id);
      expect(first.nodes.map((n) => n.id)).toEqual([root.id]);
      expect(first.edges).toEqual([]);
    } finally {
      read.workflowTasks = workflowTasks;
      read.graphEdges = graphEdges;
    }
    // Read again: the whole fan-out.
    expect((await weft.client.getWorkflowGraph(root.id)).nodes).toHaveLength(3);
    await weft.client.cancelWorkflow(root.id);
  });
});

describe("BACKOFF delays and taskOverrides on a real database", () => {
  let weft: Weft;
  let pool: pg.Pool;
  const backoff = defineTask({
    name: "backoff",
    input: z.object({ failTimes: z.number().int() }),
    output: z.number(),
    retry: { mode: "BACKOFF", initialDelayMs: 1_000, delayPeriodMs: 750, maxRetries: 3, jitter: 0 },
    run: (ctx) => {
      if (ctx.attempt <= ctx.input.failTimes) throw new Error(`attempt ${ctx.attempt} fails`);
      return ctx.attempt;
    },
  });
  /** The definition says five FIXED retries and no timeout; the configuration overrides both. */
  const overridden = defineTask({
    name: "overridden",
    input: z.object({ sleepMs: z.number().int() }),
    output: z.null(),
    retry: { mode: "FIXED", delayMs: 10, maxRetries: 5 },
    maxParallelInCluster: 50,
    run: async (ctx) => {
      await new Promise((resolve, reject) => {
        const timer = setTimeout(resolve, ctx.input.sleepMs);
        ctx.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          reject(ctx.signal.reason);
        });
      });
      return null;
    },
  });

  beforeAll(async () => {
    const url = await freshDatabase();
    pool = poolFor(url);
    weft = createWeft({
      connectionString: url,
      tasks: [backoff, overridden],
      taskDefaults: { retry: { mode: "FIXED", delayMs: 5_000, maxRetries: 1 } },
      taskOverrides: { overridden: { retry: { mode: "OFF" }, timeoutMs: 150, maxParallelInCluster: 3 } },
    });
    await weft.start();
  });
  afterAll(() => weft.stop());

  const attempts = async (id: string) =>
    (
      await pool.query<{
        attempt_log: { attempt: number; startedAt: string; endedAt: string; error: { code?: string } }[];
        queue: string;
        run_after: Date | null;
        assigned_at: Date;
      }>("SELECT attempt_log, queue, run_after, assigned_at FROM weft.tasks WHERE id = $1", [id])
    ).rows[0];

  it("BACKOFF: retry 1 waits initialDelayMs, retry 2 delayPeriodMs × 2, on the database clock", async () => {
    const ref = await weft.client.schedule(backoff, { failTimes: 2 });
    // While the task waits for a retry, its run_after is its failure's end plus the delay,
    // both written by one statement (one now()).
    const waits = new Map<number, number>();
    await eventually(
      async () => {
        const row = await attempts(ref.taskId);
        const last = row?.attempt_log?.at(-1);
        if (row?.queue === "PARKED" && row.run_after && last) {
          waits.set(last.attempt, row.run_after.getTime() - Date.parse(last.endedAt));
        }
        return row?.queue === "DELETED" ? true : undefined;
      },
      30_000,
      25,
    );
    expect(await weft.client.workflow(ref.workflowId).result(backoff)).toBe(3);
    expect([...waits.keys()]).toEqual([1, 2]);
    expect(Math.abs((waits.get(1) as number) - 1_000)).toBeLessThanOrEqual(1);
    expect(Math.abs((waits.get(2) as number) - 1_500)).toBeLessThanOrEqual(1);
    // And each next attempt was assigned no earlier than that.
    const row = await attempts(ref.taskId);
    const log = row?.attempt_log ?? [];
    expect(log.map((a) => a.attempt)).toEqual([1, 2]);
    const starts = [...log.slice(1).map((a) => Date.parse(a.startedAt)), row?.assigned_at.getTime() ?? 0];
    log.forEach((a, i) => {
      expect((starts[i] as number) - Date.parse(a.endedAt)).toBeGreaterThanOrEqual(i === 0 ? 1_000 : 1_500);
    });
  });

  it("taskOverrides win over the definition and taskDefaults: retry OFF, the timeout, the cluster limit", async () => {
    const ref = await weft.client.schedule(overridden, { sleepMs: 5_000 });
    await weft.client.workflow(ref.workflowId).wait({ timeoutMs: 20_000 });
    const task = await weft.client.getTask(ref.taskId);
    // One attempt (OFF, not the definition's five retries), failed by the override's timeout.
    expect(task).toMatchObject({ state: "FAILED", attempt: 1 });
    expect(task.error?.code).toBe("TASK_TIMEOUT");
    expect((await weft.client.deadLetters.get(ref.taskId))?.attempts).toHaveLength(1);
    // The node publishes the resolved settings: the override's limit and timeout.
    const { rows } = await pool.query("SELECT task_limits, task_timeouts FROM weft.nodes");
    expect(rows).toEqual([{ task_limits: { overridden: 3 }, task_timeouts: { overridden: 150 } }]);
    // taskDefaults apply where neither the override nor the definition sets a key:
    // backoff's own policy wins over them (one policy, replaced whole): with the
    // defaults' single retry it would fail at attempt 2.
    const flaky = await weft.client.schedule(backoff, { failTimes: 2 });
    expect(await weft.client.workflow(flaky.workflowId).result(backoff)).toBe(3);
  });
});
