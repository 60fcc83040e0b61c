import { describe, expect, it } from "vitest";
import { freshDatabase, poolFor } from "../../test/support.js";
import { Store } from "../src/store/index.js";
import { newTask } from "./helpers.js";

/** A deposed planner (its epoch is not the leader row's) writes nothing. */
describe("leader epoch fence", () => {
  it("apply, sweep, due promotion and affinity hand-over of a stale epoch write nothing and say so", async () => {
    const pool = poolFor(await freshDatabase());
    const store = new Store("weft");
    await pool.query(
      "INSERT INTO weft.nodes (id, app_name, host, pid, capacity, task_names, heartbeat_at) VALUES ('N1', 'a', 'h', 1, 10, '{t}', now() - interval '1 hour')",
    );
    const t = newTask();
    await store.schedule.insert(pool, [t], new Set([t.id]));
    const epoch = await store.planner.takeLeadership(pool, "new-leader");
    const stale = epoch - 1;

    const applied = await store.planner.apply(
      pool,
      [{ id: t.id, queue: "READY", node: "N1", parkReason: null }],
      stale,
    );
    expect(applied).toEqual({ applied: 0, fenced: true, handedOver: [] });
    // Decisions that do not all assign to one node take the general statement: fenced alike.
    const parked = await store.planner.apply(
      pool,
      [{ id: t.id, queue: "PARKED", node: null, parkReason: "RUN_AFTER" }],
      stale,
    );
    expect(parked).toEqual({ applied: 0, fenced: true, handedOver: [] });
    const swept = await store.planner.sweepDeadNodes(pool, 1_000, stale);
    expect(swept.fenced).toBe(true);
    expect(swept.dead_nodes).toEqual([]);
    expect((await pool.query("SELECT id FROM weft.nodes")).rows).toEqual([{ id: "N1" }]);
    await pool.query(
      `UPDATE weft.tasks SET queue = 'PARKED', park_reason = 'RUN_AFTER', run_after = now() - interval '1 s' WHERE id = $1`,
      [t.id],
    );
    expect((await store.planner.promoteDue(pool, 10, stale)).promoted).toBe(0);
    expect((await pool.query("SELECT queue FROM weft.tasks WHERE id = $1", [t.id])).rows[0]).toEqual({
      queue: "PARKED",
    });

    // The current epoch writes.
    expect((await store.planner.promoteDue(pool, 10, epoch)).promoted).toBe(1);
    const ok = await store.planner.sweepDeadNodes(pool, 1_000, epoch);
    expect(ok).toMatchObject({ fenced: false, dead_nodes: ["N1"] });
  });
});
