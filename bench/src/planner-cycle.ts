// Planner cycle under a backlog: fills a fresh database with a large backlog of
// waiting tasks (NEW, READY, PARKED) plus finished history with generate_series,
// then times the planner's `cycle()` with three live nodes that have free
// capacity in every cycle, and EXPLAINs the planner's statements to show that
// none of them scans the tasks table. See docs/benchmarks.md.
//
//   node --import tsx bench/src/planner-cycle.ts [--backlog 1000,1000000] [--cycles 20] [--json]
//   node --import tsx bench/src/planner-cycle.ts --once    (one cycle on 1,000 tasks: a smoke run, as CI does)
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { createLogger, migrate, parseConfig, type Queryable, Store } from "@weft/engine";
import { createDatabase, dropDatabase, startDatabase, type TestDatabase } from "@weft/engine/testing";
import Table from "cli-table3";
import pg from "pg";
// Not part of @weft/engine's entry: the bench drives the planner directly, as
// engine/test/planner-cycle.test.ts does.
// The statements come from their builders, so that the texts and parameters
// explained and timed here are the ones the planner sends.
import { plannerConfigSchema } from "../../engine/src/config.js";
import { quoteSchema } from "../../engine/src/db/identifiers.js";
import { Planner } from "../../engine/src/planner/cycle.js";
import { channelOf } from "../../engine/src/store/notify.js";
import { decodeCandidates } from "../../engine/src/store/packed.js";
import { applyParams, applySql, applyToOneNodeSql } from "../../engine/src/store/statements/apply.js";
import { candidatesParams, candidatesSql } from "../../engine/src/store/statements/candidates.js";
import { dueParams, dueSql } from "../../engine/src/store/statements/due.js";
import {
  liveNodesParams,
  liveNodesSql,
  runningByNameParams,
  runningByNameSql,
} from "../../engine/src/store/statements/live-nodes.js";
import { sweepParams, sweepSql } from "../../engine/src/store/statements/sweep.js";
import { int, UsageError } from "./cli.js";
import { median } from "./report.js";

export const USAGE = `Usage: node --import tsx bench/src/planner-cycle.ts [options]

Times one planner cycle under a large backlog. For each backlog size: a fresh
database (DATABASE_URL's server, or an embedded PostgreSQL started for the run)
is filled with generate_series: the backlog (60% NEW, 20% READY unassigned, 20%
PARKED: RUN_AFTER in the future or JOIN waiting; 20 task names, many priorities,
affinity keys on half) and finished history (queue DELETED, 20% of the backlog),
then VACUUM ANALYZE. Three live nodes of capacity 100 (--capacity) run every
name, one name limited to 50 in the cluster. Each cycle fills their free slots;
between cycles (untimed) the assigned tasks are marked finished, as many new NEW
tasks arrive (the backlog keeps its size) and the heartbeats are renewed.
Reports median and p95 cycle time, tasks placed per cycle, each statement's
median time and rows, and the EXPLAIN of the planner's statements (any Seq Scan
on tasks is listed).

Options:
  --backlog N[,N...]   waiting tasks per database (default: 1000,1000000)
  --cycles N           planner cycles timed per backlog (default: 20)
  --once               one cycle on a backlog of 1,000 (unless --backlog or
                       --cycles say otherwise): a quick check that it runs
  --capacity N         slots per node, 3 nodes (default: 100)
  --explain-analyze    after the cycles, print EXPLAIN (ANALYZE, BUFFERS) of the
                       candidates and apply statements (run in a transaction
                       that is rolled back) to stderr
  --keep               keep the databases (their names are printed) instead of
                       dropping them; useful with DATABASE_URL only (an embedded
                       server is removed at the end)
  --json               one JSON object per backlog size on stdout
  -h, --help           show this help`;

interface Options {
  readonly backlogs: readonly number[];
  readonly cycles: number;
  readonly capacity: number;
  readonly keep: boolean;
  readonly explainAnalyze: boolean;
  readonly json: boolean;
  readonly help: boolean;
}

function parseOptions(argv: readonly string[]): Options {
  let values: ReturnType<typeof parse>["values"];
  try {
    values = parse(argv).values;
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const once = values.once ?? false;
  const backlogs = (values.backlog ?? (once ? "1000" : "1000,1000000"))
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map((s) => int("backlog", s, 100, 20_000_000));
  if (backlogs.length === 0) throw new UsageError("--backlog: expected a comma-separated list of task counts");
  return {
    backlogs: [...new Set(backlogs)],
    cycles: int("cycles", values.cycles ?? (once ? "1" : "20"), 1, 10_000),
    capacity: int("capacity", values.capacity ?? "100", 1, 100_000),
    keep: values.keep ?? false,
    explainAnalyze: values["explain-analyze"] ?? false,
    json: values.json ?? false,
    help: values.help ?? false,
  };
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      backlog: { type: "string" },
      cycles: { type: "string" },
      once: { type: "boolean" },
      capacity: { type: "string" },
      keep: { type: "boolean" },
      "explain-analyze": { type: "boolean" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
}

const SCHEMA = "weft";
const TASK_NAMES = Array.from({ length: 20 }, (_, i) => `task${String(i).padStart(2, "0")}`);
const NODE_IDS = ["N1", "N2", "N3"];
/** The planner's statements, by name. */
const STATEMENTS = ["sweep", "due", "nodes", "runningByName", "candidates", "apply", "applyToOneNode"] as const;
type StatementName = (typeof STATEMENTS)[number];

/** The figures for one backlog size. */
export interface CycleSummary {
  /** Waiting tasks (NEW, READY unassigned, PARKED). */
  readonly backlog: number;
  /** Finished tasks (queue DELETED) in the table besides the backlog. */
  readonly history: number;
  /** Rows in weft.tasks after the fill. */
  readonly rows: number;
  readonly fillSeconds: number;
  /** Size of weft.tasks (heap and TOAST) and of all its indexes after the fill, MiB. */
  readonly tasksTableMb: number;
  readonly tasksIndexesMb: number;
  readonly cycles: number;
  readonly medianMs: number;
  readonly p95Ms: number;
  readonly firstMs: number;
  readonly maxMs: number;
  /** Tasks assigned to a node per cycle (median). */
  readonly assignedPerCycle: number;
  /** Tasks the cycle moved (assigned, parked or released from PARKED), as `cycle()` returns (median). */
  readonly movedPerCycle: number;
  readonly cycleMs: number[];
  /** Median time of each planner statement over the cycles that ran it, ms. */
  readonly statementMedianMs: Readonly<Record<string, number>>;
  /** Median rows each statement returned or changed (candidates: rows read for the decisions). */
  readonly statementMedianRows: Readonly<Record<string, number>>;
  /** Median time of a cycle outside its statements (deciding, in this process), ms. */
  readonly outsideStatementsMs: number;
  /** Indexes on tasks each statement's plan uses (EXPLAIN, before the cycles). */
  readonly indexesUsed: Readonly<Record<string, string[]>>;
  /** Statements whose plan has a Seq Scan on tasks; empty when none has. */
  readonly seqScansOnTasks: string[];
  readonly postgres: string;
  /** With --explain-analyze: EXPLAIN (ANALYZE, BUFFERS) of candidates and apply after the cycles. */
  readonly explainAnalyze?: Readonly<Record<string, string>>;
}

const log = (line: string) => process.stderr.write(`${line}\n`);

function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) throw new Error("quantile of nothing");
  const sorted = [...values].sort((a, b) => a - b);
  // Nearest rank.
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;

const S = quoteSchema(SCHEMA);
const CHANNEL = channelOf(SCHEMA);

/** The SQL text of a planner statement, as the Store builds it (untraced). */
function statementSql(name: StatementName): string {
  switch (name) {
    case "sweep":
      return sweepSql(S, CHANNEL);
    case "due":
      return dueSql(S);
    case "candidates":
      return candidatesSql(S);
    case "apply":
      return applySql(S, CHANNEL, false);
    case "applyToOneNode":
      return applyToOneNodeSql(S, CHANNEL, false);
    case "nodes":
      return liveNodesSql(S);
    case "runningByName":
      return runningByNameSql(S);
  }
}

/** The parameters of an apply of \`ids\` spread over the nodes (epoch 0, no timeouts, no affinity parks). */
function spreadApplyParams(ids: readonly string[]): unknown[] {
  const plan = applyParams(
    ids.map((id, i) => ({
      id,
      queue: "READY" as const,
      node: NODE_IDS[i % NODE_IDS.length] as string,
      parkReason: null,
    })),
    0,
  );
  if (plan.oneNode) throw new Error("expected decisions for several nodes");
  return plan.params;
}

/** The parameters of an apply of \`ids\` to one node. */
function oneNodeApplyParams(ids: readonly string[]): unknown[] {
  const plan = applyParams(
    ids.map((id) => ({ id, queue: "READY" as const, node: NODE_IDS[0] as string, parkReason: null })),
    0,
  );
  if (!plan.oneNode) throw new Error("expected decisions for one node");
  return plan.params;
}

/** The candidates' parameters: every name, up to \`free\` each. */
function candidateParams(free: number): unknown[] {
  return candidatesParams(new Map(TASK_NAMES.map((name) => [name, free])));
}

/**
 * Fills the tasks and workflows tables. Ids sort like ULIDs ('T' and 25 digits),
 * history first (older). Tasks come in workflows of four: the first is the root
 * (workflow_id = id), the other three its children. The kind of each backlog
 * task, its name, priority and affinity are drawn from hashes of its number,
 * so the kinds are interleaved in id order and the fill is repeatable.
 */
async function fill(client: pg.Client, backlog: number): Promise<{ history: number; rows: number }> {
  // A multiple of 4, so that no workflow has both finished and waiting tasks.
  const history = 4 * Math.round((backlog * 0.2) / 4);
  const total = history + backlog;
  const id = (v: string) => `'T' || lpad((${v})::text, 25, '0')`;
  await client.query("SET maintenance_work_mem = '512MB'");
  await client.query(
    `INSERT INTO weft.workflows (id, status, root_task_id, pending_tasks, total_tasks, created_at, finished_at)
     SELECT ${id("g")}, CASE WHEN g <= ${history} THEN 'COMPLETED' ELSE 'RUNNING' END, ${id("g")},
            CASE WHEN g <= ${history} THEN 0 ELSE least(4, ${total} - g + 1) END, least(4, ${total} - g + 1),
            now() - (${total} - g) * interval '10 ms',
            CASE WHEN g <= ${history} THEN now() - (${total} - g) * interval '10 ms' + interval '1 s' END
       FROM generate_series(1, ${total}, 4) g`,
  );
  // k: kind of a backlog task, 0..99: <60 NEW, <80 READY, <95 PARKED RUN_AFTER, else PARKED JOIN.
  // u: 0..1, skews the task names (task00 the most common, ~22%; task19 ~2.5%).
  // h: a hash for priority, affinity, delays and counters.
  await client.query(
    `INSERT INTO weft.tasks (id, workflow_id, parent_id, task_name, queue, state, park_reason, input, result,
                             attempt, priority, run_after, affinity_group, affinity, assigned_node, token,
                             created_at, assigned_at, finished_at, join_pending)
     SELECT ${id("i")}, ${id("g")}, CASE WHEN i <> g THEN ${id("g")} END,
            'task' || lpad(floor(20 * u * u)::int::text, 2, '0'),
            CASE WHEN i <= ${history} THEN 'DELETED' WHEN k < 60 THEN 'NEW' WHEN k < 80 THEN 'READY' ELSE 'PARKED' END,
            CASE WHEN i <= ${history} THEN 'COMPLETED' ELSE 'PENDING' END,
            CASE WHEN i <= ${history} OR k < 80 THEN NULL WHEN k < 95 THEN 'RUN_AFTER' ELSE 'JOIN' END,
            jsonb_build_object('item', i),
            CASE WHEN i <= ${history} THEN '{"ok": true}'::jsonb END,
            CASE WHEN i <= ${history} THEN 1 WHEN k >= 60 AND k < 80 THEN h % 2 ELSE 0 END,
            CASE WHEN h % 2 = 0 THEN 0 ELSE (h / 2) % 50 - 20 END,
            CASE WHEN i > ${history} AND k >= 80 AND k < 95 THEN now() + (1 + h % 10000) * interval '1 minute'
                 -- 1% of NEW tasks were scheduled with a delay and not yet planned.
                 WHEN i > ${history} AND k < 60 AND h % 100 = 7 THEN now() + (1 + h % 600) * interval '1 minute' END,
            CASE WHEN (h / 7) % 2 = 0 THEN 'group' || (h % 40) END,
            CASE WHEN (h / 7) % 2 = 0 THEN 'key' || ((h / 40) % greatest(1, ${total} / 4)) END,
            CASE WHEN i <= ${history} THEN 'OLD' || (i % 5) END,
            CASE WHEN i <= ${history} THEN i END,
            now() - (${total} - i) * interval '10 ms',
            CASE WHEN i <= ${history} THEN now() - (${total} - i) * interval '10 ms' + interval '100 ms' END,
            CASE WHEN i <= ${history} THEN now() - (${total} - i) * interval '10 ms' + interval '1 s' END,
            CASE WHEN i > ${history} AND k >= 95 THEN 1 + h % 50 END
       FROM generate_series(1, ${total}) i,
            LATERAL (SELECT i - (i - 1) % 4 AS g,
                            (hashint4(i) & 2147483647) % 100 AS k,
                            ((hashint4extended(i, 1) & 2147483647) % 1000000) / 1000000.0 AS u,
                            (hashint4extended(i, 2) & 2147483647) AS h) x`,
  );
  await client.query("VACUUM (ANALYZE) weft.tasks");
  await client.query("VACUUM (ANALYZE) weft.workflows");
  return { history, rows: total };
}

/**
 * New arrivals, untimed, between two cycles: as many NEW tasks as the last
 * cycle assigned, each its own workflow, with ids after all others. This keeps
 * the backlog at its size, so every cycle has a full backlog to choose from.
 */
async function arrive(client: pg.Client, first: number, count: number): Promise<void> {
  if (count === 0) return;
  const last = first + count - 1;
  const id = `'T' || lpad(i::text, 25, '0')`;
  await client.query(
    `WITH w AS (
       INSERT INTO weft.workflows (id, status, root_task_id, pending_tasks, total_tasks)
       SELECT ${id}, 'RUNNING', ${id}, 1, 1 FROM generate_series(${first}, ${last}) i
     )
     INSERT INTO weft.tasks (id, workflow_id, task_name, input, priority, affinity_group, affinity)
     SELECT ${id}, ${id}, 'task' || lpad(floor(20 * u * u)::int::text, 2, '0'), jsonb_build_object('item', i),
            CASE WHEN h % 2 = 0 THEN 0 ELSE (h / 2) % 50 - 20 END,
            CASE WHEN (h / 7) % 2 = 0 THEN 'group' || (h % 40) END,
            CASE WHEN (h / 7) % 2 = 0 THEN 'key' || ((h / 40) % ${Math.max(1, Math.floor(first / 4))}) END
       FROM generate_series(${first}, ${last}) i,
            LATERAL (SELECT ((hashint4extended(i, 1) & 2147483647) % 1000000) / 1000000.0 AS u,
                            (hashint4extended(i, 2) & 2147483647) AS h) x`,
  );
}

async function registerNodes(client: pg.Client, capacity: number): Promise<void> {
  for (const [i, nodeId] of NODE_IDS.entries()) {
    await client.query(
      `INSERT INTO weft.nodes (id, app_name, host, pid, capacity, task_names, task_limits)
       VALUES ($1, 'bench', 'localhost', $2, $3, $4, $5)`,
      // One name is limited cluster-wide, so that the cycle also runs runningByName.
      [nodeId, 1000 + i, capacity, TASK_NAMES, JSON.stringify({ task05: 50 })],
    );
  }
  await client.query("ANALYZE weft.nodes");
}

/** Every node of an EXPLAIN (FORMAT JSON) tree. */
function planNodes(plan: Record<string, unknown>): Record<string, unknown>[] {
  const children = (plan.Plans as Record<string, unknown>[] | undefined) ?? [];
  return [plan, ...children.flatMap(planNodes)];
}

/** EXPLAIN (no ANALYZE: nothing runs) of each planner statement with the parameters a cycle would pass. */
async function explainAll(
  client: pg.Client,
  capacity: number,
): Promise<{ indexesUsed: Record<string, string[]>; seqScans: string[] }> {
  const free = capacity * NODE_IDS.length;
  const sample = (
    await client.query<{ id: string }>(
      `SELECT id FROM weft.tasks WHERE queue IN ('NEW', 'READY') AND assigned_node IS NULL ORDER BY id LIMIT $1`,
      [free],
    )
  ).rows.map((r) => r.id);
  const params: Record<StatementName, unknown[]> = {
    sweep: sweepParams(15_000, 0),
    due: dueParams(1_000, 0),
    nodes: liveNodesParams(15_000),
    runningByName: runningByNameParams(["task05"]),
    candidates: candidateParams(free),
    apply: spreadApplyParams(sample),
    applyToOneNode: oneNodeApplyParams(sample),
  };
  const indexesUsed: Record<string, string[]> = {};
  const seqScans: string[] = [];
  for (const name of STATEMENTS) {
    const { rows } = await client.query<{ "QUERY PLAN": { Plan: Record<string, unknown> }[] }>(
      `EXPLAIN (FORMAT JSON) ${statementSql(name)}`,
      params[name],
    );
    const root = rows[0]?.["QUERY PLAN"][0]?.Plan;
    if (!root) throw new Error(`no plan for ${name}`);
    const nodes = planNodes(root);
    const seq = nodes.filter((n) => n["Node Type"] === "Seq Scan" && n["Relation Name"] === "tasks");
    // Index scans of tasks' indexes (a bitmap scan names its index on the Bitmap Index Scan below it).
    const scans = nodes.filter(
      (n) => typeof n["Index Name"] === "string" && String(n["Index Name"]).startsWith("tasks_"),
    );
    indexesUsed[name] = [
      ...new Set([...seq, ...scans].map((n) => `${n["Node Type"]}${n["Index Name"] ? ` ${n["Index Name"]}` : ""}`)),
    ];
    if (seq.length > 0) seqScans.push(name);
  }
  return { indexesUsed, seqScans };
}

function push(map: Map<string, number[]>, key: string, value: number): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** A Queryable that times each statement it is given, by the planner statement it is. */
class TimedClient implements Queryable {
  readonly times = new Map<string, number[]>();
  /** Rows each statement returned or changed, per call. */
  readonly rows = new Map<string, number[]>();
  /** Milliseconds spent in statements since the last `reset()`. */
  spent = 0;
  private readonly names: Map<string, string>;

  constructor(private readonly client: pg.Client) {
    this.names = new Map(STATEMENTS.map((name) => [statementSql(name), name]));
  }

  reset(): void {
    this.spent = 0;
  }

  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>> {
    const start = performance.now();
    const result = await this.client.query<R>(text, values);
    const name = this.names.get(text) ?? "other";
    const ms = performance.now() - start;
    this.spent += ms;
    push(this.times, name, ms);
    push(this.rows, name, result.rowCount ?? 0);
    return result;
  }
}

/** EXPLAIN (ANALYZE, BUFFERS) of the two statements whose work follows the free capacity: run, then rolled back. */
async function explainAnalyzeHot(client: pg.Client, capacity: number): Promise<Record<string, string>> {
  const free = capacity * NODE_IDS.length;
  const text = async (name: StatementName, values: unknown[]) =>
    (
      await client.query<{ "QUERY PLAN": string }>(
        `EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) ${statementSql(name)}`,
        values,
      )
    ).rows
      .map((r) => r["QUERY PLAN"])
      .join("\n");
  await client.query("BEGIN");
  try {
    const candidates = candidateParams(free);
    // The candidates packed in one text (see PlannerStore.candidates).
    const packed = (await client.query<{ rows: string | null }>(statementSql("candidates"), candidates)).rows[0]?.rows;
    const ids = decodeCandidates(packed ?? null)
      .sort((a, b) => b.priority - a.priority || (a.id < b.id ? -1 : 1))
      .slice(0, free)
      .map((r) => r.id);
    const out = {
      candidates: await text("candidates", candidates),
      apply: await text("apply", spreadApplyParams(ids)),
    };
    for (const [name, plan] of Object.entries(out)) log(`EXPLAIN ANALYZE ${name}:\n${plan}`);
    return out;
  } finally {
    await client.query("ROLLBACK");
  }
}

async function measure(serverUrl: string, backlog: number, options: Options, postgres: string): Promise<CycleSummary> {
  const dbName = `weft_bench_planner_${backlog}_${process.pid}`;
  const url = await createDatabase(serverUrl, dbName);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  const client = new pg.Client({ connectionString: url });
  try {
    await migrate(pool, SCHEMA);
    await client.connect();
    const fillStart = performance.now();
    const { history, rows } = await fill(client, backlog);
    const fillSeconds = (performance.now() - fillStart) / 1000;
    log(`backlog ${backlog}: filled ${rows} tasks (${history} finished) in ${fillSeconds.toFixed(1)} s`);
    await registerNodes(client, options.capacity);
    const sizes = (
      await client.query<{ heap: string; indexes: string }>(
        `SELECT pg_table_size('weft.tasks')::float8 AS heap, pg_indexes_size('weft.tasks')::float8 AS indexes`,
      )
    ).rows[0];

    const store = new Store(SCHEMA);
    const { indexesUsed, seqScans } = await explainAll(client, options.capacity);

    const timed = new TimedClient(client);
    // The sweep and the release of due PARKED tasks run at most every
    // deadNodeSweepMs; at its minimum (10 ms) they run in every cycle here.
    const config = parseConfig(plannerConfigSchema, { deadNodeSweepMs: 10 });
    const planner = new Planner(store, timed, config, createLogger("warn"), () => undefined);
    const cycleMs: number[] = [];
    const moved: number[] = [];
    const assigned: number[] = [];
    const outsideMs: number[] = [];
    let nextId = rows + 1;
    for (let c = 0; c < options.cycles; c++) {
      // Untimed: the nodes finish what they were given and report alive, as
      // they would between two cycles; 10 ms let the sweep interval pass.
      await new Promise((resolve) => setTimeout(resolve, 10));
      timed.reset();
      const start = performance.now();
      moved.push(await planner.cycle());
      const ms = performance.now() - start;
      cycleMs.push(ms);
      outsideMs.push(ms - timed.spent);
      const { rowCount } = await client.query(
        `UPDATE weft.tasks SET queue = 'DELETED', state = 'COMPLETED', finished_at = now()
          WHERE assigned_node IS NOT NULL AND queue = 'READY'`,
      );
      assigned.push(rowCount ?? 0);
      await arrive(client, nextId, rowCount ?? 0);
      nextId += rowCount ?? 0;
      await client.query("UPDATE weft.nodes SET heartbeat_at = now()");
    }
    const statementMedianMs: Record<string, number> = {};
    for (const [name, times] of timed.times) statementMedianMs[name] = round(median(times), 3);
    const statementMedianRows: Record<string, number> = {};
    for (const [name, counts] of timed.rows) statementMedianRows[name] = median(counts);
    const explainAnalyze = options.explainAnalyze ? await explainAnalyzeHot(client, options.capacity) : undefined;
    const summary: CycleSummary = {
      backlog,
      history,
      rows,
      fillSeconds: round(fillSeconds, 1),
      tasksTableMb: round(Number(sizes?.heap ?? 0) / 2 ** 20, 1),
      tasksIndexesMb: round(Number(sizes?.indexes ?? 0) / 2 ** 20, 1),
      cycles: options.cycles,
      medianMs: round(median(cycleMs)),
      p95Ms: round(quantile(cycleMs, 0.95)),
      firstMs: round(cycleMs[0] as number),
      maxMs: round(Math.max(...cycleMs)),
      assignedPerCycle: median(assigned),
      movedPerCycle: median(moved),
      cycleMs: cycleMs.map((v) => round(v)),
      statementMedianMs,
      statementMedianRows,
      outsideStatementsMs: round(median(outsideMs), 3),
      indexesUsed,
      seqScansOnTasks: seqScans,
      postgres,
      ...(explainAnalyze ? { explainAnalyze } : {}),
    };
    log(
      `backlog ${backlog}: ${options.cycles} cycles, median ${summary.medianMs} ms, p95 ${summary.p95Ms} ms, ` +
        `${summary.assignedPerCycle} assigned per cycle`,
    );
    return summary;
  } finally {
    await client.end().catch(() => undefined);
    await pool.end();
    if (options.keep) log(`kept database ${dbName}`);
    else await dropDatabase(serverUrl, dbName);
  }
}

function formatTable(summaries: readonly CycleSummary[]): string {
  const table = new Table({
    head: [
      "backlog",
      "rows in tasks",
      "tasks MiB (indexes)",
      "fill s",
      "cycles",
      "median ms",
      "p95 ms",
      "first ms",
      "assigned / cycle",
      "moved / cycle",
      "seq scans on tasks",
    ],
    colAligns: ["right", "right", "right", "right", "right", "right", "right", "right", "right", "right", "left"],
  });
  for (const s of summaries) {
    table.push([
      s.backlog.toLocaleString("en-US"),
      s.rows.toLocaleString("en-US"),
      `${s.tasksTableMb.toFixed(0)} (${s.tasksIndexesMb.toFixed(0)})`,
      s.fillSeconds.toFixed(1),
      String(s.cycles),
      s.medianMs.toFixed(2),
      s.p95Ms.toFixed(2),
      s.firstMs.toFixed(2),
      String(s.assignedPerCycle),
      String(s.movedPerCycle),
      s.seqScansOnTasks.length === 0 ? "none" : s.seqScansOnTasks.join(", "),
    ]);
  }
  const statements = new Table({
    head: ["statement: median ms (rows)", ...summaries.map((s) => s.backlog.toLocaleString("en-US"))],
    colAligns: ["left", ...summaries.map(() => "right" as const)],
  });
  const names = [...new Set(summaries.flatMap((s) => Object.keys(s.statementMedianMs)))];
  for (const name of names) {
    statements.push([
      name,
      ...summaries.map((s) => {
        const ms = s.statementMedianMs[name];
        return ms === undefined ? "" : `${ms.toFixed(3)} (${s.statementMedianRows[name] ?? 0} rows)`;
      }),
    ]);
  }
  statements.push(["outside statements", ...summaries.map((s) => s.outsideStatementsMs.toFixed(3))]);
  const plans = summaries.at(-1);
  const planLines = plans
    ? Object.entries(plans.indexesUsed).map(([name, used]) => `  ${name}: ${used.join(", ") || "(no scan of tasks)"}`)
    : [];
  return [
    table.toString(),
    statements.toString(),
    `Scans of tasks in the plans at backlog ${plans?.backlog.toLocaleString("en-US")}:`,
    ...planLines,
  ].join("\n");
}

let server: TestDatabase | undefined;

async function main(): Promise<number> {
  let options: Options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    log(`planner-cycle: ${err.message}\nRun with --help for the options.`);
    return 2;
  }
  if (options.help) {
    console.log(USAGE);
    return 0;
  }
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      log(`\n${signal}: stopping the database`);
      void (server?.stop() ?? Promise.resolve()).finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
    });
  }
  try {
    server = await startDatabase();
    const probe = new pg.Client({ connectionString: server.url });
    await probe.connect();
    const version = (await probe.query<{ server_version: string }>("SHOW server_version")).rows[0]?.server_version;
    await probe.end();
    const postgres = `${version ?? "unknown"}${server.embedded ? " (embedded)" : ""}`;
    log(`PostgreSQL ${postgres}; backlog ${options.backlogs.join(", ")}; ${options.cycles} cycles each`);
    const summaries: CycleSummary[] = [];
    for (const backlog of options.backlogs) {
      const summary = await measure(server.url, backlog, options, postgres);
      summaries.push(summary);
      if (options.json) console.log(JSON.stringify(summary));
    }
    if (!options.json) console.log(formatTable(summaries));
    return 0;
  } catch (err) {
    log(`planner-cycle failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  } finally {
    await server?.stop();
  }
}

process.exitCode = await main();
