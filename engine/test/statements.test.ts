import type pg from "pg";
import { ulid } from "ulid";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freshDatabase, poolFor } from "../../test/support.js";
import { MAX_PREPARED_NAME_BYTES, preparedName } from "../src/db/statement.js";
import { Store } from "../src/store/index.js";
import { FIELD, ROW } from "../src/store/packed.js";
import { applyName, applyToOneNodeName } from "../src/store/statements/apply.js";
import { candidatesName } from "../src/store/statements/candidates.js";
import { completeName } from "../src/store/statements/complete.js";
import { dueName } from "../src/store/statements/due.js";
import { fetchName } from "../src/store/statements/fetch.js";
import { insertName } from "../src/store/statements/insert.js";
import { insertKeyedName } from "../src/store/statements/insert-keyed.js";
import { releaseKeysName } from "../src/store/statements/release-keys.js";
import { sweepName } from "../src/store/statements/sweep.js";
import type { AssignedTaskRow, NewTaskRow } from "../src/store/types.js";
import { newTask } from "./helpers.js";

/** Every prepared name a Store uses in \`schema\`, variants included. */
function allNames(schema: string): string[] {
  return [
    ...[false, true].flatMap((traced) => [
      fetchName(schema, traced),
      completeName(schema, traced),
      applyName(schema, traced),
      applyToOneNodeName(schema, traced),
    ]),
    candidatesName(schema),
    sweepName(schema),
    dueName(schema),
    insertName(schema),
    insertKeyedName(schema),
    releaseKeysName(schema),
    // The Stores' other prepared statements.
    preparedName("live_nodes", schema),
    preparedName("running_by_name", schema),
    preparedName("affinity_holders", schema),
  ];
}

describe("prepared statement names", () => {
  it("are readable: weft_<statement>/<schema>", () => {
    expect(completeName("public", false)).toBe("weft_complete/public");
    expect(fetchName("weft", true)).toBe("weft_fetch_traced/weft");
  });

  it("fit in 63 bytes and stay unique per schema and statement, for the longest schemas", () => {
    // 48 characters: the longest schema name quoteSchema accepts; two that differ only at the end.
    const long = "s".repeat(48);
    const other = `${"s".repeat(47)}t`;
    const names = [...allNames(long), ...allNames(other), ...allNames("weft")];
    for (const name of names) expect(Buffer.byteLength(name)).toBeLessThanOrEqual(MAX_PREPARED_NAME_BYTES);
    expect(new Set(names).size).toBe(names.length);
    // A cut name still says what it is.
    expect(applyToOneNodeName(long, true).startsWith("weft_apply_one_node_traced/sss")).toBe(true);
  });

  it("are the ones the Store prepares under, one text per name", () => {
    const store = new Store("weft", { traced: true }) as unknown as Record<string, Record<string, { name?: string }>>;
    expect(store.worker?.completeSql?.name).toBe(completeName("weft", true));
    expect(store.planner?.applyToOneNodeSql?.name).toBe(applyToOneNodeName("weft", true));
    expect(new Store("weft", { preparedStatements: false }).worker).toBeDefined();
  });
});

describe("packed formats round-trip through PostgreSQL", () => {
  let pool: pg.Pool;
  beforeAll(async () => {
    pool = poolFor(await freshDatabase());
  });
  afterAll(async () => {
    await pool.end();
  });

  // Separators and other control characters inside JSON strings (JSON escapes
  // them), quotes, commas, non-BMP characters. PostgreSQL text cannot hold NUL.
  const edgy = `a${FIELD}b${ROW}c\t,'"\\ é😀`;

  it("new tasks: what encodeNewTasks sends is what the insert stores", async () => {
    const store = new Store("weft");
    const root = newTask({
      input: JSON.stringify({ s: edgy, n: -1.5 }),
      priority: -5,
      runAfter: new Date("2030-01-02T03:04:05.678Z"),
      affinityGroup: `g${FIELD}${edgy}`,
      affinity: `k${ROW}${edgy}`,
      traceContext: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 vendor=x",
    });
    const join = newTask({
      workflowId: root.id,
      parentId: root.id,
      taskName: "j.o:i-n_1",
      input: "[]",
      joinPending: 2,
    });
    const fork = newTask({
      workflowId: root.id,
      parentId: root.id,
      input: "null",
      priority: 7,
      delayMs: 1500,
      isFork: true,
      ownJoins: [join.id],
    });
    // An empty trace context is no trace context (nothing sent).
    const plain = newTask({ traceContext: "" });
    const tasks: NewTaskRow[] = [root, join, fork, plain];
    await store.schedule.insert(pool, tasks, new Set([root.id, plain.id]));
    const { rows } = await pool.query(
      `SELECT id, workflow_id, parent_id, task_name, input, priority, run_after, run_after > now() AS later,
              affinity_group, affinity, awaited_by, is_fork, join_pending, queue, park_reason, trace_context
         FROM weft.tasks ORDER BY id`,
    );
    const byId = new Map(rows.map((r) => [r.id as string, r]));
    for (const t of tasks) {
      const r = byId.get(t.id);
      expect(r).toMatchObject({
        workflow_id: t.workflowId,
        parent_id: t.parentId,
        task_name: t.taskName,
        input: JSON.parse(t.input),
        priority: t.priority,
        affinity_group: t.affinityGroup,
        affinity: t.affinity,
        is_fork: t.isFork ?? false,
        join_pending: t.joinPending ?? null,
        trace_context: t.traceContext || null,
      });
    }
    expect(byId.get(root.id)?.run_after).toEqual(new Date("2030-01-02T03:04:05.678Z"));
    expect(byId.get(fork.id)?.later).toBe(true);
    expect(byId.get(fork.id)?.awaited_by).toEqual([join.id]);
    expect(byId.get(join.id)).toMatchObject({ queue: "PARKED", park_reason: "JOIN" });
  });

  it.each([false, true])(
    "assignments (traced: %s): a fetch and a hand-over decode to the rows as stored",
    async (traced) => {
      const store = new Store("weft", { traced });
      const node = `N-${ulid()}`;
      // A key of its own per run: the other run's root still holds its key.
      const key = `${edgy}${traced}`;
      const root = newTask({ input: JSON.stringify({ s: edgy }), priority: -3, affinityGroup: edgy, affinity: key });
      const child = newTask({ workflowId: root.id, parentId: root.id, input: '""', priority: 2147483647 });
      const other = newTask({ input: "0", traceContext: "00-1-2-01" });
      await store.schedule.insert(pool, [root, child, other], new Set([root.id, other.id]));
      // What only earlier attempts and joins write: saved state, a join counter, an awaiting join, a span.
      await pool.query(
        `UPDATE weft.tasks SET saved_state = $2::jsonb, join_pending = 0, awaited_by = ARRAY['J'],
              attempt_span = '00-3-4-01', attempt = 41
        WHERE id = $1`,
        [child.id, JSON.stringify({ [edgy]: [edgy, null] })],
      );
      const ids = [root.id, child.id, other.id];
      const decisions = ids.map((id) => ({ id, queue: "READY" as const, node, parkReason: null }));
      const applied = await store.planner.apply(pool, decisions, 0, {}, { id: node, cursor: 0 });
      const fetched = await store.worker.fetch(pool, node, 0, 100);
      // The oracle: the same rows read column by column (no packing).
      const stored = (await store.worker.fetchByIds(pool, node, ids)).sort((a, b) => a.token - b.token);
      expect(stored).toHaveLength(3);
      const plain = (rows: AssignedTaskRow[]) => rows.map((r) => ({ ...r }));
      expect(plain(fetched)).toEqual(plain(stored));
      expect(plain(applied.handedOver)).toEqual(plain(stored));
      const c = fetched.find((r) => r.id === child.id);
      expect(c).toMatchObject({ workflow_id: root.id, parent_id: root.id, is_join: true, attempt: 42 });
      expect(c?.saved_state).toEqual({ [edgy]: [edgy, null] });
      expect(fetched.find((r) => r.id === root.id)).toMatchObject({ affinity_group: edgy, affinity: key });
      if (traced) expect(c).toMatchObject({ attempt_span: "00-3-4-01", awaited: true });
      else expect(c).toMatchObject({ attempt_span: null, awaited: false, trace_context: null });
    },
  );

  it("candidates: a read decodes to the rows as stored, with and without a key and a holder", async () => {
    const store = new Store("weft");
    const taskName = "cand";
    const keyed = newTask({ taskName, affinityGroup: edgy, affinity: `${edgy}1`, priority: -1 });
    const freeKey = newTask({ taskName, affinityGroup: "g", affinity: edgy });
    const delayed = newTask({ taskName, runAfter: new Date(Date.now() + 3_600_000) });
    const child = newTask({ taskName, workflowId: keyed.id, parentId: keyed.id, priority: 5 });
    await store.schedule.insert(pool, [keyed, freeKey, delayed, child], new Set([keyed.id, freeKey.id, delayed.id]));
    // A key nobody holds (its holder row gone): an empty holder field at the end of a row.
    await pool.query("DELETE FROM weft.affinity_holders WHERE affinity_group = 'g'");
    const { candidates } = await store.planner.candidates(pool, new Map([[taskName, 100]]));
    const { rows: expected } = await pool.query(
      `SELECT t.id, t.task_name, t.priority, coalesce(t.run_after > now(), false) AS delayed, t.workflow_id,
              t.affinity_group, t.affinity, h.workflow_id AS holder
         FROM weft.tasks t
         LEFT JOIN weft.affinity_holders h ON h.affinity_group = t.affinity_group AND h.affinity = t.affinity
        WHERE t.task_name = $1 ORDER BY t.priority DESC, t.id`,
      [taskName],
    );
    expect(candidates.map((c) => ({ ...c }))).toEqual(expected);
    expect(candidates.find((c) => c.id === keyed.id)?.holder).toBe(keyed.id);
    expect(candidates.find((c) => c.id === freeKey.id)?.holder).toBeNull();
    expect(candidates.find((c) => c.id === delayed.id)?.delayed).toBe(true);
  });
});

describe("the keyed insert (idempotency keys)", () => {
  it("stores what the plain insert stores: solo roots, delays, affinity keys held or waited for", async () => {
    const pool = poolFor(await freshDatabase());
    const store = new Store("weft");
    // The oldest workflow (lowest id) scheduling a free key takes it: ids of one millisecond are in no set order.
    const [first, second] = [newTask(), newTask()].sort((a, b) => (a.id < b.id ? -1 : 1)) as [NewTaskRow, NewTaskRow];
    const holder = { ...first, affinityGroup: "g", affinity: "k", input: '{"a":1}' };
    const waiter = { ...second, affinityGroup: "g", affinity: "k", priority: 3 };
    const later = newTask({ delayMs: 60_000 });
    const tasks = [holder, waiter, later];
    const holders = await store.schedule.insertKeyed(pool, tasks, ["h", "w", "l"], ["1", "2", "3"], 60_000);
    expect(holders.map((h) => [h.key, h.task_id, h.workflow_id, h.input_hash]).sort()).toEqual(
      [
        ["h", holder.id, holder.id, "1"],
        ["w", waiter.id, waiter.id, "2"],
        ["l", later.id, later.id, "3"],
      ].sort(),
    );
    const { rows } = await pool.query(
      `SELECT id, workflow_id, input, priority, run_after > now() AS later, affinity_group, affinity, queue,
              park_reason, solo FROM weft.tasks ORDER BY id`,
    );
    const byId = new Map(rows.map((r) => [r.id as string, r]));
    expect(byId.get(holder.id)).toMatchObject({ workflow_id: holder.id, input: { a: 1 }, queue: "NEW", solo: true });
    // The other waits (PARKED, AFFINITY).
    expect(byId.get(waiter.id)).toMatchObject({ priority: 3, queue: "PARKED", park_reason: "AFFINITY", solo: true });
    expect(byId.get(later.id)).toMatchObject({ later: true, queue: "NEW", solo: true });
    const held = await pool.query("SELECT workflow_id FROM weft.affinity_holders WHERE affinity_group = 'g'");
    expect(held.rows).toEqual([{ workflow_id: holder.id }]);
    const keys = await pool.query<{ left: number }>(
      "SELECT round(extract(epoch FROM expires_at - created_at))::int AS left FROM weft.idempotency_keys",
    );
    expect(keys.rows.map((r) => r.left)).toEqual([60, 60, 60]);
    // Again: nothing new, the same holders, the keys' expiry unchanged.
    const again = tasks.map((t) => newTask({ affinityGroup: t.affinityGroup, affinity: t.affinity }));
    const repeat = await store.schedule.insertKeyed(pool, again, ["h", "w", "l"], ["x", "x", "x"], 1);
    expect(repeat.map((h) => [h.key, h.task_id, h.input_hash]).sort()).toEqual(
      holders.map((h) => [h.key, h.task_id, h.input_hash]).sort(),
    );
    expect((await pool.query("SELECT count(*)::int AS n FROM weft.tasks")).rows[0].n).toBe(3);
    const unchanged =
      "SELECT count(*)::int AS n FROM weft.idempotency_keys WHERE expires_at > now() + interval '50 seconds'";
    expect((await pool.query(unchanged)).rows[0].n).toBe(3);
  });
});
