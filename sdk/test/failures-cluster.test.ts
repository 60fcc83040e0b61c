import { join } from "node:path";
import type pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { EO_DDL, EXEC_LOG_DDL, fixtureTasks } from "../../test/fixtures/tasks.js";
import { eventually, freshDatabase, type NodeProcess, poolFor, ROOT, spawnNode } from "../../test/support.js";
import { createClient, type Weft } from "../src/index.js";

const NODE_SCRIPT = join(ROOT, "test/fixtures/node.ts");

/** Node processes killed, frozen, stopped: what happens to their tasks. */
describe("failures of node processes", () => {
  let url: string;
  let pool: pg.Pool;
  let client: Weft;
  let tasks: ReturnType<typeof fixtureTasks>;
  const running: NodeProcess[] = [];

  const start = async (label: string, env: Record<string, string> = {}): Promise<NodeProcess> => {
    const node = spawnNode(NODE_SCRIPT, {
      DATABASE_URL: url,
      NODE_LABEL: label,
      HEARTBEAT_MS: "200",
      DEAD_AFTER_MS: "1500",
      ...env,
    });
    await node.waitFor((m) => m.type === "ready", 60_000);
    running.push(node);
    return node;
  };
  const nodeId = (node: NodeProcess) => node.messages.find((m) => m.type === "ready")?.nodeId as string;
  const stopAll = async () => {
    for (const node of running.splice(0)) {
      if (node.child.exitCode !== null || node.child.signalCode !== null) continue;
      node.child.kill("SIGCONT");
      node.send({ type: "stop" });
      await Promise.race([node.exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (node.child.exitCode === null) node.child.kill("SIGKILL");
    }
  };
  /** Starts `label` and waits until it leads the planner (it must be the first node up). */
  const startLeader = async (label: string, env: Record<string, string>) => {
    const node = await start(label, env);
    await node.waitFor((m) => m.type === "status" && m.isLeader === true, 30_000);
    return node;
  };
  const assignedTo = (taskId: string, node: NodeProcess) =>
    eventually(async () => {
      const { rows } = await pool.query("SELECT 1 FROM weft.tasks WHERE id = $1 AND assigned_node = $2", [
        taskId,
        nodeId(node),
      ]);
      return rows.length > 0 ? true : undefined;
    }, 30_000);
  const taskRow = async (id: string) =>
    (
      await pool.query<{
        state: string;
        attempt: number;
        result: { node: string; attempt: number };
        attempt_log: { attempt: number; node: string; error: { code?: string; message: string } }[];
      }>("SELECT state, attempt, result, attempt_log FROM weft.tasks WHERE id = $1", [id])
    ).rows[0];

  beforeAll(async () => {
    url = await freshDatabase();
    pool = poolFor(url);
    await pool.query(EXEC_LOG_DDL);
    await pool.query(EO_DDL);
    tasks = fixtureTasks(pool, "client");
    client = createClient({ connectionString: url, tasks: Object.values(tasks) });
    await client.start();
  });
  // A failed test must not leave its nodes (and its leader) to the next one.
  afterEach(() => stopAll());
  afterAll(async () => {
    await stopAll();
    await client.stop();
  });

  it("SIGKILL mid-task: re-run on another node after the lease, completed exactly once (attempt 2)", async () => {
    await startLeader("b", { TASKS: "stubborn", CAPACITY: "1" });
    const a = await start("a", { TASKS: "stubborn", CAPACITY: "10" });
    const ref = await client.client.schedule(tasks.stubborn, { sleepMs: 1_500 });
    await assignedTo(ref.taskId, a);
    // Running there, not only assigned.
    await a.waitFor((m) => m.type === "status" && Number(m.active) > 0, 30_000);
    a.child.kill("SIGKILL");
    await client.client.workflow(ref.workflowId).wait({ timeoutMs: 30_000 });
    const row = await taskRow(ref.taskId);
    expect(row?.state).toBe("COMPLETED");
    expect(row?.attempt).toBe(2);
    expect(row?.result).toEqual({ node: "b", attempt: 2 });
    expect(row?.attempt_log.map((l) => [l.attempt, l.error.code])).toEqual([[1, "ATTEMPT_LOST"]]);
    expect(row?.attempt_log[0]?.error.message).toMatch(/declared dead/);
    // One execution got to the end: the killed one never did.
    const { rows } = await pool.query("SELECT node, attempt FROM public.exec_log WHERE task_id = $1", [ref.taskId]);
    expect(rows).toEqual([{ node: "b", attempt: 2 }]);
    await stopAll();
  });

  it("SIGSTOP past the lease, completed elsewhere, SIGCONT: the late outcome is refused", async () => {
    await startLeader("b2", { TASKS: "stubborn", CAPACITY: "1" });
    const a = await start("a2", { TASKS: "stubborn", CAPACITY: "10" });
    const ref = await client.client.schedule(tasks.stubborn, { sleepMs: 1_000 });
    await assignedTo(ref.taskId, a);
    // Running there, not only assigned: frozen before its fetch, the node would
    // never run the attempt at all (seen on a loaded machine), and the test
    // would wait for its late outcome in vain.
    await a.waitFor((m) => m.type === "status" && Number(m.active) > 0, 30_000);
    a.child.kill("SIGSTOP");
    await client.client.workflow(ref.workflowId).wait({ timeoutMs: 30_000 });
    expect((await taskRow(ref.taskId))?.result).toEqual({ node: "b2", attempt: 2 });
    a.child.kill("SIGCONT");
    // The frozen attempt runs to its end (it ignores its signal), and the node
    // learns it was declared dead: it drops or reports its outcome (refused) and
    // comes back under a new id, with nothing running.
    const resumedAt = a.messages.length;
    await eventually(async () => {
      const { rows } = await pool.query("SELECT 1 FROM public.exec_log WHERE task_id = $1 AND node = 'a2'", [
        ref.taskId,
      ]);
      return rows.length > 0 ? true : undefined;
    });
    await eventually(async () => {
      const { rows } = await pool.query("SELECT id FROM weft.nodes WHERE app_name = 'a2'");
      return rows.length === 1 && rows[0].id !== nodeId(a) ? true : undefined;
    });
    await a.waitFor((m) => m.type === "status" && m.active === 0 && a.messages.indexOf(m) >= resumedAt, 30_000);
    const row = await taskRow(ref.taskId);
    expect(row?.result).toEqual({ node: "b2", attempt: 2 });
    expect(row?.attempt).toBe(2);
    await stopAll();
  });

  it("a hung attempt on a live node is re-planned at its database deadline and completes elsewhere", async () => {
    // The hung node blocks for 30 s and is declared dead only after 60 s: the
    // rescue can only come from the database deadline.
    await startLeader("lead", { TASKS: "work", CAPACITY: "1", TIMEOUT_GRACE_MS: "300", DEAD_AFTER_MS: "60000" });
    const a = await start("hung", { TASKS: "hang", CAPACITY: "1", DEAD_AFTER_MS: "60000" });
    const ref = await client.client.schedule(tasks.hang, { hangMs: 30_000 });
    await assignedTo(ref.taskId, a);
    await start("rescuer", { TASKS: "hang", CAPACITY: "10", DEAD_AFTER_MS: "60000" });
    await client.client.workflow(ref.workflowId).wait({ timeoutMs: 60_000 });
    // Done while the hung node is still blocked: its attempt has not ended (it
    // would log its run), and its node row stays (it is not dead).
    const hungRuns = await pool.query("SELECT 1 FROM public.exec_log WHERE task_id = $1 AND node = 'hung'", [
      ref.taskId,
    ]);
    expect(hungRuns.rows).toEqual([]);
    const row = await taskRow(ref.taskId);
    // Attempt 2 may have gone to the hung node too, if the rescuer registered after the
    // first deadline (a loaded machine): it is then re-planned at its own deadline.
    expect(row?.result.node).toBe("rescuer");
    expect(row?.attempt).toBeGreaterThanOrEqual(2);
    expect(row?.attempt_log).toHaveLength((row?.attempt ?? 0) - 1);
    for (const lost of row?.attempt_log ?? []) {
      expect(lost.error.code).toBe("ATTEMPT_LOST");
      expect(lost.error.message).toMatch(/deadline/);
    }
    const { rows } = await pool.query("SELECT count(*)::int AS n FROM weft.nodes WHERE app_name = 'hung'");
    expect(rows[0].n).toBe(1);
    await stopAll();
  });

  it("a frozen leader (SIGSTOP) loses its session and leadership; on SIGCONT it does not lead again", async () => {
    const leader = await startLeader("frozen", { TASKS: "work" });
    const other = await start("other", { TASKS: "work" });
    leader.child.kill("SIGSTOP");
    const frozenAt = Date.now();
    // idle_session_timeout = max(DEAD_AFTER_MS, 3 × leaderRetryMs) = 1.5 s, then the lock is free.
    await other.waitFor((m) => m.type === "status" && m.isLeader === true, 20_000);
    expect(Date.now() - frozenAt).toBeLessThan(10_000);
    const { rows } = await pool.query<{ node_id: string }>("SELECT node_id FROM weft.leader");
    expect(rows[0]?.node_id).toBe(nodeId(other));
    const resumed = leader.messages.filter((m) => m.type === "status").length;
    leader.child.kill("SIGCONT");
    // The old leader finds its connection gone and steps down; work still flows.
    const ref = await client.client.schedule(tasks.work, { sleepMs: 1 });
    await client.client.workflow(ref.workflowId).wait({ timeoutMs: 20_000 });
    // It reports that it no longer leads, then keeps not leading through several
    // election attempts (leaderRetryMs 200; a status every 100 ms).
    const since = () => leader.messages.filter((m) => m.type === "status").slice(resumed);
    const from = await eventually(async () => {
      const i = since().findIndex((m) => m.isLeader === false);
      return i >= 0 ? i : undefined;
    }, 20_000);
    await eventually(async () => (since().length >= from + 10 ? true : undefined), 20_000);
    expect(
      since()
        .slice(from)
        .every((m) => m.isLeader === false),
    ).toBe(true);
    expect((await pool.query<{ node_id: string }>("SELECT node_id FROM weft.leader")).rows[0]?.node_id).toBe(
      nodeId(other),
    );
    await stopAll();
  });

  it("SIGTERM mid-run: attempts that fit the grace finish on the stopping node; longer ones are released and re-run elsewhere", async () => {
    await pool.query("TRUNCATE public.exec_log");
    // t1 alone takes all 12: ten of 1 s, well within its 4 s grace, and two of 6 s, beyond it.
    const a = await startLeader("t1", { TASKS: "work", CAPACITY: "12", GRACE_MS: "4000" });
    const short = await client.client.scheduleMany(
      tasks.work,
      Array.from({ length: 10 }, () => ({ sleepMs: 1_000 })),
    );
    const long = await client.client.scheduleMany(
      tasks.work,
      Array.from({ length: 2 }, () => ({ sleepMs: 6_000 })),
    );
    await a.waitFor((m) => m.type === "status" && m.active === 12, 30_000);
    const signalledAt = (await pool.query<{ now: Date }>("SELECT clock_timestamp() AS now")).rows[0]?.now as Date;
    a.child.kill("SIGTERM");
    const b = await start("t2", { TASKS: "work", CAPACITY: "20" });
    expect(await a.exited).toBe(0);
    const ids = (refs: readonly { taskId: string }[]) => refs.map((r) => r.taskId);
    await eventually(async () => {
      const { rows } = await pool.query(
        "SELECT count(*)::int AS n FROM weft.tasks WHERE id = ANY($1) AND state = 'COMPLETED'",
        [[...ids(short), ...ids(long)]],
      );
      return rows[0].n === 12 ? true : undefined;
    }, 60_000);
    const runs = async (refs: readonly { taskId: string }[]) =>
      (
        await pool.query<{ task_id: string; node: string; attempt: number; ended_at: Date }>(
          "SELECT task_id, node, attempt, ended_at FROM public.exec_log WHERE task_id = ANY($1) ORDER BY task_id",
          [ids(refs)],
        )
      ).rows;
    const sorted = (refs: readonly { taskId: string }[]) => [...ids(refs)].sort();
    // The short ones finished on t1, once each, as attempt 1, before the grace ended.
    const shortRuns = await runs(short);
    expect(shortRuns.map((r) => [r.task_id, r.node, r.attempt])).toEqual(sorted(short).map((id) => [id, "t1", 1]));
    for (const r of shortRuns) expect(r.ended_at.getTime()).toBeLessThan(signalledAt.getTime() + 4_000);
    // The long ones were released (not an attempt) and ran once, on t2, to their end.
    const longRuns = await runs(long);
    expect(longRuns.map((r) => [r.task_id, r.node, r.attempt])).toEqual(sorted(long).map((id) => [id, "t2", 1]));
    const rows = await pool.query<{ id: string; attempt: number; result: { node: string }; attempt_log: unknown }>(
      "SELECT id, attempt, result, attempt_log FROM weft.tasks WHERE id = ANY($1) ORDER BY id",
      [[...ids(short), ...ids(long)]],
    );
    const longIds = new Set(ids(long));
    for (const r of rows.rows) {
      expect(r).toMatchObject({ attempt: 1, attempt_log: null, result: { node: longIds.has(r.id) ? "t2" : "t1" } });
    }
    const nodes = await pool.query<{ id: string }>("SELECT id FROM weft.nodes");
    expect(nodes.rows).toEqual([{ id: nodeId(b) }]);
    await stopAll();
  });

  it("exactly-once: 10,000 increments under random SIGKILLs of 3 nodes end at exactly 10,000", async () => {
    await pool.query("TRUNCATE public.eo_log, public.eo_counter");
    await pool.query("INSERT INTO public.eo_counter (n) VALUES (0)");
    const env = { TASKS: "eoIncrement", CAPACITY: "16", DEAD_AFTER_MS: "1000", HEARTBEAT_MS: "150" };
    const labels = ["e1", "e2", "e3"];
    const nodes = await Promise.all(labels.map((l) => start(l, env)));
    const total = 10_000;
    await client.client.scheduleMany(
      tasks.eoIncrement,
      Array.from({ length: total }, () => ({ holdMs: 4 })),
    );
    let kills = 0;
    const done = async () =>
      (
        await pool.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM weft.tasks WHERE task_name = 'eoIncrement' AND state = 'COMPLETED'",
        )
      ).rows[0]?.n ?? 0;
    // Kill a random node every 1.5 s and start a new one in its place, while work remains.
    // Bounded, but generous: alone it takes ~2 min; on a loaded 2-core machine it ran out of 4.
    const deadline = Date.now() + 480_000;
    while ((await done()) < total && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 1_500));
      if ((await done()) >= total || kills >= 6) continue;
      const i = Math.floor(Math.random() * nodes.length);
      nodes[i]?.child.kill("SIGKILL");
      kills++;
      nodes[i] = await start(`${labels[i]}-${kills}`, env);
    }
    expect(await done()).toBe(total);
    expect(kills).toBeGreaterThanOrEqual(3);
    const counter = await pool.query<{ n: string }>("SELECT n FROM public.eo_counter");
    expect(Number(counter.rows[0]?.n)).toBe(total);
    const logged = await pool.query<{ n: number; distinct: number }>(
      "SELECT count(*)::int AS n, count(DISTINCT task_id)::int AS distinct FROM public.eo_log",
    );
    expect(logged.rows[0]).toEqual({ n: total, distinct: total });
    // Some attempts were really lost and re-run (the kills hit running work).
    const lost = await pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM weft.tasks WHERE task_name = 'eoIncrement' AND attempt > 1",
    );
    expect(lost.rows[0]?.n).toBeGreaterThan(0);
    await stopAll();
  }, 540_000);
});
