import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isWeftError } from "../../sdk/src/index.js";
import { scale } from "../harness/scale.js";
import { everyNodeWorks, type Scenario, startScenario, waitFinished } from "../harness/scenario.js";
import { PAYLOAD_KINDS, type PayloadKind } from "../harness/tasks.js";

/** What each kind of result must end as: a final failure with a typed error, or a completion. */
const EXPECTED: Record<PayloadKind, { state: "FAILED" | "COMPLETED"; code?: string }> = {
  invalid: { state: "FAILED", code: "OUTPUT_INVALID" },
  oversized: { state: "FAILED", code: "PAYLOAD_TOO_LARGE" },
  bigint: { state: "FAILED", code: "OUTPUT_INVALID" },
  circular: { state: "FAILED", code: "OUTPUT_INVALID" },
  deep: { state: "FAILED", code: "OUTPUT_INVALID" },
  nul: { state: "FAILED", code: "OUTPUT_INVALID" },
  surrogate: { state: "FAILED", code: "OUTPUT_INVALID" },
  nested: { state: "COMPLETED" },
  fine: { state: "COMPLETED" },
};

/** Bad results among good ones: typed errors, nothing partially written, the node keeps running. */
describe("chaos: payloads", () => {
  let s: Scenario;

  beforeAll(async () => {
    s = await startScenario({ CAPACITY: "50" });
    await s.cluster.startMany(["p1", "p2"]);
    await s.cluster.waitForLeader();
  });
  afterAll(() => s?.close());

  it("invalid, oversized, unserialisable, deep, NUL and lone-surrogate results fail alone with typed errors", async () => {
    const prefix = "payload:";
    const good = scale(300, 3_000);
    // Good outcomes around the bad ones: they share completion batches with them.
    await s.client.client.scheduleMany(
      s.tasks.step,
      Array.from({ length: good }, (_, i) => ({ key: `${prefix}good${i}`, sleepMs: 20, firstHoldMs: 0 })),
    );
    await s.client.client.scheduleMany(
      s.tasks.payload,
      PAYLOAD_KINDS.map((kind) => ({ key: `${prefix}${kind}`, kind })),
    );
    await waitFinished(s, prefix, good + PAYLOAD_KINDS.length + 2, 120_000);
    const { rows } = await s.pool.query<{ key: string; state: string; code: string | null; attempt: number }>(
      `SELECT input->>'key' AS key, state, error->>'code' AS code, attempt FROM weft.tasks
        WHERE task_name = 'payload' AND input->>'key' LIKE $1`,
      [`${prefix}%`],
    );
    const got = Object.fromEntries(rows.map((r) => [r.key.slice(prefix.length), { state: r.state, code: r.code }]));
    const want = Object.fromEntries(
      PAYLOAD_KINDS.map((k) => [k, { state: EXPECTED[k].state, code: EXPECTED[k].code ?? null }]),
    );
    expect(got).toEqual(want);
    // Final at once: the same result would fail the same way.
    expect(rows.filter((r) => r.state === "FAILED" && r.attempt !== 1)).toEqual([]);
    // Nothing partially written: only the completed task's child exists.
    const children = await s.pool.query<{ key: string }>(
      "SELECT input->>'key' AS key FROM weft.tasks WHERE input->>'key' LIKE $1 ORDER BY 1",
      [`${prefix}%/child`],
    );
    expect(children.rows.map((r) => r.key)).toEqual([`${prefix}fine/child`, `${prefix}nested/child`]);
    const completed = await s.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM weft.tasks WHERE input->>'key' LIKE $1 AND state = 'COMPLETED' AND task_name = 'step'",
      [`${prefix}good%`],
    );
    expect(completed.rows[0]?.n).toBe(good);
    // The nodes keep running and working.
    expect(s.cluster.alive).toHaveLength(2);
    await everyNodeWorks(s, "payload-after:");
  });

  it("oversized, NUL and lone-surrogate inputs are refused at schedule time with typed errors, writing nothing", async () => {
    const bad = { oversized: "x".repeat(2 * 1024 * 1024), nul: "input:a\u0000b", surrogate: "input:\udc00" };
    for (const [kind, key] of Object.entries(bad)) {
      const error = await s.client.client.schedule(s.tasks.step, { key, sleepMs: 0, firstHoldMs: 0 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isWeftError(error), `${kind}: ${String(error)}`).toBe(true);
    }
    const { rows } = await s.pool.query(
      "SELECT 1 FROM weft.tasks WHERE input->>'key' LIKE 'input:%' OR length(input->>'key') > 1000000",
    );
    expect(rows).toEqual([]);
  });
});
