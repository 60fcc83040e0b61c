// Type tests: checked by `pnpm typecheck` (tsc). Each @ts-expect-error must stay an
// error, or tsc reports it as unused: that is what keeps these tests able to fail.
import { describe, expect, expectTypeOf, it } from "vitest";
import { z } from "zod";
import {
  defineTask,
  type ScheduleOptions,
  type TaskContext,
  type TaskInput,
  type TaskOutput,
  type TaskRef,
  type TaskStatus,
  type Weft,
  type WeftClient,
} from "../src/index.js";

const resize = defineTask({
  name: "resize",
  input: z.object({ url: z.string(), width: z.number().default(640) }),
  output: z.object({ location: z.string(), bytes: z.number().transform((n) => BigInt(n)) }),
  run: (ctx) => {
    expectTypeOf(ctx).toEqualTypeOf<TaskContext<{ url: string; width: number }>>();
    // Inside run the defaults are applied: width is a number.
    expectTypeOf(ctx.input.width).toEqualTypeOf<number>();
    return { location: ctx.input.url, bytes: 1 };
  },
});

const resumable = defineTask({
  name: "resumable",
  input: z.null(),
  output: z.number(),
  state: z.object({ cursor: z.number() }),
  retry: { mode: "FIXED", delayMs: 100 },
  onFailure: (ctx) => {
    expectTypeOf(ctx.attempt).toEqualTypeOf<number>();
    expectTypeOf(ctx.stopRetrying).toEqualTypeOf<() => void>();
  },
  run: async (ctx) => {
    expectTypeOf(ctx.state).toEqualTypeOf<{ cursor: number } | undefined>();
    await ctx.saveState({ cursor: 1 });
    // @ts-expect-error the state has the schema's shape
    await ctx.saveState({ cursor: "1" });
    return ctx.state?.cursor ?? 0;
  },
});

describe("SDK types", () => {
  it("type the saved state and the failure settings", () => {
    expectTypeOf<TaskOutput<typeof resumable>>().toEqualTypeOf<number>();
    const bad = () =>
      // @ts-expect-error an unknown retry mode
      defineTask({ name: "x", input: z.null(), output: z.null(), retry: { mode: "SOMETIMES" }, run: () => null });
    expect(bad).toThrow(/x\.retry/);
  });

  it("infer input (before defaults) and output (after transforms)", () => {
    expectTypeOf<TaskInput<typeof resize>>().toEqualTypeOf<{ url: string; width?: number | undefined }>();
    expectTypeOf<TaskOutput<typeof resize>>().toEqualTypeOf<{ location: string; bytes: bigint }>();
  });

  it("type schedule and getTask", () => {
    const check = async (client: WeftClient) => {
      expectTypeOf(await client.schedule(resize, { url: "u" })).toEqualTypeOf<TaskRef>();
      // @ts-expect-error url is required
      await client.schedule(resize, { width: 3 });
      // @ts-expect-error width must be a number
      await client.schedule(resize, { url: "u", width: "3" });
      const status = await client.getTask("01ARZ3NDEKTSV4RRFFQ69G5FAV", resize);
      expectTypeOf(status).toEqualTypeOf<TaskStatus<{ location: string; bytes: bigint }>>();
      expectTypeOf(status.result).toEqualTypeOf<{ location: string; bytes: bigint } | null>();
      // Per-input placement sees the input's type.
      await client.scheduleMany(resize, [{ url: "a" }], {
        placement: (input, i) => {
          expectTypeOf(input).toEqualTypeOf<{ url: string; width?: number | undefined }>();
          return { affinityGroup: "host", affinity: `${new URL(input.url).host}-${i}` };
        },
      });
      // Idempotency keys: a string for one schedule, a function of the input (typed) for many.
      await client.schedule(resize, { url: "u" }, { idempotencyKey: "order-1" });
      // @ts-expect-error a key is a string
      await client.schedule(resize, { url: "u" }, { idempotencyKey: 1 });
      await client.scheduleMany(resize, [{ url: "a" }], {
        idempotencyKey: (input, i) => {
          expectTypeOf(input).toEqualTypeOf<{ url: string; width?: number | undefined }>();
          return `${input.url}-${i}`;
        },
      });
      // @ts-expect-error scheduleMany takes a key per input, not one string
      await client.scheduleMany(resize, [{ url: "a" }], { idempotencyKey: "one" });
      expectTypeOf<ScheduleOptions["idempotencyKey"]>().toEqualTypeOf<string | undefined>();
      // @ts-expect-error placement gives placement fields only
      await client.scheduleMany(resize, [{ url: "a" }], { placement: () => ({ workflowId: "x" }) });
    };
    expectTypeOf(check).toBeFunction();
  });

  it("type children scheduled from a task", () => {
    defineTask({
      name: "album",
      input: z.object({ urls: z.array(z.string()) }),
      output: z.number(),
      run: (ctx) => {
        for (const url of ctx.input.urls) expectTypeOf(ctx.schedule(resize, { url })).toEqualTypeOf<TaskRef>();
        // @ts-expect-error children take no idempotency key (a task's children are scheduled once with its outcome)
        ctx.schedule(resize, { url: "u" }, { idempotencyKey: "k" });
        // @ts-expect-error the child's input is checked too
        ctx.schedule(resize, { url: 1 });
        return ctx.input.urls.length;
      },
    });
  });

  it("check the result of run against the output schema", () => {
    defineTask({
      name: "wrong",
      input: z.object({}),
      output: z.object({ n: z.number() }),
      // @ts-expect-error run must return the output schema's input type
      run: () => ({ n: "not a number" }),
    });
  });

  it("keep the engine, its store and its pool off the public surface", () => {
    const check = (weft: Weft, client: WeftClient) => {
      // @ts-expect-error the engine is internal (the SDK's own modules use engineOf)
      void weft._engine;
      // @ts-expect-error the pool is internal: schedule in your own transaction with options.tx
      void client.pool;
      // @ts-expect-error no store on the client
      void client.store;
    };
    expectTypeOf(check).toBeFunction();
  });
});
