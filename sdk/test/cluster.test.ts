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

describe("a cluster of node processes", () => {
  let url: string;
  let pool: pg.Pool;
  let client: Weft;
  let tasks: ReturnType<typeof fixtureTasks>;

  const start = async (label: string, env: Record<string, string> = {}): Promise<NodeProcess> => {
    const node = spawnNode(NODE_SCRIPT, { DATABASE_URL: url, NODE_LABEL: label, ...env });
    await node.waitFor((m) => m.type === "ready", 60_000);
    return node;
  };
  const stop = async (node: NodeProcess) => {
    node.send({ type: "stop" });
    await node.exited;
  };
  /** Waits until every one of these tasks is COMPLETED (each test counts its own work). */
  const waitAllDone = (refs: readonly { taskId: string }[], timeoutMs = 60_000) =>
    eventually(async () => {
      const { rows } = await pool.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM weft.tasks WHERE id = ANY($1) AND state = 'COMPLETED'",
        [refs.map((r) => r.taskId)],
      );
      return rows[0]?.n === refs.length ? true : undefined;
    }, timeoutMs);
  const nodeId = (node: NodeProcess) => node.messages.find((m) => m.type === "ready")?.nodeId as string;

  beforeAll(async () => {
    url = await freshDatabase();
    pool = poolFor(url);
    await pool.query(EXEC_LOG_DDL);
    tasks = fixtureTasks(pool, "client");
    client = createClient({ connectionString: url, tasks: [tasks.work, tasks.onlyA, tasks.onlyB] });
    await client.start();
  });
  afterAll(() => client.stop());

  it("three node processes share the work; no task runs twice; every node gets a share", async () => {
    await pool.query("TRUNCATE public.exec_log");
    const nodes = await Promise.all(["n1", "n2", "n3"].map((l) => start(l, { CAPACITY: "20" })));
    const refs = await client.client.scheduleMany(
      tasks.work,
      Array.from({ length: 1_500 }, () => ({ sleepMs: 2 })),
    );
    await waitAllDone(refs);
    const { rows } = await pool.query<{ task_id: string; n: number }>(
      "SELECT task_id, count(*)::int AS n FROM public.exec_log GROUP BY task_id",
    );
    expect(rows).toHaveLength(1_500);
    expect(rows.every((r) => r.n === 1)).toBe(true);
    expect(new Set(rows.map((r) => r.task_id))).toEqual(new Set(refs.map((r) => r.taskId)));
    const share = await pool.query<{ node: string; n: number }>(
      "SELECT node, count(*)::int AS n FROM public.exec_log GROUP BY node ORDER BY node",
    );
    expect(share.rows.map((r) => r.node)).toEqual(["n1", "n2", "n3"]);
    for (const r of share.rows) expect(r.n).toBeGreaterThan(100);
    await Promise.all(nodes.map(stop));
  });

  it("a node with maxParallelTasksInNode = 5 never runs more than 5 at once, and reaches 5", async () => {
    await pool.query("TRUNCATE public.exec_log");
    const node = await start("cap5", { CAPACITY: "5" });
    const refs = await client.client.scheduleMany(
      tasks.work,
      Array.from({ length: 60 }, () => ({ sleepMs: 50 })),
    );
    await waitAllDone(refs);
    const { rows } = await pool.query<{ task_id: string; started_at: Date; ended_at: Date }>(
      "SELECT task_id, started_at, ended_at FROM public.exec_log WHERE node = 'cap5'",
    );
    expect(rows).toHaveLength(60);
    expect(new Set(rows.map((r) => r.task_id))).toEqual(new Set(refs.map((r) => r.taskId)));
    expect(maxOverlap(rows)).toBe(5);
    await stop(node);
  });

  it("a node that can run only task A never receives task B", async () => {
    await pool.query("TRUNCATE public.exec_log");
    const a = await start("only-a", { TASKS: "onlyA" });
    const b = await start("only-b", { TASKS: "onlyB" });
    const refsA = await client.client.scheduleMany(
      tasks.onlyA,
      Array.from({ length: 100 }, () => ({})),
    );
    const refsB = await client.client.scheduleMany(
      tasks.onlyB,
      Array.from({ length: 100 }, () => ({})),
    );
    await waitAllDone(refsA);
    await waitAllDone(refsB);
    const { rows } = await pool.query<{ task_name: string; node: string; n: number }>(
      "SELECT task_name, node, count(*)::int AS n FROM public.exec_log GROUP BY 1, 2 ORDER BY 1, 2",
    );
    expect(rows).toEqual([
      { task_name: "onlyA", node: "only-a", n: 100 },
      { task_name: "onlyB", node: "only-b", n: 100 },
    ]);
    await Promise.all([stop(a), stop(b)]);
  });

  it("killing the planner's leader: another node takes over and work continues", async () => {
    const nodes = await Promise.all(["k1", "k2"].map((l) => start(l)));
    const leaderMsg = await Promise.race(
      nodes.map((n) => n.waitFor((m) => m.type === "status" && m.isLeader === true, 30_000)),
    );
    const leader = nodes.find((n) => n.messages.some((m) => m.label === leaderMsg.label)) as NodeProcess;
    const survivor = nodes.find((n) => n !== leader) as NodeProcess;
    leader.child.kill("SIGKILL");
    await leader.exited;
    const refs = await client.client.scheduleMany(
      tasks.work,
      Array.from({ length: 200 }, () => ({})),
    );
    await survivor.waitFor((m) => m.type === "status" && m.isLeader === true, 30_000);
    await waitAllDone(refs, 30_000);
    const epoch = await pool.query<{ epoch: number }>("SELECT epoch FROM weft.leader");
    expect(Number(epoch.rows[0]?.epoch)).toBeGreaterThanOrEqual(2);
    await stop(survivor);
  });

  it("SIGTERM mid-run: attempts longer than the grace are released, not finished, and re-run elsewhere (not an attempt)", async () => {
    await pool.query("TRUNCATE public.exec_log");
    // Only t1 is up: it takes all 20 (its capacity); each runs 3 s, far beyond its 100 ms grace.
    const a = await start("t1", { CAPACITY: "20", GRACE_MS: "100" });
    const refs = await client.client.scheduleMany(
      tasks.work,
      Array.from({ length: 20 }, () => ({ sleepMs: 3_000 })),
    );
    await a.waitFor((m) => m.type === "status" && m.active === 20, 30_000);
    a.child.kill("SIGTERM");
    expect(await a.exited).toBe(0);
    // Released at the end of the grace, before any could finish: t1 wrote no effect,
    // and left every task READY for another node, its attempt given back.
    const onA = await pool.query("SELECT task_id FROM public.exec_log WHERE node = 't1'");
    expect(onA.rows).toEqual([]);
    const released = await pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM weft.tasks WHERE id = ANY($1) AND queue = 'READY' AND assigned_node IS NULL AND attempt = 0",
      [refs.map((r) => r.taskId)],
    );
    expect(released.rows[0]?.n).toBe(20);
    const b = await start("t2", { CAPACITY: "20" });
    await waitAllDone(refs);
    const { rows } = await pool.query<{ task_id: string; node: string; attempt: number }>(
      "SELECT task_id, node, attempt FROM public.exec_log ORDER BY task_id",
    );
    // Each ran to its end once, on t2, as attempt 1: a release at shutdown is not an attempt.
    expect(rows).toEqual(
      refs
        .map((r) => ({ task_id: r.taskId, node: "t2", attempt: 1 }))
        .sort((x, y) => x.task_id.localeCompare(y.task_id)),
    );
    const logged = await pool.query("SELECT 1 FROM weft.tasks WHERE id = ANY($1) AND attempt_log IS NOT NULL", [
      refs.map((r) => r.taskId),
    ]);
    expect(logged.rows).toEqual([]);
    const nodes = await pool.query<{ id: string }>("SELECT id FROM weft.nodes");
    expect(nodes.rows).toEqual([{ id: nodeId(b) }]);
    await stop(b);
  });
});
