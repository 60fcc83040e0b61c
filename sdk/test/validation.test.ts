import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { freshDatabase } from "../../test/support.js";
import {
  ConfigError,
  createClient,
  createWeft,
  defineTask,
  InputValidationError,
  InvalidArgumentError,
  InvalidIdentifierError,
  isWeftError,
  PayloadTooLargeError,
  UnknownTaskError,
  type Weft,
  WorkflowNotFoundError,
} from "../src/index.js";

const order = defineTask({
  name: "order",
  input: z.object({
    customer: z.string().min(1),
    items: z.array(z.object({ sku: z.string(), qty: z.number().int().positive() })),
  }),
  output: z.null(),
  run: () => null,
});

describe("bad input is refused with a typed error and nothing is written", () => {
  let weft: Weft;
  let pool: pg.Pool;
  const taskCount = async () =>
    (await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM weft.tasks")).rows[0]?.n;
  const workflowCount = async () =>
    (await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM weft.workflows")).rows[0]?.n;

  beforeAll(async () => {
    const url = await freshDatabase();
    pool = new pg.Pool({ connectionString: url, max: 2 });
    // A pure client: nothing runs, so the table only holds what was accepted.
    weft = createClient({ connectionString: url, tasks: [order], maxPayloadBytes: 1_000 });
    await weft.start();
  });
  afterAll(async () => {
    await weft.stop();
    await pool.end();
  });

  it("zod violation names the task and the field", async () => {
    const bad = {
      customer: "c1",
      items: [
        { sku: "a", qty: 1 },
        { sku: "b", qty: "two" },
      ],
    };
    // @ts-expect-error qty must be a number: that is the test
    const error = await weft.client.schedule(order, bad).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputValidationError);
    expect(isWeftError(error)).toBe(true);
    const e = error as InputValidationError;
    expect(e.code).toBe("INPUT_INVALID");
    expect(e.taskName).toBe("order");
    expect(e.issues[0]?.path).toBe("items.1.qty");
    expect(e.message).toContain("items.1.qty");
    expect(await taskCount()).toBe(0);
  });

  it("one bad input in a batch writes none of the batch", async () => {
    await expect(
      weft.client.scheduleMany(order, [
        { customer: "ok", items: [] },
        { customer: "", items: [] },
      ]),
    ).rejects.toBeInstanceOf(InputValidationError);
    expect(await taskCount()).toBe(0);
  });

  it("unknown task name", async () => {
    const error = await weft.client.scheduleByName("ordr", {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnknownTaskError);
    expect((error as UnknownTaskError).code).toBe("UNKNOWN_TASK");
    expect((error as Error).message).toContain("order");
    expect(await taskCount()).toBe(0);
  });

  it("payload over the configured limit", async () => {
    const error = await weft.client
      .schedule(order, { customer: "x".repeat(2_000), items: [] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PayloadTooLargeError);
    expect((error as PayloadTooLargeError).limitBytes).toBe(1_000);
    expect((error as PayloadTooLargeError).bytes).toBeGreaterThan(2_000);
    expect(await taskCount()).toBe(0);
  });

  it("invalid scheduling options", async () => {
    const ok = { customer: "c", items: [] };
    await expect(weft.client.schedule(order, ok, { priority: 1.5 })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      argument: "options.priority",
    });
    await expect(weft.client.schedule(order, ok, { affinity: "only-key" })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
    await expect(weft.client.schedule(order, ok, { delayMs: -5 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(weft.client.schedule(order, ok, { workflowId: "not-a-ulid" })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
    await expect(weft.client.schedule(order, ok, { workflowId: "01ARZ3NDEKTSV4RRFFQ69G5FAV" })).rejects.toBeInstanceOf(
      WorkflowNotFoundError,
    );
    expect(await taskCount()).toBe(0);
    expect(await workflowCount()).toBe(0);
  });

  it("invalid placement per input names the input; nothing of the batch is written", async () => {
    const ok = { customer: "c", items: [] };
    const inputs = [ok, ok, ok];
    await expect(
      weft.client.scheduleMany(order, inputs, {
        placement: (_, i) => (i === 1 ? { affinity: "key-only" } : { affinityGroup: "g", affinity: `k${i}` }),
      }),
    ).rejects.toMatchObject({ code: "INVALID_ARGUMENT", argument: "options.placement(inputs[1]).affinity" });
    await expect(
      weft.client.scheduleMany(order, inputs, { priority: 2, placement: () => ({ priority: 1 }) }),
    ).rejects.toMatchObject({ code: "INVALID_ARGUMENT", argument: "options.placement" });
    await expect(
      // @ts-expect-error: not a function
      weft.client.scheduleMany(order, inputs, { placement: { priority: 1 } }),
    ).rejects.toMatchObject({ code: "INVALID_ARGUMENT", argument: "options.placement" });
    expect(await taskCount()).toBe(0);
    expect(await workflowCount()).toBe(0);
  });

  it("a valid schedule still works after the refusals", async () => {
    await weft.client.schedule(order, { customer: "c", items: [{ sku: "s", qty: 2 }] });
    expect(await taskCount()).toBe(1);
  });

  it("placement per input: each task gets its own priority and key in one call", async () => {
    const ok = { customer: "c", items: [] };
    const refs = await weft.client.scheduleMany(order, [ok, ok, ok], {
      placement: (_, i) => ({ priority: i, affinityGroup: "acct", affinity: i < 2 ? "a" : "b" }),
    });
    const { rows } = await pool.query(
      "SELECT priority, affinity, queue, park_reason FROM weft.tasks WHERE id = ANY($1) ORDER BY id",
      [refs.map((r) => r.taskId)],
    );
    // The first workflow with key "a" holds it; the second waits for it.
    expect(rows).toEqual([
      { priority: 0, affinity: "a", queue: "NEW", park_reason: null },
      { priority: 1, affinity: "a", queue: "PARKED", park_reason: "AFFINITY" },
      { priority: 2, affinity: "b", queue: "NEW", park_reason: null },
    ]);
  });
});

describe("configuration and definitions are validated up front", () => {
  it("a schema name with SQL in it", () => {
    expect(() => createWeft({ schema: 'weft"; DROP TABLE x; --', tasks: [] })).toThrow(InvalidIdentifierError);
    expect(() => createWeft({ schema: "Weft", tasks: [] })).toThrow(/schema name/);
  });

  it("unknown keys get a suggestion", () => {
    const error = (() => {
      try {
        createWeft({ node: { maxParallelTaskInNode: 5 } as never });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).key).toBe("node.maxParallelTaskInNode");
    expect((error as Error).message).toContain('did you mean "maxParallelTasksInNode"');
    expect(() => createWeft({ planer: {} } as never)).toThrow(/did you mean "planner"/);
  });

  it("invalid values name the key", () => {
    expect(() => createWeft({ node: { maxParallelTasksInNode: 0 } })).toThrow(/node\.maxParallelTasksInNode/);
    expect(() => createWeft({ planner: { batchSize: -1 } })).toThrow(/planner\.batchSize/);
  });

  it("settings that contradict each other are refused, naming both keys and the rule", () => {
    const refusal = (options: Parameters<typeof createWeft>[0]) => {
      try {
        createWeft(options);
      } catch (e) {
        return e as ConfigError;
      }
      return undefined;
    };
    // A node declared dead before its next heartbeat.
    const dead = refusal({ node: { heartbeatIntervalMs: 2_000 }, planner: { nodeDeadAfterMs: 1_000 } });
    expect(dead).toBeInstanceOf(ConfigError);
    expect(dead?.code).toBe("CONFIG_INVALID");
    expect(dead?.key).toBe("planner.nodeDeadAfterMs");
    expect(dead?.message).toContain("node.heartbeatIntervalMs (2000)");
    expect(dead?.message).toContain("nodeDeadAfterMs >= 2 × heartbeatIntervalMs, so at least 4000");
    // The default heartbeat (2 s) is checked too, and so is a process that does not plan.
    expect(refusal({ planner: { nodeDeadAfterMs: 3_000 } })?.key).toBe("planner.nodeDeadAfterMs");
    expect(refusal({ planner: { enabled: false, nodeDeadAfterMs: 3_000 } })?.key).toBe("planner.nodeDeadAfterMs");
    // At the bound exactly: accepted.
    expect(refusal({ node: { heartbeatIntervalMs: 2_000 }, planner: { nodeDeadAfterMs: 4_000 } })).toBeUndefined();
    // The leader's lease: its session ends after nodeDeadAfterMs idle, renewed every leaderRetryMs.
    const lease = refusal({
      node: { heartbeatIntervalMs: 500 },
      planner: { nodeDeadAfterMs: 2_000, leaderRetryMs: 1_000 },
    });
    expect(lease?.key).toBe("planner.nodeDeadAfterMs");
    expect(lease?.message).toContain("planner.leaderRetryMs (1000)");
    expect(lease?.message).toContain("nodeDeadAfterMs >= 3 × leaderRetryMs, so at least 3000");
    expect(
      refusal({ node: { heartbeatIntervalMs: 500 }, planner: { nodeDeadAfterMs: 3_000, leaderRetryMs: 1_000 } }),
    ).toBeUndefined();
    // A process that never leads does not renew a lease.
    expect(
      refusal({
        node: { heartbeatIntervalMs: 500 },
        planner: { enabled: false, nodeDeadAfterMs: 2_000, leaderRetryMs: 1_000 },
      }),
    ).toBeUndefined();
    // The defaults hold every rule.
    expect(refusal({})).toBeUndefined();
  });

  it("task definitions", () => {
    const base = { input: z.object({}), output: z.null(), run: () => null };
    expect(() => defineTask({ ...base, name: "bad name" })).toThrow(InvalidIdentifierError);
    expect(() => defineTask({ ...base, name: "x", input: {} as never })).toThrow(/x\.input/);
    const t = defineTask({ ...base, name: "dup" });
    expect(() => createWeft({ tasks: [t, t] })).toThrow(/more than once/);
  });
});
