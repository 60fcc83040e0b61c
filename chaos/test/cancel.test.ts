import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../harness/cluster.js";
import { scale } from "../harness/scale.js";
import { type Scenario, startScenario } from "../harness/scenario.js";

/**
 * Cancellation racing completion: workflows of a parent, three children and
 * a join, each cancelled at a random moment while the nodes complete them.
 * Every workflow ends either COMPLETED (whole) or CANCELLED (cut cleanly).
 */
describe("chaos: cancel racing completion", () => {
  let s: Scenario;

  beforeAll(async () => {
    s = await startScenario({ CAPACITY: "50", HEARTBEAT_MS: "300" });
    await s.cluster.startMany(["c1", "c2"]);
    await s.cluster.waitForLeader();
  });
  afterAll(() => s?.close());

  it("workflows cancelled at random moments end whole or cleanly cut", async () => {
    const prefix = "cancel:";
    const w = scale(1_000, 5_000);
    const random = (max: number) => Math.floor(Math.random() * max);
    const refs = await s.client.client.scheduleMany(
      s.tasks.dag,
      Array.from({ length: w }, (_, i) => ({
        spec: {
          key: `${prefix}${i}`,
          sleepMs: random(40),
          join: `${prefix}${i}.join`,
          children: [0, 1, 2].map((c) => ({ key: `${prefix}${i}.${c}`, sleepMs: random(40) })),
        },
      })),
    );
    // Cancel each at a random moment of the next 2 s, while the nodes work.
    const cancelled = await Promise.all(
      refs.map(async (ref) => {
        await new Promise((r) => setTimeout(r, random(2_000)));
        return s.client.client.cancelWorkflow(ref.workflowId);
      }),
    );
    const ids = refs.map((r) => r.workflowId);
    await waitFor(
      "every workflow of the race to end",
      async () => {
        const { rows } = await s.pool.query<{ n: number }>(
          `SELECT (SELECT count(*) FROM weft.workflows WHERE id = ANY($1::text[]) AND status = 'RUNNING')::int
                + (SELECT count(*) FROM weft.tasks WHERE workflow_id = ANY($1::text[])
                     AND state NOT IN ('COMPLETED', 'FAILED', 'CANCELLED'))::int AS n`,
          [ids],
        );
        return rows[0]?.n === 0 ? true : undefined;
      },
      { timeoutMs: 120_000 },
    );
    const workflows = new Map(
      (
        await s.pool.query<{ id: string; status: string }>(
          "SELECT id, status FROM weft.workflows WHERE id = ANY($1::text[])",
          [ids],
        )
      ).rows.map((r) => [r.id, r.status]),
    );
    const tasks = await s.pool.query<{ workflow_id: string; key: string; task_name: string; state: string }>(
      "SELECT workflow_id, input->'spec'->>'key' AS key, task_name, state FROM weft.tasks WHERE workflow_id = ANY($1::text[])",
      [ids],
    );
    const joins = await s.pool.query<{ key: string; data: unknown }>(
      "SELECT key, data FROM public.chaos_ledger WHERE kind = 'join' AND key LIKE $1",
      [`${prefix}%`],
    );
    const joinInput = new Map(joins.rows.map((j) => [j.key, JSON.stringify(j.data)]));
    const byWorkflow = new Map<string, typeof tasks.rows>();
    for (const t of tasks.rows) byWorkflow.set(t.workflow_id, [...(byWorkflow.get(t.workflow_id) ?? []), t]);
    const broken: string[] = [];
    let nCancelled = 0;
    refs.forEach((ref, i) => {
      const rows = byWorkflow.get(ref.workflowId) ?? [];
      const root = rows.find((t) => t.task_name === "dag" && t.key === `${prefix}${i}`);
      // A workflow of one task (cancelled before its root finished) has no workflows row: its status is its task's.
      const status = workflows.get(ref.workflowId) ?? root?.state;
      if (status === "COMPLETED") {
        if (cancelled[i]) broken.push(`${i}: cancel returned true but the workflow COMPLETED`);
        if (rows.length !== 5 || rows.some((t) => t.state !== "COMPLETED"))
          broken.push(`${i}: COMPLETED but not whole`);
      } else if (status === "CANCELLED") {
        nCancelled++;
        if (!cancelled[i]) broken.push(`${i}: CANCELLED but cancel returned false`);
        if (rows.some((t) => !["COMPLETED", "CANCELLED", "FAILED"].includes(t.state)))
          broken.push(`${i}: a task not finished`);
        if (!rows.some((t) => t.state === "CANCELLED")) broken.push(`${i}: CANCELLED with no task cancelled`);
        // Children exist only if the parent's success was recorded (before the cancel).
        if (root?.state !== "COMPLETED" && rows.length > 1) broken.push(`${i}: children of a refused parent`);
      } else {
        broken.push(`${i}: status ${status}`);
      }
      // A join that ran received its three children completed: it never runs over a cancelled one.
      const received = joinInput.get(`${prefix}${i}.join`);
      const want = JSON.stringify([0, 1, 2].map((c) => ["COMPLETED", `${prefix}${i}.${c}`]));
      if (received !== undefined && received !== want) broken.push(`${i}: join received ${received}`);
    });
    expect(broken.slice(0, 20)).toEqual([]);
    // The race was a race: both outcomes happened.
    expect(nCancelled).toBeGreaterThan(0);
    expect(nCancelled).toBeLessThan(w);
    console.log(`cancel race: ${w} workflows, ${nCancelled} cancelled, ${w - nCancelled} completed whole`);
  });
});
