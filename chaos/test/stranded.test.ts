import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor, within } from "../harness/cluster.js";
import { scale } from "../harness/scale.js";
import { everyNodeWorks, type Scenario, startScenario, verify, waitFinished } from "../harness/scenario.js";

const DEAD_AFTER_MS = 3_000;

/**
 * The leader and the other node killed at once while they hold thousands of
 * long attempts: the node left becomes the leader, finds them stranded with
 * dead nodes, and has them all run again in bounded time.
 */
describe("chaos: a new leader with stranded tasks", () => {
  let s: Scenario;
  const n = scale(2_000, 10_000);

  beforeAll(async () => {
    s = await startScenario({ HEARTBEAT_MS: "300", DEAD_AFTER_MS: String(DEAD_AFTER_MS) });
  });
  afterAll(() => s?.close());

  it(`${n} tasks of two dead nodes, one of them the leader, recovered by the new leader`, async () => {
    const prefix = "stranded:";
    const capacity = String(Math.ceil(n / 2) + 100);
    const [a, b] = await s.cluster.startMany(["x1", "x2"], { CAPACITY: capacity });
    await s.cluster.waitForLeader();
    // First attempts that would run for two minutes; the re-runs are instant.
    await s.client.client.scheduleMany(
      s.tasks.step,
      Array.from({ length: n }, (_, i) => ({ key: `${prefix}${i}`, sleepMs: 0, firstHoldMs: 120_000 })),
    );
    await waitFor(
      `all ${n} tasks assigned to the first two nodes`,
      async () => {
        const { rows } = await s.pool.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM weft.tasks WHERE input->>'key' LIKE $1 AND assigned_node IS NOT NULL",
          [`${prefix}%`],
        );
        return rows[0]?.n === n ? true : undefined;
      },
      { timeoutMs: 120_000 },
    );
    const c = await s.cluster.start("x3", { CAPACITY: "500" });
    const t0 = Date.now();
    a?.signal("SIGKILL");
    b?.signal("SIGKILL");
    await within("both nodes to exit", 10_000, Promise.all([a?.exited, b?.exited]));
    await waitFor("the third node to lead", () => (c.isLeader ? true : undefined), { timeoutMs: 30_000 });
    const ledAfterMs = Date.now() - t0;
    await waitFinished(s, prefix, n, 180_000);
    const recoveredMs = Date.now() - t0;
    const { problems } = await verify(s, prefix, {
      tasks: Array.from({ length: n }, (_, i) => ({ key: `${prefix}${i}`, state: "COMPLETED" as const })),
    });
    expect(problems).toEqual([]);
    const { rows } = await s.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM weft.tasks WHERE input->>'key' LIKE $1 AND attempt = 2",
      [`${prefix}%`],
    );
    // Every one was a lost attempt run again.
    expect(rows[0]?.n).toBe(n);
    // Generous: the dead limit, the takeover, and running them on one node of 500 slots.
    expect(recoveredMs).toBeLessThan(DEAD_AFTER_MS + scale(90_000, 180_000));
    console.log(
      `stranded: ${n} tasks; new leader after ${ledAfterMs} ms; all completed ${recoveredMs} ms after the kill`,
    );
    await everyNodeWorks(s, "stranded-after:");
  });
});
