import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgBouncer, pgbouncerBinary } from "../harness/pgbouncer.js";
import { scale } from "../harness/scale.js";
import { everyNodeWorks, type Scenario, startScenario, verify, waitFinished } from "../harness/scenario.js";

// CI installs pgbouncer (.ci/run); elsewhere the scenario is skipped without it.
const required = process.env.CHAOS_POOLER === "required";
const available = pgbouncerBinary() !== undefined;
if (required && !available) throw new Error("CHAOS_POOLER=required but pgbouncer is not installed");

/**
 * Every connection of two nodes through PgBouncer in transaction mode, the
 * leader election's among them (a misconfiguration docs/operations.md warns
 * about): the session advisory lock that elects the leader means nothing
 * there, so both nodes come to believe they lead. The leader epoch is then
 * the only fence: a planner whose epoch is not the newest writes nothing and
 * steps down. Nothing may be lost or doubled, and exactly-once effects apply once.
 */
describe.skipIf(!available)("chaos: behind a transaction pooler", () => {
  let s: Scenario;
  let bouncer: PgBouncer;
  const env = () => ({ DATABASE_URL: bouncer.url(s.database), PREPARED: "0", CAPACITY: "10" });

  beforeAll(async () => {
    s = await startScenario({ HEARTBEAT_MS: "300", DEAD_AFTER_MS: "5000" });
    bouncer = await PgBouncer.start(s.server, s.database, 3);
    await s.cluster.startMany(["p1", "p2"], env());
  });
  afterAll(async () => {
    await s?.close();
    await bouncer?.stop();
  });

  it("two nodes that both believe they lead: the epoch fence keeps one planner's writes, nothing doubled", async () => {
    const prefix = "pool:";
    const n = scale(600, 4_000);
    const eo = scale(100, 600);
    const epochAt = async () =>
      Number((await s.pool.query<{ epoch: string }>("SELECT epoch::text FROM weft.leader")).rows[0]?.epoch ?? 0);
    const epochBefore = await epochAt();
    let together = 0;
    const sampler = setInterval(() => {
      if (s.cluster.alive.filter((x) => x.isLeader).length >= 2) together++;
    }, 50);
    try {
      await s.client.client.scheduleMany(
        s.tasks.step,
        Array.from({ length: n }, (_, i) => ({ key: `${prefix}s${i}`, sleepMs: 5 + (i % 20), firstHoldMs: 0 })),
      );
      await s.client.client.scheduleMany(
        s.tasks.eoStep,
        Array.from({ length: eo }, (_, i) => ({ key: `${prefix}e${i}`, sleepMs: 5 + (i % 10), firstHoldMs: 0 })),
      );
      await waitFinished(s, prefix, n + eo, 240_000);
    } finally {
      clearInterval(sampler);
    }
    const { problems } = await verify(s, prefix, {
      tasks: [
        ...Array.from({ length: n }, (_, i) => ({ key: `${prefix}s${i}`, state: "COMPLETED" as const })),
        ...Array.from({ length: eo }, (_, i) => ({
          key: `${prefix}e${i}`,
          state: "COMPLETED" as const,
          exactlyOnce: true,
        })),
      ],
    });
    expect(problems).toEqual([]);
    // The lock did not keep the nodes apart (two leaders at once, each taking a
    // new epoch), and the fence did: a planner of an older epoch had its write
    // refused and stepped down. Without the fence (tried: a fence that always
    // passes) no write is refused and both plan side by side until the end.
    const fenced = s.cluster.nodes.flatMap((node) => node.logs.filter((l) => l.event === "leader.deposed"));
    const epochs = (await epochAt()) - epochBefore;
    console.log(
      `pooler: ${n + eo} tasks; two leaders at once in ${together} samples; ${fenced.length} fenced step-downs; ${epochs} new epochs`,
    );
    expect(fenced.length).toBeGreaterThan(0);
    expect(epochs).toBeGreaterThan(1);
    await everyNodeWorks(s, "pool-after:");
  });
});
