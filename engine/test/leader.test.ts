import type pg from "pg";
import { describe, expect, it } from "vitest";
import { eventually, freshDatabase, poolFor } from "../../test/support.js";
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
});
