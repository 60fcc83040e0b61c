import { join } from "node:path";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXEC_LOG_DDL, fixtureTasks } from "../../test/fixtures/tasks.js";
import {
  eventually,
  freshDatabase,
  maxOverlap,
  type NodeProcess,
  poolFor,
  ROOT,
  spawnNode,
} from "../../test/support.js";
import { createClient, type Weft } from "../src/index.js";

const NODE_SCRIPT = join(ROOT, "test/fixtures/node.ts");

describe("cluster, node and CPU limits on 3 node processes", () => {
  let pool: pg.Pool;
  let client: Weft;
  let nodes: NodeProcess[];
  let tasks: ReturnType<typeof fixtureTasks>;
  const done = (name: string, n: number) =>
    eventually(async () => {
      const { rows } = await pool.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM weft.tasks WHERE task_name = $1 AND state = 'COMPLETED'",
        [name],
      );
      return (rows[0]?.n ?? 0) >= n ? true : undefined;
    }, 60_000);

  beforeAll(async () => {
    const url = await freshDatabase();
    pool = poolFor(url);
    await pool.query(EXEC_LOG_DDL);
    tasks = fixtureTasks(pool, "client");
    client = createClient({ connectionString: url, tasks: [tasks.work, tasks.limited] });
    await client.start();
    nodes = ["m1", "m2", "m3"].map((label) =>
      spawnNode(NODE_SCRIPT, {
        DATABASE_URL: url,
        NODE_LABEL: label,
        TASKS: "work,limited",
        CAPACITY: "10",
        CPU_LIMIT: "0.8",
        HEARTBEAT_MS: "200",
      }),
    );
    await Promise.all(nodes.map((n) => n.waitFor((m) => m.type === "ready", 60_000)));
  });
  afterAll(async () => {
    for (const n of nodes) n.send({ type: "stop" });
    await Promise.all(nodes.map((n) => n.exited));
    await client.stop();
  });

  it("never exceeds maxParallelInCluster or maxParallelTasksInNode, and reaches both", async () => {
    await client.client.scheduleMany(
      tasks.limited,
      Array.from({ length: 40 }, () => ({ sleepMs: 120 })),
    );
    await client.client.scheduleMany(
      tasks.work,
      Array.from({ length: 150 }, () => ({ sleepMs: 120 })),
    );
    await done("limited", 40);
    await done("work", 150);
    const { rows } = await pool.query<{ task_name: string; node: string; started_at: Date; ended_at: Date }>(
      "SELECT task_name, node, started_at, ended_at FROM public.exec_log",
    );
    const limited = rows.filter((r) => r.task_name === "limited");
    expect(limited).toHaveLength(40);
    expect(maxOverlap(limited)).toBe(4);
    const perNode = ["m1", "m2", "m3"].map((n) => maxOverlap(rows.filter((r) => r.node === n)));
    for (const overlap of perNode) expect(overlap).toBeLessThanOrEqual(10);
    expect(Math.max(...perNode)).toBe(10);
    // Work is not serialised by accident: the cluster runs well beyond one node's worth.
    expect(maxOverlap(rows)).toBeGreaterThanOrEqual(20);
  });

  it("a node reporting CPU load over nodeCpuLoadingLimit gets no new tasks until its load drops", async () => {
    await pool.query("TRUNCATE public.exec_log");
    const [busy] = nodes;
    busy?.send({ type: "cpu", load: 0.95 });
    await eventually(async () => {
      const { rows } = await pool.query<{ cpu_load: number }>("SELECT cpu_load FROM weft.nodes WHERE app_name = 'm1'");
      return (rows[0]?.cpu_load ?? 0) > 0.9 ? true : undefined;
    });
    await client.client.scheduleMany(
      tasks.work,
      Array.from({ length: 60 }, () => ({ sleepMs: 20 })),
    );
    await done("work", 150 + 60);
    const { rows } = await pool.query<{ node: string; n: number }>(
      "SELECT node, count(*)::int AS n FROM public.exec_log GROUP BY node ORDER BY node",
    );
    expect(rows.map((r) => r.node)).toEqual(["m2", "m3"]);
    busy?.send({ type: "cpu", load: 0.1 });
    await eventually(async () => {
      const { rows: load } = await pool.query<{ cpu_load: number }>(
        "SELECT cpu_load FROM weft.nodes WHERE app_name = 'm1'",
      );
      return (load[0]?.cpu_load ?? 1) < 0.5 ? true : undefined;
    });
    await client.client.scheduleMany(
      tasks.work,
      Array.from({ length: 60 }, () => ({ sleepMs: 20 })),
    );
    await done("work", 150 + 120);
    const after = await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM public.exec_log WHERE node = 'm1'");
    expect(after.rows[0]?.n).toBeGreaterThan(0);
  });
});
