// The worker's room accounting (engine/src/worker/room.ts) and the completion
// batcher that frees it, without a database: the store is a fake.
import type pg from "pg";
import { describe, expect, it } from "vitest";
import { Sleeps } from "../src/services/service.js";
import type { Store } from "../src/store/index.js";
import type { OutcomeRow } from "../src/store/types.js";
import type { CompleteResult } from "../src/store/worker.js";
import type { WorkerContext } from "../src/worker/context.js";
import { KeyReleases } from "../src/worker/key-releases.js";
import { CompletionBatcher, FLUSHES_IN_FLIGHT } from "../src/worker/outcomes.js";
import { Room } from "../src/worker/room.js";
import { memoryLogger } from "./helpers.js";

/** A room whose waiting entries are names; \`started\` lists what it started, \`skip\` what is void by then. */
function roomOf(capacity: number, options: { allowance?: number; unrecorded?: () => number; skip?: string[] } = {}) {
  const started: string[] = [];
  const room: Room<string> = new Room<string>(
    capacity,
    options.allowance ?? 0,
    options.unrecorded ?? (() => 0),
    (name) => {
      if (options.skip?.includes(name)) return;
      started.push(name);
      room.started();
    },
  );
  return { room, started };
}

describe("Room", () => {
  it("is the capacity less the attempts executing and waiting", () => {
    const { room } = roomOf(3);
    expect(room.room()).toBe(3);
    expect(room.isFull).toBe(false);
    room.started();
    room.started();
    expect(room.room()).toBe(1);
    room.started();
    expect(room.room()).toBe(0);
    expect(room.isFull).toBe(true);
    room.wait("a");
    expect(room.waitingCount).toBe(1);
    // Never negative, however many wait.
    expect(room.room()).toBe(0);
    expect(room.executingCount).toBe(3);
  });

  it("counts unrecorded outcomes only beyond the allowance of the batches in flight", () => {
    let unrecorded = 0;
    const { room } = roomOf(4, { allowance: 6, unrecorded: () => unrecorded });
    room.started();
    unrecorded = 6;
    expect(room.room()).toBe(3);
    unrecorded = 8;
    expect(room.room()).toBe(1);
    unrecorded = 100;
    expect(room.room()).toBe(0);
    unrecorded = 0;
    expect(room.room()).toBe(3);
  });

  it("starts waiting assignments in order as attempts end, never beyond the capacity", () => {
    const { room, started } = roomOf(2);
    room.started();
    room.started();
    for (const name of ["a", "b", "c"]) room.wait(name);
    expect(room.room()).toBe(0);
    room.ended();
    expect(started).toEqual(["a"]);
    expect(room.executingCount).toBe(2);
    expect(room.waitingCount).toBe(2);
    room.ended();
    room.ended();
    expect(started).toEqual(["a", "b", "c"]);
    expect(room.waitingCount).toBe(0);
    room.ended();
    expect(room.room()).toBe(1);
  });

  it("passes over waiting assignments that are void by their turn", () => {
    const { room, started } = roomOf(1, { skip: ["b"] });
    room.started();
    for (const name of ["a", "b", "c"]) room.wait(name);
    room.ended();
    expect(started).toEqual(["a"]);
    room.ended();
    // "b" was revoked meanwhile: "c" takes the slot in the same turn.
    expect(started).toEqual(["a", "c"]);
    expect(room.waitingCount).toBe(0);
    expect(room.executingCount).toBe(1);
  });

  it("starts the next waiting one when a started attempt ends at once (a synchronous handler)", () => {
    const started: string[] = [];
    const room: Room<string> = new Room<string>(
      1,
      0,
      () => 0,
      (name) => {
        started.push(name);
        room.started();
        if (name !== "c") room.ended();
      },
    );
    room.started();
    for (const name of ["a", "b", "c", "d"]) room.wait(name);
    room.ended();
    expect(started).toEqual(["a", "b", "c"]);
    expect(room.executingCount).toBe(1);
    expect(room.waitingCount).toBe(1);
  });

  it("drops the waiting assignments, in order, and resets when the node's work is void", () => {
    const { room, started } = roomOf(1);
    room.started();
    room.wait("a");
    room.wait("b");
    expect(room.dropWaiting()).toEqual(["a", "b"]);
    expect(room.waitingCount).toBe(0);
    room.ended();
    expect(started).toEqual([]);
    room.started();
    room.wait("c");
    room.reset();
    expect(room.executingCount).toBe(0);
    expect(room.waitingCount).toBe(0);
    expect(room.room()).toBe(1);
  });

  it("tells its listener (the last one set) when room may be free", () => {
    const { room } = roomOf(1);
    room.announce();
    const calls: string[] = [];
    room.onRoom(() => calls.push("first"));
    room.onRoom(() => calls.push("second"));
    room.announce();
    expect(calls).toEqual(["second"]);
  });
});

function outcome(id: string): OutcomeRow {
  return {
    id,
    workflowId: id,
    taskName: "t",
    token: 1,
    span: undefined,
    state: "COMPLETED",
    result: "null",
    error: null,
    children: [],
    slot: false,
  };
}

/** A batcher on a fake store whose completions wait until \`release()\`; the room counts its outcomes. */
function batcherWithRoom(capacity: number, batchSize: number) {
  const batches: (readonly OutcomeRow[])[] = [];
  const gates: (() => void)[] = [];
  const store = {
    worker: {
      complete: async (_q: unknown, rows: readonly OutcomeRow[]): Promise<CompleteResult> => {
        batches.push(rows);
        await new Promise<void>((resolve) => gates.push(resolve));
        return { recorded: rows.length, refused: [], retried: 0, finishedWorkflows: 0, heldKeys: [] };
      },
    },
  } as unknown as Store;
  const ctx: WorkerContext = {
    store,
    pool: {} as pg.Pool,
    hotPool: {} as pg.Pool,
    log: memoryLogger().logger,
    sleeps: new Sleeps(),
    tracing: undefined,
    metrics: undefined,
  };
  const events: string[] = [];
  const recorded: string[] = [];
  const room: Room<string> = new Room<string>(
    capacity,
    FLUSHES_IN_FLIGHT * batchSize,
    () => batcher.unrecorded,
    () => undefined,
  );
  const batcher: CompletionBatcher = new CompletionBatcher(ctx, batchSize, new KeyReleases(ctx), {
    roomFreed: () => room.announce(),
    recorded: (batch) => recorded.push(...batch.map((o) => o.id)),
  });
  room.onRoom(() => events.push(`room ${room.room()}`));
  const release = () => {
    for (const g of gates.splice(0)) g();
  };
  return { room, batcher, batches, events, recorded, release };
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("Room with the completion batcher", () => {
  it("frees the room of ended attempts in the next turn, before their outcomes are recorded", async () => {
    const { room, batcher, batches, events, recorded, release } = batcherWithRoom(2, 2);
    room.started();
    room.started();
    expect(room.room()).toBe(0);
    room.ended();
    batcher.queue(outcome("a"));
    room.ended();
    batcher.queue(outcome("b"));
    expect(events).toEqual([]);
    await turn();
    // One announcement for the attempts of the tick, one batch for their outcomes.
    expect(events).toEqual(["room 2"]);
    expect(batches.map((b) => b.map((o) => o.id))).toEqual([["a", "b"]]);
    expect(recorded).toEqual([]);
    release();
    await batcher.settle(1_000);
    expect(recorded).toEqual(["a", "b"]);
    expect(batcher.unrecorded).toBe(0);
  });

  it("holds the room back by the outcomes beyond the batches in flight, and frees it as they are recorded", async () => {
    const { room, batcher, batches, events, release } = batcherWithRoom(3, 1);
    for (const id of ["a", "b", "c", "d"]) batcher.queue(outcome(id));
    await turn();
    // Two batches in flight (one outcome each), two outcomes queued behind them.
    expect(batches).toHaveLength(FLUSHES_IN_FLIGHT);
    expect(batcher.unrecorded).toBe(4);
    expect(room.room()).toBe(1);
    expect(events).toEqual(["room 1"]);
    release();
    await turn();
    await turn();
    expect(batches).toHaveLength(4);
    expect(room.room()).toBe(3);
    expect(events.at(-1)).toBe("room 3");
    release();
    await batcher.settle(1_000);
    expect(batcher.unrecorded).toBe(0);
  });
});
