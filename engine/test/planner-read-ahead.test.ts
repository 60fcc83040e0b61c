import type pg from "pg";
import { beforeEach, describe, expect, it } from "vitest";
import { freshDatabase, poolFor } from "../../test/support.js";
import { parseConfig, plannerConfigSchema } from "../src/config.js";
import { Planner } from "../src/planner/cycle.js";
import { Store } from "../src/store/index.js";
import { memoryLogger, newTask } from "./helpers.js";

/** The planner's read-ahead (see planner/read-ahead.ts), through whole cycles: moved from planner-cycle.test.ts. */
describe("planner cycles", () => {
  const store = new Store("weft");
  let pool: pg.Pool;
  const url = freshDatabase();

  const addNode = (id: string, capacity: number, names: string[], extra = "") =>
    pool.query(
      `INSERT INTO weft.nodes (id, app_name, host, pid, capacity, task_names) VALUES ($1, 'a', 'h', 1, $2, $3) ${extra}`,
      [id, capacity, names],
    );

  beforeEach(async () => {
    pool ??= poolFor(await url);
    await pool.query("TRUNCATE weft.tasks, weft.workflows, weft.nodes, weft.affinity_holders CASCADE");
  });

  const schedule = async (n: number, overrides = {}) => {
    const rows = Array.from({ length: n }, () => newTask(overrides));
    await store.schedule.insert(pool, rows, new Set(rows.map((r) => r.id)));
    return rows.map((r) => r.id);
  };

  describe("with a read connection (the next cycle read while this one applies)", () => {
    let reads = 0;
    /**
     * Each apply waits until the read it overlaps has fetched its candidates
     * (or 300 ms, when that read finds no room): the next cycle's reading then
     * surely misses the apply, the case its adjustments are for.
     */
    const logged = memoryLogger();
    const withReader = async (batchSize: number, deadNodeSweepMs = 60_000) => {
      const readPool = poolFor(await url);
      let readDone: () => void = () => undefined;
      const reader = {
        query: (async (text: string, values?: unknown[]) => {
          reads++;
          const result = await readPool.query(text, values);
          if (text.includes("r.task_name")) readDone();
          return result;
        }) as unknown as pg.Pool["query"],
      };
      const leader = {
        query: (async (text: string, values?: unknown[]) => {
          if (text.includes("applied AS")) {
            await new Promise<void>((resolve) => {
              readDone = resolve;
              setTimeout(resolve, 300);
            });
          }
          return pool.query(text, values);
        }) as unknown as pg.Pool["query"],
      };
      return new Planner(
        store,
        leader,
        parseConfig(plannerConfigSchema, { nodeDeadAfterMs: 1_000, deadNodeSweepMs, batchSize }),
        logged.logger,
        () => undefined,
        0,
        reader,
      );
    };
    const assigned = async () =>
      (
        await pool.query<{ id: string; token: string; attempt: number }>(
          "SELECT id, token, attempt FROM weft.tasks WHERE assigned_node IS NOT NULL",
        )
      ).rows;

    it("fills a node to its capacity, each task once, across cycles that overlap their reads", async () => {
      await addNode("N1", 25, ["t"]);
      await schedule(40);
      const p = await withReader(10);
      reads = 0;
      const moved = [await p.cycle(), await p.cycle(), await p.cycle(), await p.cycle()];
      expect(moved).toEqual([10, 10, 5, 0]);
      const rows = await assigned();
      expect(rows).toHaveLength(25);
      expect(new Set(rows.map((r) => r.token)).size).toBe(25);
      expect(rows.every((r) => r.attempt === 1)).toBe(true);
      expect(reads).toBeGreaterThan(0);
      // The reads ran on the read connection (a failed one falls back, with a warning).
      expect(logged.lines.filter((l) => l.level === "warn")).toEqual([]);
    });

    it("reads the next cycle on a read connection attached while the first apply runs", async () => {
      await addNode("N1", 25, ["t"]);
      await schedule(30);
      const readPool = poolFor(await url);
      let leaderReads = 0;
      let readerReads = 0;
      let readDone: () => void = () => undefined;
      const reader = {
        query: (async (text: string, values?: unknown[]) => {
          readerReads++;
          const result = await readPool.query(text, values);
          if (text.includes("r.task_name")) readDone();
          return result;
        }) as unknown as pg.Pool["query"],
      };
      let attach: (() => void) | undefined;
      const leader = {
        query: (async (text: string, values?: unknown[]) => {
          if (text.includes("r.task_name")) leaderReads++;
          if (text.includes("applied AS") && attach) {
            // The engine attaches the read connection once the first apply is sent.
            const attachNow = attach;
            attach = undefined;
            await new Promise<void>((resolve) => {
              readDone = resolve;
              attachNow();
              // A bound, not a wait: the read ends it (300 ms ran out once on a loaded machine).
              setTimeout(resolve, 5_000);
            });
          }
          return pool.query(text, values);
        }) as unknown as pg.Pool["query"],
      };
      const p = new Planner(
        store,
        leader,
        parseConfig(plannerConfigSchema, { nodeDeadAfterMs: 1_000, deadNodeSweepMs: 60_000, batchSize: 10 }),
        logged.logger,
        () => undefined,
      );
      attach = () => p.attachReader(reader);
      expect(p.readsOnSecondConnection).toBe(false);
      expect([await p.cycle(), await p.cycle()]).toEqual([10, 10]);
      // The second cycle used the reading taken on the read connection during the first apply.
      expect(leaderReads).toBe(1);
      expect(readerReads).toBeGreaterThan(0);
      const rows = await assigned();
      expect(rows).toHaveLength(20);
      expect(new Set(rows.map((r) => r.id)).size).toBe(20);
      expect(logged.lines.filter((l) => l.level === "warn")).toEqual([]);
    });

    it("reads again when the sweep between two cycles declared a node dead", async () => {
      await addNode("N1", 10, ["t"]);
      await addNode("N2", 10, ["t"]);
      await schedule(30);
      const p = await withReader(10, 10);
      expect(await p.cycle()).toBe(10);
      // N2 dies after the reading for the next cycle was taken (during the apply).
      await pool.query("UPDATE weft.nodes SET heartbeat_at = now() - interval '1 minute' WHERE id = 'N2'");
      await new Promise((r) => setTimeout(r, 20)); // past deadNodeSweepMs
      await p.cycle();
      const rows = await pool.query<{ assigned_node: string }>(
        "SELECT assigned_node FROM weft.tasks WHERE assigned_node IS NOT NULL",
      );
      expect(rows.rows.every((r) => r.assigned_node === "N1")).toBe(true);
      expect(rows.rows).toHaveLength(10);
      const warnings = logged.lines.filter((l) => l.level === "warn").map((l) => l.msg);
      expect(warnings).toEqual(["declared nodes dead; re-planning their tasks"]);
      logged.lines.length = 0;
    });

    it("counts the assignments in flight against a cluster limit", async () => {
      await addNode("N1", 50, ["t"]);
      await pool.query(`UPDATE weft.nodes SET task_limits = '{"t": 12}'`);
      await schedule(30);
      const p = await withReader(10);
      const moved = [await p.cycle(), await p.cycle(), await p.cycle()];
      expect(moved).toEqual([10, 2, 0]);
      expect(await assigned()).toHaveLength(12);
      expect(logged.lines.filter((l) => l.level === "warn")).toEqual([]);
    });
  });
});
