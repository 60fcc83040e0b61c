import { join } from "node:path";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXEC_LOG_DDL, fixtureTasks } from "../../test/fixtures/tasks.js";
import { eventually, freshDatabase, type NodeProcess, poolFor, ROOT, spawnNode } from "../../test/support.js";
import { createClient, type Weft } from "../src/index.js";

const NODE_SCRIPT = join(ROOT, "test/fixtures/node.ts");
const REPETITIONS = 50;

describe("cancelling while tasks complete, on 3 node processes", () => {
  let url: string;
  let pool: pg.Pool;
  let client: Weft;
  let nodes: NodeProcess[];
  let tasks: ReturnType<typeof fixtureTasks>;

  beforeAll(async () => {
    url = await freshDatabase();
    pool = poolFor(url);
    await pool.query(EXEC_LOG_DDL);
    tasks = fixtureTasks(pool, "client");
    client = createClient({ connectionString: url, tasks: [tasks.fanParent] });
    await client.start();
    nodes = ["r1", "r2", "r3"].map((label) =>
      spawnNode(NODE_SCRIPT, { DATABASE_URL: url, NODE_LABEL: label, TASKS: "work,collect,fanParent", CAPACITY: "30" }),
    );
    await Promise.all(nodes.map((n) => n.waitFor((m) => m.type === "ready", 60_000)));
  });
  afterAll(async () => {
    for (const n of nodes) n.send({ type: "stop" });
    await Promise.all(nodes.map((n) => n.exited));
    await client.stop();
  });

  it(`${REPETITIONS} repetitions: final states only, workflow CANCELLED, no child of a cancelled task, nothing left running`, async () => {
    const workflows: string[] = [];
    for (let rep = 0; rep < REPETITIONS; rep++) {
      const ref = await client.client.schedule(tasks.fanParent, { children: 12, maxSleepMs: 40, joinSleepMs: 200 });
      workflows.push(ref.workflowId);
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 60)));
      expect(await client.client.cancelWorkflow(ref.workflowId, `rep ${rep}`)).toBe(true);
    }
    // Every node settles with nothing running.
    await eventually(
      async () => {
        const latest = nodes.map((n) => n.messages.filter((m) => m.type === "status").at(-1));
        return latest.every((m) => m?.active === 0) ? true : undefined;
      },
      15_000,
      100,
    );
    const { rows: wfs } = await pool.query<{ status: string; pending_tasks: number }>(
      "SELECT status, pending_tasks FROM weft.workflows WHERE id = ANY($1)",
      [workflows],
    );
    expect(wfs).toHaveLength(REPETITIONS);
    expect(wfs.every((w) => w.status === "CANCELLED" && w.pending_tasks === 0)).toBe(true);
    const { rows: open } = await pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM weft.tasks WHERE workflow_id = ANY($1) AND (queue <> 'DELETED' OR state NOT IN ('COMPLETED', 'FAILED', 'CANCELLED'))",
      [workflows],
    );
    expect(open[0]?.n).toBe(0);
    const { rows: orphans } = await pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM weft.tasks c JOIN weft.tasks p ON p.id = c.parent_id
        WHERE c.workflow_id = ANY($1) AND p.state = 'CANCELLED'`,
      [workflows],
    );
    expect(orphans[0]?.n).toBe(0);
    // Some repetitions cancelled running work, some before the parent ran: both paths were taken.
    const { rows: states } = await pool.query<{ state: string; n: number }>(
      "SELECT state, count(*)::int AS n FROM weft.tasks WHERE workflow_id = ANY($1) GROUP BY state",
      [workflows],
    );
    const byState = Object.fromEntries(states.map((s) => [s.state, s.n]));
    expect(byState.CANCELLED ?? 0).toBeGreaterThan(REPETITIONS);
    expect(byState.COMPLETED ?? 0).toBeGreaterThan(0);
    // No join ran in a cancelled workflow.
    const { rows: joins } = await pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM public.exec_log l JOIN weft.tasks t ON t.id = l.task_id WHERE t.task_name = 'collect' AND t.state = 'COMPLETED'",
    );
    expect(joins[0]?.n).toBe(0);
  });

  it("running attempts on other node processes stop within a second of the cancel", async () => {
    const ref = await client.client.schedule(tasks.fanParent, { children: 30, maxSleepMs: 60_000, joinSleepMs: 0 });
    // Wait until every child is running somewhere (the nodes report their active counts).
    await eventually(
      async () => {
        const { rows } = await pool.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM weft.tasks WHERE workflow_id = $1 AND state = 'RUNNING'",
          [ref.workflowId],
        );
        return (rows[0]?.n ?? 0) >= 20 ? true : undefined;
      },
      15_000,
      50,
    );
    const nodesRunning = () =>
      nodes.filter((n) => ((n.messages.filter((m) => m.type === "status").at(-1)?.active as number) ?? 0) > 0).length;
    await eventually(async () => (nodesRunning() >= 2 ? true : undefined), 5_000, 50);
    const cancelledAt = Date.now();
    expect(await client.client.cancelWorkflow(ref.workflowId)).toBe(true);
    await eventually(async () => (nodesRunning() === 0 ? true : undefined), 5_000, 20);
    // Status messages come every 100 ms: the attempts stopped within a second.
    expect(Date.now() - cancelledAt).toBeLessThan(1_000 + 100);
  });
});
