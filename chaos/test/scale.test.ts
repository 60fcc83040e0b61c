import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { waitFor } from "../harness/cluster.js";
import { LONG } from "../harness/scale.js";
import { finishedCount, type Scenario, startScenario, waitFinished } from "../harness/scenario.js";

/** Resident memory of a process in MiB (Linux). */
function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith("VmRSS:"));
  return Number(line?.match(/(\d+)/)?.[1] ?? 0) / 1024;
}

const BACKLOG = Number(process.env.CHAOS_BACKLOG ?? 1_000_000);
const SOAK_MS = Number(process.env.CHAOS_SOAK_MS ?? 30 * 60_000);

/** Long scenarios only (`pnpm test:chaos --long`): a large backlog, and a soak at a steady rate. */
describe.skipIf(!LONG)("chaos (long): scale", () => {
  let s: Scenario | undefined;
  afterEach(async () => {
    await s?.close();
    s = undefined;
  });

  it(`a backlog of ${BACKLOG} tasks keeps the rate within 80% of a 20,000-task run`, async () => {
    // A dead limit longer than the pause below: the paused nodes keep their rows.
    s = await startScenario({ CAPACITY: "100", HEARTBEAT_MS: "500", DEAD_AFTER_MS: "600000" });
    const sc = s;
    await sc.cluster.startMany(["b1", "b2"]);
    await sc.cluster.waitForLeader();
    const schedule = async (prefix: string, n: number) => {
      for (let from = 0; from < n; from += 10_000) {
        const count = Math.min(10_000, n - from);
        await sc.client.client.scheduleMany(
          sc.tasks.step,
          Array.from({ length: count }, (_, i) => ({ key: `${prefix}${from + i}`, sleepMs: 0, firstHoldMs: 0 })),
        );
      }
    };
    // The reference rate: 20,000 tasks on an empty queue.
    let t0 = Date.now();
    await schedule("small:", 20_000);
    await waitFinished(sc, "small:", 20_000, 600_000);
    const smallRate = 20_000 / ((Date.now() - t0) / 1000);
    // The backlog: scheduled first with the nodes paused (SIGSTOP), so it is all there when they run.
    for (const n of sc.cluster.alive) n.signal("SIGSTOP");
    await schedule("big:", BACKLOG);
    for (const n of sc.cluster.alive) n.signal("SIGCONT");
    // Rate over the next 20,000 completions, with the backlog still nearly whole.
    await waitFor(
      "the first backlog completions",
      async () => ((await finishedCount(sc, "big:")) > 0 ? true : undefined),
      {
        timeoutMs: 300_000,
      },
    );
    t0 = Date.now();
    const start = await finishedCount(sc, "big:");
    await waitFor(
      "20,000 completions from the backlog",
      async () => ((await finishedCount(sc, "big:")) >= start + 20_000 ? true : undefined),
      { timeoutMs: 600_000, everyMs: 500 },
    );
    const bigRate = ((await finishedCount(sc, "big:")) - start) / ((Date.now() - t0) / 1000);
    console.log(
      `backlog: ${BACKLOG} tasks; ${Math.round(smallRate)}/s on 20,000, ${Math.round(bigRate)}/s with the backlog (${Math.round((100 * bigRate) / smallRate)}%)`,
    );
    expect(bigRate).toBeGreaterThanOrEqual(0.8 * smallRate);
  }, 3_600_000);

  it(`a ${Math.round(SOAK_MS / 60_000)}-minute soak at a steady rate keeps memory flat and the tables bounded`, async () => {
    s = await startScenario({
      CAPACITY: "50",
      HEARTBEAT_MS: "500",
      DEAD_AFTER_MS: "15000",
      RETENTION_MS: "10000",
      CLEANER_INTERVAL_MS: "5000",
    });
    const sc = s;
    const nodes = await sc.cluster.startMany(["s1", "s2"]);
    await sc.cluster.waitForLeader();
    const perSecond = 200;
    const samples: { at: number; rss: number[]; tasks: number }[] = [];
    const started = Date.now();
    let i = 0;
    while (Date.now() - started < SOAK_MS) {
      const tick = Date.now();
      await sc.client.client.scheduleMany(
        sc.tasks.step,
        Array.from({ length: perSecond }, () => ({ key: `soak:${i++}`, sleepMs: 5, firstHoldMs: 0 })),
      );
      if (samples.length === 0 || tick - (samples.at(-1)?.at ?? 0) >= 10_000) {
        const { rows } = await sc.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM weft.tasks");
        samples.push({ at: tick, rss: nodes.map((n) => rssMiB(n.pid)), tasks: rows[0]?.n ?? 0 });
      }
      await new Promise((r) => setTimeout(r, Math.max(0, 1_000 - (Date.now() - tick))));
    }
    // After a warm-up of a fifth of the run: the last fifth's memory within 1.5x of the second fifth's.
    const fifth = Math.max(1, Math.floor(samples.length / 5));
    const avg = (xs: typeof samples, k: number) => xs.reduce((a, x) => a + (x.rss[k] ?? 0), 0) / Math.max(1, xs.length);
    const early = samples.slice(fifth, 2 * fifth);
    const late = samples.slice(-fifth);
    const maxTasks = Math.max(...samples.map((x) => x.tasks));
    console.log(
      `soak: ${Math.round(SOAK_MS / 60_000)} min at ${perSecond}/s, ${i} tasks; RSS MiB early ${nodes.map((_, k) => Math.round(avg(early, k)))} late ${nodes.map((_, k) => Math.round(avg(late, k)))}; most task rows ${maxTasks}`,
    );
    for (let k = 0; k < nodes.length; k++) expect(avg(late, k)).toBeLessThan(1.5 * avg(early, k) + 20);
    // Retention 10 s and a cleaner every 5 s: the rows stay around a minute's worth, far from all of them.
    expect(maxTasks).toBeLessThan(Math.min(i, perSecond * 120));
  }, 7_200_000);
});
