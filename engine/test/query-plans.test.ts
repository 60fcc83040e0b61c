import type pg from "pg";
// @ts-expect-error: pg ships no types for its utils; prepareValue is what the driver sends.
import { prepareValue } from "pg/lib/utils.js";
import { beforeAll, describe, expect, it } from "vitest";
import { freshDatabase, poolFor } from "../../test/support.js";
import { Store } from "../src/store/index.js";

/** Every node of an EXPLAIN (FORMAT JSON) tree. */
function nodesOf(plan: Record<string, unknown>): Record<string, unknown>[] {
  const children = (plan.Plans as Record<string, unknown>[] | undefined) ?? [];
  return [plan, ...children.flatMap(nodesOf)];
}

/** SQL text of a store's statement (private by design; the test reads it to explain it). */
/** A store's statement text: hot ones are Statement objects, the others strings. */
function sql(part: object, name: string): string {
  const value = (part as Record<string, unknown>)[name];
  const text = typeof value === "object" && value !== null ? (value as { text?: unknown }).text : value;
  if (typeof text !== "string") throw new Error(`no statement ${name}`);
  return text;
}

describe("hot-path queries stay index-driven on a large table", () => {
  const store = new Store("weft");
  let pool: pg.Pool;
  let sample: { new: string[]; ready: string[]; running: string[] };

  beforeAll(async () => {
    pool = poolFor(await freshDatabase());
    // 200,000 finished tasks (the retention window), a backlog of 20,000 READY,
    // 5,000 NEW, 1,000 PARKED and 1,000 running on node N1.
    await pool.query(`
      INSERT INTO weft.workflows (id, status, pending_tasks, total_tasks, finished_at)
      SELECT 'W' || lpad(i::text, 25, '0'), CASE WHEN i <= 200000 THEN 'COMPLETED' ELSE 'RUNNING' END, 0, 1,
             CASE WHEN i <= 200000 THEN now() END
        FROM generate_series(1, 227000) i;
      INSERT INTO weft.tasks (id, workflow_id, task_name, queue, state, finished_at, assigned_node, token, run_after, park_reason, attempt)
      SELECT 'T' || lpad(i::text, 25, '0'), 'W' || lpad(i::text, 25, '0'), 'task' || (i % 7),
             CASE WHEN i <= 200000 THEN 'DELETED' WHEN i <= 220000 THEN 'READY' WHEN i <= 225000 THEN 'NEW'
                  WHEN i <= 226000 THEN 'PARKED' ELSE 'READY' END,
             CASE WHEN i <= 200000 THEN 'COMPLETED' WHEN i > 226000 THEN 'RUNNING' ELSE 'PENDING' END,
             CASE WHEN i <= 200000 THEN now() - interval '1 day' END,
             CASE WHEN i <= 200000 OR i > 226000 THEN 'N1' END,
             CASE WHEN i <= 200000 OR i > 226000 THEN i END,
             CASE WHEN i > 225000 AND i <= 226000 THEN now() + interval '1 hour' END,
             CASE WHEN i > 225000 AND i <= 226000 THEN 'RUN_AFTER' END,
             1
        FROM generate_series(1, 227000) i;
      INSERT INTO weft.nodes (id, app_name, host, pid, capacity, task_names)
      VALUES ('N1', 'a', 'h', 1, 2000, ARRAY['task0','task1','task2','task3','task4','task5','task6']);
      -- 50,000 affinity keys held.
      INSERT INTO weft.affinity_holders (affinity_group, affinity, workflow_id)
      SELECT 'g' || (i % 5), 'key' || i, 'W' || lpad((200000 + i % 27000)::text, 25, '0')
        FROM generate_series(1, 50000) i;
      ANALYZE weft.tasks; ANALYZE weft.workflows; ANALYZE weft.nodes; ANALYZE weft.affinity_holders;
    `);
    const ids = async (where: string) =>
      (await pool.query<{ id: string }>(`SELECT id FROM weft.tasks WHERE ${where} ORDER BY id LIMIT 500`)).rows.map(
        (r) => r.id,
      );
    sample = {
      new: await ids("queue = 'NEW'"),
      ready: await ids("queue = 'READY' AND assigned_node IS NULL"),
      running: await ids("queue = 'READY' AND assigned_node = 'N1'"),
    };
  });

  async function explain(text: string, values: unknown[]): Promise<Record<string, unknown>[]> {
    // Inside a transaction that is rolled back: EXPLAIN ANALYZE is not used, but
    // data-modifying statements are explained without running them.
    const { rows } = await pool.query<{ "QUERY PLAN": { Plan: Record<string, unknown> }[] }>(
      `EXPLAIN (FORMAT JSON) ${text}`,
      values,
    );
    const plan = rows[0]?.["QUERY PLAN"][0]?.Plan;
    if (!plan) throw new Error("no plan");
    return nodesOf(plan);
  }

  /**
   * The generic plan (the hot path runs with plan_cache_mode =
   * force_generic_plan, see Engine): one prepared without parameter values.
   */
  async function explainGeneric(text: string, values: unknown[]): Promise<Record<string, unknown>[]> {
    const client = await pool.connect();
    try {
      await client.query("SET plan_cache_mode = force_generic_plan");
      await client.query(`PREPARE weft_generic AS ${text}`);
      // EXECUTE takes no bind parameters: the values go in as literals, in pg's text form.
      const args = values
        .map((v) => {
          const text = prepareValue(v);
          return text === null ? "NULL" : client.escapeLiteral(String(text));
        })
        .join(", ");
      const { rows } = await client.query<{ "QUERY PLAN": { Plan: Record<string, unknown> }[] }>(
        `EXPLAIN (FORMAT JSON) EXECUTE weft_generic(${args})`,
      );
      const plan = rows[0]?.["QUERY PLAN"][0]?.Plan;
      if (!plan) throw new Error("no plan");
      return nodesOf(plan);
    } finally {
      await client.query("DEALLOCATE ALL; RESET plan_cache_mode");
      client.release();
    }
  }

  const seqScansOnTasks = (nodes: Record<string, unknown>[]) =>
    nodes.filter((n) => n["Node Type"] === "Seq Scan" && n["Relation Name"] === "tasks");
  const seqScansOnHolders = (nodes: Record<string, unknown>[]) =>
    nodes.filter((n) => n["Node Type"] === "Seq Scan" && n["Relation Name"] === "affinity_holders");

  it.each([
    ["planner: live nodes and their load", () => [sql(store.planner, "nodesSql"), [15000]]],
    [
      "planner: candidates per task name",
      () => [
        sql(store.planner, "candidatesSql"),
        [
          ["task1", "task2"],
          [500, 500],
          // Leaving out the tasks of an apply in flight.
          JSON.stringify(Object.fromEntries(sample.new.map((id) => [id, 0]))),
        ],
      ],
    ],
    [
      "planner: apply decisions",
      () => [
        sql(store.planner, "applySql"),
        [
          [...sample.new, ...sample.ready].join(","),
          JSON.stringify(Object.fromEntries(sample.new.map((id) => [id, "N1"]))),
          "{}",
          JSON.stringify({ task1: 60_000 }),
          0,
          ["g1"],
          ["a1", "a2"],
          // The leader's own node, handed its assignments if it has fetched every earlier one.
          "N1",
          226500,
        ],
      ],
    ],
    [
      "planner: apply decisions that all go to one node",
      () => [
        sql(store.planner, "applyToOneNodeSql"),
        [[...sample.new, ...sample.ready].join(","), "N1", JSON.stringify({ task1: 60_000 }), 0, "N1", 226500],
      ],
    ],
    ["planner: dead-node and deadline sweep", () => [sql(store.planner, "sweepSql"), [15000, 0]]],
    ["planner: running tasks of limited names", () => [sql(store.planner, "runningByNameSql"), [["task1", "task2"]]]],
    ["affinity: keys left held (sweep)", () => [sql(store.affinity, "lockFinishedSql"), [0]]],
    ["affinity: claim of free keys", () => [sql(store.affinity, "claimSql"), [["g1", "g2"], ["a1", "a2"], 0]]],
    ["affinity: holders of candidates' keys", () => [sql(store.affinity, "holdersSql"), [["g1"], ["key1"]]]],
    [
      "affinity: keys of a cancelled workflow",
      () => [sql(store.affinity, "releaseWorkflowSql"), [`W${"200001".padStart(25, "0")}`, "weft:weft"]],
    ],
    ["planner: due PARKED tasks", () => [sql(store.planner, "dueSql"), [1000, 0]]],
    ["worker: fetch assignments", () => [sql(store.worker, "fetchSql"), ["N1", 226500, 100]]],
    ["worker: list assignments", () => [sql(store.worker, "listAssignedSql"), ["N1"]]],
    [
      "worker: record outcomes",
      () => [
        sql(store.worker, "completeSql"),
        [
          sample.running.join(","),
          // Plain successes have no details; half of these have a result.
          JSON.stringify(
            Object.fromEntries(sample.running.slice(0, 500).map((id) => [id, { s: "COMPLETED", r: 1, e: null }])),
          ),
          // No children (a JSON array), new joins, joins' edges (a JSON array), lock buckets (comma-separated),
          // messages (3 columns), retries, slots, parents of children; then the tokens.
          "[]",
          [],
          "[]",
          "",
          ...Array.from({ length: 6 }, () => []),
          JSON.stringify(Object.fromEntries(sample.running.map((id, i) => [id, i]))),
        ],
      ],
    ],
    [
      "worker: record retries and dead letters",
      () => [
        sql(store.worker, "completeSql"),
        [
          sample.running.slice(0, 250).join(","),
          JSON.stringify(
            Object.fromEntries(
              sample.running.map((id) => [id, { s: "FAILED", r: null, e: { message: "x" }, d: 100, w: 1e6, l: "1" }]),
            ),
          ),
          "[]",
          [],
          "[]",
          "",
          ...Array.from({ length: 3 }, () => []),
          sample.running.slice(250),
          sample.running.slice(0, 100),
          [],
          JSON.stringify(Object.fromEntries(sample.running.map((id, i) => [id, i]))),
        ],
      ],
    ],
    ["cleaner: purge finished tasks", () => [sql(store.cleaner, "tasksSql"), [3600_000, 1000]]],
    // Solo workflows (no row): found through their root task's primary key.
    ["schedule: rows for solo workflows getting a task", () => [sql(store.schedule, "materializeSql"), [sample.ready]]],
    ["read: a workflow (its row, or its solo root task)", () => [sql(store.read, "workflowSql"), [sample.ready[0]]]],
    // The leader's check for tasks no node serves: a loose index scan, one probe per name.
    ["nodes: names waiting that no node serves", () => [sql(store.nodes, "unservedNamesSql"), [15000, 100]]],
  ] as const)("%s", async (name, statement) => {
    const [text, values] = statement() as unknown as readonly [string, unknown[]];
    const nodes = await explain(text, values);
    expect(seqScansOnTasks(nodes)).toEqual([]);
    // The sweep's safety net reads every holder by design.
    const holdersByKey = !name.includes("(sweep)");
    if (holdersByKey) expect(seqScansOnHolders(nodes)).toEqual([]);
    // The cleaner runs on the shared pool, with PostgreSQL's default plan choice.
    if (!name.startsWith("cleaner")) {
      const generic = await explainGeneric(text, values);
      expect(seqScansOnTasks(generic)).toEqual([]);
      if (holdersByKey) expect(seqScansOnHolders(generic)).toEqual([]);
    }
  });

  /**
   * Plans of every statement \`text\` runs, the ones inside PL/pgSQL functions
   * included, as auto_explain logs them (sent to this client as LOG notices).
   * Run in a transaction that is rolled back, on a connection discarded after
   * (PL/pgSQL keeps its plans per connection).
   */
  async function explainNested(text: string, values: unknown[], generic: boolean) {
    const client = await pool.connect();
    const plans: Record<string, unknown>[][] = [];
    const onNotice = (notice: { message?: string }) => {
      const message = notice.message ?? "";
      const json = message.indexOf("{");
      if (message.startsWith("duration") && json >= 0) {
        plans.push(nodesOf((JSON.parse(message.slice(json)) as { Plan: Record<string, unknown> }).Plan));
      }
    };
    client.on("notice", onNotice);
    try {
      await client.query("BEGIN");
      await client.query("LOAD 'auto_explain'");
      await client.query(`SET LOCAL auto_explain.log_min_duration = 0; SET LOCAL auto_explain.log_nested_statements = on;
        SET LOCAL auto_explain.log_format = json; SET LOCAL client_min_messages = log`);
      if (generic) await client.query("SET LOCAL plan_cache_mode = force_generic_plan");
      await client.query(text, values);
    } finally {
      await client.query("ROLLBACK");
      client.off("notice", onNotice);
      client.release(true);
    }
    return plans;
  }

  it.each([false, true])("affinity: release_affinity_keys stays index-driven (generic plans: %s)", async (generic) => {
    const workflow = (i: number) => `W${String(200000 + i).padStart(25, "0")}`;
    // Keys held by these workflows (see the setup): the lock finds them, so the release runs too.
    const plans = await explainNested(
      sql(store.affinity, "releaseSql"),
      [["g1", "g2"], ["key1", "key2"], [workflow(1), workflow(2)], [false, false], 500, "weft:weft"],
      generic,
    );
    const relations = new Set(plans.flat().map((n) => n["Relation Name"]));
    // The lock and the release statement were both explained.
    expect(relations).toContain("tasks");
    expect(plans.filter((p) => p.some((n) => n["Node Type"] === "LockRows")).length).toBeGreaterThan(0);
    for (const nodes of plans) {
      expect(seqScansOnTasks(nodes)).toEqual([]);
      expect(seqScansOnHolders(nodes)).toEqual([]);
    }
  });

  it("canary: the check does see a sequential scan", async () => {
    const nodes = await explain("SELECT id FROM weft.tasks WHERE input = $1", ["{}"]);
    expect(seqScansOnTasks(nodes)).toHaveLength(1);
    const generic = await explainGeneric("SELECT id FROM weft.tasks WHERE input = $1::jsonb", ["{}"]);
    expect(seqScansOnTasks(generic)).toHaveLength(1);
  });
});

/** Every node of an EXPLAIN ANALYZE tree that actually ran (loops > 0). */
function executedNodes(plan: Record<string, unknown>): Record<string, unknown>[] {
  const children = (plan.Plans as Record<string, unknown>[] | undefined) ?? [];
  const own = ((plan["Actual Loops"] as number | undefined) ?? 0) > 0 ? [plan] : [];
  return [...own, ...children.flatMap(executedNodes)];
}

describe("a completion batch reads only its own tasks", () => {
  const store = new Store("weft");
  let pool: pg.Pool;
  let running: { id: string; token: number }[];

  beforeAll(async () => {
    pool = poolFor(await freshDatabase());
    // A table the size of a busy minute, planned while every task was NEW, and
    // no join waiting (nothing PARKED): where a generic plan had looked for the
    // recipients of join messages with a sequential scan that ran on every
    // batch, messages or not (2 ms of each batch in the bench).
    await pool.query(`
      INSERT INTO weft.tasks (id, workflow_id, task_name, solo)
      SELECT 'T' || lpad(i::text, 25, '0'), 'T' || lpad(i::text, 25, '0'), 'noop', true
        FROM generate_series(1, 20000) i;
      ANALYZE weft.tasks;
      UPDATE weft.tasks SET queue = 'READY', state = 'RUNNING', assigned_node = 'N1', token = 1, attempt = 1
       WHERE id <= 'T' || lpad('5000', 25, '0');
    `);
    running = (
      await pool.query<{ id: string; token: number }>(
        "SELECT id, token::float8 AS token FROM weft.tasks WHERE queue = 'READY' ORDER BY id LIMIT 1000",
      )
    ).rows;
  });

  it.each([false, true])("executes no sequential scan of the task table (generic plan: %s)", async (generic) => {
    const client = await pool.connect();
    try {
      await client.query("BEGIN");
      if (generic) await client.query("SET LOCAL plan_cache_mode = force_generic_plan");
      // The plan a generic plan had once chosen for the recipients of join
      // messages (a hash join on a scan of the task table), made certain here:
      // the guard has to keep even that plan from running.
      await client.query("SET LOCAL enable_nestloop = off");
      // A prepared statement, as the worker runs it (generic once forced).
      const text = sql(store.worker, "completeSql");
      await client.query(`PREPARE weft_complete AS ${text}`);
      const args = [
        running.map((r) => r.id).join(","),
        "{}",
        "[]",
        [],
        "[]",
        "",
        [],
        [],
        [],
        [],
        [],
        [],
        running.map((r) => r.token).join(","),
      ]
        .map((v) => {
          const value = prepareValue(v);
          return value === null ? "NULL" : client.escapeLiteral(String(value));
        })
        .join(", ");
      const { rows } = await client.query<{ "QUERY PLAN": { Plan: Record<string, unknown> }[] }>(
        `EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE weft_complete(${args})`,
      );
      const plan = rows[0]?.["QUERY PLAN"][0]?.Plan;
      if (!plan) throw new Error("no plan");
      const ran = executedNodes(plan);
      // The batch was recorded (the statement did its work) ...
      expect(ran.some((n) => n["Node Type"] === "ModifyTable" && n["Actual Rows"] === 1000)).toBe(true);
      // ... without reading the table beyond its own rows.
      expect(ran.filter((n) => n["Node Type"] === "Seq Scan" && n["Relation Name"] === "tasks")).toEqual([]);
    } finally {
      await client.query("ROLLBACK");
      client.release(true);
    }
  });
});
