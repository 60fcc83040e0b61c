import { join } from "node:path";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { isNonRetryable } from "../../engine/src/errors.js";
import { freshDatabase, poolFor, ROOT, spawnNode } from "../../test/support.js";
import {
  ConfigError,
  createClient,
  createWeft,
  defineTask,
  IdempotencyConflictError,
  InvalidArgumentError,
  type Weft,
} from "../src/index.js";

const order = defineTask({
  name: "order",
  input: z.object({ sku: z.string(), n: z.number().int().default(1) }),
  output: z.object({ sku: z.string() }),
  run: ({ input }) => ({ sku: input.sku }),
});
const invoice = defineTask({
  name: "invoice",
  input: z.object({ sku: z.string() }),
  output: z.null(),
  run: () => null,
});

describe("idempotency keys", () => {
  let url: string;
  let pool: pg.Pool;
  let client: Weft;
  const tasksOf = async (name: string) =>
    (await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM weft.tasks WHERE task_name = $1", [name])).rows[0]
      ?.n;
  const keyRow = async (key: string) =>
    (await pool.query("SELECT task_name, task_id, workflow_id FROM weft.idempotency_keys WHERE key = $1", [key])).rows;

  beforeAll(async () => {
    url = await freshDatabase();
    pool = poolFor(url);
    // A pure client: nothing runs, so every task stays where it was written.
    client = createClient({ connectionString: url, tasks: [order, invoice], logLevel: "silent" });
    await client.start();
  });
  afterAll(() => client.stop());

  it("schedules once per key: a repeat gets the first schedule's ids and writes no task", async () => {
    const first = await client.client.schedule(order, { sku: "a" }, { idempotencyKey: "same" });
    const again = await client.client.schedule(order, { sku: "a" }, { idempotencyKey: "same" });
    expect(again).toEqual(first);
    expect(first.workflowId).toBe(first.taskId);
    const { rows } = await pool.query("SELECT id, task_name FROM weft.tasks WHERE input->>'sku' = 'a'");
    expect(rows).toEqual([{ id: first.taskId, task_name: "order" }]);
    expect(await keyRow("same")).toEqual([{ task_name: "order", task_id: first.taskId, workflow_id: first.taskId }]);
    // The same input encoded the same way (defaults applied) is the same input.
    expect(await client.client.schedule(order, { sku: "a", n: 1 }, { idempotencyKey: "same" })).toEqual(first);
    // By name (the HTTP API's way) too.
    expect(await client.client.scheduleByName("order", { sku: "a" }, { idempotencyKey: "same" })).toEqual(first);
  });

  it("scopes a key to its task name", async () => {
    const a = await client.client.schedule(order, { sku: "scoped" }, { idempotencyKey: "scope" });
    const b = await client.client.schedule(invoice, { sku: "scoped" }, { idempotencyKey: "scope" });
    expect(b.taskId).not.toBe(a.taskId);
    expect((await keyRow("scope")).map((r) => r.task_name).sort()).toEqual(["invoice", "order"]);
  });

  it("reports a repeat with a different input as a conflict naming the key and the first task, writing nothing", async () => {
    const first = await client.client.schedule(order, { sku: "b" }, { idempotencyKey: "conflict" });
    const before = await tasksOf("order");
    const error = await client.client
      .schedule(order, { sku: "c" }, { idempotencyKey: "conflict" })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IdempotencyConflictError);
    expect(error).toMatchObject({ code: "IDEMPOTENCY_CONFLICT", key: "conflict", taskId: first.taskId });
    expect((error as Error).message).toContain(first.taskId);
    expect((error as Error).message).toContain('"conflict"');
    expect(await tasksOf("order")).toBe(before);
    // Thrown inside a task, it fails the task at once: a retry would conflict again.
    expect(isNonRetryable(error)).toBe(true);
    // In a batch, the conflict undoes the whole call: the batch's new key stays free.
    await expect(
      client.client.scheduleMany(order, [{ sku: "fresh" }, { sku: "c" }], {
        idempotencyKey: (input) => (input.sku === "fresh" ? "batch-fresh" : "conflict"),
      }),
    ).rejects.toMatchObject({ code: "IDEMPOTENCY_CONFLICT", key: "conflict", taskId: first.taskId });
    expect(await tasksOf("order")).toBe(before);
    expect(await keyRow("batch-fresh")).toEqual([]);
    expect(await keyRow("conflict")).toEqual([
      { task_name: "order", task_id: first.taskId, workflow_id: first.workflowId },
    ]);
  });

  it("scheduleMany: new keys get new tasks, existing keys their first schedule's ids", async () => {
    const early = await client.client.scheduleMany(order, [{ sku: "m1" }, { sku: "m3" }], {
      idempotencyKey: (input) => `many-${input.sku}`,
    });
    const before = await tasksOf("order");
    const inputs = ["m1", "m2", "m3", "m4"].map((sku) => ({ sku }));
    const refs = await client.client.scheduleMany(order, inputs, { idempotencyKey: (input) => `many-${input.sku}` });
    expect(refs[0]).toEqual(early[0]);
    expect(refs[2]).toEqual(early[1]);
    expect(new Set(refs.map((r) => r.taskId)).size).toBe(4);
    expect(await tasksOf("order")).toBe((before ?? 0) + 2);
    const { rows } = await pool.query<{ id: string; sku: string }>(
      "SELECT id, input->>'sku' AS sku FROM weft.tasks WHERE id = ANY($1) ORDER BY input->>'sku'",
      [refs.map((r) => r.taskId)],
    );
    expect(rows.map((r) => [r.sku, r.id])).toEqual(inputs.map((input, i) => [input.sku, refs[i]?.taskId]));
  });

  it("treats a key past its window as absent, before the cleaner has deleted it", async () => {
    const short = createClient({ connectionString: url, idempotency: { windowMs: 1_000 }, logLevel: "silent" });
    await short.start();
    try {
      const first = await short.client.schedule(order, { sku: "exp" }, { idempotencyKey: "expiring" });
      expect(await short.client.schedule(order, { sku: "exp" }, { idempotencyKey: "expiring" })).toEqual(first);
      await new Promise((r) => setTimeout(r, 1_200));
      expect(await keyRow("expiring")).toHaveLength(1); // no cleaner runs here
      // A new workflow, even for another input (no conflict with an expired key).
      const second = await short.client.schedule(order, { sku: "exp2" }, { idempotencyKey: "expiring" });
      expect(second.taskId).not.toBe(first.taskId);
      expect(await keyRow("expiring")).toEqual([
        { task_name: "order", task_id: second.taskId, workflow_id: second.taskId },
      ]);
      expect(await short.client.schedule(order, { sku: "exp2" }, { idempotencyKey: "expiring" })).toEqual(second);
      const { rows } = await pool.query("SELECT id FROM weft.tasks WHERE id = ANY($1) ORDER BY id", [
        [first.taskId, second.taskId],
      ]);
      expect(rows).toHaveLength(2);
    } finally {
      await short.stop();
    }
  });

  it("holds the key with the caller's transaction: a rollback frees it, a commit keeps it", async () => {
    const tx = await pool.connect();
    try {
      await tx.query("BEGIN");
      const inTx = await client.client.schedule(order, { sku: "tx" }, { idempotencyKey: "tx", tx });
      // Within the transaction the key is already held.
      expect(await client.client.schedule(order, { sku: "tx" }, { idempotencyKey: "tx", tx })).toEqual(inTx);
      await tx.query("ROLLBACK");
      expect(await keyRow("tx")).toEqual([]);
      const after = await client.client.schedule(order, { sku: "tx" }, { idempotencyKey: "tx" });
      expect(after.taskId).not.toBe(inTx.taskId);
      await tx.query("BEGIN");
      await client.client.schedule(order, { sku: "tx2" }, { idempotencyKey: "tx2", tx });
      // A conflict rolls back to the schedule's savepoint: the caller's transaction goes on.
      await expect(
        client.client.schedule(order, { sku: "other" }, { idempotencyKey: "tx2", tx }),
      ).rejects.toBeInstanceOf(IdempotencyConflictError);
      expect((await tx.query("SELECT 1 AS ok")).rows).toEqual([{ ok: 1 }]);
      await tx.query("COMMIT");
      expect(await keyRow("tx2")).toHaveLength(1);
    } finally {
      tx.release();
    }
    const { rows } = await pool.query("SELECT input->>'sku' AS sku FROM weft.tasks WHERE input->>'sku' LIKE 'tx%'");
    expect(rows.map((r) => r.sku).sort()).toEqual(["tx", "tx2"]);
  });

  it("a schedule that waited for a racing uncommitted one gets the winner's ids (and its own when it rolls back)", async () => {
    const tx = await pool.connect();
    try {
      await tx.query("BEGIN");
      const winner = await client.client.schedule(order, { sku: "race" }, { idempotencyKey: "race", tx });
      let settled = false;
      const loser = client.client.schedule(order, { sku: "race" }, { idempotencyKey: "race" }).finally(() => {
        settled = true;
      });
      await new Promise((r) => setTimeout(r, 300));
      expect(settled).toBe(false); // it waits for the uncommitted key
      await tx.query("COMMIT");
      expect(await loser).toEqual(winner);

      await tx.query("BEGIN");
      const gone = await client.client.schedule(order, { sku: "race2" }, { idempotencyKey: "race2", tx });
      const next = client.client.schedule(order, { sku: "race2" }, { idempotencyKey: "race2" });
      await new Promise((r) => setTimeout(r, 200));
      await tx.query("ROLLBACK");
      const own = await next;
      expect(own.taskId).not.toBe(gone.taskId);
      expect(await keyRow("race2")).toEqual([{ task_name: "order", task_id: own.taskId, workflow_id: own.taskId }]);
    } finally {
      tx.release();
    }
    expect(
      (await pool.query("SELECT count(*)::int AS n FROM weft.tasks WHERE input->>'sku' LIKE 'race%'")).rows[0].n,
    ).toBe(2);
  });

  it("under REPEATABLE READ, a key committed after the caller's snapshot is a serialization failure to retry", async () => {
    const tx = await pool.connect();
    try {
      await tx.query("BEGIN ISOLATION LEVEL REPEATABLE READ");
      await tx.query("SELECT 1"); // the snapshot is taken
      const other = await client.client.schedule(order, { sku: "rr" }, { idempotencyKey: "rr" });
      await expect(client.client.schedule(order, { sku: "rr" }, { idempotencyKey: "rr", tx })).rejects.toMatchObject({
        code: "40001",
      });
      await tx.query("ROLLBACK");
      // The retry, in a new transaction, gets the committed schedule's ids.
      await tx.query("BEGIN ISOLATION LEVEL REPEATABLE READ");
      expect(await client.client.schedule(order, { sku: "rr" }, { idempotencyKey: "rr", tx })).toEqual(other);
      await tx.query("COMMIT");
    } finally {
      tx.release();
    }
  });

  it("three processes racing on the same 200 keys make exactly one workflow per key, and all get its ids", async () => {
    const racers = [1, 2, 3].map((seed) =>
      spawnNode(join(ROOT, "sdk/test/fixtures/idempotency-racer.ts"), {
        DATABASE_URL: url,
        KEYS: "200",
        SEED: String(seed * 7_919),
      }),
    );
    await Promise.all(racers.map((r) => r.waitFor((m) => m.type === "ready", 60_000)));
    for (const r of racers) r.send({ type: "go" });
    const results = await Promise.all(
      racers.map((r) => r.waitFor((m) => m.type === "done" || m.type === "error", 120_000)),
    );
    expect(results.map((r) => r.type)).toEqual(["done", "done", "done"]);
    const { rows } = await pool.query<{ key: string; id: string }>(
      "SELECT input->>'key' AS key, id FROM weft.tasks WHERE task_name = 'raced'",
    );
    expect(rows).toHaveLength(200);
    const winner = new Map(rows.map((r) => [r.key, r.id]));
    expect(winner.size).toBe(200);
    for (const r of results) {
      const refs = r.refs as Record<string, string>;
      expect(Object.keys(refs)).toHaveLength(200);
      for (const [key, id] of Object.entries(refs)) expect(id, key).toBe(winner.get(key));
    }
    const keys = await pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM weft.idempotency_keys k JOIN weft.tasks t ON t.id = k.task_id WHERE k.task_name = 'raced'",
    );
    expect(keys.rows[0]?.n).toBe(200);
    await Promise.all(racers.map((r) => r.exited));
  });

  it("validates keys before writing anything", async () => {
    const bad = async (fn: () => Promise<unknown>, argument: string, detail: string | RegExp) => {
      const error = await fn().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(error).toMatchObject({ argument });
      expect((error as Error).message).toMatch(detail);
    };
    const before = await tasksOf("order");
    await bad(
      () => client.client.schedule(order, { sku: "v" }, { idempotencyKey: "" }),
      "options.idempotencyKey",
      /non-empty/,
    );
    await bad(
      () => client.client.schedule(order, { sku: "v" }, { idempotencyKey: "k".repeat(256) }),
      "options.idempotencyKey",
      /at most 255/,
    );
    expect(await client.client.schedule(order, { sku: "v" }, { idempotencyKey: "k".repeat(255) })).toBeDefined();
    await bad(
      () => client.client.schedule(order, { sku: "v" }, { idempotencyKey: 42 as unknown as string }),
      "options.idempotencyKey",
      /number/,
    );
    await bad(
      () =>
        client.client.scheduleMany(order, [{ sku: "x" }, { sku: "y" }, { sku: "x" }], {
          idempotencyKey: (input) => input.sku,
        }),
      "options.idempotencyKey",
      /inputs\[2\] has the key of inputs\[0\]/,
    );
    await bad(
      () => client.client.scheduleMany(order, [{ sku: "x" }], { idempotencyKey: () => "" }),
      "options.idempotencyKey(inputs[0])",
      /non-empty/,
    );
    await bad(
      () =>
        client.client.scheduleMany(order, [{ sku: "x" }], {
          idempotencyKey: "k" as unknown as () => string,
        }),
      "options.idempotencyKey",
      /function/,
    );
    const root = await client.client.schedule(order, { sku: "root" });
    await bad(
      () => client.client.schedule(order, { sku: "v" }, { idempotencyKey: "wf", workflowId: root.workflowId }),
      "options.idempotencyKey",
      /workflowId/,
    );
    expect(await tasksOf("order")).toBe((before ?? 0) + 2);
    expect(() => createClient({ connectionString: url, idempotency: { windowMs: -1 } })).toThrow(ConfigError);
    expect(() => createClient({ connectionString: url, idempotency: { windowMs: -1 } })).toThrow(
      /idempotency\.windowMs/,
    );
    expect(() => createClient({ connectionString: url, idempotency: { window: 1 } as never })).toThrow(
      /idempotency\.window/,
    );
  });
});

describe("idempotency keys past their window, on a node", () => {
  let weft: Weft;
  let pool: pg.Pool;
  beforeAll(async () => {
    const url = await freshDatabase();
    pool = poolFor(url);
    weft = createWeft({
      connectionString: url,
      tasks: [order],
      idempotency: { windowMs: 1_000 },
      cleaner: { intervalMs: 100 },
      logLevel: "silent",
    });
    await weft.start();
  });
  afterAll(() => weft.stop());

  it("a key past its window starts a new workflow; both run; the cleaner deletes expired keys", async () => {
    const first = await weft.client.schedule(order, { sku: "w" }, { idempotencyKey: "window" });
    expect(await weft.client.schedule(order, { sku: "w" }, { idempotencyKey: "window" })).toEqual(first);
    await new Promise((r) => setTimeout(r, 1_200));
    // Expired: the key is free, even for another input.
    const second = await weft.client.schedule(order, { sku: "other" }, { idempotencyKey: "window" });
    expect(second.taskId).not.toBe(first.taskId);
    expect(await weft.client.workflowResult(first.workflowId, order, { timeoutMs: 10_000 })).toEqual({ sku: "w" });
    expect(await weft.client.workflowResult(second.workflowId, order, { timeoutMs: 10_000 })).toEqual({
      sku: "other",
    });
    // The cleaner (every 100 ms here) removes the key once it has expired again.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const { rows } = await pool.query("SELECT 1 FROM weft.idempotency_keys");
      if (rows.length === 0) break;
      if (Date.now() > deadline) throw new Error("the cleaner left an expired key");
      await new Promise((r) => setTimeout(r, 100));
    }
  });
});
