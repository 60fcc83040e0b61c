import type pg from "pg";
import { describe, expect, it } from "vitest";
import { eventually, freshDatabase, poolFor } from "../../test/support.js";
import { Engine } from "../src/engine.js";
import { LeaderElector } from "../src/services/leader.js";
import { memoryLogger } from "./helpers.js";

describe("leader election", () => {
  it("elects exactly one leader and fails over when its connection dies", async () => {
    const url = await freshDatabase();
    const pool = poolFor(url);
    const events: string[] = [];
    const make = (name: string) =>
      new LeaderElector(
        { connectionString: url },
        "weft",
        50,
        {
          elected: async (_c: pg.Client) => {
            events.push(`${name}+`);
          },
          deposed: async () => {
            events.push(`${name}-`);
          },
        },
        memoryLogger().logger,
      );
    const a = make("a");
    const b = make("b");
    await a.start();
    await b.start();
    await eventually(async () => (a.isLeader || b.isLeader ? true : undefined));
    await new Promise((r) => setTimeout(r, 200));
    expect([a.isLeader, b.isLeader].filter(Boolean)).toHaveLength(1);
    const [leader, other] = a.isLeader ? [a, b] : [b, a];
    // Kill the leader's session: the advisory lock goes with it, the leader is
    // deposed, and one of the two (the old leader's process is alive) wins again.
    await pool.query(
      // Only this database's: other test files run beside this one on a shared server.
      `SELECT pg_terminate_backend(pid) FROM pg_locks
        WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    );
    await eventually(async () => (events.some((e) => e.endsWith("-")) ? true : undefined), 10_000);
    await eventually(async () => (a.isLeader !== b.isLeader ? true : undefined), 10_000);
    // The leader stops (its process ends): the other takes over.
    const current = a.isLeader ? a : b;
    const next = current === a ? b : a;
    await current.stop();
    await eventually(async () => (next.isLeader ? true : undefined), 10_000);
    expect(leader.isLeader === false || other.isLeader === false).toBe(true);
    await a.stop();
    await b.stop();
    expect(events.filter((e) => e.endsWith("+")).length).toBeGreaterThanOrEqual(3);
  });

  it("opens its connection ahead of the first attempt, and closes it if it never starts", async () => {
    const url = await freshDatabase();
    const pool = poolFor(url);
    const sessions = async () =>
      (
        await pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`,
        )
      ).rows[0]?.n ?? 0;
    const make = (events: string[]) =>
      new LeaderElector(
        { connectionString: url },
        "weft",
        10_000,
        {
          elected: async () => {
            events.push("+");
          },
          deposed: async () => {
            events.push("-");
          },
        },
        memoryLogger().logger,
        15_000,
      );
    const idle = await sessions();
    const unused = make([]);
    await unused.connect();
    expect(await sessions()).toBe(idle + 1);
    await unused.stop();
    await eventually(async () => ((await sessions()) === idle ? true : undefined));

    // Opened ahead, the connection is the one the election uses: no second one.
    const events: string[] = [];
    const elector = make(events);
    await elector.connect();
    await elector.connect();
    expect(await sessions()).toBe(idle + 1);
    await elector.start();
    // The retry interval is 10 s: elected well before it means the first attempt ran at start.
    await eventually(async () => (elector.isLeader ? true : undefined), 5_000);
    expect(await sessions()).toBe(idle + 1);
    await elector.stop();
    expect(events).toEqual(["+", "-"]);
    await eventually(async () => ((await sessions()) === idle ? true : undefined));
    await pool.end();
  });

  it("an engine's planner starts on the leader connection and gets its read connection once it is open", async () => {
    const url = await freshDatabase();
    const engine = new Engine({
      connectionString: url,
      handlers: [{ name: "noop", execute: async () => null }],
    });
    await engine.start();
    try {
      await eventually(async () => (engine.activePlanner?.readsOnSecondConnection ? true : undefined), 10_000);
    } finally {
      await engine.stop();
    }
    expect(engine.activePlanner).toBeUndefined();
  });
});
