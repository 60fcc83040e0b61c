import type pg from "pg";
import { beforeEach, describe, expect, it } from "vitest";
import { freshDatabase, poolFor } from "../../test/support.js";
import { DeadNodeRescue } from "../src/planner/rescue.js";
import { Store } from "../src/store/index.js";
import { memoryLogger, newTask } from "./helpers.js";

/** The planner's dead-node rescue on its own: sweeps, lost attempts, keys left held, the epoch fence. */
describe("dead-node rescue", () => {
  const store = new Store("weft");
  const url = freshDatabase();
  const config = { nodeDeadAfterMs: 1_000, deadNodeSweepMs: 500 };
  let pool: pg.Pool;
  let epoch: number;
  let logged: ReturnType<typeof memoryLogger>;
  let rescue: DeadNodeRescue;

  const addNode = (id: string, heartbeat = "now()") =>
    pool.query(
      `INSERT INTO weft.nodes (id, app_name, host, pid, capacity, task_names, heartbeat_at) VALUES ($1, 'a', 'h', 1, 10, '{t}', ${heartbeat})`,
      [id],
    );
  /** Tasks scheduled and assigned to \`node\`, as a cycle of this leader did. */
  const assignedTo = async (node: string, n: number, overrides = {}) => {
    const rows = Array.from({ length: n }, () => newTask(overrides));
    await store.schedule.insert(pool, rows, new Set(rows.map((r) => r.id)));
    const applied = await store.planner.apply(
      pool,
      rows.map((r) => ({ id: r.id, queue: "READY" as const, node, parkReason: null })),
      epoch,
    );
    expect(applied.applied).toBe(n);
    return rows.map((r) => r.id);
  };
  const tasksOf = async (ids: string[]) =>
    (
      await pool.query<{ queue: string; state: string; assigned_node: string | null; lost: string | null }>(
        `SELECT queue, state, assigned_node, attempt_log -> -1 -> 'error' ->> 'code' AS lost
           FROM weft.tasks WHERE id = ANY($1) ORDER BY id`,
        [ids],
      )
    ).rows;
  const warnings = () => logged.lines.filter((l) => l.level === "warn").map((l) => l.msg);

  beforeEach(async () => {
    pool ??= poolFor(await url);
    await pool.query("TRUNCATE weft.tasks, weft.workflows, weft.nodes, weft.affinity_holders CASCADE");
    epoch = await store.planner.takeLeadership(pool, "leader");
    logged = memoryLogger();
    rescue = new DeadNodeRescue(store, config, logged.logger);
  });

  it("is due one interval after it was made or last ran, not at once", async () => {
    const now = Date.now();
    expect(rescue.due(now)).toBe(false);
    expect(rescue.due(now + config.deadNodeSweepMs)).toBe(true);
    await rescue.run(pool, epoch, now + config.deadNodeSweepMs);
    expect(rescue.due(now + config.deadNodeSweepMs + 1)).toBe(false);
    expect(rescue.due(now + 2 * config.deadNodeSweepMs)).toBe(true);
  });

  it("declares a node with a stale heartbeat dead and returns its attempts to READY, to be planned again", async () => {
    await addNode("DEAD");
    await addNode("LIVE");
    const lost = await assignedTo("DEAD", 2);
    const kept = await assignedTo("LIVE", 1);
    await pool.query("UPDATE weft.nodes SET heartbeat_at = now() - interval '1 minute' WHERE id = 'DEAD'");

    expect(await rescue.run(pool, epoch)).toEqual({ fenced: false, handled: 2, changed: true });
    expect(await tasksOf(lost)).toEqual([
      { queue: "READY", state: "PENDING", assigned_node: null, lost: "ATTEMPT_LOST" },
      { queue: "READY", state: "PENDING", assigned_node: null, lost: "ATTEMPT_LOST" },
    ]);
    expect((await tasksOf(kept))[0]).toMatchObject({ state: "RUNNING", assigned_node: "LIVE" });
    expect((await pool.query("SELECT id FROM weft.nodes")).rows).toEqual([{ id: "LIVE" }]);
    expect(warnings()).toEqual(["declared nodes dead; re-planning their tasks"]);
    // They are candidates again.
    const read = await store.planner.candidates(pool, new Map([["t", 10]]));
    expect(read.candidates.map((c) => c.id).sort()).toEqual([...lost].sort());
  });

  it("returns an attempt past its database deadline to READY, on a live node too", async () => {
    await addNode("LIVE");
    const [overdue, onTime] = await assignedTo("LIVE", 2);
    await pool.query("UPDATE weft.tasks SET deadline = now() - interval '1 second' WHERE id = $1", [overdue]);
    await pool.query("UPDATE weft.tasks SET deadline = now() + interval '1 hour' WHERE id = $1", [onTime]);

    // No node changed: a reading taken before still holds.
    expect(await rescue.run(pool, epoch)).toEqual({ fenced: false, handled: 1, changed: false });
    expect(await tasksOf([overdue as string])).toEqual([
      { queue: "READY", state: "PENDING", assigned_node: null, lost: "ATTEMPT_LOST" },
    ]);
    expect((await tasksOf([onTime as string]))[0]).toMatchObject({ state: "RUNNING", assigned_node: "LIVE" });
    expect(warnings()).toEqual(["attempts passed their deadline; re-planning them"]);
  });

  it("frees an affinity key whose holder finished without a release, and unparks the next workflow", async () => {
    await addNode("LIVE");
    const key = { affinityGroup: "account", affinity: "7" };
    const [w1] = await assignedTo("LIVE", 1, key);
    const w2 = newTask(key);
    await store.schedule.insert(pool, [w2], new Set([w2.id]));
    await pool.query("UPDATE weft.tasks SET queue = 'DELETED', state = 'COMPLETED' WHERE id = $1", [w1]);

    expect(await rescue.run(pool, epoch)).toEqual({ fenced: false, handled: 1, changed: true });
    expect((await pool.query("SELECT workflow_id FROM weft.affinity_holders")).rows).toEqual([{ workflow_id: w2.id }]);
    expect((await pool.query("SELECT queue FROM weft.tasks WHERE id = $1", [w2.id])).rows).toEqual([
      { queue: "READY" },
    ]);
  });

  it("with a stale epoch writes nothing and says it was fenced", async () => {
    await addNode("DEAD");
    const held = await assignedTo("DEAD", 1);
    await pool.query("UPDATE weft.nodes SET heartbeat_at = now() - interval '1 minute'");
    await pool.query("UPDATE weft.tasks SET deadline = now() - interval '1 second'");
    await store.planner.takeLeadership(pool, "newer-leader");

    expect(await rescue.run(pool, epoch)).toEqual({ fenced: true, handled: 0, changed: false });
    expect((await pool.query("SELECT id FROM weft.nodes")).rows).toEqual([{ id: "DEAD" }]);
    expect((await tasksOf(held))[0]).toMatchObject({ state: "RUNNING", assigned_node: "DEAD" });
    expect(warnings()).toEqual([]);
  });
});
