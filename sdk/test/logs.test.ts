import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { RateLimitedLog } from "../../engine/src/logger.js";
import { OutageLog } from "../../engine/src/services/service.js";
import { eventually, freshDatabase, ROOT } from "../../test/support.js";
import {
  ConfigError,
  createWeft,
  defineJoin,
  defineTask,
  LOG_EVENTS,
  type Logger,
  UnknownTaskError,
  type Weft,
} from "../src/index.js";
import { engineOf } from "../src/internal.js";

const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"];

interface Line {
  readonly level: string;
  readonly msg: string;
  /** The line's fields with the logger's bindings, as pino writes them. */
  readonly fields: Record<string, unknown>;
}

/** A logger with pino's semantics (bindings merged into lines, a level per child) that keeps its lines. */
function recordingLogger(level = "info") {
  const lines: Line[] = [];
  const make = (bindings: Record<string, unknown>, own: { level: string }): Logger => {
    const at =
      (lvl: string) =>
      (obj: object, msg?: string): void => {
        if (own.level === "silent" || LEVELS.indexOf(lvl) < LEVELS.indexOf(own.level)) return;
        lines.push({ level: lvl, msg: msg ?? "", fields: { ...bindings, ...obj } });
      };
    return {
      get level() {
        return own.level;
      },
      set level(l: string) {
        own.level = l;
      },
      debug: at("debug"),
      info: at("info"),
      warn: at("warn"),
      error: at("error"),
      child: (more) => make({ ...bindings, ...more }, { level: own.level }),
    };
  };
  return { logger: make({ app: "mine" }, { level }), lines };
}

const JOIN_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV";

const flaky = defineTask({
  name: "flaky",
  input: z.object({}),
  output: z.null(),
  retry: { mode: "FIXED", delayMs: 20, maxRetries: 1 },
  run: () => {
    throw new Error("always fails");
  },
});
const quiet = defineTask({
  name: "quiet",
  input: z.object({}),
  output: z.null(),
  retry: { mode: "OFF" },
  deadLetter: false,
  run: () => {
    throw new Error("fails once, no dead letter");
  },
});
const chatty = defineTask({
  name: "chatty",
  input: z.object({}),
  output: z.null(),
  run: (ctx) => {
    ctx.log.info({ step: 1 }, "hello from a task");
    return null;
  },
});
const gather = defineJoin({
  name: "gather",
  input: z.object({}),
  output: z.null(),
  upstream: chatty,
  run: () => null,
});
/** Misuse: joins an id it did not schedule. Retried under default BACKOFF before the fix. */
const misuse = defineTask({
  name: "misuse",
  input: z.object({}),
  output: z.null(),
  run: (ctx) => {
    ctx.scheduleJoin(gather, {}, [JOIN_ID]);
    return null;
  },
});

/** Runs until its signal aborts (a cancel), then fails. */
const waiter = defineTask({
  name: "waiter",
  input: z.object({}),
  output: z.null(),
  run: (ctx) =>
    new Promise<null>((_, reject) => ctx.signal.addEventListener("abort", () => reject(new Error("aborted")))),
});

describe("logs", () => {
  let url: string;
  let weft: Weft;
  const recorded = recordingLogger("warn");

  beforeAll(async () => {
    url = await freshDatabase();
    // A schema of its own, so the migrations run (and log) here.
    weft = createWeft({
      connectionString: url,
      schema: "weft_logs",
      tasks: [flaky, quiet, chatty, misuse, gather, waiter],
      logger: recorded.logger,
      logLevel: "debug",
      planner: { deadNodeSweepMs: 100 },
    });
    await weft.start();
  });
  afterAll(async () => {
    await weft?.stop();
  });

  /** Weft's own lines: all but the one the task wrote through ctx.log. */
  const weftLines = () => recorded.lines.filter((l) => l.msg !== "hello from a task");
  const events = () => recorded.lines.map((l) => l.fields.event);

  it("writes through a child of the application's logger named weft, at logLevel", () => {
    expect(recorded.lines.length).toBeGreaterThan(0);
    // Bindings of the parent are kept; the child's level (debug) is not the parent's (warn).
    for (const l of recorded.lines) expect(l.fields).toMatchObject({ app: "mine", name: "weft" });
    expect(recorded.lines.some((l) => l.level === "debug")).toBe(true);
    expect(recorded.logger.level).toBe("warn");
  });

  it("logs lifecycle events", async () => {
    const lifecycle = ["migrations.applied", "node.started", "leader.elected", "planner.started"];
    // The election runs in the background of start().
    await eventually(async () => (lifecycle.every((e) => events().includes(e)) ? true : undefined), 10_000);
  });

  it("logs retries, dead letters and final failures with the task's fields", async () => {
    const a = await weft.client.schedule(flaky, {});
    const b = await weft.client.schedule(quiet, {});
    expect((await weft.client.waitForWorkflow(a.workflowId)).status).toBe("FAILED");
    expect((await weft.client.waitForWorkflow(b.workflowId)).status).toBe("FAILED");
    const of = (id: string, event: string) =>
      recorded.lines.filter((l) => l.fields.taskId === id && l.fields.event === event);
    const retried = of(a.taskId, "task.retried");
    expect(retried).toHaveLength(1);
    expect(retried[0]?.level).toBe("info");
    expect(retried[0]?.fields).toMatchObject({
      workflowId: a.workflowId,
      taskName: "flaky",
      attempt: 1,
      retryInMs: 20,
      error: { name: "Error", message: "always fails" },
    });
    await eventually(async () => (of(a.taskId, "task.dead_lettered").length === 1 ? true : undefined), 5_000);
    expect(of(a.taskId, "task.dead_lettered")[0]).toMatchObject({ level: "warn", fields: { attempt: 2 } });
    expect(of(b.taskId, "task.failed")).toHaveLength(1);
    expect(of(b.taskId, "task.dead_lettered")).toHaveLength(0);
  });

  it("does not log the failure of an attempt revoked by a cancel", async () => {
    const ref = await weft.client.schedule(waiter, {});
    await eventually(async () => ((await weft.client.getTask(ref.taskId)).state === "RUNNING" ? true : undefined));
    await weft.client.cancelWorkflow(ref.workflowId, "test");
    expect((await weft.client.waitForWorkflow(ref.workflowId)).status).toBe("CANCELLED");
    // The abort reached the task (its attempt ended) before this looks.
    await eventually(async () => ((engineOf(weft).localWorker?.activeCount ?? 1) === 0 ? true : undefined), 10_000);
    const failures = ["task.retried", "task.failed", "task.dead_lettered"];
    const lines = recorded.lines.filter((l) => l.fields.taskId === ref.taskId);
    expect(lines.filter((l) => failures.includes(l.fields.event as string))).toEqual([]);
  });

  it("binds the attempt's fields to ctx.log", async () => {
    const ref = await weft.client.schedule(chatty, {});
    await weft.client.waitForWorkflow(ref.workflowId);
    const line = recorded.lines.find((l) => l.msg === "hello from a task");
    expect(line?.fields).toMatchObject({
      name: "weft",
      step: 1,
      taskId: ref.taskId,
      workflowId: ref.workflowId,
      taskName: "chatty",
      attempt: 1,
    });
  });

  it("fails API misuse inside a task at once, without retries", async () => {
    const ref = await weft.client.schedule(misuse, {});
    // Default BACKOFF would retry for minutes: the workflow fails at the first attempt.
    const status = await weft.client.waitForWorkflow(ref.workflowId, { timeoutMs: 15_000 });
    expect(status.status).toBe("FAILED");
    const task = await weft.client.getTask(ref.taskId);
    expect(task.attempt).toBe(1);
    expect(task.error?.code).toBe("INVALID_ARGUMENT");
    expect(await weft.client.deadLetters.get(ref.taskId)).toBeDefined();
  });

  it("every line Weft writes names a documented event", async () => {
    await weft.stop();
    expect(events()).toContain("node.stopped");
    const known = new Set<string>(LOG_EVENTS);
    for (const l of weftLines()) expect(known.has(l.fields.event as string), JSON.stringify(l)).toBe(true);
    // docs/operations.md lists every event.
    const docs = readFileSync(join(ROOT, "docs/operations.md"), "utf8");
    expect(LOG_EVENTS.filter((e) => !docs.includes(`| \`${e}\``))).toEqual([]);
  });
});

describe("log options", () => {
  it("refuses an unknown logLevel, naming the key", () => {
    expect(() => createWeft({ logLevel: "verbose" as never })).toThrow(ConfigError);
    expect(() => createWeft({ logLevel: "verbose" as never })).toThrow(/logLevel/);
    expect(() => createWeft({ logger: {} as never })).toThrow(/logger/);
  });

  it("suggests the task name meant", async () => {
    const add = defineTask({ name: "add", input: z.object({}), output: z.null(), run: () => null });
    const client = createWeft({ tasks: [add], node: { enabled: false }, planner: { enabled: false } });
    const error = await client.client.scheduleByName("ad", {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnknownTaskError);
    expect((error as Error).message).toContain('did you mean "add"?');
  });

  it("rate-limits a storm of one event and reports what it left out", () => {
    const { logger, lines } = recordingLogger("info");
    const log = new RateLimitedLog(logger as never);
    for (let i = 0; i < 500; i++) log.write("info", { event: "task.retried", i }, "attempt failed; retrying");
    log.write("warn", { event: "task.failed" }, "task failed");
    expect(lines.filter((l) => l.fields.event === "task.retried")).toHaveLength(20);
    expect(lines.filter((l) => l.fields.event === "task.failed")).toHaveLength(1);
    log.close();
    const summary = lines.find((l) => l.fields.event === "log.suppressed");
    expect(summary?.fields.suppressed).toEqual({ "task.retried": 480 });
  });

  it("logs an outage once, and its end", () => {
    const { logger, lines } = recordingLogger("info");
    const outage = new OutageLog(logger as never, "node heartbeat");
    for (let i = 0; i < 5; i++) outage.failure(new Error("connection refused"));
    outage.success();
    expect(lines.map((l) => l.fields.event)).toEqual(["db.outage_began", "db.outage_ended"]);
    expect(lines[1]?.fields).toMatchObject({ what: "node heartbeat", failures: 5 });
  });
});
