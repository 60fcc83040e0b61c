// What every fault scenario file shares: a private server, a database with the
// ledger, a client process-side Weft to schedule with, node processes, and the
// checks run after each scenario.
import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { createLogger } from "../../engine/src/index.js";
import { createClient, type Weft } from "../../sdk/src/index.js";
import { check, type Expectation, observe, problems, type Report } from "./checker.js";
import { type ChaosNode, Cluster, waitFor } from "./cluster.js";
import { HARNESS_APP, HARNESS_SESSION, PrivatePostgres } from "./postgres.js";
import { type ChaosTasks, chaosTasks, LEDGER_DDL } from "./tasks.js";

export interface Scenario {
  readonly server: PrivatePostgres;
  readonly database: string;
  /** The database for Weft and the nodes. */
  readonly url: string;
  /** The harness's own pool: unaffected by read-only and timeouts, never terminated. */
  readonly pool: pg.Pool;
  readonly client: Weft;
  readonly tasks: ChaosTasks;
  readonly cluster: Cluster;
  close(): Promise<void>;
}

export async function startScenario(baseEnv: Record<string, string> = {}): Promise<Scenario> {
  const server = await PrivatePostgres.start();
  const database = "chaos";
  const url = await server.createDatabase(database);
  const pool = new pg.Pool({ connectionString: server.url(database, HARNESS_APP), max: 4, ...HARNESS_SESSION });
  pool.on("error", () => undefined);
  await pool.query(LEDGER_DDL);
  const tasks = chaosTasks(pool, "client");
  // The client migrates the schema before any node starts.
  // Quiet: the client's own outage warnings are not what the scenarios check.
  const client = createClient({ connectionString: url, tasks: Object.values(tasks), logger: createLogger("error") });
  await client.start();
  const cluster = new Cluster({ DATABASE_URL: url, ...baseEnv });
  return {
    server,
    database,
    url,
    pool,
    client,
    tasks,
    cluster,
    async close() {
      await cluster.stopAll().catch(() => undefined);
      // The nodes' logs and the server's, for a failure's post-mortem.
      const dir = join(tmpdir(), "weft-chaos-logs", `${Date.now()}-${process.pid}`);
      mkdirSync(dir, { recursive: true });
      for (const node of cluster.nodes) {
        writeFileSync(
          join(dir, `${node.label}.log`),
          [...node.logs.map((l) => JSON.stringify(l)), ...node.otherOutput].join("\n"),
        );
      }
      writeFileSync(join(dir, "postgres.log"), server.serverLog());
      console.log(`chaos logs: ${dir}`);
      await client.stop().catch(() => undefined);
      await pool.end().catch(() => undefined);
      await server.destroy();
    },
  };
}

/** Number of expected tasks with a terminal state, for progress waits. */
export async function finishedCount(s: Scenario, prefix: string): Promise<number> {
  const { rows } = await s.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM weft.tasks
      WHERE coalesce(input->>'key', input->'spec'->>'key') LIKE $1 AND state IN ('COMPLETED', 'FAILED', 'CANCELLED')`,
    [`${prefix}%`],
  );
  return rows[0]?.n ?? 0;
}

/** Ledger effects so far of the scenario (a fact to wait for before a fault). */
export async function effectCount(s: Scenario, prefix: string): Promise<number> {
  const { rows } = await s.pool.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM public.chaos_ledger WHERE key LIKE $1",
    [`${prefix}%`],
  );
  return rows[0]?.n ?? 0;
}

/** Waits until `total` tasks of the scenario have finished, describing the rest if they do not. */
export async function waitFinished(s: Scenario, prefix: string, total: number, timeoutMs: number): Promise<void> {
  await waitFor(
    `${total} tasks of ${prefix} to finish`,
    async () => ((await finishedCount(s, prefix)) >= total ? true : undefined),
    {
      timeoutMs,
      everyMs: 250,
      describe: async () => {
        const { rows } = await s.pool.query<{ state: string; n: number }>(
          `SELECT state, count(*)::int AS n FROM weft.tasks WHERE coalesce(input->>'key', input->'spec'->>'key') LIKE $1 GROUP BY state`,
          [`${prefix}%`],
        );
        return `states: ${rows.map((r) => `${r.state} ${r.n}`).join(", ")}`;
      },
    },
  );
}

/** Runs the checker on the scenario's prefix; returns the report and its problems. */
export async function verify(
  s: Scenario,
  prefix: string,
  expectation: Expectation,
): Promise<{ report: Report; problems: string[] }> {
  const report = check(expectation, await observe(s.pool, prefix));
  return { report, problems: problems(report) };
}

/**
 * Every node still running does work after a fault, without a restart: a new
 * batch of short tasks, and each live node must record effects of it.
 */
export async function everyNodeWorks(s: Scenario, prefix: string, perNode = 60, timeoutMs = 60_000): Promise<void> {
  const nodes = s.cluster.alive;
  const total = perNode * nodes.length;
  await s.client.client.scheduleMany(
    s.tasks.step,
    Array.from({ length: total }, (_, i) => ({ key: `${prefix}${i}`, sleepMs: 20, firstHoldMs: 0 })),
  );
  await waitFinished(s, prefix, total, timeoutMs);
  const { rows } = await s.pool.query<{ node: string }>(
    "SELECT DISTINCT node FROM public.chaos_ledger WHERE key LIKE $1",
    [`${prefix}%`],
  );
  const worked = new Set(rows.map((r) => r.node));
  const idle = nodes.filter((n) => !worked.has(n.label)).map((n) => n.label);
  if (idle.length > 0) throw new Error(`nodes that did no work after the fault: ${idle.join(", ")}`);
}

/** The outage warnings and recoveries each node logged since `since`, by service. */
export function outageLog(
  nodes: readonly ChaosNode[],
  since: number,
): { node: string; what: string; warnings: number; recoveries: number }[] {
  const out: { node: string; what: string; warnings: number; recoveries: number }[] = [];
  for (const node of nodes) {
    const counts = new Map<string, { warnings: number; recoveries: number }>();
    for (const line of node.logs) {
      if (line.at < since || typeof line.msg !== "string") continue;
      const warn = line.msg.match(/^(.*) failed; retrying until the database answers$/);
      const recovered = line.msg.match(/^(.*) recovered$/);
      const what = warn?.[1] ?? recovered?.[1];
      if (!what) continue;
      const c = counts.get(what) ?? { warnings: 0, recoveries: 0 };
      if (warn) c.warnings++;
      else c.recoveries++;
      counts.set(what, c);
    }
    for (const [what, c] of counts) out.push({ node: node.label, what, ...c });
  }
  return out;
}

/**
 * Services that run rarely (the cleaner every minute, cron when a tick is due)
 * or only on the leader (a planner whose node lost the lead stops): their
 * recovery is logged at their next success, which may come after the check.
 */
const LATE_RECOVERY = new Set(["cleaner", "cron", "planner"]);

/** Lines of the outage log that break "logged once per outage": more warnings than outages, or a warning never followed by its recovery. */
export function outageLogProblems(log: ReturnType<typeof outageLog>, outages: number): string[] {
  return log
    .filter(
      (l) =>
        l.warnings > outages || l.recoveries > l.warnings || (l.recoveries < l.warnings && !LATE_RECOVERY.has(l.what)),
    )
    .map((l) => `${l.node} / ${l.what}: ${l.warnings} warnings, ${l.recoveries} recoveries for ${outages} outage(s)`);
}
