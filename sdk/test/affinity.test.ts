import { join } from "node:path";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXEC_LOG_DDL, fixtureTasks } from "../../test/fixtures/tasks.js";
import {
  eventually,
  freshDatabase,
  maxOverlap,
  type NodeProcess,
  poolFor,
  ROOT,
  spawnNode,
} from "../../test/support.js";
import { createClient, type Weft } from "../src/index.js";

const NODE_SCRIPT = join(ROOT, "test/fixtures/node.ts");
const KEYS = 200;
const WORKFLOWS_PER_KEY = 10;

// Batching must not weaken ordering (graphile-worker's serial queues lose their
// order with local batching on, its #621): the same test with the largest batches.
describe.each<{ settings: string; env: Record<string, string> }>([
  { settings: "default batches", env: {} },
  { settings: "the largest batches", env: { PLANNER_BATCH: "50000", COMPLETION_BATCH: "10000" } },
])("affinity on 3 node processes, $settings", ({ env }) => {
  let pool: pg.Pool;
  let client: Weft;
  let nodes: NodeProcess[];
  let tasks: ReturnType<typeof fixtureTasks>;

  beforeAll(async () => {
    const url = await freshDatabase();
    pool = poolFor(url);
    await pool.query(EXEC_LOG_DDL);
    tasks = fixtureTasks(pool, "client");
    client = createClient({ connectionString: url, tasks: [tasks.affParent] });
    await client.start();
    nodes = ["a1", "a2", "a3"].map((label) =>
      spawnNode(NODE_SCRIPT, {
        DATABASE_URL: url,
        NODE_LABEL: label,
        TASKS: "affParent,affChild",
        CAPACITY: "40",
        ...env,
      }),
    );
    await Promise.all(nodes.map((n) => n.waitFor((m) => m.type === "ready", 60_000)));
  });
  afterAll(async () => {
    for (const n of nodes) n.send({ type: "stop" });
    await Promise.all(nodes.map((n) => n.exited));
    await client.stop();
  });

  it(`${KEYS} keys × ${WORKFLOWS_PER_KEY} workflows: a key's workflows never overlap and run in creation order`, async () => {
    // Workflows are created round by round, so each key's are interleaved with the
    // others': in odd rounds one call per workflow, in even rounds one call for all
    // keys, each input with its own key.
    for (let w = 0; w < WORKFLOWS_PER_KEY; w++) {
      if (w % 2 === 0) {
        const keys = Array.from({ length: KEYS }, (_, k) => k);
        await client.client.scheduleMany(
          tasks.affParent,
          keys.map(() => ({ children: 2, sleepMs: 5 })),
          { placement: (_, k) => ({ affinityGroup: "account", affinity: `acct-${k}` }) },
        );
        continue;
      }
      for (let k = 0; k < KEYS; k++) {
        await client.client.schedule(
          tasks.affParent,
          { children: 2, sleepMs: 5 },
          { affinityGroup: "account", affinity: `acct-${k}` },
        );
      }
    }
    const total = KEYS * WORKFLOWS_PER_KEY * 3;
    await eventually(
      async () => {
        const { rows } = await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM public.exec_log");
        return (rows[0]?.n ?? 0) >= total ? true : undefined;
      },
      120_000,
      200,
    );
    const { rows } = await pool.query<{
      workflow_id: string;
      affinity: string;
      task_name: string;
      started_at: Date;
      ended_at: Date;
    }>(
      `SELECT t.workflow_id, t.affinity, t.task_name, l.started_at, l.ended_at
         FROM public.exec_log l JOIN weft.tasks t ON t.id = l.task_id`,
    );
    expect(rows).toHaveLength(total);
    expect(rows.every((r) => r.affinity !== null)).toBe(true); // children inherited the key

    // One interval per workflow, grouped by key.
    const spans = new Map<string, { key: string; start: number; end: number; children: [number, number][] }>();
    for (const r of rows) {
      const s = spans.get(r.workflow_id) ?? { key: r.affinity, start: Infinity, end: -Infinity, children: [] };
      s.start = Math.min(s.start, r.started_at.getTime());
      s.end = Math.max(s.end, r.ended_at.getTime());
      if (r.task_name === "affChild") s.children.push([r.started_at.getTime(), r.ended_at.getTime()]);
      spans.set(r.workflow_id, s);
    }
    const byKey = new Map<string, { id: string; start: number; end: number }[]>();
    for (const [id, s] of spans) {
      const list = byKey.get(s.key) ?? [];
      list.push({ id, start: s.start, end: s.end });
      byKey.set(s.key, list);
    }
    expect(byKey.size).toBe(KEYS);
    for (const list of byKey.values()) {
      expect(list).toHaveLength(WORKFLOWS_PER_KEY);
      list.sort((a, b) => (a.id < b.id ? -1 : 1)); // creation order
      for (let i = 1; i < list.length; i++) {
        expect(list[i]?.start).toBeGreaterThanOrEqual(list[i - 1]?.end ?? Infinity);
      }
    }
    // Inside one workflow the children run in parallel (in most workflows).
    const overlapping = [...spans.values()].filter(
      (s) =>
        s.children.length === 2 &&
        s.children[0] &&
        s.children[1] &&
        s.children[0][0] < s.children[1][1] &&
        s.children[1][0] < s.children[0][1],
    ).length;
    expect(overlapping).toBeGreaterThan(spans.size / 2);
    // Different keys run at the same time.
    const max = maxOverlap(
      [...spans.values()].map((s) => ({ started_at: new Date(s.start), ended_at: new Date(s.end) })),
    );
    expect(max).toBeGreaterThan(10);
  });
});
