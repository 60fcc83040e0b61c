import { describe, expect, it } from "vitest";
import { pollingDelayFor } from "../src/config.js";
import { decide } from "../src/services/planner.js";
import type { LiveNode } from "../src/store/planner.js";

const node = (id: string, free: number, names: string[]): LiveNode => ({
  id,
  capacity: free,
  task_names: names,
  active: 0,
});
const freeOf = (nodes: LiveNode[]) => new Map(nodes.map((n) => [n.id, n.capacity - n.active]));

describe("planner decisions", () => {
  it("assign up to free capacity, spread over capable nodes, and leave the rest READY", () => {
    const nodes = [node("A", 2, ["x"]), node("B", 1, ["x"])];
    const newTasks = ["t1", "t2", "t3", "t4"].map((id) => ({ id, task_name: "x", priority: 0, delayed: false }));
    const d = decide(newTasks, [], nodes, freeOf(nodes));
    expect(d.filter((x) => x.node === "A")).toHaveLength(2);
    expect(d.filter((x) => x.node === "B")).toHaveLength(1);
    expect(d.filter((x) => x.node === null)).toEqual([{ id: "t4", queue: "READY", node: null, parkReason: null }]);
  });

  it("never give a task to a node that cannot run it", () => {
    const nodes = [node("A", 5, ["a"]), node("B", 5, ["b"])];
    const d = decide(
      [
        { id: "1", task_name: "a", priority: 0, delayed: false },
        { id: "2", task_name: "b", priority: 0, delayed: false },
        { id: "3", task_name: "c", priority: 0, delayed: false },
      ],
      [],
      nodes,
      freeOf(nodes),
    );
    expect(Object.fromEntries(d.map((x) => [x.id, x.node]))).toEqual({ "1": "A", "2": "B", "3": null });
  });

  it("park delayed tasks", () => {
    const nodes = [node("A", 5, ["x"])];
    const d = decide([{ id: "1", task_name: "x", priority: 0, delayed: true }], [], nodes, freeOf(nodes));
    expect(d).toEqual([{ id: "1", queue: "PARKED", node: null, parkReason: "RUN_AFTER" }]);
  });

  it("higher priority first; equal priority: task names take turns; oldest first within a name", () => {
    const nodes = [node("A", 4, ["flood", "other"])];
    const ready = [
      ...["f1", "f2", "f3", "f4", "f5"].map((id) => ({ id, task_name: "flood", priority: 0 })),
      { id: "o1", task_name: "other", priority: 0 },
      { id: "z9", task_name: "other", priority: 5 },
    ];
    const d = decide([], ready, nodes, freeOf(nodes));
    expect(d.map((x) => x.id)).toEqual(["z9", "f1", "o1", "f2"]);
  });

  it("already READY tasks that get no node are left untouched", () => {
    const nodes = [node("A", 0, ["x"])];
    expect(decide([], [{ id: "r", task_name: "x", priority: 0 }], nodes, freeOf(nodes))).toEqual([]);
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
