import { describe, expect, it } from "vitest";
import { check, type Expectation, type LedgerRow, type Observed, problems, type TaskRow } from "../harness/checker.js";
import { dagReference, randomDag, rng } from "../harness/dag.js";

// Hand-made ledgers: a good one passes; each bad one is flagged by its own check.
const task = (key: string, over: Partial<TaskRow> = {}): TaskRow => ({
  id: `t-${key}`,
  key,
  taskName: "step",
  workflowId: `w-${key}`,
  parentId: null,
  state: "COMPLETED",
  attempt: 1,
  ...over,
});
const effect = (key: string, over: Partial<LedgerRow> = {}): LedgerRow => ({
  kind: "effect",
  key,
  taskId: `t-${key}`,
  workflowId: `w-${key}`,
  attempt: 1,
  node: "n1",
  startedAt: 0,
  endedAt: 10,
  data: null,
  ...over,
});

const good: Observed = {
  tasks: [task("a"), task("b", { attempt: 2 }), task("e", { taskName: "eoStep" })],
  workflows: [],
  ledger: [effect("a"), effect("b"), effect("b", { attempt: 2, node: "n2" }), effect("e", { kind: "eo" })],
};
const goodExpectation: Expectation = {
  tasks: [
    { key: "a", state: "COMPLETED" },
    { key: "b", state: "COMPLETED" },
    { key: "e", state: "COMPLETED", exactlyOnce: true },
  ],
};

describe("the chaos checker", () => {
  it("passes a ledger where every promise held, counting at-least-once re-runs", () => {
    const report = check(goodExpectation, good);
    expect(problems(report)).toEqual([]);
    expect(report.reRuns).toBe(1);
  });

  it("flags a lost task (no row, or a row never finished)", () => {
    const missing = check(goodExpectation, { ...good, tasks: good.tasks.filter((t) => t.key !== "a") });
    expect(missing.lost).toEqual(["a: no task row"]);
    const stuck = check(goodExpectation, {
      ...good,
      tasks: [task("a", { state: "ASSIGNED" }), ...good.tasks.slice(1)],
    });
    expect(stuck.lost).toEqual(["a: ASSIGNED"]);
    expect(problems(stuck)[0]).toMatch(/^lost \(1\)/);
  });

  it("flags a task finished twice (two rows for one key: an outcome applied twice)", () => {
    const report = check(goodExpectation, { ...good, tasks: [...good.tasks, task("a", { id: "t-a2" })] });
    expect(report.finishedTwice).toEqual(["a: 2 task rows"]);
  });

  it("flags an exactly-once effect applied twice, or not at all, or for a failed task", () => {
    const twice = check(goodExpectation, {
      ...good,
      ledger: [...good.ledger, effect("e", { kind: "eo", attempt: 2 })],
    });
    expect(twice.exactlyOnceViolations).toEqual(["e: applied 2 times, expected 1"]);
    const never = check(goodExpectation, { ...good, ledger: good.ledger.filter((l) => l.kind !== "eo") });
    expect(never.exactlyOnceViolations).toEqual(["e: applied 0 times, expected 1"]);
    const failed = check(
      { tasks: [{ key: "e", state: "FAILED", exactlyOnce: true }] },
      { tasks: [task("e", { state: "FAILED" })], workflows: [], ledger: [effect("e", { kind: "eo" })] },
    );
    expect(failed.exactlyOnceViolations).toEqual(["e: applied 1 times, expected 0"]);
  });

  it("flags a wrong final state, an outcome without an effect, and effects nobody expected", () => {
    const report = check(goodExpectation, {
      tasks: [task("a", { state: "FAILED" }), task("b", { attempt: 3 }), good.tasks[2] as TaskRow],
      workflows: [],
      ledger: [...good.ledger, effect("ghost")],
    });
    expect(report.wrongState).toEqual(["a: FAILED, expected COMPLETED"]);
    expect(report.recordedWithoutEffect).toEqual(["b: attempt 3 recorded, no effect of it"]);
    expect(report.unexpected).toEqual(["ghost: not expected"]);
  });

  it("flags workflows not terminal or with another status than expected", () => {
    const report = check(
      { tasks: [{ key: "r", state: "COMPLETED" }], workflowStatus: { r: "COMPLETED", s: "FAILED" } },
      {
        tasks: [task("r", { workflowId: "w1" }), task("s", { workflowId: "w2", state: "RUNNING" })],
        workflows: [{ id: "w1", status: "RUNNING" }],
        ledger: [effect("r", { workflowId: "w1" })],
      },
    );
    expect(report.workflowsNotTerminal).toEqual(["r: RUNNING", "s: RUNNING"]);
    const wrong = check(
      { tasks: [{ key: "r", state: "COMPLETED" }], workflowStatus: { r: "COMPLETED" } },
      { tasks: [task("r")], workflows: [{ id: "w-r", status: "FAILED" }], ledger: [effect("r")] },
    );
    expect(wrong.workflowStatusWrong).toEqual(["r: FAILED, expected COMPLETED"]);
  });

  it("flags a join that received something other than the reference, or never ran", () => {
    const expectation: Expectation = {
      tasks: [],
      joins: [
        {
          key: "j",
          received: [
            ["COMPLETED", "x"],
            ["FAILED", null],
          ],
        },
        { key: "k", received: [] },
      ],
    };
    const observed: Observed = {
      tasks: [task("j", { taskName: "dagJoin" }), task("k", { taskName: "dagJoin" })],
      workflows: [],
      ledger: [
        effect("j", {
          kind: "join",
          data: [
            ["COMPLETED", "x"],
            ["COMPLETED", "y"],
          ],
        }),
      ],
    };
    const report = check(expectation, observed);
    expect(report.joinMismatches).toHaveLength(2);
    expect(report.joinMismatches[0]).toMatch(/^j \(attempt 1\): received/);
    expect(report.joinMismatches[1]).toBe("k: never ran");
  });

  it("flags two workflows of one affinity key that overlap or run out of creation order", () => {
    const observed: Observed = {
      tasks: [task("w1"), task("w2")],
      workflows: [],
      ledger: [effect("w1", { startedAt: 0, endedAt: 100 }), effect("w2", { startedAt: 50, endedAt: 150 })],
    };
    const expectation: Expectation = {
      tasks: [
        { key: "w1", state: "COMPLETED" },
        { key: "w2", state: "COMPLETED" },
      ],
      affinity: { k: ["w1", "w2"] },
    };
    expect(check(expectation, observed).affinityViolations).toEqual([
      "k: w2 started 50 ms before w1 (created before it) ended",
    ]);
    // In order and apart: fine. Reversed order: flagged.
    const apart: Observed = { ...observed, ledger: [effect("w1"), effect("w2", { startedAt: 10, endedAt: 20 })] };
    expect(check(expectation, apart).affinityViolations).toEqual([]);
    expect(check({ ...expectation, affinity: { k: ["w2", "w1"] } }, apart).affinityViolations).toHaveLength(1);
    // A stale attempt's late effect (not the recorded attempt) does not count.
    const stale: Observed = {
      ...apart,
      ledger: [...apart.ledger, effect("w1", { attempt: 2, startedAt: 15, endedAt: 30 })],
    };
    expect(check(expectation, stale).affinityViolations).toEqual([]);
  });

  it("flags a cluster limit and a node capacity exceeded", () => {
    const tasks = ["l1", "l2", "l3"].map((k) => task(k, { taskName: "limited" }));
    const observed: Observed = {
      tasks,
      workflows: [],
      ledger: [
        effect("l1", { startedAt: 0, endedAt: 100 }),
        effect("l2", { startedAt: 10, endedAt: 100 }),
        // Starts when l1 ends: no overlap.
        effect("l3", { startedAt: 100, endedAt: 150, node: "n2" }),
      ],
    };
    const expectation = (limit: number, capacity: number): Expectation => ({
      tasks: tasks.map((t) => ({ key: t.key, state: "COMPLETED" })),
      clusterLimits: { limited: limit },
      nodeCapacity: capacity,
    });
    expect(problems(check(expectation(2, 2), observed))).toEqual([]);
    const report = check(expectation(1, 1), observed);
    expect(report.limitsExceeded).toEqual(["limited: 2 at once, limit 1", "node n1: 2 at once, capacity 1"]);
  });

  it("computes the DAG reference: joins receive their children's outcomes; an unlisted failure fails the workflow", () => {
    const handled = dagReference({
      key: "r",
      sleepMs: 0,
      join: "r.join",
      children: [
        { key: "r.0", sleepMs: 0, fail: true },
        { key: "r.1", sleepMs: 0 },
      ],
    });
    expect(handled.joins).toEqual([
      {
        key: "r.join",
        received: [
          ["FAILED", null],
          ["COMPLETED", "r.1"],
        ],
      },
    ]);
    expect(handled.workflowStatus).toBe("COMPLETED");
    const unhandled = dagReference({
      key: "r",
      sleepMs: 0,
      join: "r.join",
      children: [{ key: "r.0", sleepMs: 0, children: [{ key: "r.0.0", sleepMs: 0, fail: true }] }],
    });
    expect(unhandled.workflowStatus).toBe("FAILED");
    expect(unhandled.tasks.find((t) => t.key === "r.0.0")?.state).toBe("FAILED");
    // Random shapes stay within their bounds and are reproducible from the seed.
    const options = { depth: 5, fanOut: 50, failRate: 0.1, joinRate: 0.7, maxTasks: 200, maxSleepMs: 10 };
    const a = randomDag(rng(7), "d", options);
    expect(randomDag(rng(7), "d", options)).toEqual(a);
    const ref = dagReference(a);
    expect(ref.tasks.length + ref.joins.length).toBeLessThanOrEqual(200);
  });
});
