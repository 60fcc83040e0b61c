import pg from "pg";
import { beforeEach, describe, expect, it } from "vitest";
import { freshDatabase, poolFor } from "../../test/support.js";
import { parseConfig, plannerConfigSchema } from "../src/config.js";
import { Planner } from "../src/planner/cycle.js";
import { outgrewPlans } from "../src/planner/statistics.js";
import { Store } from "../src/store/index.js";
import { applyParams, applyToOneNodeName } from "../src/store/statements/apply.js";
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
    await pool.query("TRUNCATE weft.tasks, weft.workflows, weft.nodes, weft.affinity_holders CASCADE");
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

  it("gives nothing to a draining node: the same cycle gives the work to the other node", async () => {
    await addNode("DRAINING", 5, ["t"]);
    await addNode("N2", 5, ["t"]);
    await pool.query("UPDATE weft.nodes SET draining = true WHERE id = 'DRAINING'");
    const ids = await schedule(2);
    expect(await planner.cycle()).toBe(2);
    expect((await tasksOf(ids)).map((r) => [r.queue, r.assigned_node, r.attempt])).toEqual([
      ["READY", "N2", 1],
      ["READY", "N2", 1],
    ]);
    // Both draining: the work waits, unwritten.
    await pool.query("UPDATE weft.nodes SET draining = true WHERE id = 'N2'");
    const more = await schedule(2);
    expect(await planner.cycle()).toBe(0);
    expect((await tasksOf(more)).every((r) => r.assigned_node === null && r.queue === "NEW")).toBe(true);
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

  it("says when its first cycle has sent its apply, or when it stopped before any", async () => {
    let started = false;
    void planner.started.then(() => {
      started = true;
    });
    await addNode("N1", 5, ["t"]);
    await schedule(1);
    await new Promise((r) => setTimeout(r, 20));
    expect(started).toBe(false);
    await planner.cycle();
    expect(started).toBe(true);

    const idle = new Planner(store, pool, parseConfig(plannerConfigSchema, {}), memoryLogger().logger, () => undefined);
    let idleStarted = false;
    void idle.started.then(() => {
      idleStarted = true;
    });
    await idle.stop();
    await new Promise((r) => setImmediate(r));
    expect(idleStarted).toBe(true);
  });

  it("a new leader places work in its first cycles and recovers what dead nodes held one sweep interval later", async () => {
    // Left by an earlier leader: a task on a node whose heartbeat stopped.
    await addNode("DEAD", 5, ["t"], "");
    const [held] = await schedule(1);
    await store.planner.apply(pool, [{ id: held as string, queue: "READY", node: "DEAD", parkReason: null }], 0);
    await pool.query("UPDATE weft.nodes SET heartbeat_at = now() - interval '1 minute' WHERE id = 'DEAD'");
    await addNode("LIVE", 5, ["t"]);
    const fresh = await schedule(2);
    const leader = new Planner(
      store,
      pool,
      parseConfig(plannerConfigSchema, { nodeDeadAfterMs: 1_000, deadNodeSweepMs: 300, batchSize: 100 }),
      memoryLogger().logger,
      () => undefined,
    );
    expect(await leader.cycle()).toBe(2);
    expect((await tasksOf([held as string]))[0]).toMatchObject({ assigned_node: "DEAD", attempt: 1 });
    expect((await tasksOf(fresh)).map((r) => r.assigned_node)).toEqual(["LIVE", "LIVE"]);
    // Not in the cycles that follow at once: the sweep waits for its interval.
    await leader.cycle();
    expect((await tasksOf([held as string]))[0]).toMatchObject({ assigned_node: "DEAD", attempt: 1 });
    await new Promise((r) => setTimeout(r, 350)); // past deadNodeSweepMs
    await leader.cycle();
    await leader.cycle();
    expect((await tasksOf([held as string]))[0]).toMatchObject({ assigned_node: "LIVE", attempt: 2 });
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

  it("affinity: the first workflow holds a key; later ones wait PARKED and get it in creation order", async () => {
    await addNode("N1", 20, ["t"]);
    const key = { affinityGroup: "account", affinity: "42" };
    /** A workflow of `n` tasks with the key: a root, and n-1 more added to it. */
    const workflow = async (n: number, k = key) => {
      const root = newTask(k);
      await store.schedule.insert(pool, [root], new Set([root.id]));
      const more = Array.from({ length: n - 1 }, () => newTask({ ...k, workflowId: root.id }));
      if (more.length > 0) await store.schedule.insert(pool, more, new Set());
      return root.id;
    };
    const w1 = await workflow(2);
    const w2 = await workflow(2);
    const w3 = await workflow(1);
    const other = await workflow(1, { affinityGroup: "invoice", affinity: "42" });
    const byWorkflow = async (wf: string) =>
      (
        await pool.query<{ queue: string; state: string; park_reason: string | null }>(
          "SELECT queue, state, park_reason FROM weft.tasks WHERE workflow_id = $1 ORDER BY id",
          [wf],
        )
      ).rows;

    await planner.cycle();
    expect((await byWorkflow(w1)).map((r) => r.state)).toEqual(["RUNNING", "RUNNING"]); // in parallel
    expect((await byWorkflow(w2)).every((r) => r.queue === "PARKED" && r.park_reason === "AFFINITY")).toBe(true);
    expect((await byWorkflow(w3))[0]?.park_reason).toBe("AFFINITY");
    expect((await byWorkflow(other))[0]?.state).toBe("RUNNING"); // another group: its own key

    // w1 finishes one task: it still holds the key.
    await pool.query(
      "UPDATE weft.tasks SET queue = 'DELETED', state = 'COMPLETED' WHERE id = (SELECT min(id) FROM weft.tasks WHERE workflow_id = $1)",
      [w1],
    );
    await planner.cycle();
    expect((await byWorkflow(w2)).every((r) => r.queue === "PARKED")).toBe(true);

    // The worker's release after w1's first outcome: w1 still has a task with the key.
    const w1Key = { affinity_group: "account", affinity: "42", workflow_id: w1 };
    expect(await store.affinity.release(pool, [w1Key])).toEqual({ freed: 0, unparked: 0 });

    // w1 done: the release after its last outcome hands the key to w2 (created
    // before w3), whose tasks run together.
    await pool.query("UPDATE weft.tasks SET queue = 'DELETED', state = 'COMPLETED' WHERE workflow_id = $1", [w1]);
    expect(await store.affinity.release(pool, [w1Key])).toEqual({ freed: 1, unparked: 2 });
    await planner.cycle();
    expect((await byWorkflow(w2)).map((r) => r.state)).toEqual(["RUNNING", "RUNNING"]);
    expect((await byWorkflow(w3))[0]?.queue).toBe("PARKED");
    const holder = await pool.query("SELECT workflow_id FROM weft.affinity_holders WHERE affinity_group = 'account'");
    expect(holder.rows).toEqual([{ workflow_id: w2 }]);

    // A cancelled holder releases at once; w3 is next.
    await pool.query("UPDATE weft.tasks SET queue = 'DELETED', state = 'CANCELLED' WHERE workflow_id = $1", [w2]);
    expect(await store.affinity.releaseWorkflow(pool, w2)).toEqual({ freed: 1, unparked: 1 });
    await planner.cycle();
    expect((await byWorkflow(w3))[0]?.state).toBe("RUNNING");
  });

  it("affinity: the planner's sweep frees a key whose release never ran (its node died after the commit)", async () => {
    await addNode("N1", 20, ["t"]);
    const key = { affinityGroup: "account", affinity: "7" };
    const [w1] = await schedule(1, key);
    const [w2] = await schedule(1, key);
    // Scheduled while w1 holds the key: w2 starts PARKED, with no planner write.
    expect((await tasksOf([w2 as string]))[0]).toMatchObject({ queue: "PARKED", park_reason: "AFFINITY" });
    await planner.cycle();
    expect((await tasksOf([w1 as string]))[0]?.state).toBe("RUNNING");
    await pool.query("UPDATE weft.tasks SET queue = 'DELETED', state = 'COMPLETED' WHERE id = $1", [w1]);
    await new Promise((r) => setTimeout(r, 20)); // past deadNodeSweepMs
    await planner.cycle(); // the sweep hands the key to w2 ...
    await planner.cycle(); // ... and the next cycle places it
    expect((await tasksOf([w2 as string]))[0]?.state).toBe("RUNNING");
    const holder = await pool.query("SELECT workflow_id FROM weft.affinity_holders");
    expect(holder.rows).toEqual([{ workflow_id: w2 }]);
  });

  it("affinity: a schedule racing the release that drops a key (nobody waiting) claims the key", async () => {
    const key = { affinityGroup: "account", affinity: "9" };
    await schedule(1, key);
    // A release in progress: it has locked the holder row; the key's holder
    // finished and nobody waits, so it deletes the row and commits while the
    // schedule waits for the row.
    const release = await pool.connect();
    try {
      await release.query("BEGIN");
      await release.query("SELECT 1 FROM weft.affinity_holders WHERE affinity = '9' FOR UPDATE");
      const scheduled = schedule(1, key);
      await new Promise((r) => setTimeout(r, 100));
      await release.query("DELETE FROM weft.affinity_holders WHERE affinity = '9'");
      await release.query("COMMIT");
      const [w2] = await scheduled;
      // The key is claimed again for the new workflow, whose task may run: no
      // later workflow can take it first.
      const holder = await pool.query("SELECT workflow_id FROM weft.affinity_holders WHERE affinity = '9'");
      expect(holder.rows).toEqual([{ workflow_id: w2 }]);
      expect((await tasksOf([w2 as string]))[0]?.queue).toBe("NEW");
      const [w3] = await schedule(1, key);
      expect((await tasksOf([w3 as string]))[0]).toMatchObject({ queue: "PARKED", park_reason: "AFFINITY" });
    } finally {
      release.release();
    }
  });

  describe("statistics refreshed on growth", () => {
    /** Every node of an EXPLAIN (FORMAT JSON) tree. */
    const nodesOf = (plan: Record<string, unknown>): Record<string, unknown>[] => [
      plan,
      ...((plan.Plans as Record<string, unknown>[] | undefined) ?? []).flatMap(nodesOf),
    ];

    it.each([
      [true, "re-plans"],
      [false, "keeps its scans"],
    ])("refresh %s: a leader whose plans were made on a near-empty table %s once it has grown", async (refresh) => {
      // As the engine's leader connection: plans made on first use and kept.
      const leader = new pg.Client({ connectionString: await url, options: "-c plan_cache_mode=force_generic_plan" });
      await leader.connect();
      // Autovacuum's own ANALYZE must not do the work in the run without refresh.
      await pool.query("ALTER TABLE weft.tasks SET (autovacuum_enabled = false)");
      try {
        const config = parseConfig(plannerConfigSchema, { batchSize: 100, refreshStatisticsOnGrowth: refresh });
        const onLeader = new Planner(store, leader, config, memoryLogger().logger, () => undefined);
        await addNode("N1", 100_000, ["t"]);
        await schedule(1);
        // Statistics taken with one task, as autovacuum does for a new deployment
        // (a table never analyzed is assumed to span 10 pages, and gets index scans).
        await pool.query("ANALYZE weft.tasks");
        expect(await onLeader.cycle()).toBe(1);
        await pool.query(`
          INSERT INTO weft.tasks (id, workflow_id, task_name, queue, state)
          SELECT 'T' || lpad(i::text, 25, '0'), 'T' || lpad(i::text, 25, '0'), 't', 'NEW', 'PENDING'
            FROM generate_series(1, 20000) i`);
        expect(await onLeader.cycle()).toBe(100);

        const { rows: stats } = await pool.query<{ reltuples: number }>(
          "SELECT reltuples FROM pg_class WHERE oid = 'weft.tasks'::regclass",
        );
        if (refresh) expect(stats[0]?.reltuples).toBeGreaterThan(20_000);
        else expect(stats[0]?.reltuples).toBeLessThan(100);
        // The apply as the leader connection has it prepared, under its name.
        const plan1 = applyParams(
          ["T0000000000000000000000001", "T0000000000000000000000002"].map((id) => ({
            id,
            queue: "READY" as const,
            node: "N1",
            parkReason: null,
          })),
          0,
        );
        expect(plan1.oneNode).toBe(true);
        const args = plan1.params.map((v) => (v === null ? "NULL" : leader.escapeLiteral(String(v)))).join(", ");
        const { rows } = await leader.query<{ "QUERY PLAN": { Plan: Record<string, unknown> }[] }>(
          `EXPLAIN (FORMAT JSON) EXECUTE ${leader.escapeIdentifier(applyToOneNodeName("weft", false))}(${args})`,
        );
        const plan = rows[0]?.["QUERY PLAN"][0]?.Plan as Record<string, unknown>;
        const seqScans = nodesOf(plan).filter((n) => n["Node Type"] === "Seq Scan" && n["Relation Name"] === "tasks");
        // Without the refresh both the update and the handoff's probe of the
        // node's assignments scan the table.
        if (refresh) expect(seqScans).toHaveLength(0);
        else expect(seqScans.length).toBeGreaterThan(0);
      } finally {
        await pool.query("ALTER TABLE weft.tasks RESET (autovacuum_enabled)");
        await leader.end();
      }
    });

    it("counts growth from the larger of the leader's start and the last statistics", () => {
      // Not yet four times the size, or less than 64 pages more: no refresh.
      expect(outgrewPlans({ pages: 240, statsPages: 0 }, 60)).toBe(false);
      expect(outgrewPlans({ pages: 60, statsPages: 0 }, 1)).toBe(false);
      expect(outgrewPlans({ pages: 65, statsPages: 0 }, 1)).toBe(true);
      expect(outgrewPlans({ pages: 241, statsPages: 0 }, 60)).toBe(true);
      // Autovacuum's ANALYZE took statistics at 100 pages: plans were re-made then.
      expect(outgrewPlans({ pages: 400, statsPages: 100 }, 10)).toBe(false);
      expect(outgrewPlans({ pages: 401, statsPages: 100 }, 10)).toBe(true);
    });
  });
});
