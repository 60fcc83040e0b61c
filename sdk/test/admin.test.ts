import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { eventually, freshDatabase } from "../../test/support.js";
import {
  createClient,
  createWeft,
  defineCronTask,
  defineTask,
  InvalidArgumentError,
  InvalidIdentifierError,
  type Weft,
  WorkflowNotFoundError,
  type WorkflowSummary,
} from "../src/index.js";
import { engineOf } from "../src/internal.js";

// Operator reads against a real node: listings with keyset pagination, counts,
// queue statistics, nodes and cron.

const gates = new Map<string, () => void>();

const solo = defineTask({
  name: "a.solo",
  input: z.object({ i: z.number() }),
  output: z.number(),
  run: ({ input }) => input.i,
});

const child = defineTask({
  name: "a.child",
  input: z.object({ fail: z.boolean() }),
  output: z.null(),
  run: ({ input }) => {
    if (input.fail) throw new Error("child failed");
    return null;
  },
});

const parent = defineTask({
  name: "a.parent",
  input: z.object({ children: z.number().int(), failOne: z.boolean().default(false) }),
  output: z.null(),
  run: (ctx) => {
    for (let i = 0; i < ctx.input.children; i++) ctx.schedule(child, { fail: ctx.input.failOne && i === 0 });
    return null;
  },
});

const gated = defineTask({
  name: "a.gated",
  input: z.object({ key: z.string() }),
  output: z.null(),
  run: (ctx) =>
    new Promise<null>((resolve) => {
      gates.set(ctx.input.key, () => resolve(null));
      ctx.signal.addEventListener("abort", () => resolve(null));
    }),
});

const ticker = defineCronTask({
  name: "a.ticker",
  cron: { expression: "*/2 * * * * *", timeZone: "Europe/Paris" },
  output: z.null(),
  run: () => null,
});

// Known to the client only: no node runs it, so it waits (lag).
const orphan = defineTask({ name: "a.orphan", input: z.object({}), output: z.null(), run: () => null });

const sortDesc = (ids: string[]) => [...ids].sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));

async function collect(
  weft: Weft,
  filter: Parameters<Weft["client"]["listWorkflows"]>[0],
): Promise<{ items: WorkflowSummary[]; pages: number }> {
  const items: WorkflowSummary[] = [];
  let cursor: string | undefined;
  let pages = 0;
  for (;;) {
    const page = await weft.client.listWorkflows({ ...filter, ...(cursor ? { cursor } : {}) });
    pages++;
    items.push(...page.items);
    if (page.nextCursor === null) return { items, pages };
    cursor = page.nextCursor;
    if (pages > 1_000) throw new Error("pagination does not end");
  }
}

describe("operator reads", () => {
  let weft: Weft;
  let client: Weft;
  let start: Date;
  const soloIds: string[] = [];
  const parentIds: string[] = [];
  let failedId: string;

  beforeAll(async () => {
    const url = await freshDatabase();
    weft = createWeft({
      connectionString: url,
      tasks: [solo, child, parent, gated, ticker],
      taskDefaults: { retry: { mode: "OFF" } },
    });
    await weft.start();
    client = createClient({ connectionString: url, tasks: [orphan] });
    start = new Date(Date.now() - 1);
    for (let i = 0; i < 23; i++) {
      soloIds.push((await weft.client.schedule(solo, { i })).workflowId);
      if (i % 3 === 0) parentIds.push((await weft.client.schedule(parent, { children: 4 })).workflowId);
    }
    failedId = (await weft.client.schedule(parent, { children: 3, failOne: true })).workflowId;
    for (const id of [...soloIds, ...parentIds, failedId]) await weft.client.waitForWorkflow(id, { timeoutMs: 20_000 });
  });
  afterAll(async () => {
    for (const open of gates.values()) open();
    await client?.stop();
    await weft?.stop();
  });

  it("lists every workflow once, newest first, across pages (solo ones included)", async () => {
    const all = [...soloIds, ...parentIds, failedId];
    const { items, pages } = await collect(weft, { createdAfter: start, rootTaskName: undefined, limit: 7 });
    const ids = items.map((w) => w.id).filter((id) => all.includes(id));
    expect(ids).toEqual(sortDesc(all));
    expect(new Set(items.map((w) => w.id)).size).toBe(items.length);
    expect(pages).toBeGreaterThanOrEqual(Math.ceil(all.length / 7));
    const aSolo = items.find((w) => w.id === soloIds[0]);
    expect(aSolo).toMatchObject({ status: "COMPLETED", totalTasks: 1, rootTaskName: "a.solo", rootTaskId: soloIds[0] });
    const aParent = items.find((w) => w.id === parentIds[0]);
    expect(aParent).toMatchObject({ status: "COMPLETED", totalTasks: 5, rootTaskName: "a.parent" });
  });

  it("filters by status, root task name and creation range", async () => {
    const failed = await collect(weft, { status: "FAILED", createdAfter: start });
    expect(failed.items.map((w) => w.id)).toEqual([failedId]);
    const parents = await collect(weft, { rootTaskName: "a.parent", status: ["COMPLETED", "FAILED"], limit: 2 });
    expect(parents.items.map((w) => w.id)).toEqual(sortDesc([...parentIds, failedId]));
    const solos = await collect(weft, { rootTaskName: "a.solo", limit: 500 });
    expect(solos.items.map((w) => w.id)).toEqual(sortDesc(soloIds));
    // A range inside the batch: the workflows created in it and no others.
    const from = new Date(Number.parseInt(decodeUlidTime(soloIds[5] as string), 10));
    const to = new Date(Number.parseInt(decodeUlidTime(soloIds[15] as string), 10));
    const ranged = await collect(weft, { createdAfter: from, createdBefore: to, rootTaskName: "a.solo" });
    const expected = soloIds.filter((id) => {
      const t = Number.parseInt(decodeUlidTime(id), 10);
      return t >= from.getTime() && t < to.getTime();
    });
    expect(ranged.items.map((w) => w.id)).toEqual(sortDesc(expected));
    expect(expected.length).toBeGreaterThan(0);
    const none = await weft.client.listWorkflows({ status: "CANCELLED", createdAfter: start });
    expect(none).toEqual({ items: [], nextCursor: null });
  });

  it("pages through bounded windows with no gap or duplicate (small scan windows)", async () => {
    // The store's windows made tiny, so frontiers fall inside every page.
    const engine = engineOf(weft);
    const all = new Set([...soloIds, ...parentIds, failedId]);
    for (const [limit, scan] of [
      [3, 2],
      [5, 4],
      [2, 9],
      [50, 3],
    ] as const) {
      const seen: string[] = [];
      let below: string | undefined;
      for (let guard = 0; guard < 10_000; guard++) {
        const page = await engine.store.admin.listWorkflows(engine.pool, { belowId: below }, limit, scan);
        expect(page.rows.length).toBeLessThanOrEqual(limit);
        seen.push(...page.rows.map((r) => r.id));
        if (page.next === null) break;
        expect(below === undefined || page.next < below).toBe(true);
        below = page.next;
      }
      expect(seen).toEqual(sortDesc(seen));
      expect(new Set(seen).size).toBe(seen.length);
      for (const id of all) expect(seen).toContain(id);
      // Nothing but workflows: no child task shows up as one.
      const children = (await weft.client.getWorkflowTasks(parentIds[0] as string)).filter((t) => t.parentId);
      for (const c of children) expect(seen).not.toContain(c.id);
    }
  });

  it("rejects bad filters with InvalidArgumentError naming the field", async () => {
    const bad: [Record<string, unknown>, string][] = [
      [{ limit: 0 }, "filter.limit"],
      [{ limit: 501 }, "filter.limit"],
      [{ limit: -5 }, "filter.limit"],
      [{ limit: 1.5 }, "filter.limit"],
      [{ limit: "10" }, "filter.limit"],
      [{ status: "DONE" }, "filter.status"],
      [{ status: ["RUNNING", "nope"] }, "filter.status[1]"],
      [{ status: [] }, "filter.status"],
      [{ cursor: "not a cursor!" }, "filter.cursor"],
      [{ cursor: Buffer.from("w1:'; DROP TABLE tasks; --").toString("base64url") }, "filter.cursor"],
      [{ cursor: Buffer.from(`t1:${soloIds[0]}`).toString("base64url") }, "filter.cursor"],
      [{ cursor: 42 }, "filter.cursor"],
      [{ createdAfter: "2024-01-01" }, "filter.createdAfter"],
      [{ createdBefore: new Date("nope") }, "filter.createdBefore"],
      [{ createdAfter: new Date(2_000), createdBefore: new Date(1_000) }, "filter.createdBefore"],
      [{ sort: "asc" }, "filter.sort"],
    ];
    for (const [filter, argument] of bad) {
      const error = await weft.client.listWorkflows(filter as never).catch((e: unknown) => e);
      expect(error, JSON.stringify(filter)).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).argument).toBe(argument);
    }
    await expect(weft.client.listWorkflows({ rootTaskName: "x'; --" })).rejects.toBeInstanceOf(InvalidIdentifierError);
  });

  it("pages a workflow's tasks oldest first, with a state filter", async () => {
    const big = (await weft.client.schedule(parent, { children: 25, failOne: true })).workflowId;
    await weft.client.waitForWorkflow(big, { timeoutMs: 20_000 });
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await weft.client.getWorkflowTasksPage(big, { limit: 10, ...(cursor ? { cursor } : {}) });
      pages++;
      seen.push(...page.items.map((t) => t.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toHaveLength(26);
    expect(seen[0]).toBe(big);
    expect(seen).toEqual([...seen].sort());
    expect(new Set(seen).size).toBe(26);
    const failed = await weft.client.getWorkflowTasksPage(big, { state: "FAILED" });
    expect(failed.items.map((t) => t.state)).toEqual(["FAILED"]);
    expect(failed.nextCursor).toBeNull();
    // A solo workflow is its root task.
    expect((await weft.client.getWorkflowTasksPage(soloIds[0] as string)).items.map((t) => t.id)).toEqual([soloIds[0]]);
    const counts = await weft.client.workflowTaskCounts(big);
    expect(counts).toEqual({ PENDING: 0, RUNNING: 0, COMPLETED: 25, FAILED: 1, CANCELLED: 0 });
    expect(await weft.client.workflowTaskCounts(soloIds[1] as string)).toEqual({
      PENDING: 0,
      RUNNING: 0,
      COMPLETED: 1,
      FAILED: 0,
      CANCELLED: 0,
    });

    const unknown = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    await expect(weft.client.getWorkflowTasksPage(unknown)).rejects.toBeInstanceOf(WorkflowNotFoundError);
    await expect(weft.client.workflowTaskCounts(unknown)).rejects.toBeInstanceOf(WorkflowNotFoundError);
    for (const [options, argument] of [
      [{ limit: 0 }, "options.limit"],
      [{ limit: 1000 }, "options.limit"],
      [{ state: "DONE" }, "options.state"],
      [{ cursor: "zzz" }, "options.cursor"],
      [{ cursor: Buffer.from(`w1:${big}`).toString("base64url") }, "options.cursor"],
      [{ page: 2 }, "options.page"],
    ] as const) {
      const error = await weft.client.getWorkflowTasksPage(big, options as never).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).argument).toBe(argument);
    }
    await expect(weft.client.getWorkflowTasksPage("1; DROP TABLE tasks")).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it("reports queues, lag, parked tasks and nodes", async () => {
    const parked = await weft.client.scheduleMany(solo, [{ i: 1 }, { i: 2 }, { i: 3 }], { delayMs: 3_600_000 });
    const waiting = await client.client.schedule(orphan, {});
    await weft.client.schedule(gated, { key: "g1" });
    await eventually(async () => (gates.has("g1") ? true : undefined), 20_000);
    // The orphan waits at least this long before the read below.
    await new Promise((r) => setTimeout(r, 50));
    const stats = await weft.client.queueStats();
    const parkedSolo = stats.queues.find((q) => q.queue === "PARKED" && q.taskName === "a.solo");
    expect(parkedSolo?.count).toBe(3);
    expect(stats.parked).toContainEqual({ reason: "RUN_AFTER", count: 3 });
    const orphanQueue = stats.queues.filter((q) => q.taskName === "a.orphan");
    expect(orphanQueue.reduce((n, q) => n + q.count, 0)).toBe(1);
    const lag = stats.readyLag.find((l) => l.taskName === "a.orphan");
    expect(lag?.oldestReadyAgeMs).toBeGreaterThanOrEqual(40);
    expect(stats.queues.some((q) => (q.queue as string) === "DELETED")).toBe(false);

    const nodes = await weft.client.listNodes();
    expect(nodes).toHaveLength(1);
    const [node] = nodes;
    expect(node).toMatchObject({ id: weft.nodeId, isLeader: true, running: 1, draining: false });
    expect(node?.taskNames).toContain("a.gated");
    expect(node?.heartbeatAgeMs).toBeGreaterThanOrEqual(0);
    expect(node?.heartbeatAgeMs).toBeLessThan(30_000);
    expect(typeof node?.appName).toBe("string");
    gates.get("g1")?.();
    await eventually(async () => ((await weft.client.listNodes())[0]?.running === 0 ? true : undefined), 20_000);
    await weft.client.cancelWorkflow(waiting.workflowId);
    for (const p of parked) await weft.client.cancelWorkflow(p.workflowId);
  });

  it("lists cron schedules with their last and next ticks", async () => {
    const cron = await eventually(async () => {
      const list = await weft.client.listCron();
      return list[0]?.lastTickAt ? list : undefined;
    }, 20_000);
    expect(cron).toHaveLength(1);
    const [spec] = cron;
    expect(spec).toMatchObject({ taskName: "a.ticker", pattern: "*/2 * * * * *", timezone: "Europe/Paris" });
    expect(spec?.nextTickAt).toBeInstanceOf(Date);
    expect((spec?.nextTickAt?.getTime() ?? 0) % 2_000).toBe(0);
    expect(spec?.nextTickAt?.getTime()).toBeGreaterThan(spec?.lastTickAt?.getTime() ?? Infinity);
    // Any client of the database reads the same schedules.
    expect(await client.client.listCron()).toHaveLength(1);
  });
});

/** The time part of a ULID as a decimal string of milliseconds. */
function decodeUlidTime(id: string): string {
  const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  let ms = 0;
  for (const ch of id.slice(0, 10)) ms = ms * 32 + alphabet.indexOf(ch);
  return String(ms);
}

describe("throughput", () => {
  const ok = defineTask({ name: "tp.ok", input: z.object({}), output: z.null(), run: () => null });
  const bad = defineTask({
    name: "tp.bad",
    input: z.object({}),
    output: z.null(),
    run: () => {
      throw new Error("no");
    },
  });
  let weft: Weft;

  beforeAll(async () => {
    weft = createWeft({
      connectionString: await freshDatabase(),
      tasks: [ok, bad],
      taskDefaults: { retry: { mode: "OFF" } },
    });
    await weft.start();
  });
  afterAll(async () => {
    await weft?.stop();
  });

  const sum = (t: Awaited<ReturnType<Weft["client"]["throughput"]>>) =>
    t.buckets.reduce(
      (a, b) => ({
        completed: a.completed + b.completed,
        failed: a.failed + b.failed,
        cancelled: a.cancelled + b.cancelled,
      }),
      { completed: 0, failed: 0, cancelled: 0 },
    );

  it("counts the tasks finished per second by state, in one bucket per second of the window", async () => {
    const N = 12;
    const M = 5;
    const done = [
      ...(await weft.client.scheduleMany(
        ok,
        Array.from({ length: N }, () => ({})),
      )),
      ...(await weft.client.scheduleMany(
        bad,
        Array.from({ length: M }, () => ({})),
      )),
    ];
    for (const r of done) await weft.client.waitForWorkflow(r.workflowId, { timeoutMs: 20_000 }).catch(() => undefined);
    // Two cancelled before they could run.
    const later = await weft.client.scheduleMany(ok, [{}, {}], { delayMs: 3_600_000 });
    for (const r of later) await weft.client.cancelWorkflow(r.workflowId);

    const t = await weft.client.throughput();
    expect(t.buckets).toHaveLength(900);
    expect(t.to.getTime() - t.from.getTime()).toBe(900_000);
    expect(t.buckets[0]?.at).toEqual(t.from);
    for (const [i, b] of t.buckets.entries()) expect(b.at.getTime()).toBe(t.from.getTime() + i * 1000);
    // The current second is the last bucket: it ends after now (same host, clocks close).
    expect(t.to.getTime()).toBeGreaterThan(Date.now() - 5_000);
    expect(sum(t)).toEqual({ completed: N, failed: M, cancelled: 2 });

    const short = await weft.client.throughput({ windowSeconds: 3600 });
    expect(short.buckets).toHaveLength(3600);
    expect(sum(short)).toEqual({ completed: N, failed: M, cancelled: 2 });

    // A task finished before the window is not counted.
    const engine = engineOf(weft);
    await engine.pool.query(`UPDATE weft.tasks SET finished_at = now() - interval '2 hours' WHERE id = $1`, [
      done[0]?.taskId,
    ]);
    expect(sum(await weft.client.throughput({ windowSeconds: 3600 })).completed).toBe(N - 1);
  });

  it("refuses a bad window with InvalidArgumentError naming it", async () => {
    const bad: [unknown, string][] = [
      [{ windowSeconds: 0 }, "options.windowSeconds"],
      [{ windowSeconds: 3601 }, "options.windowSeconds"],
      [{ windowSeconds: 1.5 }, "options.windowSeconds"],
      [{ windowSeconds: "900" }, "options.windowSeconds"],
      [{ windowSeconds: -1 }, "options.windowSeconds"],
      [{ window: 900 }, "options.window"],
      [null, "options"],
    ];
    for (const [options, argument] of bad) {
      const error = await weft.client.throughput(options as never).catch((e: unknown) => e);
      expect(error, JSON.stringify(options)).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).argument).toBe(argument);
    }
  });
});
