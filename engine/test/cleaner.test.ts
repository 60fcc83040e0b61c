import { describe, expect, it } from "vitest";
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
    expect(await keep.clean()).toEqual({ tasks: 0, workflows: 0, deadLetters: 0 });
    const purge = new Cleaner(
      store,
      pool,
      parseConfig(cleanerConfigSchema, { retentionMs: 1_000, batchSize: 10 }),
      memoryLogger().logger,
    );
    expect(await purge.clean()).toEqual({ tasks: 35, workflows: 5, deadLetters: 0 });
    const left = await pool.query<{ id: string }>("SELECT id FROM weft.tasks ORDER BY id");
    expect(left.rows.map((r) => r.id)).toEqual(running.map((t) => t.id).sort());
    expect((await pool.query("SELECT id FROM weft.workflows")).rows).toEqual([{ id: runningRoot.id }]);
  });

  it("starts and stops as a service", async () => {
    const pool = poolFor(await freshDatabase());
    const cleaner = new Cleaner(
      new Store("weft"),
      pool,
      parseConfig(cleanerConfigSchema, { intervalMs: 20 }),
      memoryLogger().logger,
    );
    await cleaner.start();
    await new Promise((r) => setTimeout(r, 60));
    await cleaner.stop();
  });
});
