import { describe, expect, it, vi } from "vitest";
import { freshDatabase, poolFor } from "../../test/support.js";
import { cleanerConfigSchema, parseConfig } from "../src/config.js";
import { Cleaner } from "../src/services/cleaner.js";
import { Store } from "../src/store/index.js";
import { memoryLogger, newTask } from "./helpers.js";

describe("cleaner", () => {
  it("purges finished tasks and workflows older than the retention, in batches, and nothing else", async () => {
    const pool = poolFor(await freshDatabase());
    const store = new Store("weft");
    // Solo workflows (one task, no workflow row) and workflows of two tasks (a row).
    const oldSolo = Array.from({ length: 25 }, () => newTask());
    const oldPairs = Array.from({ length: 5 }, () => {
      const root = newTask();
      return [root, newTask({ workflowId: root.id, parentId: root.id })];
    });
    const old = [...oldSolo, ...oldPairs.flat()];
    const runningRoot = newTask();
    const running = [newTask(), runningRoot, newTask({ workflowId: runningRoot.id, parentId: runningRoot.id })];
    await store.schedule.insert(
      pool,
      [...old, ...running],
      new Set([...oldSolo, ...oldPairs.map(([root]) => root), ...running].map((t) => t?.id as string)),
    );
    expect((await pool.query("SELECT id FROM weft.workflows ORDER BY id")).rows).toEqual(
      [...oldPairs.map(([root]) => root?.id), runningRoot.id].sort().map((id) => ({ id })),
    );
    // Finish the old ones an hour ago.
    await pool.query(
      `UPDATE weft.tasks SET queue = 'DELETED', state = 'COMPLETED', finished_at = now() - interval '1 hour' WHERE id = ANY($1)`,
      [old.map((t) => t.id)],
    );
    await pool.query(
      `UPDATE weft.workflows SET status = 'COMPLETED', pending_tasks = 0, finished_at = now() - interval '1 hour' WHERE id = ANY($1)`,
      [oldPairs.map(([root]) => root?.id)],
    );
    const keep = new Cleaner(
      store,
      pool,
      parseConfig(cleanerConfigSchema, { retentionMs: 2 * 3600_000, batchSize: 10 }),
      memoryLogger().logger,
    );
    expect(await keep.clean()).toEqual({ tasks: 0, workflows: 0, deadLetters: 0, idempotencyKeys: 0 });
    const purge = new Cleaner(
      store,
      pool,
      parseConfig(cleanerConfigSchema, { retentionMs: 1_000, batchSize: 10 }),
      memoryLogger().logger,
    );
    expect(await purge.clean()).toEqual({ tasks: 35, workflows: 5, deadLetters: 0, idempotencyKeys: 0 });
    const left = await pool.query<{ id: string }>("SELECT id FROM weft.tasks ORDER BY id");
    expect(left.rows.map((r) => r.id)).toEqual(running.map((t) => t.id).sort());
    expect((await pool.query("SELECT id FROM weft.workflows")).rows).toEqual([{ id: runningRoot.id }]);
  });

  it("purges a join's edges and messages with it, by age or with its workflow, and keeps a live join's", async () => {
    const pool = poolFor(await freshDatabase());
    const store = new Store("weft");
    // A finished join (purged by age), a join left PARKED in a workflow that
    // failed (purged with the workflow) and a join still waiting (kept).
    const finishedRoot = newTask();
    const finishedJoin = newTask({ workflowId: finishedRoot.id, parentId: finishedRoot.id });
    const failedRoot = newTask();
    const strandedJoin = newTask({ workflowId: failedRoot.id, parentId: failedRoot.id });
    const liveRoot = newTask();
    const liveJoin = newTask({ workflowId: liveRoot.id, parentId: liveRoot.id });
    await store.schedule.insert(
      pool,
      [finishedRoot, finishedJoin, failedRoot, strandedJoin, liveRoot, liveJoin],
      new Set([finishedRoot.id, failedRoot.id, liveRoot.id]),
    );
    const joins = [finishedJoin, strandedJoin, liveJoin].map((t) => t.id);
    await store.schedule.insertEdges(
      pool,
      joins.map((joinId, i) => ({ joinId, upstream: [`UP${i}A`, `UP${i}B`], parentId: joinId })),
    );
    await pool.query(
      "INSERT INTO weft.join_messages (join_task_id, from_task_id, message) SELECT j, 'X', '1' FROM unnest($1::text[]) j",
      [joins],
    );
    await pool.query(
      `UPDATE weft.tasks SET queue = 'DELETED', state = 'COMPLETED', finished_at = now() - interval '1 hour' WHERE id = ANY($1)`,
      [[finishedRoot.id, finishedJoin.id, failedRoot.id]],
    );
    await pool.query("UPDATE weft.tasks SET queue = 'PARKED', park_reason = 'JOIN' WHERE id = $1", [strandedJoin.id]);
    await pool.query(
      `UPDATE weft.workflows SET status = CASE WHEN id = $1 THEN 'COMPLETED' ELSE 'FAILED' END, pending_tasks = 0,
              finished_at = now() - interval '1 hour' WHERE id = ANY($2)`,
      [finishedRoot.id, [finishedRoot.id, failedRoot.id]],
    );
    const cleaner = new Cleaner(
      store,
      pool,
      parseConfig(cleanerConfigSchema, { retentionMs: 1_000, batchSize: 10 }),
      memoryLogger().logger,
    );
    expect(await cleaner.clean()).toEqual({ tasks: 3, workflows: 2, deadLetters: 0, idempotencyKeys: 0 });
    const edges = await pool.query("SELECT join_task_id, upstream_task_id, position FROM weft.task_edges ORDER BY 2");
    expect(edges.rows).toEqual([
      { join_task_id: liveJoin.id, upstream_task_id: "UP2A", position: 0 },
      { join_task_id: liveJoin.id, upstream_task_id: "UP2B", position: 1 },
    ]);
    const messages = await pool.query("SELECT join_task_id FROM weft.join_messages");
    expect(messages.rows).toEqual([{ join_task_id: liveJoin.id }]);
  });

  it("expires dead letters older than deadLetterRetentionMs, in batches, and nothing else", async () => {
    const pool = poolFor(await freshDatabase());
    const store = new Store("weft");
    // 24 dead letters failed two days ago, 4 an hour ago; their tasks are FAILED and recent.
    const tasks = Array.from({ length: 28 }, () => newTask());
    await store.schedule.insert(pool, tasks, new Set(tasks.map((t) => t.id)));
    await pool.query(
      `UPDATE weft.tasks SET queue = 'DELETED', state = 'FAILED', finished_at = now() WHERE id = ANY($1)`,
      [tasks.map((t) => t.id)],
    );
    await pool.query(
      `INSERT INTO weft.dead_letters (task_id, workflow_id, task_name, input, attempts, task_created_at, failed_at)
       SELECT t.id, t.workflow_id, t.task_name, t.input, '[]', t.created_at,
              now() - CASE WHEN o < 25 THEN interval '2 days' ELSE interval '1 hour' END
         FROM unnest($1::text[]) WITH ORDINALITY AS x(id, o) JOIN weft.tasks t ON t.id = x.id`,
      [tasks.map((t) => t.id)],
    );
    const recent = tasks.slice(24).map((t) => t.id);
    const clean = (deadLetterRetentionMs: number) =>
      new Cleaner(
        store,
        pool,
        parseConfig(cleanerConfigSchema, { retentionMs: 7 * 24 * 3600_000, deadLetterRetentionMs, batchSize: 10 }),
        memoryLogger().logger,
      ).clean();
    // A retention longer than every dead letter's age: nothing goes.
    expect(await clean(3 * 24 * 3600_000)).toEqual({ tasks: 0, workflows: 0, deadLetters: 0, idempotencyKeys: 0 });
    // One day: the 24 older ones go, in three batches of at most 10; the 4 recent ones stay.
    expect(await clean(24 * 3600_000)).toEqual({ tasks: 0, workflows: 0, deadLetters: 24, idempotencyKeys: 0 });
    const left = await pool.query<{ task_id: string }>("SELECT task_id FROM weft.dead_letters ORDER BY task_id");
    expect(left.rows.map((r) => r.task_id)).toEqual([...recent].sort());
    // Their tasks follow the task retention, not the dead letters'.
    expect((await pool.query("SELECT count(*)::int AS n FROM weft.tasks")).rows[0].n).toBe(28);
    expect(await clean(24 * 3600_000)).toEqual({ tasks: 0, workflows: 0, deadLetters: 0, idempotencyKeys: 0 });
  });

  it("deletes expired idempotency keys, in batches, and keeps the others and their tasks", async () => {
    const pool = poolFor(await freshDatabase());
    const store = new Store("weft");
    // 23 keys that expired a minute ago, 4 that hold for a day, each with its task.
    const tasks = Array.from({ length: 27 }, () => newTask());
    const keys = tasks.map((_, i) => `k${i}`);
    const hashes = tasks.map(() => "h");
    await store.schedule.insertKeyed(pool, tasks.slice(0, 23), keys.slice(0, 23), hashes.slice(0, 23), 1);
    await store.schedule.insertKeyed(pool, tasks.slice(23), keys.slice(23), hashes.slice(23), 24 * 3600_000);
    await pool.query("UPDATE weft.idempotency_keys SET expires_at = now() - interval '1 minute' WHERE key = ANY($1)", [
      keys.slice(0, 23),
    ]);
    const cleaner = new Cleaner(
      store,
      pool,
      parseConfig(cleanerConfigSchema, { retentionMs: 1_000, batchSize: 10 }),
      memoryLogger().logger,
    );
    // Three batches (10, 10, 3); the tasks are unfinished and stay.
    expect(await cleaner.clean()).toEqual({ tasks: 0, workflows: 0, deadLetters: 0, idempotencyKeys: 23 });
    const left = await pool.query<{ key: string }>("SELECT key FROM weft.idempotency_keys ORDER BY key");
    expect(left.rows.map((r) => r.key)).toEqual(keys.slice(23).sort());
    expect((await pool.query("SELECT count(*)::int AS n FROM weft.tasks")).rows[0].n).toBe(27);
    expect(await cleaner.clean()).toEqual({ tasks: 0, workflows: 0, deadLetters: 0, idempotencyKeys: 0 });
  });

  it("as a service, makes its first pass one interval after it starts, then one per interval", async () => {
    const pool = poolFor(await freshDatabase());
    const store = new Store("weft");
    const finishOld = async () => {
      const task = newTask();
      await store.schedule.insert(pool, [task], new Set([task.id]));
      await pool.query(
        `UPDATE weft.tasks SET queue = 'DELETED', state = 'COMPLETED', finished_at = now() - interval '1 hour' WHERE id = $1`,
        [task.id],
      );
      return task.id;
    };
    const left = async (id: string) => (await pool.query("SELECT 1 FROM weft.tasks WHERE id = $1", [id])).rowCount;
    const first = await finishOld();
    const cleaner = new Cleaner(
      store,
      pool,
      parseConfig(cleanerConfigSchema, { retentionMs: 1_000, intervalMs: 300 }),
      memoryLogger().logger,
    );
    await cleaner.start();
    try {
      // A leader that just took over places work first: nothing is purged at once.
      await new Promise((r) => setTimeout(r, 100));
      expect(await left(first)).toBe(1);
      await vi.waitFor(async () => expect(await left(first)).toBe(0), { timeout: 2_000, interval: 20 });
      // And again on the next interval.
      const second = await finishOld();
      await vi.waitFor(async () => expect(await left(second)).toBe(0), { timeout: 2_000, interval: 20 });
    } finally {
      await cleaner.stop();
    }
  });
});
