import { describe, expect, it } from "vitest";
import { eventually, freshDatabase, poolFor } from "../../test/support.js";
import { Listener } from "../src/services/listener.js";
import { memoryLogger } from "./helpers.js";

describe("listener", () => {
  it("delivers notifications by kind, reconnects after its backend is killed, and says so once", async () => {
    const url = await freshDatabase();
    const pool = poolFor(url);
    const { logger, lines } = memoryLogger();
    const listener = new Listener({ connectionString: url }, "weft:weft", logger);
    const got: string[] = [];
    let reconnects = 0;
    listener.on("workflows", (ids) => got.push(...ids));
    listener.on("nodes", (ids) => got.push(...ids.map((i) => `node:${i}`)));
    listener.on("reconcile", (ids) => got.push(...ids.map((i) => `reconcile:${i}`)));
    listener.on("due", (ids) => got.push(...ids.map((i) => `due:${i}`)));
    listener.on("planner", (ids) => got.push(`planner:${ids.length}`));
    listener.onReconnect(() => reconnects++);
    await listener.start();
    await pool.query("SELECT pg_notify('weft:weft', 'w:A,B')");
    await pool.query("SELECT pg_notify('weft:weft', 'n:N1')");
    // Unknown kinds are ignored.
    await pool.query("SELECT pg_notify('weft:weft', 'x:X1')");
    await pool.query("SELECT pg_notify('weft:weft', 'constructor:X2')");
    await pool.query("SELECT pg_notify('weft:weft', 'r:N2,N3')");
    await pool.query("SELECT pg_notify('weft:weft', 'd:1500')");
    await pool.query("SELECT pg_notify('weft:weft', 'p')");
    await eventually(async () => (got.length === 7 ? true : undefined));
    expect(got).toEqual(["A", "B", "node:N1", "reconcile:N2", "reconcile:N3", "due:1500", "planner:0"]);

    await pool.query(
      // Only this database's: other test files run beside this one on a shared server.
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    );
    await eventually(async () => (reconnects === 1 ? true : undefined), 10_000);
    await pool.query("SELECT pg_notify('weft:weft', 'w:C')");
    await eventually(async () => (got.includes("C") ? true : undefined));
    expect(lines.filter((l) => l.level === "warn")).toHaveLength(1);
    await listener.stop();
  });
});
