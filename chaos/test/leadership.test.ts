import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor, within } from "../harness/cluster.js";
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
 * The leader killed, then the next one frozen past its session's timeout: a
 * new leader takes over each time (a new epoch), the frozen one never leads
 * again after SIGCONT, nothing is doubled, and cron ticks are neither lost nor
 * doubled across the churn.
 */
describe("chaos: leadership", () => {
  let s: Scenario;

  beforeAll(async () => {
    s = await startScenario({ CAPACITY: "20", HEARTBEAT_MS: "300", DEAD_AFTER_MS: "3000", CRON: "1" });
    await s.cluster.startMany(["l1", "l2", "l3"]);
    await s.cluster.waitForLeader();
  });
  afterAll(() => s?.close());

  const leaderRow = async () =>
    (await s.pool.query<{ node_id: string; epoch: string }>("SELECT node_id, epoch::text FROM weft.leader")).rows[0];

  it("leader SIGKILL, then leader SIGSTOP and SIGCONT: one leader at a time, nothing doubled, no cron tick lost or doubled", async () => {
    const prefix = "lead:";
    const n = scale(1_500, 10_000);
    const eo = scale(500, 3_000);
    const random = (max: number) => Math.floor(Math.random() * max);
    const started = new Date();
    await s.client.client.scheduleMany(
      s.tasks.step,
      Array.from({ length: n }, (_, i) => ({ key: `${prefix}s${i}`, sleepMs: 10 + random(100), firstHoldMs: 0 })),
    );
    await s.client.client.scheduleMany(
      s.tasks.eoStep,
      Array.from({ length: eo }, (_, i) => ({ key: `${prefix}e${i}`, sleepMs: 10 + random(100), firstHoldMs: 0 })),
    );
    await waitFor("a tenth of the work before the kill", async () =>
      (await effectCount(s, prefix)) >= (n + eo) / 10 ? true : undefined,
    );

    // 1. SIGKILL the leader.
    const first = await s.cluster.waitForLeader();
    const epoch0 = Number((await leaderRow())?.epoch);
    first.signal("SIGKILL");
    await within("the killed leader to exit", 10_000, first.exited);
    const second = await s.cluster.waitForLeader(30_000, first);
    const epoch1 = await waitFor("a new leader epoch after the kill", async () => {
      const row = await leaderRow();
      return row && Number(row.epoch) > epoch0 && row.node_id === second.nodeId ? Number(row.epoch) : undefined;
    });
    await s.cluster.start("l4");

    // 2. SIGSTOP the new leader: its session ends on the server (idle_session_timeout), another takes over.
    await waitFor("more work after the takeover", async () =>
      (await effectCount(s, prefix)) >= ((n + eo) * 3) / 10 ? true : undefined,
    );
    const frozenId = second.nodeId;
    second.signal("SIGSTOP");
    const third = await waitFor(
      "another node to take the lead from the frozen one",
      async () => {
        const row = await leaderRow();
        if (!row || row.node_id === frozenId || Number(row.epoch) <= epoch1) return undefined;
        return s.cluster.alive.find((x) => x !== second && x.nodeId === row.node_id);
      },
      { timeoutMs: 60_000 },
    );
    await new Promise((r) => setTimeout(r, 2_000));
    second.signal("SIGCONT");
    // The resumed one finds its session gone and does not lead again.
    await waitFor("the resumed leader to step down", () => (second.isLeader ? undefined : true), { timeoutMs: 30_000 });
    const epochs = await leaderRow();
    expect(epochs?.node_id).toBe(third.nodeId);

    await waitFinished(s, prefix, n + eo, 240_000);
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
    // Only one node ever believed it leads at one time after the resume.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(s.cluster.alive.filter((x) => x.isLeader).map((x) => x.label)).toEqual([third.label]);

    // Cron: every second from shortly after the start to shortly before now fired once, and ran.
    const until = new Date(Date.now() - 3_000);
    const from = new Date(started.getTime() + 2_000);
    await waitFor(
      "the cron ticks of the churn to complete",
      async () => {
        const { rows } = await s.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM weft.tasks WHERE task_name = 'everySecond' AND state <> 'COMPLETED'
             AND (input->>'tick')::timestamptz BETWEEN $1 AND $2`,
          [from, until],
        );
        return rows[0]?.n === 0 ? true : undefined;
      },
      { timeoutMs: 60_000 },
    );
    const ticks = await s.pool.query<{ tick: Date; rows: number }>(
      `SELECT (input->>'tick')::timestamptz AS tick, count(*)::int AS rows FROM weft.tasks
        WHERE task_name = 'everySecond' AND (input->>'tick')::timestamptz BETWEEN $1 AND $2 GROUP BY 1 ORDER BY 1`,
      [from, until],
    );
    const expected = Math.floor(until.getTime() / 1000) - Math.ceil(from.getTime() / 1000) + 1;
    expect(ticks.rows.filter((t) => t.rows !== 1)).toEqual([]);
    expect(ticks.rows).toHaveLength(expected);
    console.log(
      `leadership: epochs ${epoch0} -> ${epoch1} -> ${epochs?.epoch}; ${n + eo} tasks, ${expected} cron ticks, none lost or doubled`,
    );
    await everyNodeWorks(s, "lead-after:");
  });
});
