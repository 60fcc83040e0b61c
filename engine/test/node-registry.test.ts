import { describe, expect, it } from "vitest";
import { eventually, freshDatabase, poolFor } from "../../test/support.js";
import { NodeRegistry } from "../src/services/node-registry.js";
import { Store } from "../src/store/index.js";
import { memoryLogger } from "./helpers.js";

describe("node registry", () => {
  it("registers, heartbeats with the CPU load, and re-registers under a new id when declared dead", async () => {
    const pool = poolFor(await freshDatabase());
    const store = new Store("weft");
    const declared: string[] = [];
    const registry = new NodeRegistry(
      store,
      pool,
      { appName: "app", capacity: 7, taskNames: ["a", "b"] },
      30,
      memoryLogger().logger,
      async (oldId) => {
        declared.push(oldId);
      },
      () => 0.42,
    );
    await registry.start();
    const first = registry.nodeId;
    const [row] = await store.nodes.list(pool);
    expect(row).toMatchObject({ id: first, app_name: "app", capacity: 7, task_names: ["a", "b"], pid: process.pid });
    await eventually(async () => ((await store.nodes.list(pool))[0]?.cpu_load ? true : undefined));
    expect((await store.nodes.list(pool))[0]?.cpu_load).toBeCloseTo(0.42);
    // The planner declares it dead: its row disappears.
    await pool.query("DELETE FROM weft.nodes");
    await eventually(async () => ((await store.nodes.list(pool)).length === 1 ? true : undefined));
    expect(declared).toEqual([first]);
    expect(registry.nodeId).not.toBe(first);
    await registry.stop();
    expect(await store.nodes.list(pool)).toEqual([]);
  });
});
