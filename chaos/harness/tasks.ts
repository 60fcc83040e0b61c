// The shared set of ledger tasks every chaos node process runs. Each task's
// effect writes (key, task id, attempt, node) to public.chaos_ledger, a table
// of the test's own, so the checker can count what ran and what was applied.
import type pg from "pg";
import { z } from "zod";
import { defineCronTask, defineJoin, defineTask, NonRetryableError, type TaskDefinition } from "../../sdk/src/index.js";

/** The side-effect ledger. `kind`: effect (at-least-once, own connection), eo (through ctx.tx), join (what a join received). */
export const LEDGER_DDL = `CREATE TABLE IF NOT EXISTS public.chaos_ledger (
  id bigserial PRIMARY KEY,
  kind text NOT NULL,
  key text NOT NULL,
  task_id text NOT NULL,
  workflow_id text NOT NULL,
  attempt int NOT NULL,
  node text NOT NULL,
  started_at timestamptz NOT NULL,
  ended_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  data jsonb)`;

/** One node of a random DAG: a task that may fail, schedules its children, and a join over them. */
export interface DagSpec {
  readonly key: string;
  readonly sleepMs: number;
  /** Throws NonRetryableError (final at once): a leaf only. */
  readonly fail?: boolean;
  readonly children?: readonly DagSpec[];
  /** Key of a join over `children` (their subtrees included). */
  readonly join?: string;
}

const dagSpec: z.ZodType<DagSpec> = z.lazy(() =>
  z.object({
    key: z.string(),
    sleepMs: z.number().int().min(0),
    fail: z.boolean().optional(),
    children: z.array(dagSpec).optional(),
    join: z.string().optional(),
  }),
);

const stepInput = z.object({
  key: z.string(),
  sleepMs: z.number().int().min(0).default(0),
  /** Extra sleep on the first attempt only (a long attempt to kill or freeze). */
  firstHoldMs: z.number().int().min(0).default(0),
});
const dagInput = z.object({ spec: dagSpec });
const dagOutput = z.object({ key: z.string() });
const stepOutput = z.object({ key: z.string(), node: z.string(), attempt: z.number() });

/** Retries fast: the faults of a scenario fail attempts, and a test cannot wait for the default backoff. */
const FAST_RETRY = { mode: "FIXED", delayMs: 100, maxRetries: 200 } as const;

export function chaosTasks(pool: pg.Pool, node: string) {
  type Ctx = { taskId: string; workflowId: string; attempt: number };
  const ledger = (
    q: { query(text: string, values?: unknown[]): Promise<unknown> },
    kind: string,
    key: string,
    ctx: Ctx,
    started: Date,
    data?: unknown,
  ) =>
    q.query(
      "INSERT INTO public.chaos_ledger (kind, key, task_id, workflow_id, attempt, node, started_at, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
      [
        kind,
        key,
        ctx.taskId,
        ctx.workflowId,
        ctx.attempt,
        node,
        started,
        data === undefined ? null : JSON.stringify(data),
      ],
    );
  const hold = (input: z.output<typeof stepInput>, attempt: number) =>
    input.sleepMs + (attempt === 1 ? input.firstHoldMs : 0);

  const makeStep = (name: string, maxParallelInCluster?: number) =>
    defineTask({
      name,
      input: stepInput,
      output: stepOutput,
      retry: FAST_RETRY,
      ...(maxParallelInCluster ? { maxParallelInCluster } : {}),
      run: async (ctx) => {
        const started = new Date();
        await sleep(hold(ctx.input, ctx.attempt), ctx.signal);
        await ledger(pool, "effect", ctx.input.key, ctx, started);
        return { key: ctx.input.key, node, attempt: ctx.attempt };
      },
    });
  /** At-least-once: the effect is written on the node's own pool at the end of the attempt. */
  const step = makeStep("step");
  /** At most 3 running in the cluster. */
  const limited = makeStep("limited", 3);

  /** Exactly-once: the effect is written through ctx.tx, so it commits with the outcome or not at all. */
  const eoStep = defineTask({
    name: "eoStep",
    input: stepInput,
    output: stepOutput,
    guarantee: "exactly-once",
    retry: FAST_RETRY,
    run: async (ctx) => {
      const started = new Date();
      await ctx.tx.query("SELECT 1");
      // Ignores its signal on purpose: a frozen or revoked attempt must be rolled back, not stopped.
      await sleep(hold(ctx.input, ctx.attempt));
      await ledger(ctx.tx, "eo", ctx.input.key, ctx, started);
      return { key: ctx.input.key, node, attempt: ctx.attempt };
    },
  });

  const dag: TaskDefinition<typeof dagInput, typeof dagOutput> = defineTask({
    name: "dag",
    input: dagInput,
    output: dagOutput,
    retry: FAST_RETRY,
    run: async (ctx) => {
      const started = new Date();
      const spec = ctx.input.spec;
      await sleep(spec.sleepMs, ctx.signal);
      await ledger(pool, "effect", spec.key, ctx, started);
      if (spec.fail) throw new NonRetryableError(`injected failure of ${spec.key}`);
      const refs = (spec.children ?? []).map((child) => ctx.schedule(dag, { spec: child }));
      if (spec.join) ctx.scheduleJoin(dagJoin, { key: spec.join }, refs);
      return { key: spec.key };
    },
  });
  /** Records what it received: [status, upstream key or null] in the order given. */
  const dagJoin = defineJoin({
    name: "dagJoin",
    input: z.object({ key: z.string() }),
    output: dagOutput,
    upstream: dag,
    retry: FAST_RETRY,
    run: async (ctx) => {
      const started = new Date();
      const received = ctx.upstream.map((u) => [u.status, u.status === "COMPLETED" ? u.result.key : null]);
      await ledger(pool, "join", ctx.input.key, ctx, started, received);
      return { key: ctx.input.key };
    },
  });

  /** A workflow on one affinity key: the parent and `children` steps, which inherit its key. */
  const affParent = defineTask({
    name: "affParent",
    input: z.object({ key: z.string(), children: z.number().int().min(0), sleepMs: z.number().int().min(0) }),
    output: dagOutput,
    retry: FAST_RETRY,
    run: async (ctx) => {
      const started = new Date();
      await sleep(ctx.input.sleepMs, ctx.signal);
      await ledger(pool, "effect", ctx.input.key, ctx, started);
      for (let i = 0; i < ctx.input.children; i++) {
        ctx.schedule(step, { key: `${ctx.input.key}/${i}`, sleepMs: ctx.input.sleepMs, firstHoldMs: 0 });
      }
      return { key: ctx.input.key };
    },
  });

  /**
   * Returns a bad result of the given kind, after scheduling a child (which must
   * not exist when the outcome is refused: nothing partially written).
   */
  const payload = defineTask({
    name: "payload",
    input: z.object({ key: z.string(), kind: z.enum(PAYLOAD_KINDS) }),
    output: z.unknown().refine((v) => !(typeof v === "object" && v !== null && "invalid" in v), "an invalid result"),
    retry: FAST_RETRY,
    run: async (ctx) => {
      const started = new Date();
      await ledger(pool, "effect", ctx.input.key, ctx, started);
      ctx.schedule(step, { key: `${ctx.input.key}/child`, sleepMs: 0, firstHoldMs: 0 });
      return badResult(ctx.input.kind);
    },
  });

  return { step, limited, eoStep, dag, dagJoin, affParent, payload };
}

/** Fires every second; ticks missed while no leader runs are caught up. Ledger key: cron:<tick ISO>. */
export function cronTask(pool: pg.Pool, node: string) {
  return defineCronTask({
    name: "everySecond",
    cron: { expression: "* * * * * *", missed: "catch-up", maxCatchUp: 120 },
    output: z.null(),
    retry: FAST_RETRY,
    run: async (ctx) => {
      await pool.query(
        "INSERT INTO public.chaos_ledger (kind, key, task_id, workflow_id, attempt, node, started_at) VALUES ('effect', $1, $2, $3, $4, $5, clock_timestamp())",
        [`cron:${ctx.input.tick.toISOString()}`, ctx.taskId, ctx.workflowId, ctx.attempt, node],
      );
      return null;
    },
  });
}

export const PAYLOAD_KINDS = [
  "invalid",
  "oversized",
  "bigint",
  "circular",
  "deep",
  "nested",
  "nul",
  "surrogate",
  "fine",
] as const;
export type PayloadKind = (typeof PAYLOAD_KINDS)[number];

/** A result of each bad kind (and one fine one). */
export function badResult(kind: PayloadKind): unknown {
  switch (kind) {
    case "invalid":
      return { invalid: true };
    case "oversized":
      return { text: "x".repeat(2 * 1024 * 1024) };
    case "bigint":
      return { n: 10n };
    case "circular": {
      const o: Record<string, unknown> = {};
      o.self = o;
      return o;
    }
    case "deep": {
      let v: unknown = 1;
      for (let i = 0; i < 5_000; i++) v = { v };
      return v;
    }
    case "nested": {
      // Deep, but within what JSON.stringify and jsonb take: stored as is.
      let v: unknown = 1;
      for (let i = 0; i < 1_000; i++) v = [v];
      return v;
    }
    case "nul":
      return { text: "a\u0000b" };
    case "surrogate":
      return { text: "lone \ud800 surrogate" };
    case "fine":
      return { text: "fine \\u0000 is an escaped backslash, not a NUL; 😀 is a pair" };
  }
}

export type ChaosTasks = ReturnType<typeof chaosTasks>;

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (ms <= 0) return resolve();
    if (signal?.aborted) return reject(signal.reason ?? new Error("aborted"));
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason ?? new Error("aborted"));
    });
  });
}
