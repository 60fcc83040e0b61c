import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../harness/cluster.js";
import { scale } from "../harness/scale.js";
import {
  effectCount,
  everyNodeWorks,
  outageLog,
  outageLogProblems,
  type Scenario,
  startScenario,
  verify,
  waitFinished,
} from "../harness/scenario.js";

const CAPACITY = 30;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The database fails under three running nodes: restarted, crashed with an
 * outage, every Weft connection terminated, read-only, short timeouts. After
 * each: nothing lost, nothing doubled, every node back to work without a
 * restart, and the outage logged once per outage by each service.
 */
describe("chaos: database faults", () => {
  let s: Scenario;

  beforeAll(async () => {
    s = await startScenario({ CAPACITY: String(CAPACITY), HEARTBEAT_MS: "500", DEAD_AFTER_MS: "5000" });
    await s.cluster.startMany(["d1", "d2", "d3"]);
    await s.cluster.waitForLeader();
  });
  afterAll(() => s?.close());

  const random = (max: number) => Math.floor(Math.random() * max);

  /** Schedules `n` steps and `eo` exactly-once steps, waits for a share of them to run; returns the expectation. */
  const startWork = async (prefix: string, n: number, eo: number, maxSleepMs = 30) => {
    await s.client.client.scheduleMany(
      s.tasks.step,
      Array.from({ length: n }, (_, i) => ({ key: `${prefix}s${i}`, sleepMs: random(maxSleepMs), firstHoldMs: 0 })),
    );
    await s.client.client.scheduleMany(
      s.tasks.eoStep,
      Array.from({ length: eo }, (_, i) => ({ key: `${prefix}e${i}`, sleepMs: random(maxSleepMs), firstHoldMs: 0 })),
    );
    await waitFor(`a tenth of ${prefix} to run before the fault`, async () =>
      (await effectCount(s, prefix)) >= (n + eo) / 10 ? true : undefined,
    );
    return {
      total: n + eo,
      expectation: {
        tasks: [
          ...Array.from({ length: n }, (_, i) => ({ key: `${prefix}s${i}`, state: "COMPLETED" as const })),
          ...Array.from({ length: eo }, (_, i) => ({
            key: `${prefix}e${i}`,
            state: "COMPLETED" as const,
            exactlyOnce: true,
          })),
        ],
      },
    };
  };

  /** The checks after every fault. */
  const afterFault = async (
    prefix: string,
    work: Awaited<ReturnType<typeof startWork>>,
    since: number,
    outages: number,
    timeoutMs = 240_000,
  ) => {
    await waitFinished(s, prefix, work.total, timeoutMs);
    const { report, problems } = await verify(s, prefix, work.expectation);
    expect(problems).toEqual([]);
    // Every node still running does work again, without a restart.
    await everyNodeWorks(s, `${prefix}after:`);
    expect(s.cluster.alive.map((n) => n.label).sort()).toEqual(["d1", "d2", "d3"]);
    // A database that refuses writes for a while must not turn outcomes into failures.
    const converted = s.cluster.nodes.flatMap((n) => n.logged("recording it as a failure", since));
    expect(converted.map((l) => l.msg)).toEqual([]);
    const log = outageLog(s.cluster.nodes, since);
    expect(outageLogProblems(log, outages)).toEqual([]);
    return { report, log };
  };

  it("a restart in the middle of the work", async () => {
    const prefix = "restart:";
    const work = await startWork(prefix, scale(3_000, 20_000), scale(500, 2_000));
    const since = Date.now();
    await s.server.restart();
    const { report, log } = await afterFault(prefix, work, since, 1);
    console.log(`restart: ${work.total} tasks, ${report.reRuns} re-runs; outage log: ${JSON.stringify(log)}`);
  });

  it("every Weft backend terminated at once, twice", async () => {
    const prefix = "terminate:";
    const work = await startWork(prefix, scale(2_000, 10_000), scale(500, 2_000));
    const since = Date.now();
    const first = await s.server.terminateBackends(s.database);
    await waitFor("work to go on after the first termination", async () =>
      (await effectCount(s, prefix)) >= work.total / 3 ? true : undefined,
    );
    const second = await s.server.terminateBackends(s.database);
    expect(first).toBeGreaterThan(5);
    expect(second).toBeGreaterThan(5);
    const { report } = await afterFault(prefix, work, since, 2);
    console.log(`terminate: ${first} then ${second} backends; ${work.total} tasks, ${report.reRuns} re-runs`);
  });

  it("read-only for a while", async () => {
    const prefix = "readonly:";
    const work = await startWork(prefix, scale(2_000, 10_000), scale(300, 2_000));
    const since = Date.now();
    await s.server.readOnly(true);
    await sleep(scale(10_000, 30_000));
    // Nothing finished while the database refused writes.
    const during = await effectCount(s, prefix);
    await s.server.readOnly(false);
    const { report } = await afterFault(prefix, work, since, 1);
    console.log(`read-only: ${work.total} tasks, ${during} effects before the end of it, ${report.reRuns} re-runs`);
  });

  it("a statement timeout shorter than a completion batch", async () => {
    const prefix = "stmt-timeout:";
    // Many short tasks: outcome batches of hundreds, which take longer than the timeout.
    const work = await startWork(prefix, scale(4_000, 20_000), scale(300, 2_000), 5);
    const since = Date.now();
    await s.server.setSystem("statement_timeout", "20ms");
    await sleep(scale(8_000, 30_000));
    await s.server.setSystem("statement_timeout", undefined);
    const { report, log } = await afterFault(prefix, work, since, 1);
    console.log(`statement timeout: ${work.total} tasks, ${report.reRuns} re-runs; ${JSON.stringify(log)}`);
  });

  it("an idle-in-transaction timeout shorter than some exactly-once attempts", async () => {
    const prefix = "idle-tx:";
    await s.server.setSystem("idle_in_transaction_session_timeout", "500ms");
    try {
      const n = scale(200, 2_000);
      // One in five holds its transaction idle for 1.5 s on its first attempt: the server ends that session.
      await s.client.client.scheduleMany(
        s.tasks.eoStep,
        Array.from({ length: n }, (_, i) => ({
          key: `${prefix}e${i}`,
          sleepMs: random(50),
          firstHoldMs: i % 5 === 0 ? 1_500 : 0,
        })),
      );
      await waitFinished(s, prefix, n, 120_000);
      const { problems } = await verify(s, prefix, {
        tasks: Array.from({ length: n }, (_, i) => ({
          key: `${prefix}e${i}`,
          state: "COMPLETED" as const,
          exactlyOnce: true,
        })),
      });
      expect(problems).toEqual([]);
      const { rows } = await s.pool.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM weft.tasks WHERE input->>'key' LIKE $1 AND attempt >= 2",
        [`${prefix}%`],
      );
      // The held ones were cut off and ran again.
      expect(rows[0]?.n).toBeGreaterThanOrEqual(n / 5);
    } finally {
      await s.server.setSystem("idle_in_transaction_session_timeout", undefined);
    }
    await everyNodeWorks(s, `${prefix}after:`);
  });

  it("an immediate-mode crash with an outage", async () => {
    const prefix = "crash:";
    const outageMs = scale(15_000, 60_000);
    const work = await startWork(prefix, scale(3_000, 20_000), scale(500, 2_000));
    const since = Date.now();
    await s.server.crash();
    await sleep(outageMs);
    await s.server.resume();
    const { report, log } = await afterFault(prefix, work, since, 1);
    console.log(
      `crash: ${outageMs / 1000} s outage, ${work.total} tasks, ${report.reRuns} re-runs; ${JSON.stringify(log)}`,
    );
  });
});
