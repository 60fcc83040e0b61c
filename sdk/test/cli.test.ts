// The `weft` binary, run as a child process against a real database with
// workflows run by a real node (a separate process).
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createDatabase, dropDatabase } from "../../engine/src/testing/index.js";
import { eventually, freshDatabase, type NodeProcess, poolFor, ROOT, spawnNode } from "../../test/support.js";
import { createClient, type Weft } from "../src/index.js";
import { cliTasks, SLOT_FAIL_DDL } from "./cli/tasks.js";

const MAIN = join(ROOT, "sdk/src/cli/main.ts");
const TSX = join(ROOT, "node_modules/tsx/dist/esm/index.mjs");
/** Generous: a command that has printed its answer must not linger (timers, connections). */
const PROMPT_EXIT_MS = 15_000;

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

let url: string;

/** Runs `weft ...args` (DATABASE_URL set to the test's database unless `env` says otherwise). */
function weft(
  args: readonly string[],
  options: { env?: Record<string, string | undefined>; cwd?: string; timeoutMs?: number } = {},
): Promise<Run> {
  const env: Record<string, string | undefined> = { ...process.env, DATABASE_URL: url, ...options.env };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  if (options.env?.FORCE_COLOR === undefined) delete env.FORCE_COLOR;
  const started = Date.now();
  const child = spawn(process.execPath, ["--import", TSX, MAIN, ...args], {
    cwd: options.cwd ?? ROOT,
    env: env as NodeJS.ProcessEnv,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 30_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** Runs a command that must succeed with --json, and returns its parsed output. */
async function json<T = Record<string, unknown>>(args: readonly string[]): Promise<T> {
  const r = await weft([...args, "--json"]);
  if (r.code !== 0) throw new Error(`weft ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  expect(r.ms).toBeLessThan(PROMPT_EXIT_MS);
  expect(r.stdout).not.toContain("\x1b[");
  return JSON.parse(r.stdout) as T;
}

// Each test runs several CLI processes (tsx compiles the sources in each): on a loaded machine a test can take minutes.
describe("the weft CLI", { timeout: 180_000 }, () => {
  let pool: pg.Pool;
  let client: Weft;
  let node: NodeProcess;
  let nodeId: string;
  let tasks: ReturnType<typeof cliTasks>;

  beforeAll(async () => {
    url = await freshDatabase();
    pool = poolFor(url);
    await pool.query(SLOT_FAIL_DDL);
    tasks = cliTasks(pool);
    client = createClient({ connectionString: url, tasks: Object.values(tasks) });
    await client.start();
    node = spawnNode(join(ROOT, "sdk/test/cli/node.ts"), { DATABASE_URL: url });
    nodeId = (await node.waitFor((m) => m.type === "ready", 60_000)).nodeId as string;
    // The node leads the planner once it has taken the lock.
    await eventually(async () => ((await client.client.listNodes()).some((n) => n.isLeader) ? true : undefined));
  });
  afterAll(async () => {
    node?.send({ type: "stop" });
    await node?.exited;
    await client?.stop();
  });

  it("migrate: --dry-run lists the pending files and applies nothing; migrate applies them; then nothing is pending", async () => {
    const server = inject("serverUrl");
    const name = `weft_t_${randomBytes(6).toString("hex")}`;
    const empty = await createDatabase(server, name);
    try {
      const env = { DATABASE_URL: empty };
      const dry = await weft(["migrate", "--dry-run", "--json"], { env });
      expect(dry.code).toBe(0);
      const plan = JSON.parse(dry.stdout) as { current: number; target: number; pending: { file: string }[] };
      expect(plan.current).toBe(0);
      expect(plan.pending.length).toBe(plan.target);
      expect(plan.pending[0]?.file).toBe("001_foundation.sql");
      // Nothing was applied: reads fail with the hint to migrate.
      const before = await weft(["status"], { env });
      expect(before.code).toBe(1);
      expect(before.stderr).toContain("error [SCHEMA_NOT_MIGRATED]");
      expect(before.stderr).toContain("weft migrate");

      const human = await weft(["migrate", "--dry-run"], { env });
      expect(human.stdout).toMatch(/pending migration\(s\) for schema weft/);
      expect(human.stdout).toMatch(/^1\s+001_foundation\.sql\s+no$/m);

      const applied = JSON.parse((await weft(["migrate", "--json"], { env })).stdout) as {
        applied: { version: number; name: string }[];
        version: number;
      };
      expect(applied.applied.map((m) => m.version)).toEqual(Array.from({ length: plan.target }, (_, i) => i + 1));
      expect(applied.applied[0]?.name).toBe("foundation");
      const after = JSON.parse((await weft(["migrate", "--dry-run", "--json"], { env })).stdout) as {
        current: number;
        pending: unknown[];
      };
      expect(after).toMatchObject({ current: plan.target, pending: [] });
      const again = await weft(["migrate"], { env });
      expect(again.stdout).toContain("is up to date");
      // Another schema in the same database is migrated on its own.
      const other = JSON.parse((await weft(["migrate", "--schema", "weft_other", "--json"], { env })).stdout) as {
        schema: string;
        applied: unknown[];
      };
      expect(other.schema).toBe("weft_other");
      expect(other.applied.length).toBe(plan.target);
    } finally {
      await dropDatabase(server, name);
    }
  });

  it("workflows show draws the tree: the parent, its children and the join with its upstream count", async () => {
    const ref = await client.client.schedule(tasks.order, { items: [1, 2] });
    await client.client.waitForWorkflow(ref.workflowId, { timeoutMs: 30_000 });
    const shown = await json<{
      workflow: { id: string; status: string; totalTasks: number };
      tasks: {
        name: string;
        kind: string;
        state: string;
        attempt: number;
        children: { name: string; kind: string; upstream: string[]; id: string }[];
      }[];
    }>(["workflows", "show", ref.workflowId]);
    expect(shown.workflow).toMatchObject({ id: ref.workflowId, status: "COMPLETED", totalTasks: 4 });
    expect(shown.tasks).toHaveLength(1);
    const root = shown.tasks[0];
    expect(root).toMatchObject({ name: "order", kind: "task", state: "COMPLETED", attempt: 1 });
    expect(root?.children.map((c) => c.name)).toEqual(["item", "item", "summary"]);
    const join = root?.children[2];
    expect(join?.kind).toBe("join");
    expect(join?.upstream).toEqual(root?.children.slice(0, 2).map((c) => c.id));

    const human = await weft(["workflows", "show", ref.workflowId]);
    expect(human.code).toBe(0);
    const lines = human.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(
      new RegExp(`^workflow ${ref.workflowId}\\s+COMPLETED\\s+4 task\\(s\\), 0 pending, 0 failed`),
    );
    expect(lines[1]).toMatch(/^order\s+\S{8}\s+COMPLETED\s+attempt 1/);
    expect(lines[2]).toMatch(/^├─ item\s+\S{8}\s+COMPLETED\s+attempt 1/);
    expect(lines[3]).toMatch(/^├─ item\s+\S{8}\s+COMPLETED\s+attempt 1/);
    expect(lines[4]).toMatch(/^└─ ⋈ summary\s+\S{8}\s+COMPLETED\s+attempt 1\s+joins 2 upstream: \S{8} \S{8}/);
    expect(lines).toHaveLength(5);
    // Columns after the names line up.
    const at = lines.slice(1).map((l) => l.indexOf("COMPLETED"));
    expect(new Set(at).size).toBe(1);
    // The short ids are the ends of the real ids.
    expect(lines[2]).toContain(join?.upstream[0]?.slice(-8));
    // No colour into a pipe; colour when forced; NO_COLOR wins.
    expect(human.stdout).not.toContain("\x1b[");
    const forced = await weft(["workflows", "show", ref.workflowId], { env: { FORCE_COLOR: "1" } });
    expect(forced.stdout).toContain("\x1b[32mCOMPLETED");
    const noColor = await weft(["workflows", "show", ref.workflowId], { env: { FORCE_COLOR: "1", NO_COLOR: "1" } });
    expect(noColor.stdout).not.toContain("\x1b[");
  });

  it("workflows show sums up the children beyond --children under each parent, and keeps the join", async () => {
    const ref = await client.client.schedule(tasks.order, { items: Array.from({ length: 30 }, (_, i) => i) });
    await client.client.waitForWorkflow(ref.workflowId, { timeoutMs: 30_000 });
    const lines = (await weft(["workflows", "show", ref.workflowId, "--children", "5"])).stdout.trimEnd().split("\n");
    expect(lines.slice(2, 7).every((l) => /^├─ item\s/.test(l))).toBe(true);
    expect(lines[7]).toBe("├─ … 25 more item: 25 COMPLETED");
    expect(lines[8]).toMatch(/^└─ ⋈ summary\s.*joins 30 upstream: (\S{8} ){5}\+25/);
    expect(lines).toHaveLength(9);
    // The default draws 20; 0 draws all; --json always has all.
    expect((await weft(["workflows", "show", ref.workflowId])).stdout).toContain("… 10 more item: 10 COMPLETED");
    expect(
      (await weft(["workflows", "show", ref.workflowId, "--children", "0"])).stdout.trimEnd().split("\n"),
    ).toHaveLength(33);
    const all = await json<{ tasks: { children: unknown[] }[] }>([
      "workflows",
      "show",
      ref.workflowId,
      "--children",
      "5",
    ]);
    expect(all.tasks[0]?.children).toHaveLength(31);
  });

  it("workflows list filters by status and root task, and pages with the cursor it prints", async () => {
    const refs = await client.client.scheduleMany(tasks.item, [{ n: 1 }, { n: 2 }, { n: 3 }]);
    for (const r of refs) await client.client.waitForWorkflow(r.workflowId, { timeoutMs: 30_000 });
    type Page = { items: { id: string; status: string; rootTaskName: string }[]; nextCursor: string | null };
    const all = await json<Page>(["workflows", "list", "--task", "item", "--status", "completed"]);
    expect(all.items.map((w) => w.id).sort()).toEqual(refs.map((r) => r.workflowId).sort());
    expect(all.items.every((w) => w.status === "COMPLETED" && w.rootTaskName === "item")).toBe(true);
    expect(all.nextCursor).toBeNull();

    const first = await json<Page>(["workflows", "list", "--task", "item", "--limit", "2"]);
    expect(first.items).toHaveLength(2);
    expect(first.nextCursor).not.toBeNull();
    const second = await json<Page>([
      "workflows",
      "list",
      "--task",
      "item",
      "--limit",
      "2",
      "--cursor",
      first.nextCursor as string,
    ]);
    expect([...first.items, ...second.items].map((w) => w.id).sort()).toEqual(refs.map((r) => r.workflowId).sort());

    const human = await weft(["workflows", "list", "--task", "item", "--limit", "2"]);
    expect(human.stdout).toMatch(/^WORKFLOW\s+ROOT TASK\s+STATUS\s+TASKS\s+PENDING\s+FAILED\s+CREATED\s+FINISHED$/m);
    expect(human.stdout).toContain(`more: --cursor ${first.nextCursor}`);
    const none = await json<Page>(["workflows", "list", "--task", "item", "--since", "2099-01-01"]);
    expect(none.items).toEqual([]);
    const recent = await json<Page>(["workflows", "list", "--task", "item", "--since", "1h"]);
    expect(recent.items).toHaveLength(3);

    const badStatus = await weft(["workflows", "list", "--status", "DONE"]);
    expect(badStatus.code).toBe(2);
    expect(badStatus.stderr).toContain("error [USAGE]");
    expect(badStatus.stderr).toContain("RUNNING, COMPLETED, FAILED, CANCELLED");
    const badCursor = await weft(["workflows", "list", "--cursor", "not-a-cursor"]);
    expect(badCursor.code).toBe(2);
    expect(badCursor.stderr).toContain("error [INVALID_ARGUMENT]");
  });

  it("status shows the node, the leader, queue depths and parked tasks", async () => {
    const later = await client.client.scheduleMany(tasks.item, [{ n: 7 }, { n: 8 }], {
      runAt: new Date(Date.now() + 3_600_000),
    });
    try {
      await eventually(async () => {
        const { rows } = await pool.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM weft.tasks WHERE id = ANY($1) AND queue = 'PARKED'",
          [later.map((r) => r.taskId)],
        );
        return rows[0]?.n === 2 ? true : undefined;
      });
      const s = await json<{
        leader: string;
        nodes: {
          id: string;
          isLeader: boolean;
          capacity: number;
          running: number;
          heartbeatAgeMs: number;
          taskNames: string[];
        }[];
        queues: { queue: string; taskName: string; count: number }[];
        readyLag: unknown[];
        parked: { reason: string; count: number }[];
      }>(["status"]);
      expect(Object.keys(s).sort()).toEqual(["leader", "nodes", "parked", "queues", "readyLag"]);
      expect(s.leader).toBe(nodeId);
      expect(s.nodes).toHaveLength(1);
      expect(s.nodes[0]).toMatchObject({ id: nodeId, isLeader: true });
      expect(s.nodes[0]?.taskNames).toContain("order");
      expect(s.nodes[0]?.heartbeatAgeMs).toBeLessThan(30_000);
      expect(s.queues).toContainEqual({ queue: "PARKED", taskName: "item", count: 2 });
      expect(s.parked.find((p) => p.reason === "RUN_AFTER")?.count).toBe(2);

      const human = await weft(["status"]);
      expect(human.code).toBe(0);
      expect(human.stdout).toContain(`leader  ${nodeId}`);
      expect(human.stdout).toMatch(/^NODE\s+APP\s+HOST\s+PID\s+RUNNING\s+CAPACITY\s+HEARTBEAT\s+STARTED\s+TASKS$/m);
      expect(human.stdout).toMatch(new RegExp(`^${nodeId} \\*\\s+cli-test`, "m"));
      expect(human.stdout).toMatch(/^PARKED\s+item\s+2$/m);
      expect(human.stdout).toMatch(/^RUN_AFTER\s+2$/m);
    } finally {
      for (const r of later) await client.client.cancelWorkflow(r.workflowId);
    }
  });

  it("cancel: a running workflow is cancelled with its reason; again, nothing is; an unknown id fails with its code", async () => {
    const ref = await client.client.schedule(tasks.slow, {});
    await eventually(async () => ((await client.client.getTask(ref.taskId)).state === "RUNNING" ? true : undefined));
    const out = await json<{ workflowId: string; cancelled: boolean; status: string; reason: string | null }>([
      "cancel",
      ref.workflowId,
      "--reason",
      "operator test",
    ]);
    expect(out).toEqual({ workflowId: ref.workflowId, cancelled: true, status: "CANCELLED", reason: "operator test" });
    const { rows } = await pool.query<{ cancel_reason: string }>(
      "SELECT cancel_reason FROM weft.workflows WHERE id = $1",
      [ref.workflowId],
    );
    expect(rows[0]?.cancel_reason).toBe("operator test");
    const again = await weft(["cancel", ref.workflowId]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("had already finished: CANCELLED");

    const unknown = await weft(["cancel", "01ARZ3NDEKTSV4RRFFQ69G5FAV"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("error [WORKFLOW_NOT_FOUND]");
    const unknownJson = await weft(["workflows", "show", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "--json"]);
    expect(unknownJson.code).toBe(1);
    expect(JSON.parse(unknownJson.stderr)).toEqual({
      error: { code: "WORKFLOW_NOT_FOUND", message: expect.stringContaining("01ARZ3NDEKTSV4RRFFQ69G5FAV") },
    });
    expect(unknownJson.stdout).toBe("");
  });

  it("dlt: list, show, requeue and delete a dead letter", async () => {
    const ref = await client.client.schedule(tasks.boom, { why: "first" });
    const waitLetter = () =>
      eventually(async () => {
        const { rows } = await pool.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM weft.dead_letters WHERE task_id = $1",
          [ref.taskId],
        );
        return rows[0]?.n === 1 ? true : undefined;
      });
    await waitLetter();
    const list = await json<{
      items: { taskId: string; taskName: string; error: { message: string }; attempts: unknown[] }[];
    }>(["dlt", "list", "--task", "boom"]);
    expect(list.items.map((d) => d.taskId)).toEqual([ref.taskId]);
    expect(list.items[0]?.error.message).toBe("boom: first");
    const byWorkflow = await json<{ items: unknown[] }>(["dlt", "list", "--workflow", ref.workflowId, "--since", "1h"]);
    expect(byWorkflow.items).toHaveLength(1);
    const none = await json<{ items: unknown[] }>(["dlt", "list", "--task", "item"]);
    expect(none.items).toEqual([]);

    const shown = await json<{
      taskId: string;
      input: unknown;
      attempts: { attempt: number; node: string; error: { code: string } }[];
    }>(["dlt", "show", ref.taskId]);
    expect(shown).toMatchObject({ taskId: ref.taskId, input: { why: "first" } });
    expect(shown.attempts).toHaveLength(1);
    expect(shown.attempts[0]).toMatchObject({ attempt: 1, node: nodeId, error: { code: "NON_RETRYABLE" } });
    const human = await weft(["dlt", "show", ref.taskId]);
    expect(human.stdout).toContain("[NON_RETRYABLE] boom: first");
    expect(human.stdout).toMatch(/^#\s+NODE\s+STARTED\s+ENDED\s+ERROR$/m);

    const requeued = await json<{ requeued: string[] }>(["dlt", "requeue", ref.taskId]);
    expect(requeued.requeued).toEqual([ref.taskId]);
    // It runs again (and fails again): a second attempt in its history.
    await eventually(async () => {
      const d = await client.client.deadLetters.get(ref.taskId);
      return d && d.attempts.length === 2 ? true : undefined;
    });

    const nothing = await weft(["dlt", "delete"]);
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toContain("nothing to delete");
    const both = await weft(["dlt", "delete", ref.taskId, "--all"]);
    expect(both.code).toBe(2);
    const deleted = await json<{ deleted: number }>(["dlt", "delete", ref.taskId]);
    expect(deleted.deleted).toBe(1);
    expect((await json<{ items: unknown[] }>(["dlt", "list"])).items).toEqual([]);
    const gone = await weft(["dlt", "show", ref.taskId]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain("error [DEAD_LETTER_NOT_FOUND]");
  });

  it("cron list shows the schedules the node publishes, with their next tick", async () => {
    const out = await json<{
      items: { taskName: string; pattern: string; timezone: string; lastTickAt: string | null; nextTickAt: string }[];
    }>(["cron", "list"]);
    const yearly = out.items.find((c) => c.taskName === "yearly");
    expect(yearly).toMatchObject({ pattern: "0 12 1 1 *", timezone: "Europe/Paris" });
    // The leader records where a new schedule starts (a tick that did not fire), or nothing yet.
    if (yearly?.lastTickAt) expect(new Date(yearly.lastTickAt).getTime()).toBeLessThanOrEqual(Date.now());
    const next = new Date(yearly?.nextTickAt as string);
    expect(next.getTime()).toBeGreaterThan(Date.now());
    // Noon in Paris on the 1st of January is 11:00 UTC.
    expect(next.toISOString()).toMatch(/-01-01T11:00:00\.000Z$/);
    const human = await weft(["cron", "list"]);
    expect(human.stdout).toMatch(/^TASK\s+PATTERN\s+TIMEZONE\s+LAST TICK\s+NEXT TICK$/m);
    expect(human.stdout).toMatch(
      /^yearly\s+0 12 1 1 \*\s+Europe\/Paris\s+(-|\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z)\s+\d{4}-01-01 11:00:00Z$/m,
    );
  });

  it("slots coverage draws the grid; slots reopen gives a failed slot of an engine-run series a new task", async () => {
    const t0 = new Date("2026-01-05T00:00:00Z");
    const hour = (h: number) => new Date(t0.getTime() + h * 3_600_000);
    await pool.query("INSERT INTO public.cli_slot_fail (start_at) VALUES ($1)", [hour(2)]);
    const series = client.client.slots(tasks.hourly);
    await series.ensure({ from: t0, to: hour(6) });
    await eventually(async () => {
      const c = await series.coverage({ from: t0, to: hour(6) });
      return c.counts.complete === 5 && c.counts.failed === 1 ? true : undefined;
    });
    const range = ["--interval", "1h", "--from", t0.toISOString(), "--to", hour(8).toISOString()];
    const cov = await json<{ task: string; grid: string; counts: Record<string, number>; slots: { status: string }[] }>(
      ["slots", "coverage", "hourly", ...range],
    );
    expect(cov.grid).toBe("##x###??");
    expect(cov.counts).toMatchObject({ total: 8, complete: 5, failed: 1, missing: 2 });
    const human = await weft(["slots", "coverage", "hourly", ...range]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain("2026-01-05 00:00:00Z  ##x###??");
    expect(human.stdout).toContain(
      "legend: # complete  - skipped  . pending  > running / acquired  x failed  ? missing",
    );
    expect(human.stdout).toContain("complete 5  skipped 0  pending 0  running 0  failed 1  missing 2");

    await pool.query("DELETE FROM public.cli_slot_fail");
    const reopened = await json<{ reopened: number }>([
      "slots",
      "reopen",
      "hourly",
      "--interval",
      "1h",
      "--from",
      t0.toISOString(),
      "--to",
      hour(6).toISOString(),
      "--status",
      "FAILED",
    ]);
    expect(reopened.reopened).toBe(1);
    // The re-opened slot got a task of its own, in the series' order (its affinity key), and it runs.
    const { rows } = await pool.query<{ affinity: string | null; generation: number }>(
      `SELECT t.affinity, sl.generation FROM weft.slots sl JOIN weft.tasks t ON t.id = sl.task_id
        WHERE sl.task_name = 'hourly' AND sl.slot_start = $1`,
      [hour(2)],
    );
    expect(rows[0]).toEqual({ affinity: "hourly/1h", generation: 2 });
    await eventually(async () =>
      (await series.coverage({ from: t0, to: hour(6) })).grid === "######" ? true : undefined,
    );
    expect((await json<{ grid: string }>(["slots", "coverage", "hourly", ...range])).grid).toBe("######??");

    const badInterval = await weft(["slots", "coverage", "hourly", "--interval", "7m", "--from", "1d"]);
    expect(badInterval.code).toBe(2);
    expect(badInterval.stderr).toContain("error [INVALID_INTERVAL]");
    const missingFrom = await weft(["slots", "coverage", "hourly", "--interval", "1h"]);
    expect(missingFrom.code).toBe(2);
    expect(missingFrom.stderr).toContain("--from");
  });

  it("errors: a bad URL fails with its code and no stack (unless --verbose); bad flags and no database are usage errors", async () => {
    const bad = await weft(["status", "--url", "postgres://nobody:secret@127.0.0.1:1/none"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error \[ECONNREFUSED\]: .*127\.0\.0\.1:1/);
    expect(bad.stderr).not.toMatch(/^\s+at /m);
    expect(bad.stderr).not.toContain("secret");
    expect(bad.ms).toBeLessThan(PROMPT_EXIT_MS);
    const verbose = await weft(["status", "--url", "postgres://nobody:secret@127.0.0.1:1/none", "--verbose"]);
    expect(verbose.code).toBe(1);
    expect(verbose.stderr).toMatch(/^\s+at /m);

    const noDb = await weft(["status"], { env: { DATABASE_URL: undefined } });
    expect(noDb.code).toBe(2);
    expect(noDb.stderr).toContain("error [USAGE]: no database given");

    const unknownCommand = await weft(["frobnicate"]);
    expect(unknownCommand.code).toBe(2);
    expect(unknownCommand.stderr).toContain("error [USAGE]: unknown command 'frobnicate'");
    const unknownOption = await weft(["status", "--bogus"]);
    expect(unknownOption.code).toBe(2);
    expect(unknownOption.stderr).toContain("unknown option '--bogus'");
    const badLimit = await weft(["dlt", "list", "--limit", "-5", "--json"]);
    expect(badLimit.code).toBe(2);
    expect(JSON.parse(badLimit.stderr).error.code).toBe("USAGE");
    const missingArg = await weft(["workflows", "show"]);
    expect(missingArg.code).toBe(2);
    const badId = await weft(["workflows", "show", "nope"]);
    expect(badId.code).toBe(2);
    expect(badId.stderr).toContain("error [INVALID_ARGUMENT]");
    const badSchema = await weft(["status", "--schema", "no such; schema"]);
    expect(badSchema.code).toBe(2);

    const help = await weft(["--help"]);
    expect(help.code).toBe(0);
    for (const cmd of ["migrate", "status", "workflows", "cancel", "dlt", "cron", "slots", "serve", "bench"]) {
      expect(help.stdout).toMatch(new RegExp(`^  ${cmd}\\b`, "m"));
    }
    const version = await weft(["--version"]);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("serve runs the HTTP API with the given tokens until SIGTERM, and exits promptly then", async () => {
    const read = `read-${randomBytes(12).toString("hex")}`;
    const write = `write-${randomBytes(12).toString("hex")}`;
    const child = spawn(
      process.execPath,
      ["--import", TSX, MAIN, "serve", "--port", "0", "--token", `write:${write}`, "--tasks", "sdk/test/cli/tasks.ts"],
      {
        cwd: ROOT,
        env: { ...process.env, DATABASE_URL: url, WEFT_API_TOKENS: `read:${read}` },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    const exited = new Promise<number | null>((done) => child.on("close", (code) => done(code)));
    try {
      const base = await eventually(async () => /listening on (http:\/\/\S+) /.exec(out)?.[1], 30_000);
      expect(out).toContain("2 token(s)");
      expect(out).toContain("tasks: item");
      expect(out).toContain(`dashboard: ${base}/`);
      const call = (path: string, token: string | null, init: RequestInit = {}) =>
        fetch(`${base}${path}`, {
          ...init,
          headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
        });
      expect((await call("/v1/nodes", null)).status).toBe(401);
      const scheduled = await call("/v1/tasks/item", write, {
        method: "POST",
        body: JSON.stringify({ input: { n: 21 } }),
      });
      expect(scheduled.status).toBe(201);
      const ref = (await scheduled.json()) as { workflowId: string };
      await client.client.waitForWorkflow(ref.workflowId, { timeoutMs: 30_000 });
      const status = await call(`/v1/workflows/${ref.workflowId}`, read);
      expect(status.status).toBe(200);
      expect(JSON.stringify(await status.json())).toContain("COMPLETED");
      const denied = await call(`/v1/workflows/${ref.workflowId}/cancel`, read, { method: "POST", body: "{}" });
      expect(denied.status).toBe(403);
      // The dashboard's page, and what it asks to learn the token's scope.
      expect(await (await call("/", null)).text()).toContain('<div id="app">');
      expect(await (await call("/v1/whoami", read)).json()).toEqual({ scope: "read", auth: "bearer", readOnly: false });
    } finally {
      const stopAt = Date.now();
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      expect(Date.now() - stopAt).toBeLessThan(PROMPT_EXIT_MS);
    }
    expect(err).toBe("");

    const noTokens = await weft(["serve", "--port", "0"], { env: { WEFT_API_TOKENS: undefined } });
    expect(noTokens.code).toBe(2);
    expect(noTokens.stderr).toContain("no tokens");
    const badToken = await weft(["serve", "--port", "0", "--token", "admin:whatever"]);
    expect(badToken.code).toBe(2);
    expect(badToken.stderr).toContain("expected read:<token>");
  });

  it("bench passes through to the harness inside the repository, and says where it is outside", async () => {
    const inside = await weft(["bench", "--help"]);
    expect(inside.code).toBe(0);
    expect(inside.stdout).toContain("Usage: pnpm bench");
    const away = mkdtempSync(join(tmpdir(), "weft-cli-"));
    try {
      const outside = await weft(["bench", "--workload", "x"], { cwd: away });
      expect(outside.code).toBe(1);
      expect(outside.stderr).toContain("error [BENCH_NOT_FOUND]");
      expect(outside.stderr).toContain("Weft's repository");
    } finally {
      rmSync(away, { recursive: true, force: true });
    }
  });
});
