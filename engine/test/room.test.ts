import { describe, expect, it } from "vitest";
import { eventually, freshDatabase, poolFor } from "../../test/support.js";
import { Engine } from "../src/engine.js";
import { sleep } from "../src/services/service.js";
import { WORKFLOW_LOCK_CLASS } from "../src/store/locks.js";
import { newTask } from "./helpers.js";

async function completedCount(pool: ReturnType<typeof poolFor>): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM weft.tasks WHERE state = 'COMPLETED'",
  );
  return rows[0]?.n ?? 0;
}

describe("a node's room", () => {
  it("runs at most its capacity when handed more; the rest wait and start as attempts end", async () => {
    const url = await freshDatabase();
    const runs = new Map<string, number>();
    let running = 0;
    let peak = 0;
    const engine = new Engine({
      connectionString: url,
      config: { node: { maxParallelTasksInNode: 2 }, planner: { enabled: false } },
      handlers: [
        {
          name: "t",
          execute: async (e) => {
            runs.set(e.taskId, (runs.get(e.taskId) ?? 0) + 1);
            running++;
            peak = Math.max(peak, running);
            await sleep(30);
            running--;
            return null;
          },
        },
      ],
    });
    await engine.start();
    try {
      const pool = poolFor(url);
      const worker = engine.localWorker;
      const nodeId = engine.nodeId;
      if (!worker || !nodeId) throw new Error("no worker");
      const tasks = Array.from({ length: 8 }, () => newTask());
      await engine.store.schedule.insert(pool, tasks, new Set(tasks.map((t) => t.id)));
      // Four times the node's capacity, handed over at once (as an apply made
      // from a stale count could).
      const decisions = tasks.map((t) => ({ id: t.id, queue: "READY" as const, node: nodeId, parkReason: null }));
      const result = await engine.store.planner.apply(pool, decisions, 0, {}, worker.handoffTarget());
      expect(result.handedOver).toHaveLength(8);
      worker.handOver(result.handedOver);
      expect(worker.room()).toBe(0);
      await eventually(async () => ((await completedCount(pool)) === tasks.length ? true : undefined), 30_000);
      expect(peak).toBe(2);
      expect(runs.size).toBe(tasks.length);
      expect([...runs.values()].every((n) => n === 1)).toBe(true);
      expect(worker.room()).toBe(2);
    } finally {
      await engine.stop();
    }
  });

  it("is refilled while outcomes are recorded, up to the completion batches in flight, and no further", async () => {
    const url = await freshDatabase();
    const pool = poolFor(url);
    const runs = new Map<string, number>();
    const capacity = 4;
    const completionBatchSize = 2;
    const engine = new Engine({
      connectionString: url,
      config: { node: { maxParallelTasksInNode: capacity, completionBatchSize }, planner: { batchSize: capacity } },
      handlers: [
        {
          name: "t",
          execute: (e) => {
            runs.set(e.taskId, (runs.get(e.taskId) ?? 0) + 1);
            return null;
          },
        },
      ],
    });
    await engine.start();
    // Completion batches take their workflows' locks shared: holding all of
    // them exclusively keeps every outcome from being recorded.
    const blocker = await pool.connect();
    try {
      await blocker.query(`SELECT pg_advisory_lock(${WORKFLOW_LOCK_CLASS}, b) FROM generate_series(0, 63) b`);
      const tasks = Array.from({ length: 40 }, () => newTask());
      await engine.store.schedule.insert(pool, tasks, new Set(tasks.map((t) => t.id)));
      await pool.query(`SELECT pg_notify('weft:weft', 'p')`);
      // Ended attempts free their room before their outcomes are recorded, so
      // more than the capacity run while none is recorded; outcomes beyond the
      // two batches in flight count again (memory stays bounded).
      const bound = capacity + 2 * completionBatchSize;
      await eventually(async () => (runs.size === bound ? true : undefined), 10_000);
      await sleep(500);
      expect(runs.size).toBe(bound);
      expect(await completedCount(pool)).toBe(0);
      await blocker.query("SELECT pg_advisory_unlock_all()");
      await eventually(async () => ((await completedCount(pool)) === tasks.length ? true : undefined), 30_000);
      expect(runs.size).toBe(tasks.length);
      expect([...runs.values()].every((n) => n === 1)).toBe(true);
    } finally {
      blocker.release();
      await engine.stop();
    }
  });
});
