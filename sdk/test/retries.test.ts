import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { eventually, freshDatabase, poolFor } from "../../test/support.js";
import {
  createWeft,
  DeadLetterNotFoundError,
  defineJoin,
  defineTask,
  InvalidArgumentError,
  NonRetryableError,
  NotRequeueableError,
  type Weft,
} from "../src/index.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("retries, dead letters, timeouts, state, exactly-once", () => {
  let weft: Weft;
  let pool: pg.Pool;
  const failures: { attempt: number; message: string; willRetry: boolean }[] = [];

  /** Fails its first `failTimes` runs for `key` (counted in the database), then succeeds. */
  const flakyInput = z.object({ key: z.string(), failTimes: z.number().int() });
  const bump = async (key: string) =>
    (
      await pool.query<{ n: number }>(
        `INSERT INTO public.runs (key, n) VALUES ($1, 1)
         ON CONFLICT (key) DO UPDATE SET n = runs.n + 1 RETURNING n`,
        [key],
      )
    ).rows[0]?.n ?? 0;
  const flakyRun = async (ctx: { input: { key: string; failTimes: number }; attempt: number }) => {
    const n = await bump(ctx.input.key);
    if (n <= ctx.input.failTimes) throw new Error(`run ${n} of ${ctx.input.key} fails`);
    return { runs: n, attempt: ctx.attempt };
  };
  const output = z.object({ runs: z.number(), attempt: z.number() });

  const fixed = defineTask({
    name: "fixed",
    input: flakyInput,
    output,
    retry: { mode: "FIXED", delayMs: 300, maxRetries: 5 },
    run: flakyRun,
  });
  const twoRetries = defineTask({
    name: "twoRetries",
    input: flakyInput,
    output,
    retry: { mode: "FIXED", delayMs: 50, maxRetries: 2 },
    run: flakyRun,
  });
  const once = defineTask({ name: "once", input: flakyInput, output, retry: { mode: "OFF" }, run: flakyRun });
  const noLetter = defineTask({
    name: "noLetter",
    input: flakyInput,
    output,
    retry: { mode: "OFF" },
    deadLetter: false,
    run: flakyRun,
  });
  const stopper = defineTask({
    name: "stopper",
    input: flakyInput,
    output,
    retry: { mode: "FIXED", delayMs: 10, maxRetries: 10 },
    onFailure: (ctx) => {
      failures.push({ attempt: ctx.attempt, message: (ctx.error as Error).message, willRetry: ctx.willRetry });
      if (ctx.attempt >= 2) ctx.stopRetrying();
    },
    run: flakyRun,
  });
  const poison = defineTask({
    name: "poison",
    input: z.object({ n: z.number() }),
    output: z.null(),
    retry: { mode: "FIXED", delayMs: 10, maxRetries: 5 },
    run: async () => {
      await bump("poison");
      throw new NonRetryableError("this input can never succeed");
    },
  });
  const windowed = defineTask({
    name: "windowed",
    input: flakyInput,
    output,
    retry: { mode: "FIXED", delayMs: 200, maxRetries: 100, maxIntervalMs: 500 },
    run: flakyRun,
  });
  const gated = defineTask({
    name: "gated",
    input: z.object({ key: z.string() }),
    output: z.string(),
    run: async (ctx) => {
      while (!ctx.signal.aborted) {
        const { rows } = await pool.query("SELECT 1 FROM public.gates WHERE key = $1", [ctx.input.key]);
        if (rows.length > 0) return "opened";
        await sleep(20);
      }
      throw ctx.signal.reason;
    },
  });
  const gatherJoin = defineJoin({
    name: "gatherJoin",
    input: z.null(),
    output: z.array(z.string()),
    upstream: [once, gated],
    run: (ctx) => ctx.upstream.map((u) => `${u.status}:${JSON.stringify(u.result)}`),
  });
  const diamond = defineTask({
    name: "diamond",
    input: z.object({ key: z.string() }),
    output: z.null(),
    run: (ctx) => {
      const a = ctx.schedule(once, { key: ctx.input.key, failTimes: 1 });
      const b = ctx.schedule(gated, { key: ctx.input.key });
      ctx.scheduleJoin(gatherJoin, null, [a, b]);
      return null;
    },
  });
  const slow = defineTask({
    name: "slow",
    input: z.object({ key: z.string() }),
    output: z.object({ attempt: z.number() }),
    timeoutMs: 200,
    retry: { mode: "FIXED", delayMs: 10, maxRetries: 3 },
    run: async (ctx) => {
      if (ctx.attempt === 1) {
        ctx.signal.addEventListener("abort", () => {
          void pool.query("INSERT INTO public.gates (key) VALUES ($1)", [`aborted:${ctx.input.key}`]);
        });
        // Ignores the signal: its late result must be refused.
        await sleep(600);
        await pool.query("INSERT INTO public.gates (key) VALUES ($1)", [`returned:${ctx.input.key}`]);
      }
      return { attempt: ctx.attempt };
    },
  });
  const resumable = defineTask({
    name: "resumable",
    input: z.object({ key: z.string(), items: z.number().int() }),
    output: z.object({ cursor: z.number() }),
    state: z.object({ cursor: z.number().int().min(0) }),
    retry: { mode: "FIXED", delayMs: 10, maxRetries: 3 },
    run: async (ctx) => {
      let cursor = ctx.state?.cursor ?? 0;
      while (cursor < ctx.input.items) {
        if (ctx.attempt === 1 && cursor === 5) throw new Error("fails half way");
        await pool.query("INSERT INTO public.processed (key, item, attempt) VALUES ($1, $2, $3)", [
          ctx.input.key,
          cursor,
          ctx.attempt,
        ]);
        cursor++;
        await ctx.saveState({ cursor });
      }
      return { cursor };
    },
  });
  const badState = defineTask({
    name: "badState",
    input: z.null(),
    output: z.string(),
    state: z.object({ cursor: z.number().int().min(0) }),
    retry: { mode: "OFF" },
    run: async (ctx) => {
      await ctx.saveState({ cursor: -1 });
      return "unreachable";
    },
  });
  const exactlyOnce = defineTask({
    name: "exactlyOnce",
    input: z.object({ key: z.string() }),
    output: z.number(),
    guarantee: "exactly-once",
    retry: { mode: "FIXED", delayMs: 10, maxRetries: 3 },
    run: async (ctx) => {
      await ctx.tx.query("INSERT INTO public.eo_rows (key, attempt) VALUES ($1, $2)", [ctx.input.key, ctx.attempt]);
      if (ctx.attempt === 1) throw new Error("fails after its insert");
      return ctx.attempt;
    },
  });
  const notExactlyOnce = defineTask({
    name: "notExactlyOnce",
    input: z.null(),
    output: z.null(),
    retry: { mode: "OFF" },
    run: async (ctx) => {
      await ctx.tx.query("SELECT 1");
      return null;
    },
  });

  beforeAll(async () => {
    const url = await freshDatabase();
    pool = poolFor(url);
    await pool.query(`
      CREATE TABLE public.runs (key text PRIMARY KEY, n int NOT NULL);
      CREATE TABLE public.gates (key text PRIMARY KEY);
      CREATE TABLE public.processed (key text, item int, attempt int);
      CREATE TABLE public.eo_rows (key text, attempt int);`);
    weft = createWeft({
      connectionString: url,
      tasks: [
        fixed,
        twoRetries,
        once,
        noLetter,
        stopper,
        poison,
        windowed,
        gated,
        gatherJoin,
        diamond,
        slow,
        resumable,
        badState,
        exactlyOnce,
        notExactlyOnce,
      ],
    });
    await weft.start();
  });
  afterAll(async () => {
    await weft.stop();
    await pool.end();
  });

  const taskRow = async (id: string) =>
    (
      await pool.query<{
        attempt: number;
        state: string;
        assigned_at: Date;
        attempt_log: {
          attempt: number;
          startedAt: string;
          endedAt: string;
          error: { message: string; code?: string };
        }[];
      }>("SELECT attempt, state, assigned_at, attempt_log FROM weft.tasks WHERE id = $1", [id])
    ).rows[0];

  it("FIXED: fails twice, succeeds on attempt 3; no retry starts before its delay (database clock)", async () => {
    const ref = await weft.client.schedule(fixed, { key: "fixed", failTimes: 2 });
    const result = await weft.client.workflow(ref.workflowId).result(fixed);
    expect(result).toEqual({ runs: 3, attempt: 3 });
    const row = await taskRow(ref.taskId);
    expect(row?.attempt).toBe(3);
    const log = row?.attempt_log ?? [];
    expect(log.map((a) => a.attempt)).toEqual([1, 2]);
    expect(log[0]?.error.message).toBe("run 1 of fixed fails");
    const secondStart = new Date(log[1]?.startedAt ?? 0).getTime();
    expect(secondStart - new Date(log[0]?.endedAt ?? 0).getTime()).toBeGreaterThanOrEqual(300);
    expect((row?.assigned_at.getTime() ?? 0) - new Date(log[1]?.endedAt ?? 0).getTime()).toBeGreaterThanOrEqual(300);
  });

  it("after the last attempt the task is FAILED and dead-lettered with every attempt's error and times", async () => {
    const ref = await weft.client.schedule(twoRetries, { key: "exhaust", failTimes: 100 });
    await expect(weft.client.workflow(ref.workflowId).result()).rejects.toThrow(/failed/i);
    expect((await weft.client.getTask(ref.taskId)).state).toBe("FAILED");
    const letter = await weft.client.deadLetters.get(ref.taskId);
    expect(letter?.taskName).toBe("twoRetries");
    expect(letter?.workflowId).toBe(ref.workflowId);
    expect(letter?.input).toEqual({ key: "exhaust", failTimes: 100 });
    expect(letter?.error?.message).toBe("run 3 of exhaust fails");
    expect(letter?.attempts.map((a) => [a.attempt, a.error?.message])).toEqual([
      [1, "run 1 of exhaust fails"],
      [2, "run 2 of exhaust fails"],
      [3, "run 3 of exhaust fails"],
    ]);
    for (const a of letter?.attempts ?? []) {
      expect(a.node).toBe(weft.nodeId);
      expect(a.startedAt?.getTime()).toBeLessThanOrEqual(a.endedAt.getTime());
    }
    const listed = await weft.client.deadLetters.list({ taskName: "twoRetries" });
    expect(listed.map((l) => l.taskId)).toEqual([ref.taskId]);
    expect(await weft.client.deadLetters.list({ workflowId: ref.workflowId })).toHaveLength(1);
    expect(await weft.client.deadLetters.list({ taskName: "twoRetries", failedTo: new Date(0) })).toEqual([]);
    expect(
      await weft.client.deadLetters.list({ taskName: "twoRetries", failedFrom: new Date(Date.now() - 60_000) }),
    ).toHaveLength(1);
  });

  it("onFailure sees each failure and its attempt, and may stop retrying", async () => {
    const ref = await weft.client.schedule(stopper, { key: "stopper", failTimes: 100 });
    await expect(weft.client.workflow(ref.workflowId).wait()).resolves.toMatchObject({ status: "FAILED" });
    expect(failures).toEqual([
      { attempt: 1, message: "run 1 of stopper fails", willRetry: true },
      { attempt: 2, message: "run 2 of stopper fails", willRetry: true },
    ]);
    expect((await taskRow(ref.taskId))?.attempt).toBe(2);
    expect(await weft.client.deadLetters.get(ref.taskId)).toBeDefined();
  });

  it("a NonRetryableError is not retried; OFF runs once; deadLetter: false leaves no dead letter", async () => {
    const p = await weft.client.schedule(poison, { n: 1 });
    await weft.client.workflow(p.workflowId).wait();
    expect((await taskRow(p.taskId))?.attempt).toBe(1);
    expect((await weft.client.deadLetters.get(p.taskId))?.error?.code).toBe("NON_RETRYABLE");
    const o = await weft.client.schedule(once, { key: "off", failTimes: 5 });
    await weft.client.workflow(o.workflowId).wait();
    expect((await taskRow(o.taskId))?.attempt).toBe(1);
    const n = await weft.client.schedule(noLetter, { key: "noLetter", failTimes: 5 });
    await expect(weft.client.workflow(n.workflowId).wait()).resolves.toMatchObject({ status: "FAILED" });
    expect(await weft.client.deadLetters.get(n.taskId)).toBeUndefined();
  });

  it("the retry window (maxIntervalMs from the first failure) ends retries", async () => {
    const ref = await weft.client.schedule(windowed, { key: "windowed", failTimes: 1_000 });
    await weft.client.workflow(ref.workflowId).wait({ timeoutMs: 10_000 });
    const letter = await weft.client.deadLetters.get(ref.taskId);
    const attempts = letter?.attempts ?? [];
    // 200 ms apart within 500 ms of the first failure: attempts 1 to 3 (a 4th would start at ~600 ms).
    expect(attempts.length).toBeGreaterThanOrEqual(2);
    expect(attempts.length).toBeLessThanOrEqual(4);
    // Each retry was planned (its failure recorded, + 200 ms) within the window. Its
    // start may come later on a loaded machine: the window bounds the plan, not the
    // planner's lag. A failure ends before it is recorded, so its end + 200 ms is at
    // most the planned start.
    const first = attempts[0]?.endedAt.getTime() ?? 0;
    for (let i = 1; i < attempts.length; i++) {
      const previousEnd = attempts[i - 1]?.endedAt.getTime() ?? Number.POSITIVE_INFINITY;
      expect(previousEnd + 200 - first).toBeLessThanOrEqual(500);
      expect(attempts[i]?.startedAt?.getTime() ?? 0).toBeGreaterThanOrEqual(previousEnd + 200 - 5);
    }
  });

  it("requeue: the task re-enters its DAG; the join still waiting for it receives its new result", async () => {
    const ref = await weft.client.schedule(diamond, { key: "diamond" });
    const letter = await eventually(
      async () => (await weft.client.deadLetters.list({ workflowId: ref.workflowId }))[0],
    );
    expect(letter.taskName).toBe("once");
    expect((await weft.client.getWorkflow(ref.workflowId)).status).toBe("RUNNING");
    expect(await weft.client.deadLetters.requeue([letter.taskId])).toEqual([letter.taskId]);
    expect(await weft.client.deadLetters.get(letter.taskId)).toBeUndefined();
    await eventually(async () => ((await weft.client.getTask(letter.taskId)).state === "COMPLETED" ? true : undefined));
    await pool.query("INSERT INTO public.gates (key) VALUES ('diamond')");
    const result = await weft.client.workflow(ref.workflowId).result(gatherJoin);
    expect(result).toEqual([`COMPLETED:{"runs":2,"attempt":1}`, `COMPLETED:"opened"`]);
    // The attempt history keeps the first run.
    expect((await taskRow(letter.taskId))?.attempt_log.map((a) => a.error.message)).toEqual(["run 1 of diamond fails"]);
  });

  it("requeue reopens a FAILED workflow, which then completes", async () => {
    const ref = await weft.client.schedule(once, { key: "reopen", failTimes: 1 });
    await expect(weft.client.workflow(ref.workflowId).wait()).resolves.toMatchObject({ status: "FAILED" });
    await weft.client.deadLetters.requeue([ref.taskId]);
    expect(await weft.client.workflow(ref.workflowId).result(once)).toEqual({ runs: 2, attempt: 1 });
    expect((await weft.client.getWorkflow(ref.workflowId)).status).toBe("COMPLETED");
  });

  it("requeue and purge refuse bad input; a cancelled workflow's task is not requeued; purge by id or query", async () => {
    await expect(weft.client.deadLetters.requeue(["01J00000000000000000000000"])).rejects.toBeInstanceOf(
      DeadLetterNotFoundError,
    );
    await expect(weft.client.deadLetters.requeue([])).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(weft.client.deadLetters.requeue(["nope"])).rejects.toThrow(/taskIds\[0\]/);
    await expect(weft.client.deadLetters.list({ limit: 0 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(weft.client.deadLetters.list({ taskname: "x" } as never)).rejects.toThrow(/unknown option/);

    const ref = await weft.client.schedule(diamond, { key: "cancelled" });
    const letter = await eventually(
      async () => (await weft.client.deadLetters.list({ workflowId: ref.workflowId }))[0],
    );
    await weft.client.cancelWorkflow(ref.workflowId);
    await expect(weft.client.deadLetters.requeue([letter.taskId])).rejects.toBeInstanceOf(NotRequeueableError);
    // Nothing changed: the dead letter is still there, the task still FAILED.
    expect(await weft.client.deadLetters.get(letter.taskId)).toBeDefined();
    expect((await weft.client.getTask(letter.taskId)).state).toBe("FAILED");

    expect(await weft.client.deadLetters.purge({ taskIds: [letter.taskId] })).toBe(1);
    const before = (await weft.client.deadLetters.list({ taskName: "twoRetries" })).length;
    expect(before).toBeGreaterThan(0);
    expect(await weft.client.deadLetters.purge({ taskName: "twoRetries" })).toBe(before);
    expect(await weft.client.deadLetters.list({ taskName: "twoRetries" })).toEqual([]);
  });

  it("a timeout aborts the signal and fails the attempt; the retry's result is recorded, the late one refused", async () => {
    const ref = await weft.client.schedule(slow, { key: "slow" });
    expect(await weft.client.workflow(ref.workflowId).result(slow)).toEqual({ attempt: 2 });
    const row = await taskRow(ref.taskId);
    expect(row?.attempt_log[0]?.error.code).toBe("TASK_TIMEOUT");
    await eventually(async () => {
      const { rows } = await pool.query("SELECT 1 FROM public.gates WHERE key = 'aborted:slow'");
      return rows.length > 0 ? true : undefined;
    });
    // Attempt 1 returns at ~600 ms; once it has, and a later outcome of this node
    // was recorded after it, the task still has the second attempt's result.
    await eventually(async () => {
      const { rows } = await pool.query("SELECT 1 FROM public.gates WHERE key = 'returned:slow'");
      return rows.length > 0 ? true : undefined;
    });
    const later = await weft.client.schedule(once, { key: "after-slow", failTimes: 0 });
    await weft.client.workflow(later.workflowId).wait();
    expect((await weft.client.getTask(ref.taskId, slow)).result).toEqual({ attempt: 2 });
    expect((await taskRow(ref.taskId))?.attempt).toBe(2);
  });

  it("ctx.state: a retry resumes from the state the failed attempt saved", async () => {
    const ref = await weft.client.schedule(resumable, { key: "resume", items: 10 });
    expect(await weft.client.workflow(ref.workflowId).result(resumable)).toEqual({ cursor: 10 });
    const { rows } = await pool.query<{ item: number; attempt: number }>(
      "SELECT item, attempt FROM public.processed WHERE key = 'resume' ORDER BY item",
    );
    expect(rows.map((r) => [r.item, r.attempt])).toEqual([
      [0, 1],
      [1, 1],
      [2, 1],
      [3, 1],
      [4, 1],
      [5, 2],
      [6, 2],
      [7, 2],
      [8, 2],
      [9, 2],
    ]);
    const bad = await weft.client.schedule(badState, null);
    await weft.client.workflow(bad.workflowId).wait();
    expect((await weft.client.getTask(bad.taskId)).error?.code).toBe("INPUT_INVALID");
  });

  it("exactly-once: work done through ctx.tx by a failed attempt is rolled back; the retry's is kept once", async () => {
    const ref = await weft.client.schedule(exactlyOnce, { key: "eo" });
    expect(await weft.client.workflow(ref.workflowId).result(exactlyOnce)).toBe(2);
    const { rows } = await pool.query("SELECT attempt FROM public.eo_rows WHERE key = 'eo'");
    expect(rows).toEqual([{ attempt: 2 }]);
    const other = await weft.client.schedule(notExactlyOnce, null);
    await weft.client.workflow(other.workflowId).wait();
    expect((await weft.client.getTask(other.taskId)).error?.message).toMatch(/not exactly-once/);
  });

  it("definitions validate their failure settings", () => {
    const base = { input: z.null(), output: z.null(), run: () => null };
    expect(() => defineTask({ name: "r1", ...base, retry: { mode: "FIXED", delayMs: -5 } })).toThrow(
      /r1\.retry\.delayMs/,
    );
    expect(() => defineTask({ name: "r2", ...base, retry: { mode: "NEVER" } as never })).toThrow(/r2\.retry/);
    expect(() => defineTask({ name: "r3", ...base, timeoutMs: 0 })).toThrow(/r3\.timeoutMs/);
    expect(() => defineTask({ name: "r4", ...base, guarantee: "twice" as never })).toThrow(/r4\.guarantee/);
    expect(() => defineTask({ name: "r5", ...base, onFailure: 5 as never })).toThrow(/r5\.onFailure/);
    expect(() => createWeft({ taskDefaults: { retry: { mode: "FIXED", delayMs: "soon" } } } as never)).toThrow(
      /taskDefaults\.retry/,
    );
  });
});
