import { describe, expect, it } from "vitest";
import { pollingDelayFor } from "../src/config.js";
import { decide } from "../src/services/planner.js";
import type { Candidate, LiveNode } from "../src/store/planner.js";

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
