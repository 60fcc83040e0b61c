import { describe, expect, it } from "vitest";
import { engineConfigSchema, parseConfig, pollingDelayFor } from "../src/config.js";
import { ConfigError } from "../src/errors.js";
import type { TaskHandler } from "../src/handler.js";
import { decide } from "../src/services/planner.js";
import type { LiveNode } from "../src/store/planner.js";
import type { Candidate } from "../src/store/types.js";
import { resolveTaskLimits } from "../src/task-settings.js";

const node = (id: string, free: number, names: string[]): LiveNode => ({
  id,
  capacity: free,
  task_names: names,
  active: 0,
});
const freeOf = (nodes: LiveNode[]) => new Map(nodes.map((n) => [n.id, n.capacity - n.active]));
const task = (id: string, name = "x", priority = 0, delayed = false): Candidate => ({
  id,
  task_name: name,
  priority,
  delayed,
});

describe("planner decisions", () => {
  it("assign up to free capacity, spread over capable nodes, and leave the rest untouched", () => {
    const nodes = [node("A", 2, ["x"]), node("B", 1, ["x"])];
    const d = decide(
      ["t1", "t2", "t3", "t4"].map((id) => task(id)),
      nodes,
      freeOf(nodes),
    );
    expect(d.filter((x) => x.node === "A")).toHaveLength(2);
    expect(d.filter((x) => x.node === "B")).toHaveLength(1);
    expect(d.map((x) => x.id)).toEqual(["t1", "t2", "t3"]);
  });

  it("take one name's candidates oldest first whatever order they come in, and count them per name", () => {
    const nodes = [node("A", 3, ["x"]), node("B", 2, ["x"])];
    const ids = ["t1", "t2", "t3", "t4", "t5", "t6", "t7"];
    const inOrder = new Map<string, number>();
    const sorted = decide(
      ids.map((id) => task(id)),
      nodes,
      freeOf(nodes),
      new Map(),
      new Map(),
      inOrder,
    );
    const shuffled = decide(
      ["t4", "t7", "t1", "t6", "t2", "t5", "t3"].map((id) => task(id)),
      nodes,
      freeOf(nodes),
    );
    expect(sorted.map((x) => x.id)).toEqual(["t1", "t2", "t3", "t4", "t5"]);
    expect(shuffled).toEqual(sorted);
    expect(inOrder).toEqual(new Map([["x", 5]]));
  });

  it("never give a task to a node that cannot run it", () => {
    const nodes = [node("A", 5, ["a"]), node("B", 5, ["b"])];
    const d = decide([task("1", "a"), task("2", "b"), task("3", "c")], nodes, freeOf(nodes));
    expect(Object.fromEntries(d.map((x) => [x.id, x.node]))).toEqual({ "1": "A", "2": "B" });
  });

  it("park delayed tasks", () => {
    const nodes = [node("A", 5, ["x"])];
    expect(decide([task("1", "x", 0, true)], nodes, freeOf(nodes))).toEqual([
      { id: "1", queue: "PARKED", node: null, parkReason: "RUN_AFTER" },
    ]);
  });

  it("higher priority first; equal priority: task names take turns; oldest first within a name", () => {
    const nodes = [node("A", 4, ["flood", "other"])];
    const candidates = [
      ...["f1", "f2", "f3", "f4", "f5"].map((id) => task(id, "flood")),
      task("o1", "other"),
      task("z9", "other", 5),
    ];
    expect(decide(candidates, nodes, freeOf(nodes)).map((x) => x.id)).toEqual(["z9", "f1", "o1", "f2"]);
  });

  it("respect a task name's cluster allowance, and give the rest of the capacity to others", () => {
    const nodes = [node("A", 10, ["limited", "free"])];
    const candidates = [
      ...["l1", "l2", "l3", "l4"].map((id) => task(id, "limited")),
      task("f1", "free"),
      task("f2", "free"),
    ];
    const d = decide(candidates, nodes, freeOf(nodes), new Map([["limited", 2]]));
    expect(d.map((x) => x.id).sort()).toEqual(["f1", "f2", "l1", "l2"]);
  });

  it("with one slot, the least-served name goes first: names take turns across cycles", () => {
    const nodes = [node("A", 1, ["flood", "other"])];
    const candidates = [task("f1", "flood"), task("o9", "other")];
    expect(decide(candidates, nodes, freeOf(nodes)).map((x) => x.id)).toEqual(["f1"]);
    expect(decide(candidates, nodes, freeOf(nodes), new Map(), new Map([["flood", 1]])).map((x) => x.id)).toEqual([
      "o9",
    ]);
  });

  it("no free capacity: no decisions", () => {
    const nodes = [node("A", 0, ["x"])];
    expect(decide([task("r")], nodes, freeOf(nodes))).toEqual([]);
  });
});

describe("polling delay", () => {
  const map = { "0": 1000, "100": 500, "1000": 250 };
  it("uses the entry with the largest key not above the last count", () => {
    expect(pollingDelayFor(map, 0)).toBe(1000);
    expect(pollingDelayFor(map, 99)).toBe(1000);
    expect(pollingDelayFor(map, 100)).toBe(500);
    expect(pollingDelayFor(map, 5000)).toBe(250);
  });
});

describe("task settings precedence", () => {
  const handler = (name: string, maxParallelInCluster?: number): [string, TaskHandler] => [
    name,
    { name, execute: async () => null, ...(maxParallelInCluster ? { settings: { maxParallelInCluster } } : {}) },
  ];
  const handlers = new Map([handler("a", 5), handler("b"), handler("c", 7)]);

  it("per-task override > definition > global default", () => {
    const config = parseConfig(engineConfigSchema, {
      taskDefaults: { maxParallelInCluster: 100 },
      taskOverrides: { c: { maxParallelInCluster: 2 } },
    });
    expect(resolveTaskLimits(config, handlers)).toEqual({ a: 5, b: 100, c: 2 });
    expect(resolveTaskLimits(parseConfig(engineConfigSchema, {}), handlers)).toEqual({ a: 5, c: 7 });
  });

  it("an override for a task this process does not define is refused, with a suggestion", () => {
    const config = parseConfig(engineConfigSchema, { taskOverrides: { bb: { maxParallelInCluster: 1 } } });
    expect(() => resolveTaskLimits(config, handlers)).toThrow(ConfigError);
    expect(() => resolveTaskLimits(config, handlers)).toThrow(/did you mean "b"/);
    expect(() => parseConfig(engineConfigSchema, { taskDefaults: { maxParallelInCluster: 0 } })).toThrow(
      /taskDefaults\.maxParallelInCluster/,
    );
    expect(() => parseConfig(engineConfigSchema, { planner: { nodeCpuLoadingLimit: 1.5 } })).toThrow(
      /planner\.nodeCpuLoadingLimit/,
    );
  });
});
