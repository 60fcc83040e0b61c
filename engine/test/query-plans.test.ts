import type pg from "pg";
// @ts-expect-error: pg ships no types for its utils; prepareValue is what the driver sends.
import { prepareValue } from "pg/lib/utils.js";
import { beforeAll, describe, expect, it } from "vitest";
import { freshDatabase, poolFor } from "../../test/support.js";
import { quoteSchema } from "../src/db/identifiers.js";
import { Store } from "../src/store/index.js";
import { channelOf } from "../src/store/notify.js";
import { applyParams, applySql, applyToOneNodeSql } from "../src/store/statements/apply.js";
import { candidatesParams, candidatesSql } from "../src/store/statements/candidates.js";
import { completeName, completeParams, completeSql } from "../src/store/statements/complete.js";
import { dueParams, dueSql } from "../src/store/statements/due.js";
import { fetchParams, fetchSql } from "../src/store/statements/fetch.js";
import { releaseKeysParams, releaseKeysSql } from "../src/store/statements/release-keys.js";
import { sweepParams, sweepSql } from "../src/store/statements/sweep.js";
import type { OutcomeRow, PlanDecision } from "../src/store/types.js";

/** Every node of an EXPLAIN (FORMAT JSON) tree. */
function nodesOf(plan: Record<string, unknown>): Record<string, unknown>[] {
  const children = (plan.Plans as Record<string, unknown>[] | undefined) ?? [];
  return [plan, ...children.flatMap(nodesOf)];
}

const S = quoteSchema("weft");
const CHANNEL = channelOf("weft");

/**
 * A store's statement text (private by design; the test reads it to explain
 * it): the statements that have no module in store/statements/.
 */
function sql(part: object, name: string): string {
  const value = (part as Record<string, unknown>)[name];
  const text = typeof value === "object" && value !== null ? (value as { text?: unknown }).text : value;
  if (typeof text !== "string") throw new Error(`no statement ${name}`);
  return text;
}

describe("hot-path queries stay index-driven on a large table", () => {
  const store = new Store("weft");
  let pool: pg.Pool;
  let sample: { new: string[]; ready: string[]; running: { id: string; workflowId: string; token: number }[] };

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
      running: (
        await pool.query<{ id: string; workflowId: string; token: number }>(
          `SELECT id, workflow_id AS "workflowId", token::float8 AS token FROM weft.tasks
            WHERE queue = 'READY' AND assigned_node = 'N1' ORDER BY id LIMIT 500`,
        )
      ).rows,
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
        candidatesSql(S),
        // Leaving out the tasks of an apply in flight.
        candidatesParams(
          new Map([
            ["task1", 500],
            ["task2", 500],
          ]),
          sample.new,
        ),
      ],
    ],
    [
      "planner: apply decisions",
      () => {
        const decisions: PlanDecision[] = [
          ...sample.new.map((id) => ({ id, queue: "READY" as const, node: "N1", parkReason: null })),
          ...sample.ready.map((id, i) => ({
            id,
            queue: "READY" as const,
            node: null,
            parkReason: null,
            ...(i < 2 ? { affinityKey: { group: "g1", affinity: `a${i + 1}` } } : {}),
          })),
        ];
        // The leader's own node, handed its assignments if it has fetched every earlier one.
        const plan = applyParams(decisions, 0, { task1: 60_000 }, { id: "N1", cursor: 226500 });
        if (plan.oneNode) throw new Error("expected the apply of mixed decisions");
        return [applySql(S, CHANNEL, false), plan.params];
      },
    ],
    [
      "planner: apply decisions that all go to one node",
      () => {
        const decisions = [...sample.new, ...sample.ready].map((id) => ({
          id,
          queue: "READY" as const,
          node: "N1",
          parkReason: null,
        }));
        const plan = applyParams(decisions, 0, { task1: 60_000 }, { id: "N1", cursor: 226500 });
        if (!plan.oneNode) throw new Error("expected the apply to one node");
        return [applyToOneNodeSql(S, CHANNEL, false), plan.params];
      },
    ],
    ["planner: dead-node and deadline sweep", () => [sweepSql(S, CHANNEL), sweepParams(15000, 0)]],
    ["planner: running tasks of limited names", () => [sql(store.planner, "runningByNameSql"), [["task1", "task2"]]]],
    ["affinity: keys left held (sweep)", () => [sql(store.affinity, "lockFinishedSql"), [0]]],
    ["affinity: claim of free keys", () => [sql(store.affinity, "claimSql"), [["g1", "g2"], ["a1", "a2"], 0]]],
    ["affinity: holders of candidates' keys", () => [sql(store.affinity, "holdersSql"), [["g1"], ["key1"]]]],
    [
      "affinity: keys of a cancelled workflow",
      () => [sql(store.affinity, "releaseWorkflowSql"), [`W${"200001".padStart(25, "0")}`, CHANNEL]],
    ],
    ["planner: due PARKED tasks", () => [dueSql(S), dueParams(1000, 0)]],
    ["worker: fetch assignments", () => [fetchSql(S, false), fetchParams("N1", 226500, 100)]],
    ["worker: list assignments", () => [sql(store.worker, "listAssignedSql"), ["N1"]]],
    [
      "worker: record outcomes",
      () => [
        completeSql(S, CHANNEL, false),
        // Half of these have a result; the others are plain successes (no details).
        completeParams(
          sample.running.map(
            (r, i): OutcomeRow => ({ ...r, state: "COMPLETED", result: i % 2 ? "1" : null, error: null, children: [] }),
          ),
        ),
      ],
    ],
    [
      "worker: record retries and dead letters",
      () => [
        completeSql(S, CHANNEL, false),
        // Final failures copied to the dead letters, then retries; the first 100 run slots.
        completeParams(
          sample.running.map(
            (r, i): OutcomeRow => ({
              ...r,
              state: "FAILED",
              result: null,
              error: '{"message":"x"}',
              children: [],
              deadLetter: true,
              slot: i < 100,
              ...(i >= 250 ? { retry: { delayMs: 100, maxIntervalMs: 1e6 } } : {}),
            }),
          ),
        ),
      ],
    ],
    ["cleaner: purge finished tasks", () => [sql(store.cleaner, "tasksSql"), [3600_000, 1000]]],
    // Solo workflows (no row): found through their root task's primary key.
    ["schedule: rows for solo workflows getting a task", () => [sql(store.schedule, "materializeSql"), [sample.ready]]],
    ["read: a workflow (its row, or its solo root task)", () => [sql(store.read, "workflowSql"), [sample.ready[0]]]],
    // The leader's check for tasks no node serves: a loose index scan, one probe per name.
    ["nodes: names waiting that no node serves", () => [sql(store.nodes, "unservedNamesSql"), [15000, 100]]],
    // The dashboard's chart: the tasks finished in the window, by tasks_deleted_idx.
    ["admin: tasks finished per second (throughput)", () => [sql(store.admin, "throughputSql"), [3600]]],
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
      releaseKeysSql(S),
      releaseKeysParams(
        [
          { affinity_group: "g1", affinity: "key1", workflow_id: workflow(1) },
          { affinity_group: "g2", affinity: "key2", workflow_id: workflow(2) },
        ],
        500,
        CHANNEL,
      ),
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

  it.each([false, true])(
    "admin: the throughput reads a range of tasks_deleted_idx (generic plan: %s)",
    async (generic) => {
      const text = sql(store.admin, "throughputSql");
      const nodes = generic ? await explainGeneric(text, [3600]) : await explain(text, [3600]);
      const scans = nodes.filter((n) => n["Relation Name"] === "tasks");
      expect(scans.map((n) => n["Index Name"])).toEqual(["tasks_deleted_idx"]);
      expect(String(scans[0]?.["Index Cond"])).toContain("finished_at >=");
    },
  );

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
      const name = client.escapeIdentifier(completeName("weft", false));
      await client.query(`PREPARE ${name} AS ${completeSql(S, CHANNEL, false)}`);
      // Plain successes of solo workflows (their id is the workflow's).
      const args = completeParams(
        running.map((r) => ({ ...r, workflowId: r.id, state: "COMPLETED", result: null, error: null, children: [] })),
      )
        .map((v) => {
          const value = prepareValue(v);
          return value === null ? "NULL" : client.escapeLiteral(String(value));
        })
        .join(", ");
      const { rows } = await client.query<{ "QUERY PLAN": { Plan: Record<string, unknown> }[] }>(
        `EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE ${name}(${args})`,
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
