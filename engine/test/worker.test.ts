// The Worker on its own (no Engine, no planner): tasks are assigned to its node
// with the planner's apply, and it fetches or is handed them.
import type pg from "pg";
import { describe, expect, it } from "vitest";
import { eventually, freshDatabase, poolFor } from "../../test/support.js";
import { engineConfigSchema, type NodeConfig, parseConfig } from "../src/config.js";
import { isWeftError, NonRetryableError } from "../src/errors.js";
import type { TaskHandler } from "../src/handler.js";
import { Listener } from "../src/services/listener.js";
import { NodeRegistry } from "../src/services/node-registry.js";
import { Store } from "../src/store/index.js";
import type { LocalNode, NewTaskRow } from "../src/store/types.js";
import { resolveTaskSettings } from "../src/task-settings.js";
import { Worker } from "../src/worker/worker.js";
import { memoryLogger, newTask } from "./helpers.js";

interface Started {
  readonly worker: Worker;
  readonly store: Store;
  readonly pool: pg.Pool;
  readonly nodeId: string;
  /** Stops the worker, then the registry and the listener. */
  stop(graceMs?: number): Promise<void>;
}

async function startWorker(url: string, handlers: TaskHandler[], node: Partial<NodeConfig> = {}): Promise<Started> {
  const pool = poolFor(url);
  const store = new Store("weft");
  const config = parseConfig(engineConfigSchema, { node, planner: { enabled: false } });
  const { logger } = memoryLogger();
  const byName = new Map(handlers.map((h) => [h.name, h]));
  const listener = new Listener({ connectionString: url }, store.channel, logger);
  const identity = {
    appName: "worker-test",
    capacity: config.node.maxParallelTasksInNode,
    taskNames: [...byName.keys()],
  };
  const registry = new NodeRegistry(store, pool, identity, 60_000, logger, async () => worker.abandonAll());
  const worker: Worker = new Worker(
    store,
    pool,
    pool,
    config.node,
    config.maxPayloadBytes,
    byName,
    resolveTaskSettings(config, byName),
    registry,
    listener,
    logger,
  );
  await listener.start();
  await registry.start();
  await worker.start();
  let stopped = false;
  return {
    worker,
    store,
    pool,
    nodeId: registry.nodeId,
    async stop(graceMs?: number) {
      if (stopped) return;
      stopped = true;
      await worker.stop(graceMs);
      await registry.stop();
      await listener.stop();
    },
  };
}

/** Schedules \`tasks\` and assigns them to \`nodeId\` as the planner's apply does (handed over to \`local\`, if given). */
async function assign(s: Started, tasks: NewTaskRow[], local: LocalNode | null = null) {
  await s.store.schedule.insert(s.pool, tasks, new Set(tasks.map((t) => t.id)));
  const decisions = tasks.map((t) => ({ id: t.id, queue: "READY" as const, node: s.nodeId, parkReason: null }));
  return s.store.planner.apply(s.pool, decisions, 0, {}, local);
}

interface TaskState {
  id: string;
  queue: string;
  state: string;
  assigned_node: string | null;
  result: unknown;
  error: { code?: string } | null;
}

async function states(pool: pg.Pool, tasks: readonly NewTaskRow[]): Promise<Map<string, TaskState>> {
  const { rows } = await pool.query<TaskState>(
    "SELECT id, queue, state, assigned_node, result, error FROM weft.tasks WHERE id = ANY($1)",
    [tasks.map((t) => t.id)],
  );
  return new Map(rows.map((r) => [r.id, r]));
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe("Worker", () => {
  it("fetches its node's assignments, runs at most its capacity, and records each outcome once", async () => {
    const url = await freshDatabase();
    const gate = deferred();
    const runs = new Map<string, number>();
    let running = 0;
    let peak = 0;
    const s = await startWorker(
      url,
      [
        {
          name: "t",
          execute: async (e) => {
            runs.set(e.taskId, (runs.get(e.taskId) ?? 0) + 1);
            running++;
            peak = Math.max(peak, running);
            await gate.promise;
            running--;
            return { doubled: (e.input as { n: number }).n * 2 };
          },
        },
      ],
      { maxParallelTasksInNode: 2 },
    );
    try {
      const tasks = Array.from({ length: 5 }, (_, n) => newTask({ input: JSON.stringify({ n }) }));
      const applied = await assign(s, tasks);
      // Not handed over: the worker learns of them by its node's notification (or its poll).
      expect(applied.handedOver).toEqual([]);
      await eventually(async () => (runs.size === 2 ? true : undefined), 10_000);
      expect(s.worker.room()).toBe(0);
      expect(s.worker.activeCount).toBe(2);
      gate.resolve();
      await eventually(async () => {
        const found = await states(s.pool, tasks);
        return [...found.values()].every((t) => t.state === "COMPLETED") ? found : undefined;
      }, 20_000);
      const found = await states(s.pool, tasks);
      for (const [n, t] of tasks.entries()) {
        expect(found.get(t.id)).toMatchObject({ queue: "DELETED", state: "COMPLETED", result: { doubled: n * 2 } });
      }
      expect(peak).toBe(2);
      expect([...runs.values()]).toEqual([1, 1, 1, 1, 1]);
      expect(s.worker.started).toBe(5);
      await eventually(async () => (s.worker.activeCount === 0 ? true : undefined), 5_000);
      expect(s.worker.room()).toBe(2);
    } finally {
      await s.stop();
    }
  });

  it("records failures by the retry policy, and runs exactly-once tasks in one transaction with their outcome", async () => {
    const url = await freshDatabase();
    const s = await startWorker(url, [
      {
        name: "bad",
        execute: () => {
          throw new NonRetryableError("no use retrying");
        },
      },
      {
        name: "once",
        guarantee: "exactly-once",
        execute: async (e) => {
          await e.tx?.query("INSERT INTO effects (task_id) VALUES ($1)", [e.taskId]);
          return "done";
        },
      },
    ]);
    try {
      await s.pool.query("CREATE TABLE effects (task_id text PRIMARY KEY)");
      const bad = newTask({ taskName: "bad" });
      const once = newTask({ taskName: "once" });
      await assign(s, [bad, once]);
      const found = await eventually(async () => {
        const f = await states(s.pool, [bad, once]);
        return [...f.values()].every((t) => t.queue === "DELETED") ? f : undefined;
      }, 20_000);
      expect(found.get(bad.id)).toMatchObject({ state: "FAILED", error: { code: "NON_RETRYABLE" } });
      expect(found.get(once.id)).toMatchObject({ state: "COMPLETED", result: "done" });
      const { rows } = await s.pool.query("SELECT task_id FROM effects");
      expect(rows).toEqual([{ task_id: once.id }]);
    } finally {
      await s.stop();
    }
  });

  it("keeps handed-over assignments beyond its room waiting; stop releases them and aborts what runs", async () => {
    const url = await freshDatabase();
    const reasons: unknown[] = [];
    const s = await startWorker(
      url,
      [
        {
          name: "t",
          execute: (e) =>
            new Promise((_, reject) => {
              e.signal.addEventListener("abort", () => {
                reasons.push(e.signal.reason);
                reject(e.signal.reason);
              });
            }),
        },
      ],
      { maxParallelTasksInNode: 1 },
    );
    const roomCalls: number[] = [];
    s.worker.onRoom(() => roomCalls.push(s.worker.room()));
    const tasks = Array.from({ length: 3 }, () => newTask());
    const applied = await assign(s, tasks, s.worker.handoffTarget());
    expect(applied.handedOver).toHaveLength(3);
    s.worker.handOver(applied.handedOver);
    // A second delivery of the same rows (a fetch that raced the hand-over) starts nothing.
    s.worker.handOver(applied.handedOver);
    expect(s.worker.started).toBe(1);
    expect(s.worker.activeCount).toBe(3);
    expect(s.worker.room()).toBe(0);
    await s.stop(100);
    expect(s.worker.handoffTarget()).toBeNull();
    expect(s.worker.started).toBe(1);
    expect(reasons).toHaveLength(1);
    expect(isWeftError(reasons[0]) && reasons[0].code).toBe("ATTEMPT_REVOKED");
    expect((reasons[0] as Error).message).toBe("node is shutting down");
    // Nothing ended before the stop: no room was announced.
    expect(roomCalls).toEqual([]);
    const found = await states(s.pool, tasks);
    for (const t of tasks) expect(found.get(t.id)).toMatchObject({ state: "PENDING", assigned_node: null });
    // After the stop, a hand-over is ignored.
    s.worker.handOver(applied.handedOver);
    expect(s.worker.started).toBe(1);
  });
});
