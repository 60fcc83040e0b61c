import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ExpectedJoin, ExpectedTask, FinalState } from "../harness/checker.js";
import { type ChaosNode, waitFor, within } from "../harness/cluster.js";
import { dagReference, randomDag, rng } from "../harness/dag.js";
import { scale } from "../harness/scale.js";
import {
  effectCount,
  everyNodeWorks,
  type Scenario,
  startScenario,
  verify,
  waitFinished,
} from "../harness/scenario.js";

/**
 * Random DAGs (depth ≤ 5, fan-out ≤ 50, joins over joins, failures injected),
 * affinity workflows and a cluster limit, on 3 nodes with one SIGKILLed
 * mid-run: every outcome, join input and workflow status as the reference says.
 */
describe("chaos: random DAGs with a node killed", () => {
  let s: Scenario;

  beforeAll(async () => {
    s = await startScenario({ CAPACITY: "20", HEARTBEAT_MS: "300", DEAD_AFTER_MS: "3000" });
    await s.cluster.startMany(["g1", "g2", "g3"]);
    await s.cluster.waitForLeader();
  });
  afterAll(() => s?.close());

  it("matches the plain-TypeScript reference after a SIGKILL mid-run", async () => {
    const prefix = "dag:";
    const seed = Number(process.env.CHAOS_SEED ?? Date.now() % 100_000);
    const random = rng(seed);
    const dags = scale(8, 40);
    const tasks: ExpectedTask[] = [];
    const joins: ExpectedJoin[] = [];
    const workflowStatus: Record<string, FinalState> = {};
    const specs = Array.from({ length: dags }, (_, d) => {
      const spec = randomDag(random, `${prefix}${d}`, {
        depth: 5,
        fanOut: 50,
        failRate: 0.03,
        joinRate: 0.7,
        maxTasks: scale(120, 400),
        maxSleepMs: 60,
      });
      const ref = dagReference(spec);
      tasks.push(...ref.tasks);
      joins.push(...ref.joins);
      workflowStatus[spec.key] = ref.workflowStatus;
      return spec;
    });
    await s.client.client.scheduleMany(
      s.tasks.dag,
      specs.map((spec) => ({ spec })),
    );

    // Affinity: workflows on two keys, created one after the other; a cluster limit of 3.
    const affinity: Record<string, string[]> = { k1: [], k2: [] };
    for (let i = 0; i < scale(6, 20); i++) {
      for (const k of ["k1", "k2"] as const) {
        const key = `${prefix}aff-${k}-${i}`;
        await s.client.client.schedule(
          s.tasks.affParent,
          { key, children: 3, sleepMs: 30 },
          { affinityGroup: "chaos", affinity: k },
        );
        affinity[k]?.push(key);
        tasks.push({ key, state: "COMPLETED" });
        for (let c = 0; c < 3; c++) tasks.push({ key: `${key}/${c}`, state: "COMPLETED" });
      }
    }
    const limited = scale(60, 300);
    await s.client.client.scheduleMany(
      s.tasks.limited,
      Array.from({ length: limited }, (_, i) => ({ key: `${prefix}lim${i}`, sleepMs: 40, firstHoldMs: 0 })),
    );
    for (let i = 0; i < limited; i++) tasks.push({ key: `${prefix}lim${i}`, state: "COMPLETED" });

    const total = tasks.length + joins.length;
    await waitFor("a quarter of the DAG effects before the kill", async () =>
      (await effectCount(s, prefix)) >= total / 4 ? true : undefined,
    );
    const victim = s.cluster.alive.find((n) => n.label === "g2") as ChaosNode;
    victim.signal("SIGKILL");
    await within("the killed node to exit", 10_000, victim.exited);
    await s.cluster.start("g2b");

    await waitFinished(s, prefix, total, 240_000);
    const { report, problems } = await verify(s, prefix, {
      tasks,
      joins,
      workflowStatus,
      affinity,
      clusterLimits: { limited: 3 },
    });
    expect(problems, `seed ${seed}`).toEqual([]);
    const failedWorkflows = Object.values(workflowStatus).filter((x) => x === "FAILED").length;
    console.log(
      `DAGs (seed ${seed}): ${dags} DAGs, ${total} tasks and joins (${joins.length} joins, ${failedWorkflows} workflows FAILED by the reference), ${report.reRuns} re-runs; as the reference`,
    );
    expect(joins.length).toBeGreaterThan(0);
    await everyNodeWorks(s, "dag-after:");
  });
});
