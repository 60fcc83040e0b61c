import type pg from "pg";
import { beforeEach, describe, expect, it } from "vitest";
import { freshDatabase, poolFor } from "../../test/support.js";
import { parseConfig, plannerConfigSchema } from "../src/config.js";
import { Planner } from "../src/services/planner.js";
import { Store } from "../src/store/index.js";
import { memoryLogger, newTask } from "./helpers.js";

describe("planner cycles", () => {
  const store = new Store("weft");
  let pool: pg.Pool;
  let planner: Planner;
  const url = freshDatabase();

  const addNode = (id: string, capacity: number, names: string[], extra = "") =>
    pool.query(
      `INSERT INTO weft.nodes (id, app_name, host, pid, capacity, task_names) VALUES ($1, 'a', 'h', 1, $2, $3) ${extra}`,
      [id, capacity, names],
    );
  const tasksOf = async (ids: string[]) =>
    (
      await pool.query<{
        id: string;
        queue: string;
        state: string;
        assigned_node: string | null;
        attempt: number;
        park_reason: string | null;
      }>(
        "SELECT id, queue, state, assigned_node, attempt, park_reason FROM weft.tasks WHERE id = ANY($1) ORDER BY id",
        [ids],
      )
    ).rows;

  beforeEach(async () => {
    pool ??= poolFor(await url);
    await pool.query("TRUNCATE weft.tasks, weft.workflows, weft.nodes CASCADE");
    const config = parseConfig(plannerConfigSchema, { nodeDeadAfterMs: 1_000, deadNodeSweepMs: 10, batchSize: 100 });
    planner = new Planner(store, pool, config, memoryLogger().logger, () => undefined);
  });

  const schedule = async (n: number, overrides = {}) => {
    const rows = Array.from({ length: n }, () => newTask(overrides));
    await store.schedule.insert(pool, rows, new Set(rows.map((r) => r.id)));
    return rows.map((r) => r.id);
  };

  it("moves NEW tasks to a live node up to its capacity and leaves the rest unwritten in NEW", async () => {
    await addNode("N1", 3, ["t"]);
    const ids = await schedule(5);
    expect(await planner.cycle()).toBe(3);
    const rows = await tasksOf(ids);
    expect(rows.filter((r) => r.assigned_node === "N1" && r.state === "RUNNING" && r.attempt === 1)).toHaveLength(3);
    expect(rows.filter((r) => r.queue === "NEW" && r.assigned_node === null && r.state === "PENDING")).toHaveLength(2);
    // Nothing free: a second cycle changes nothing.
    expect(await planner.cycle()).toBe(0);
  });

  it("gives nothing to a draining node", async () => {
    await addNode("N1", 5, ["t"]);
    await pool.query("UPDATE weft.nodes SET draining = true");
    const ids = await schedule(2);
    await planner.cycle();
    expect((await tasksOf(ids)).every((r) => r.assigned_node === null && r.queue === "NEW")).toBe(true);
  });

  it("declares a node with a stale heartbeat dead and re-plans its tasks on another node (attempt 2)", async () => {
    await addNode("OLD", 5, ["t"]);
    const ids = await schedule(2);
    await planner.cycle();
    await pool.query("UPDATE weft.nodes SET heartbeat_at = now() - interval '1 minute' WHERE id = 'OLD'");
    await addNode("NEW", 5, ["t"]);
    await new Promise((r) => setTimeout(r, 20));
    await planner.cycle();
    const rows = await tasksOf(ids);
    expect(rows.map((r) => [r.assigned_node, r.attempt])).toEqual([
      ["NEW", 2],
      ["NEW", 2],
    ]);
    expect((await pool.query("SELECT id FROM weft.nodes")).rows).toEqual([{ id: "NEW" }]);
  });

  it("re-plans tasks assigned to a node that no longer exists", async () => {
    await addNode("GONE", 5, ["t"]);
    const ids = await schedule(1);
    await planner.cycle();
    await pool.query("DELETE FROM weft.nodes");
    await addNode("HERE", 5, ["t"]);
    await new Promise((r) => setTimeout(r, 20));
    await planner.cycle();
    expect((await tasksOf(ids))[0]).toMatchObject({ assigned_node: "HERE", attempt: 2 });
  });

  it("parks a delayed task and releases it when due", async () => {
    await addNode("N1", 5, ["t"]);
    const [id] = await schedule(1, { delayMs: 300 });
    await planner.cycle();
    expect((await tasksOf([id as string]))[0]).toMatchObject({ queue: "PARKED", park_reason: "RUN_AFTER" });
    await new Promise((r) => setTimeout(r, 350));
    await planner.cycle();
    await planner.cycle();
    expect((await tasksOf([id as string]))[0]).toMatchObject({ queue: "READY", assigned_node: "N1" });
  });

  it("applies the smallest cluster limit published for a name, counting what runs on every node", async () => {
    await addNode("N1", 10, ["t"]);
    await addNode("N2", 10, ["t"]);
    await pool.query(`UPDATE weft.nodes SET task_limits = '{"t": 5}' WHERE id = 'N1'`);
    await pool.query(`UPDATE weft.nodes SET task_limits = '{"t": 3}' WHERE id = 'N2'`);
    const ids = await schedule(8);
    await planner.cycle();
    expect((await tasksOf(ids)).filter((r) => r.state === "RUNNING")).toHaveLength(3);
    await planner.cycle();
    expect((await tasksOf(ids)).filter((r) => r.state === "RUNNING")).toHaveLength(3);
  });

  it("gives no new task to a node over the CPU limit", async () => {
    planner = new Planner(
      store,
      pool,
      parseConfig(plannerConfigSchema, { nodeCpuLoadingLimit: 0.8, deadNodeSweepMs: 10 }),
      memoryLogger().logger,
      () => undefined,
    );
    await addNode("BUSY", 10, ["t"]);
    await addNode("CALM", 10, ["t"]);
    await pool.query("UPDATE weft.nodes SET cpu_load = CASE id WHEN 'BUSY' THEN 0.95 ELSE 0.2 END");
    const ids = await schedule(6);
    await planner.cycle();
    const rows = await tasksOf(ids);
    expect(rows.every((r) => r.assigned_node === "CALM")).toBe(true);
  });
});
