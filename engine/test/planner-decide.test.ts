import { describe, expect, it } from "vitest";
import { affinityKeyOf, decide, parkUnheld, recordServed, timeouts } from "../src/planner/decide.js";
import type { LiveNode } from "../src/store/planner.js";
import type { Candidate } from "../src/store/types.js";

/** The planner's decisions, in memory: no database. */
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

  it("put each task on the capable node with the most free slots, not the first one listed", () => {
    const nodes = [node("A", 1, ["x"]), node("B", 3, ["x"]), node("C", 2, ["x"])];
    const free = freeOf(nodes);
    const d = decide(
      ["t1", "t2", "t3"].map((id) => task(id)),
      nodes,
      free,
    );
    // B (3) takes t1, then B and C tie at 2: the first listed of the tied wins.
    expect(d.map((x) => x.node)).toEqual(["B", "B", "C"]);
    // The free room left is written back, for the caller's next use.
    expect(free).toEqual(
      new Map([
        ["A", 1],
        ["B", 1],
        ["C", 1],
      ]),
    );
  });

  it("use up a name's allowance and count it down; a name at 0 gets nothing, unlimited names everything", () => {
    const nodes = [node("A", 10, ["a", "b", "c"])];
    const allowance = new Map([
      ["a", 1],
      ["b", 0],
    ]);
    const assigned = new Map<string, number>();
    const d = decide(
      [task("a1", "a"), task("a2", "a"), task("b1", "b"), task("c1", "c"), task("c2", "c")],
      nodes,
      freeOf(nodes),
      allowance,
      new Map(),
      assigned,
    );
    expect(d.map((x) => x.id).sort()).toEqual(["a1", "c1", "c2"]);
    expect(allowance).toEqual(
      new Map([
        ["a", 0],
        ["b", 0],
      ]),
    );
    expect(assigned).toEqual(
      new Map([
        ["a", 1],
        ["c", 2],
      ]),
    );
  });

  it("fairness across names: a flood takes turns with each other name, and served names wait their turn", () => {
    const nodes = [node("A", 6, ["flood", "b", "c"])];
    const candidates = [
      ...["f1", "f2", "f3", "f4", "f5", "f6"].map((id) => task(id, "flood")),
      task("b1", "b"),
      task("c1", "c"),
    ];
    expect(decide(candidates, nodes, freeOf(nodes)).map((x) => x.id)).toEqual(["b1", "c1", "f1", "f2", "f3", "f4"]);
    // Turn by turn, the least-served name first, then the oldest.
    const served = new Map([
      ["b", 2],
      ["c", 1],
    ]);
    const three = [node("A", 3, ["flood", "b", "c"])];
    expect(decide(candidates, three, freeOf(three), new Map(), served).map((x) => x.id)).toEqual(["f1", "c1", "b1"]);
  });

  it("fairness memory: counts what each waiting name got, rebased on the least-served; names not waiting are forgotten", () => {
    const served = new Map([
      ["gone", 5],
      ["a", 1],
    ]);
    recordServed(served, [task("a1", "a"), task("b1", "b")], new Map([["a", 2]]));
    expect(served).toEqual(new Map([["a", 3]]));
    recordServed(served, [task("a2", "a"), task("b2", "b")], new Map([["b", 1]]));
    expect(served).toEqual(
      new Map([
        ["a", 2],
        ["b", 0],
      ]),
    );
    // No candidates read (no room): nothing is known about who waits.
    recordServed(served, [], new Map());
    expect(served.size).toBe(2);
  });

  it("affinity: candidates of the key's holder (and keyless ones) pass to decide; the others are parked with their key", () => {
    const keyed = (id: string, workflow: string, holder: string | null = null): Candidate => ({
      ...task(id),
      workflow_id: workflow,
      affinity_group: "account",
      affinity: "42",
      holder,
    });
    const fetched = [keyed("k1", "W1", "W1"), task("plain"), keyed("k2", "W2", "W1"), keyed("k3", "W1", "W1")];
    const { candidates, parked } = parkUnheld(fetched, new Map([[affinityKeyOf("account", "42"), "W1"]]));
    expect(candidates.map((c) => c.id)).toEqual(["k1", "plain", "k3"]);
    expect(parked).toEqual([
      {
        id: "k2",
        queue: "PARKED",
        node: null,
        parkReason: "AFFINITY",
        affinityKey: { group: "account", affinity: "42" },
      },
    ]);
    // The holder's candidates are placed like any other (oldest first).
    const nodes = [node("A", 5, ["x"])];
    expect(decide(candidates, nodes, freeOf(nodes)).map((x) => [x.id, x.node])).toEqual([
      ["k1", "A"],
      ["k3", "A"],
      ["plain", "A"],
    ]);
    // A key nobody holds parks every candidate with it.
    expect(parkUnheld(fetched, new Map()).parked.map((d) => d.id)).toEqual(["k1", "k2", "k3"]);
  });

  it("timeouts: the largest timeout a node publishes for a name, plus the grace", () => {
    const withTimeouts = (id: string, t: Record<string, number>): LiveNode => ({
      ...node(id, 1, ["a", "b"]),
      task_timeouts: t,
    });
    expect(
      timeouts([withTimeouts("A", { a: 1_000 }), withTimeouts("B", { a: 3_000, b: 500 }), node("C", 1, ["a"])], 100),
    ).toEqual({
      a: 3_100,
      b: 600,
    });
  });
});
