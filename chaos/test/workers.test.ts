import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ChaosNode, waitFor, within } from "../harness/cluster.js";
import { scale } from "../harness/scale.js";
import {
  effectCount,
  everyNodeWorks,
  type Scenario,
  startScenario,
  verify,
  waitFinished,
} from "../harness/scenario.js";

const CAPACITY = 20;
const DEAD_AFTER_MS = 3_000;
const GRACE_MS = 3_000;

/** Node processes killed, frozen past their lease, and stopped: what becomes of their attempts. */
describe("chaos: worker faults", () => {
  let s: Scenario;

  beforeAll(async () => {
    s = await startScenario({
      CAPACITY: String(CAPACITY),
      HEARTBEAT_MS: "300",
      DEAD_AFTER_MS: String(DEAD_AFTER_MS),
      GRACE_MS: String(GRACE_MS),
    });
    await s.cluster.startMany(["n1", "n2", "n3"]);
    await s.cluster.waitForLeader();
  });
  afterAll(() => s?.close());

  const random = (max: number) => Math.floor(Math.random() * max);
  /** Assignments of `node` not finished yet, with their attempt. */
  const assignedTo = async (node: ChaosNode) =>
    (
      await s.pool.query<{ id: string; key: string; attempt: number; task_name: string }>(
        `SELECT id, input->>'key' AS key, attempt, task_name FROM weft.tasks
          WHERE assigned_node = $1 AND state NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')`,
        [node.nodeId],
      )
    ).rows;
  const taskRows = async (ids: readonly string[]) =>
    (
      await s.pool.query<{ id: string; state: string; attempt: number; node: string | null }>(
        "SELECT id, state, attempt, result->>'node' AS node FROM weft.tasks WHERE id = ANY($1::text[])",
        [ids],
      )
    ).rows;

  /** `n` steps and `eo` exactly-once steps under `prefix`; returns the expectation. */
  const scheduleMix = async (
    prefix: string,
    n: number,
    eo: number,
    input: (i: number) => { sleepMs: number; firstHoldMs: number },
  ) => {
    await s.client.client.scheduleMany(
      s.tasks.step,
      Array.from({ length: n }, (_, i) => ({ key: `${prefix}s${i}`, ...input(i) })),
    );
    await s.client.client.scheduleMany(
      s.tasks.eoStep,
      Array.from({ length: eo }, (_, i) => ({ key: `${prefix}e${i}`, ...input(i) })),
    );
    return {
      tasks: [
        ...Array.from({ length: n }, (_, i) => ({ key: `${prefix}s${i}`, state: "COMPLETED" as const })),
        ...Array.from({ length: eo }, (_, i) => ({
          key: `${prefix}e${i}`,
          state: "COMPLETED" as const,
          exactlyOnce: true,
        })),
      ],
      nodeCapacity: CAPACITY,
    };
  };

  it("SIGKILL mid-attempt: the killed node's attempts run again elsewhere; exactly-once effects applied once", async () => {
    const prefix = "kill:";
    const n = scale(600, 6_000);
    const eo = scale(300, 3_000);
    const expectation = await scheduleMix(prefix, n, eo, () => ({ sleepMs: 20 + random(200), firstHoldMs: 0 }));
    await waitFor("a fifth of the kill scenario's effects", async () =>
      (await effectCount(s, prefix)) >= (n + eo) / 5 ? true : undefined,
    );
    const victim = s.cluster.alive.find((x) => x.label === "n2") as ChaosNode;
    const inFlight = await assignedTo(victim);
    victim.signal("SIGKILL");
    await within("the killed node to exit", 10_000, victim.exited);
    expect(inFlight.length).toBeGreaterThan(0);

    await waitFinished(s, prefix, n + eo, 180_000);
    const { report, problems } = await verify(s, prefix, expectation);
    expect(problems).toEqual([]);
    // Each attempt in flight at the kill either had been recorded by the victim
    // just before it died, or ran again (a lost attempt counts: attempt >= 2).
    const after = await taskRows(inFlight.map((t) => t.id));
    const notRerun = after.filter((t) => !(t.state === "COMPLETED" && (t.attempt >= 2 || t.node === "n2")));
    expect(notRerun).toEqual([]);
    expect(after.filter((t) => t.attempt >= 2).length).toBeGreaterThan(0);
    console.log(
      `SIGKILL: ${n + eo} tasks, ${inFlight.length} in flight on the victim, ${report.reRuns} effects re-run, no problem`,
    );

    await s.cluster.start("n2b");
    await everyNodeWorks(s, "kill-after:");
  });

  it("SIGSTOP past the lease, SIGCONT after re-planning: the stale attempts cannot commit; exactly-once rolled back", async () => {
    const prefix = "stop:";
    const n = scale(100, 1_000);
    const eo = scale(100, 1_000);
    // Long first attempts, so that the victim is frozen in the middle of many.
    const expectation = await scheduleMix(prefix, n, eo, () => ({ sleepMs: 20 + random(100), firstHoldMs: 1_500 }));
    const victim = s.cluster.alive.find((x) => x.label === "n3") as ChaosNode;
    const frozenOn = await waitFor("the victim to hold exactly-once attempts", async () => {
      const rows = await assignedTo(victim);
      return rows.filter((r) => r.task_name === "eoStep").length >= 5 ? rows : undefined;
    });
    const victimNodeId = victim.nodeId;
    victim.signal("SIGSTOP");
    const frozenAt = Date.now();
    // Declared dead on the database clock; its attempts re-planned and run elsewhere.
    await waitFor(
      "the frozen node to be declared dead",
      async () =>
        (await s.pool.query("SELECT 1 FROM weft.nodes WHERE id = $1", [victimNodeId])).rowCount === 0
          ? true
          : undefined,
      { timeoutMs: 60_000 },
    );
    await waitFor(
      "the frozen node's attempts to complete elsewhere",
      async () => {
        const rows = await taskRows(frozenOn.map((t) => t.id));
        return rows.every((r) => r.state === "COMPLETED") ? rows : undefined;
      },
      { timeoutMs: 60_000 },
    );
    victim.signal("SIGCONT");
    // Its stale attempts now try to finish; it registers again under a new id and goes back to work.
    await waitFor("the resumed node to register again under a new id", () =>
      victim.nodeId && victim.nodeId !== victimNodeId ? true : undefined,
    );
    await waitFinished(s, prefix, n + eo, 180_000);
    const { problems } = await verify(s, prefix, expectation);
    expect(problems).toEqual([]);
    const after = await taskRows(frozenOn.map((t) => t.id));
    // Completed by another node, by a later attempt: the frozen ones' outcomes were refused.
    expect(after.filter((t) => t.node === "n3" || t.attempt < 2)).toEqual([]);
    // No exactly-once effect of a frozen attempt committed.
    const staleEo = await s.pool.query(
      "SELECT key FROM public.chaos_ledger WHERE kind = 'eo' AND node = 'n3' AND task_id = ANY($1::text[]) AND attempt = 1",
      [frozenOn.map((t) => t.id)],
    );
    expect(staleEo.rows).toEqual([]);
    console.log(
      `SIGSTOP: frozen ${Math.round((Date.now() - frozenAt) / 1000)} s with ${frozenOn.length} attempts; none committed`,
    );
    await everyNodeWorks(s, "stop-after:");
  });

  it("SIGTERM drains within the grace period: what finishes is recorded, the rest is released (not an attempt)", async () => {
    const prefix = "term:";
    const n = scale(300, 3_000);
    const eo = scale(100, 1_000);
    const long = 10;
    const expectation = await scheduleMix(prefix, n, eo, () => ({ sleepMs: 100 + random(400), firstHoldMs: 0 }));
    // Attempts far longer than the grace: they must be released, not waited for.
    await s.client.client.scheduleMany(
      s.tasks.step,
      Array.from({ length: long }, (_, i) => ({ key: `${prefix}long${i}`, sleepMs: 0, firstHoldMs: 8_000 })),
    );
    const victim = s.cluster.alive.find((x) => x.label === "n1") as ChaosNode;
    const held = await waitFor("the victim to run long attempts", async () => {
      const rows = await assignedTo(victim);
      return rows.filter((r) => r.key.includes("long")).length >= 1 && rows.length >= 5 ? rows : undefined;
    });
    const t0 = Date.now();
    victim.signal("SIGTERM");
    const exit = await within("the SIGTERMed node to exit", GRACE_MS + 15_000, victim.exited);
    const drainMs = Date.now() - t0;
    expect(exit.code).toBe(0);
    expect(drainMs).toBeLessThan(GRACE_MS + 15_000);
    // Nothing stays assigned to it.
    expect(await assignedTo(victim)).toEqual([]);

    const all = n + eo + long;
    await waitFinished(s, prefix, all, 180_000);
    const { problems } = await verify(s, prefix, {
      ...expectation,
      tasks: [
        ...expectation.tasks,
        ...Array.from({ length: long }, (_, i) => ({ key: `${prefix}long${i}`, state: "COMPLETED" as const })),
      ],
    });
    expect(problems).toEqual([]);
    // A release at shutdown is not an attempt: the released long tasks completed elsewhere as attempt 1.
    const released = (await taskRows(held.filter((t) => t.key.includes("long")).map((t) => t.id))).filter(
      (t) => t.node !== "n1",
    );
    expect(released.length).toBeGreaterThan(0);
    expect(released.filter((t) => t.attempt !== 1)).toEqual([]);
    console.log(`SIGTERM: drained in ${drainMs} ms (grace ${GRACE_MS} ms); ${released.length} long attempts released`);
    await everyNodeWorks(s, "term-after:");
  });
});
