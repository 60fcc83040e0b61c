import { beforeAll, describe, expect, it } from "vitest";
import { freshDatabase, poolFor } from "../../test/support.js";
import { Store } from "../src/store/index.js";
import { assignedTask, newTask } from "./helpers.js";

describe("recording outcomes (fencing)", () => {
  const store = new Store("weft");
  let pool: import("pg").Pool;
  beforeAll(async () => {
    pool = poolFor(await freshDatabase());
    await pool.query(
      "INSERT INTO weft.nodes (id, app_name, host, pid, capacity, task_names) VALUES ('N1', 'a', 'h', 1, 10, '{t}')",
    );
  });

  const assigned = () => assignedTask(store, pool);

  it("records an outcome whose token matches, with its children, and finishes the workflow once", async () => {
    const row = await assigned();
    const child = newTask({ workflowId: row.workflow_id, parentId: row.id });
    const res = await store.worker.complete(pool, [
      {
        id: row.id,
        workflowId: row.workflow_id,
        token: row.token,
        state: "COMPLETED",
        result: '{"v":1}',
        error: null,
        children: [child],
      },
    ]);
    expect(res).toEqual({ recorded: 1, refused: [], finishedWorkflows: 0, retried: 0, heldKeys: [] });
    const wf = await store.read.workflow(pool, row.workflow_id);
    expect(wf).toMatchObject({ status: "RUNNING", pending_tasks: 1, total_tasks: 2 });
    // Sending the same batch again (a retry after a lost COMMIT) changes nothing,
    // and the outcome is not reported as refused: it was recorded the first time.
    const again = await store.worker.complete(pool, [
      {
        id: row.id,
        workflowId: row.workflow_id,
        token: row.token,
        state: "COMPLETED",
        result: '{"v":1}',
        error: null,
        children: [child],
      },
    ]);
    expect(again).toEqual({ recorded: 0, refused: [], finishedWorkflows: 0, retried: 0, heldKeys: [] });
    expect((await store.read.workflowTasks(pool, row.workflow_id)).length).toBe(2);
  });

  it("records plain successes, successes with a result and failures of one batch, each as its own", async () => {
    const [plain, valued, failed, stale] = [await assigned(), await assigned(), await assigned(), await assigned()];
    const base = (row: typeof plain) => ({ id: row.id, workflowId: row.workflow_id, token: row.token, children: [] });
    const res = await store.worker.complete(pool, [
      { ...base(plain), state: "COMPLETED", result: "null", error: null },
      { ...base(valued), state: "COMPLETED", result: '{"v":2}', error: null },
      { ...base(failed), state: "FAILED", result: null, error: '{"message":"boom"}' },
      // A plain success fenced by its token like any other.
      { ...base(stale), token: stale.token + 1_000_000, state: "COMPLETED", result: "null", error: null },
    ]);
    expect(res).toMatchObject({ recorded: 3, refused: [stale.id], retried: 0 });
    const { rows } = await pool.query(
      "SELECT id, queue, state, result, error, attempt_log FROM weft.tasks WHERE id = ANY($1) ORDER BY id",
      [[plain.id, valued.id, failed.id, stale.id]],
    );
    const byId = new Map(rows.map((r) => [r.id, r]));
    expect(byId.get(plain.id)).toMatchObject({ queue: "DELETED", state: "COMPLETED", result: null, error: null });
    expect(byId.get(plain.id)?.attempt_log).toBeNull();
    expect(byId.get(valued.id)).toMatchObject({ queue: "DELETED", state: "COMPLETED", result: { v: 2 } });
    expect(byId.get(failed.id)).toMatchObject({ queue: "DELETED", state: "FAILED", error: { message: "boom" } });
    expect(byId.get(failed.id)?.attempt_log).toHaveLength(1);
    expect(byId.get(stale.id)).toMatchObject({ queue: "READY", state: "RUNNING" });
  });

  it("refuses an outcome with a stale token and writes none of its children", async () => {
    const row = await assigned();
    // The task is re-planned: released and assigned again with a new token.
    await store.worker.release(pool, "N1", [row.id]);
    await store.planner.apply(pool, [{ id: row.id, queue: "READY", node: "N1", parkReason: null }], 0);
    const [fresh] = await store.worker.fetchByIds(pool, "N1", [row.id]);
    expect(fresh?.token).toBeGreaterThan(row.token);
    const child = newTask({ workflowId: row.workflow_id, parentId: row.id });
    const stale = await store.worker.complete(pool, [
      {
        id: row.id,
        workflowId: row.workflow_id,
        token: row.token,
        state: "COMPLETED",
        result: '"stale"',
        error: null,
        children: [child],
      },
    ]);
    expect(stale).toEqual({ recorded: 0, refused: [row.id], finishedWorkflows: 0, retried: 0, heldKeys: [] });
    expect(await store.read.task(pool, child.id)).toBeUndefined();
    const ok = await store.worker.complete(pool, [
      {
        id: row.id,
        workflowId: row.workflow_id,
        token: fresh?.token ?? 0,
        state: "COMPLETED",
        result: '"fresh"',
        error: null,
        children: [],
      },
    ]);
    expect(ok).toEqual({ recorded: 1, refused: [], finishedWorkflows: 1, retried: 0, heldKeys: [] });
    expect((await store.read.workflow(pool, row.workflow_id))?.status).toBe("COMPLETED");
    expect((await store.read.task(pool, row.id))?.result).toBe("fresh");
  });

  it("counts a failure on the workflow", async () => {
    const row = await assigned();
    const res = await store.worker.complete(pool, [
      {
        id: row.id,
        workflowId: row.workflow_id,
        token: row.token,
        state: "FAILED",
        result: null,
        error: '{"name":"Error","message":"x"}',
        children: [],
      },
    ]);
    expect(res.finishedWorkflows).toBe(1);
    expect(await store.read.workflow(pool, row.workflow_id)).toMatchObject({ status: "FAILED", failed_tasks: 1 });
  });

  it("returns the affinity keys of finished tasks, and whether their workflow finished with them", async () => {
    const key = { affinityGroup: "account", affinity: "7" };
    const root = newTask(key);
    const second = newTask({ ...key, workflowId: root.id });
    await store.schedule.insert(pool, [root, second], new Set([root.id]));
    await store.planner.apply(
      pool,
      [root, second].map((t) => ({ id: t.id, queue: "READY" as const, node: "N1", parkReason: null })),
      0,
    );
    const rows = await store.worker.fetchByIds(pool, "N1", [root.id, second.id]);
    const outcome = (id: string) => {
      const row = rows.find((r) => r.id === id);
      if (!row) throw new Error("not assigned");
      const done = { id, workflowId: root.id, token: row.token, state: "COMPLETED" as const };
      return { ...done, result: "null", error: null, children: [] };
    };
    const held = { affinity_group: "account", affinity: "7", workflow_id: root.id };
    // The workflow still has a task with the key: the release will have to look.
    expect((await store.worker.complete(pool, [outcome(root.id)])).heldKeys).toEqual([{ ...held, finished: false }]);
    // Its last task: the workflow finished, so it has none left (no need to look).
    expect((await store.worker.complete(pool, [outcome(second.id)])).heldKeys).toEqual([{ ...held, finished: true }]);
  });

  it("records a large mixed batch in one statement", async () => {
    const rows = await Promise.all(Array.from({ length: 300 }, () => assigned()));
    const res = await store.worker.complete(
      pool,
      rows.map((r, i) => ({
        id: r.id,
        workflowId: r.workflow_id,
        token: r.token,
        state: i % 3 === 0 ? "FAILED" : "COMPLETED",
        result: i % 3 === 0 ? null : JSON.stringify({ i, text: 'quote " and \\ backslash' }),
        error: i % 3 === 0 ? JSON.stringify({ name: "E", message: `m${i}` }) : null,
        children: [],
      })),
    );
    expect(res).toEqual({ recorded: 300, refused: [], finishedWorkflows: 300, retried: 0, heldKeys: [] });
    expect((await store.read.task(pool, rows[1]?.id ?? ""))?.result).toEqual({
      i: 1,
      text: 'quote " and \\ backslash',
    });
  });

  it("new tasks keep every field on the way in, scheduled or spawned as children (packed text)", async () => {
    // Everything the separators and the NULL convention could get wrong: keys
    // with separators, quotes, control characters and non-ASCII; an empty key;
    // inputs with the separator characters inside strings; a relative delay, a
    // time, a fork, a join.
    const odd = 'a,b;"q"\\ \x1e\x1f\n é';
    const input = JSON.stringify({ s: "x\x1ey\x1fz", n: null, list: [1, "2"] });
    const at = new Date(Date.now() + 3_600_000);
    const spec = (overrides: Partial<Parameters<typeof newTask>[0]>) =>
      newTask({ taskName: "packed-in", ...overrides });
    const scheduled = [
      spec({ input, priority: 7, affinityGroup: "g\x1f", affinity: odd }),
      spec({ affinityGroup: "g", affinity: "", runAfter: at }),
      spec({ input: "null", delayMs: 60_000, priority: -3 }),
    ];
    await store.schedule.insert(pool, scheduled, new Set(scheduled.map((r) => r.id)));
    const row = await assigned();
    const join = newTask({ taskName: "packed-in", workflowId: row.workflow_id, parentId: row.id, joinPending: 1 });
    const children = [
      newTask({
        taskName: "packed-in",
        workflowId: row.workflow_id,
        parentId: row.id,
        input,
        affinityGroup: "g",
        affinity: odd,
        ownJoins: [join.id],
      }),
      newTask({ taskName: "packed-in", workflowId: row.workflow_id, parentId: row.id, isFork: true, delayMs: 0 }),
      join,
    ];
    const res = await store.worker.complete(pool, [
      {
        id: row.id,
        workflowId: row.workflow_id,
        token: row.token,
        state: "COMPLETED",
        result: null,
        error: null,
        children,
        edges: [{ joinId: join.id, upstream: [children[0]?.id as string], parentId: row.id }],
      },
    ]);
    expect(res.recorded).toBe(1);
    const { rows } = await pool.query(
      `SELECT id, workflow_id, parent_id, input, priority, affinity_group, affinity, is_fork, join_pending, awaited_by,
              run_after IS NOT NULL AS has_run_after, extract(epoch FROM run_after - now())::float8 AS run_after_in,
              run_after = $2::timestamptz AS at_time
         FROM weft.tasks WHERE id = ANY($1::text[])`,
      [[...scheduled, ...children].map((r) => r.id), at],
    );
    const byId = new Map(rows.map((r) => [r.id, r]));
    const [s0, s1, s2] = scheduled.map((r) => byId.get(r.id));
    expect(s0).toMatchObject({ parent_id: null, input: JSON.parse(input), priority: 7, affinity_group: "g\x1f" });
    expect(s0?.affinity).toBe(odd);
    expect(s0).toMatchObject({ is_fork: false, join_pending: null, awaited_by: null, has_run_after: false });
    expect(s1).toMatchObject({ affinity_group: "g", affinity: "", at_time: true });
    expect(s2).toMatchObject({ input: null, priority: -3, affinity: null });
    expect(s2?.run_after_in).toBeGreaterThan(50);
    const [c0, c1, c2] = children.map((r) => byId.get(r.id));
    expect(c0).toMatchObject({
      workflow_id: row.workflow_id,
      parent_id: row.id,
      input: JSON.parse(input),
      affinity: odd,
    });
    expect(c0?.awaited_by).toEqual([join.id]);
    expect(c1).toMatchObject({ is_fork: true, has_run_after: true });
    expect(c1?.run_after_in).toBeLessThan(5);
    expect(c2).toMatchObject({ join_pending: 1, is_fork: false });
    const edges = await pool.query("SELECT upstream_task_id, position FROM weft.task_edges WHERE join_task_id = $1", [
      join.id,
    ]);
    expect(edges.rows).toEqual([{ upstream_task_id: children[0]?.id, position: 0 }]);
  });

  it("a batch of 2,000 outcomes of as many workflows holds at most 64 advisory locks", async () => {
    const tasks = Array.from({ length: 2_000 }, () => newTask({ taskName: "locks" }));
    await store.schedule.insert(pool, tasks, new Set(tasks.map((t) => t.id)));
    await store.planner.apply(
      pool,
      tasks.map((t) => ({ id: t.id, queue: "READY" as const, node: "N-locks", parkReason: null })),
      0,
    );
    const rows = await store.worker.fetch(pool, "N-locks", 0, 2_000);
    expect(rows).toHaveLength(2_000);
    const client = await pool.connect();
    try {
      await client.query("BEGIN");
      const result = await store.worker.complete(
        client,
        rows.map((r) => ({
          id: r.id,
          workflowId: r.workflow_id,
          token: r.token,
          state: "COMPLETED" as const,
          result: null,
          error: null,
          children: [],
        })),
      );
      expect(result.recorded).toBe(2_000);
      // Held until the commit: advisory locks share the server's lock table.
      const { rows: locks } = await client.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
      );
      expect(locks[0]?.n).toBeGreaterThan(0);
      expect(locks[0]?.n).toBeLessThanOrEqual(64);
      await client.query("COMMIT");
    } finally {
      client.release();
    }
  });

  it("packed candidates keep priorities, delays, keys of any text and their holders", async () => {
    const odd = 'a\u001fb\u001e"c\\d\u00e9';
    const plain = newTask({ taskName: "packed-c", priority: -7 });
    const delayed = newTask({ taskName: "packed-c", priority: 3 });
    const held = newTask({ taskName: "packed-c", affinityGroup: odd, affinity: "k\u001f1" });
    const free = newTask({ taskName: "packed-c", affinityGroup: "packed-free", affinity: "" });
    await store.schedule.insert(
      pool,
      [plain, delayed, held, free],
      new Set([plain, delayed, held, free].map((t) => t.id)),
    );
    await pool.query(
      "INSERT INTO weft.affinity_holders (affinity_group, affinity, workflow_id) VALUES ($1, $2, $3) ON CONFLICT (affinity_group, affinity) DO UPDATE SET workflow_id = EXCLUDED.workflow_id",
      [odd, "k\u001f1", held.id],
    );
    await pool.query("DELETE FROM weft.affinity_holders WHERE affinity_group = 'packed-free'");
    // A task back in NEW whose run_after is still ahead (the planner parks it).
    await pool.query("UPDATE weft.tasks SET run_after = now() + interval '1 hour' WHERE id = $1", [delayed.id]);
    const { candidates } = await store.planner.candidates(pool, new Map([["packed-c", 10]]));
    const byId = new Map(candidates.map((c) => [c.id, c]));
    expect(candidates).toHaveLength(4);
    expect(byId.get(plain.id)).toEqual({
      id: plain.id,
      task_name: "packed-c",
      priority: -7,
      delayed: false,
      workflow_id: plain.id,
      affinity_group: null,
      affinity: null,
      holder: null,
    });
    expect(byId.get(delayed.id)).toMatchObject({ priority: 3, delayed: true, affinity: null });
    expect(byId.get(held.id)).toMatchObject({ affinity_group: odd, affinity: "k\u001f1", holder: held.id });
    expect(byId.get(free.id)).toMatchObject({ affinity_group: "packed-free", affinity: "", holder: null });
    // Highest priority first, then oldest.
    expect(candidates[0]?.id).toBe(delayed.id);
    expect(candidates[3]?.id).toBe(plain.id);
  });

  it("packed reads give every task its own workflow, whether or not it is the workflow's root", async () => {
    // Task names of their own: the planner's candidates are read per name.
    const root = newTask({ taskName: "packed" });
    const child = newTask({ taskName: "packed", workflowId: root.id, parentId: root.id, input: '{"n":2}' });
    const keyed = newTask({ taskName: "packed-keyed", affinityGroup: "account", affinity: "9" });
    await store.schedule.insert(pool, [root, child, keyed], new Set([root.id, keyed.id]));
    const { candidates } = await store.planner.candidates(
      pool,
      new Map([
        ["packed", 10],
        ["packed-keyed", 10],
      ]),
    );
    const byId = new Map(candidates.map((c) => [c.id, c]));
    expect(byId.get(root.id)).toMatchObject({ workflow_id: root.id, affinity: null, holder: null });
    expect(byId.get(child.id)).toMatchObject({ workflow_id: root.id, affinity_group: null, affinity: null });
    // No holder yet (schedules claim keys; this insert did not).
    expect(byId.get(keyed.id)).toMatchObject({ workflow_id: keyed.id, affinity_group: "account", affinity: "9" });

    // A node of its own: the fetch reads what is assigned to it.
    await store.planner.apply(
      pool,
      [root, child].map((t) => ({ id: t.id, queue: "READY" as const, node: "N-packed", parkReason: null })),
      0,
    );
    // In token order, which the apply draws in no particular order of the two.
    const fetched = (await store.worker.fetch(pool, "N-packed", 0, 10)).sort((a) => (a.id === root.id ? -1 : 1));
    expect(fetched.map((r) => [r.id, r.workflow_id, r.parent_id, r.input])).toEqual([
      [root.id, root.id, null, {}],
      [child.id, root.id, root.id, { n: 2 }],
    ]);
  });
  it("a fetch gives the worker every field of its assignments as the rows hold them (packed text)", async () => {
    // Fields the separators and the empty-for-NULL convention could get wrong:
    // keys with separators, quotes, control characters and non-ASCII, an empty
    // key, separators inside input and saved-state strings, a child, a join.
    const odd = 'a,b;"q"\\ \x1e\x1f\n é';
    const input = JSON.stringify({ s: "x\x1ey\x1fz", n: null, list: [1, "2"] });
    const root = newTask({ taskName: "fetched", input, priority: -4, affinityGroup: "fetch\x1f", affinity: odd });
    const empty = newTask({ taskName: "fetched", input: "null", affinityGroup: "fetch", affinity: "" });
    const child = newTask({ taskName: "fetched", workflowId: root.id, parentId: root.id, input: '"\\u001f"' });
    const join = newTask({ taskName: "fetched", workflowId: root.id, parentId: root.id, joinPending: 0 });
    const tasks = [root, empty, child, join];
    await store.schedule.insert(pool, tasks, new Set([root.id, empty.id]));
    await pool.query(
      `UPDATE weft.tasks SET saved_state = $2::jsonb, queue = 'READY', park_reason = NULL WHERE id = $1`,
      [join.id, JSON.stringify({ cursor: "p\x1eq", done: [1] })],
    );
    await store.planner.apply(
      pool,
      tasks.map((t) => ({ id: t.id, queue: "READY" as const, node: "N-fetched", parkReason: null })),
      0,
    );
    const fetched = await store.worker.fetch(pool, "N-fetched", 0, 10);
    // The same rows read field by field, as the driver decodes them.
    const plain = await store.worker.fetchByIds(
      pool,
      "N-fetched",
      tasks.map((t) => t.id),
    );
    expect(fetched).toHaveLength(4);
    const byToken = [...plain].sort((a, b) => a.token - b.token);
    expect(fetched).toEqual(byToken.map((r) => ({ ...r })));
    const get = (id: string) => fetched.find((r) => r.id === id);
    expect(get(root.id)).toMatchObject({ affinity_group: "fetch\x1f", affinity: odd, priority: -4, parent_id: null });
    expect(get(root.id)?.input).toEqual(JSON.parse(input));
    expect(get(empty.id)).toMatchObject({ affinity: "", input: null, workflow_id: empty.id });
    expect(get(child.id)).toMatchObject({ workflow_id: root.id, parent_id: root.id, input: "\x1f", is_join: false });
    expect(get(join.id)).toMatchObject({ is_join: true, saved_state: { cursor: "p\x1eq", done: [1] } });
    // Only what is newer than the cursor.
    const last = fetched[fetched.length - 1]?.token as number;
    expect(await store.worker.fetch(pool, "N-fetched", last, 10)).toEqual([]);
    expect((await store.worker.fetch(pool, "N-fetched", 0, 2)).map((r) => r.id)).toEqual(
      fetched.slice(0, 2).map((r) => r.id),
    );
  });
});
