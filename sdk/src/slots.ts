import {
  type Engine,
  InvalidArgumentError,
  parseInterval,
  type Queryable,
  SlotNotAcquiredError,
  type SlotPick,
  type SlotRow,
  type SlotSeries,
  validateRange,
  validateTaskName,
  validateTimeZone,
} from "@weft/engine";

/** A slot's state in a coverage report. ACQUIRED: being processed now; MISSING: never ensured. */
export type SlotStatus = "AVAILABLE" | "ACQUIRED" | "COMPLETE" | "SKIP" | "FAILED" | "MISSING";

export interface SlotState {
  readonly start: Date;
  readonly end: Date;
  readonly status: SlotStatus;
  /** 1, plus one per re-open. */
  readonly generation: number;
  /** Failed attempts of this generation. */
  readonly attempts: number;
  /** The last failure's message. */
  readonly message: string | null;
  readonly completedAt: Date | null;
  /** The task (engine-run) or worker (pull mode) that completed it. */
  readonly completedBy: string | null;
  /** Earlier generations, oldest first. */
  readonly history: readonly SlotHistoryEntry[];
}

export interface SlotHistoryEntry {
  readonly generation: number;
  readonly status: string;
  readonly completedAt: string | null;
  readonly completedBy: string | null;
  readonly message: string | null;
  readonly reopenedAt: string;
}

export interface SlotCoverage {
  readonly from: Date;
  readonly to: Date;
  readonly every: string;
  readonly slots: readonly SlotState[];
  readonly counts: {
    readonly total: number;
    readonly complete: number;
    readonly skipped: number;
    /** AVAILABLE: to do, or failed and waiting for a retry. */
    readonly pending: number;
    readonly acquired: number;
    readonly failed: number;
    readonly missing: number;
  };
  /** Maximal runs of slots that are neither COMPLETE nor SKIP. */
  readonly gaps: readonly { readonly from: Date; readonly to: Date }[];
  /**
   * One character per slot: `#` complete, `-` skipped, `.` pending, `>` acquired,
   * `x` failed, `?` missing.
   */
  readonly grid: string;
}

export interface SlotRange {
  readonly from: Date;
  readonly to: Date;
}

export interface AcquireOptions {
  /** Slots whose start is in [from, to). */
  readonly range: SlotRange;
  /** Oldest first (default) or newest first. */
  readonly order?: "oldest" | "newest";
  /** Which slots to take: AVAILABLE (default); add FAILED to retry given-up slots. */
  readonly status?: readonly ("AVAILABLE" | "FAILED")[];
  /** Recorded as the slot's completedBy. */
  readonly worker?: string;
}

const GRID: Record<SlotStatus, string> = {
  COMPLETE: "#",
  SKIP: "-",
  AVAILABLE: ".",
  ACQUIRED: ">",
  FAILED: "x",
  MISSING: "?",
};

/**
 * A pull-mode slot, locked by the caller's transaction until it commits or
 * rolls back. End it with `complete`, `fail` or `skip`, then commit; if the
 * process dies first, the transaction's end releases the slot.
 */
export class AcquiredSlot {
  private done = false;

  /** @internal */
  constructor(
    private readonly engine: Engine,
    private readonly tx: Queryable,
    private readonly row: SlotRow,
    private readonly worker: string | null,
    private readonly maxAttempts: number,
  ) {}

  get start(): Date {
    return this.row.slot_start;
  }
  get end(): Date {
    return this.row.slot_end;
  }
  get generation(): number {
    return this.row.generation;
  }
  /** Failed attempts before this one. */
  get attempts(): number {
    return this.row.attempts;
  }
  /** The previous attempt's failure message. */
  get message(): string | null {
    return this.row.message;
  }

  complete(): Promise<void> {
    return this.finish("COMPLETE", null);
  }

  skip(reason?: string): Promise<void> {
    return this.finish("SKIP", reason ?? null);
  }

  /** Back to AVAILABLE with `message` and one more attempt (FAILED once the series' maxAttempts is reached). */
  fail(message: string): Promise<void> {
    if (typeof message !== "string") throw new InvalidArgumentError("message", "expected a string");
    return this.finish("AVAILABLE", message.slice(0, 10_000));
  }

  private async finish(status: "COMPLETE" | "SKIP" | "AVAILABLE", message: string | null): Promise<void> {
    if (this.done) throw new SlotNotAcquiredError("this slot was already completed, failed or skipped");
    const result = await this.engine.api.slots.finish(
      this.tx,
      this.row,
      status,
      message,
      this.worker,
      this.maxAttempts,
    );
    if (result === undefined) {
      throw new SlotNotAcquiredError(
        `slot ${this.row.slot_start.toISOString()} is no longer AVAILABLE at generation ${this.row.generation}`,
      );
    }
    this.done = true;
  }
}

/** Options of a pull-mode series (no task definition). */
export interface SlotSeriesOptions {
  readonly every: string;
  /** For 1d and 1w slots (default UTC). */
  readonly timeZone?: string;
  /** Pull mode: a slot failed this many times becomes FAILED (default 0: never). */
  readonly maxAttempts?: number;
}

/**
 * One series of time slots: a task name and an interval. Engine-run series
 * (from `defineSlotTask`) have a task per slot that the planner runs; pull-mode
 * series are processed by callers with `acquire` / `process`.
 */
export class SlotSeriesClient {
  private readonly series: SlotSeries;
  private readonly maxAttempts: number;

  /** @internal created by WeftClient.slots */
  constructor(
    private readonly engine: Engine,
    taskName: string,
    options: SlotSeriesOptions,
    private readonly engineRun: { readonly ordered: boolean } | null,
  ) {
    validateTaskName(taskName);
    const interval = parseInterval(options.every);
    const timeZone = validateTimeZone(options.timeZone ?? "UTC");
    const max = options.maxAttempts ?? 0;
    if (!Number.isInteger(max) || max < 0 || max > 1_000_000) {
      throw new InvalidArgumentError("maxAttempts", "expected an integer from 0 to 1000000");
    }
    this.maxAttempts = max;
    this.series = { taskName, interval, timeZone };
  }

  get taskName(): string {
    return this.series.taskName;
  }
  /** The normalised interval (`60m` is `1h`). */
  get every(): string {
    return this.series.interval.key;
  }

  /**
   * Creates every missing slot of [from, to) (aligned to the interval), and for
   * an engine-run series its task. Idempotent, safe from many processes at once.
   * Returns how many slots it created.
   */
  async ensure(range: SlotRange): Promise<number> {
    const { from, to } = validateRange(range);
    return this.engine.api.slots.ensure(this.series, from, to, this.engineRun);
  }

  /** Every slot of [from, to) with its state, counts, gaps and a one-line grid. */
  async coverage(range: SlotRange): Promise<SlotCoverage> {
    const { from, to } = validateRange(range);
    const api = this.engine.api.slots;
    const expected = await api.boundaries(this.series, from, to);
    const rows = await api.coverage(this.series, expected[0]?.start ?? from, to);
    const byStart = new Map(rows.map((r) => [r.slot_start.getTime(), r]));
    const slots: SlotState[] = expected.map(({ start, end }) => {
      const r = byStart.get(start.getTime());
      if (!r) {
        return {
          start,
          end,
          status: "MISSING",
          generation: 0,
          attempts: 0,
          message: null,
          completedAt: null,
          completedBy: null,
          history: [],
        };
      }
      return {
        start,
        end,
        status: r.acquired ? "ACQUIRED" : r.status,
        generation: r.generation,
        attempts: r.attempts,
        message: r.message,
        completedAt: r.completed_at,
        completedBy: r.completed_by,
        history: (r.history ?? []) as SlotHistoryEntry[],
      };
    });
    const count = (s: SlotStatus) => slots.filter((x) => x.status === s).length;
    const gaps: { from: Date; to: Date }[] = [];
    for (const s of slots) {
      if (s.status === "COMPLETE" || s.status === "SKIP") continue;
      const last = gaps[gaps.length - 1];
      if (last && last.to.getTime() === s.start.getTime()) last.to = s.end;
      else gaps.push({ from: s.start, to: s.end });
    }
    return {
      from,
      to,
      every: this.series.interval.key,
      slots,
      counts: {
        total: slots.length,
        complete: count("COMPLETE"),
        skipped: count("SKIP"),
        pending: count("AVAILABLE"),
        acquired: count("ACQUIRED"),
        failed: count("FAILED"),
        missing: count("MISSING"),
      },
      gaps,
      grid: slots.map((s) => GRID[s.status]).join(""),
    };
  }

  /**
   * Re-opens the finished slots of [from, to) (COMPLETE, SKIP and FAILED by
   * default) for reprocessing: each gets a new generation, keeps the story of
   * the old one, and (engine-run) a new task. A run of an older generation can
   * no longer complete it. Returns how many were re-opened.
   */
  async reopen(
    range: SlotRange,
    options: { readonly status?: readonly ("COMPLETE" | "SKIP" | "FAILED")[] } = {},
  ): Promise<number> {
    const { from, to } = validateRange(range);
    const statuses = options.status ?? ["COMPLETE", "SKIP", "FAILED"];
    if (
      !Array.isArray(statuses) ||
      statuses.length === 0 ||
      statuses.some((s) => !["COMPLETE", "SKIP", "FAILED"].includes(s))
    ) {
      throw new InvalidArgumentError("status", "expected a non-empty list of COMPLETE, SKIP, FAILED");
    }
    return this.engine.api.slots.reopen(this.series, from, to, statuses, this.engineRun);
  }

  /**
   * Pull mode, DTC style: locks the first matching slot (FOR UPDATE SKIP LOCKED)
   * inside `tx`, a transaction the caller holds for the duration of its work,
   * or returns null when none is free. Commit after `complete`, `fail` or `skip`.
   */
  async acquire(tx: Queryable, options: AcquireOptions): Promise<AcquiredSlot | null> {
    this.checkPullMode();
    if (typeof tx?.query !== "function") throw new InvalidArgumentError("tx", "expected a client inside BEGIN");
    const pick = this.pick(options);
    const row = await this.engine.api.slots.acquire(tx, this.series, pick);
    return row ? new AcquiredSlot(this.engine, tx, row, options.worker ?? null, this.maxAttempts) : null;
  }

  /**
   * Pull mode with the transaction managed: acquires a slot, runs \`work\` with it
   * and the transaction, completes the slot when \`work\` returns (skips it when it
   * returns "skip"), fails it with the error's message when it throws (the
   * work's own writes undone), and commits. Returns the slot's start, or null
   * when no slot was free.
   */
  async process(
    options: AcquireOptions,
    work: (slot: AcquiredSlot, tx: Queryable) => Promise<"skip" | undefined>,
  ): Promise<Date | null> {
    const pick = this.pick(options);
    let slot: AcquiredSlot | undefined;
    const taken = (row: SlotRow, tx: Queryable) => {
      slot ??= new AcquiredSlot(this.engine, tx, row, options.worker ?? null, this.maxAttempts);
      return slot;
    };
    const row = await this.engine.api.slots.process(
      this.series,
      pick,
      async (r, tx) => {
        const acquired = taken(r, tx);
        const outcome = await work(acquired, tx);
        // DTM's SKIP outcome (not a skipped test): the work found nothing to do for this slot.
        if (outcome === "skip") await acquired.skip();
        else await acquired.complete();
      },
      (r, tx, error) => taken(r, tx).fail(error instanceof Error ? error.message : String(error)),
    );
    return row ? row.slot_start : null;
  }

  /** The slots \`options\` asks for, validated (pull mode only). */
  private pick(options: AcquireOptions): SlotPick {
    this.checkPullMode();
    const { from, to } = validateRange(options?.range);
    const order = options.order ?? "oldest";
    if (order !== "oldest" && order !== "newest")
      throw new InvalidArgumentError("order", `expected "oldest" or "newest"`);
    const statuses = options.status ?? ["AVAILABLE"];
    if (
      !Array.isArray(statuses) ||
      statuses.length === 0 ||
      statuses.some((s) => s !== "AVAILABLE" && s !== "FAILED")
    ) {
      throw new InvalidArgumentError("status", "expected a non-empty list of AVAILABLE, FAILED");
    }
    return { statuses, from, to, order };
  }

  private checkPullMode(): void {
    if (this.engineRun) {
      throw new InvalidArgumentError(
        "acquire",
        `slots of "${this.series.taskName}" are run by the engine (defineSlotTask); pull mode is for series without a task`,
      );
    }
  }
}

/**
 * A series by name for callers without its definition (the CLI): engine-run
 * (and ordered) when its slots have tasks, as the database records it; pull
 * mode otherwise. Re-opening an engine-run series this way gives each slot a
 * new task, as re-opening it through its definition does.
 * @internal
 */
export async function openSeriesByName(
  engine: Engine,
  taskName: string,
  options: SlotSeriesOptions,
): Promise<SlotSeriesClient> {
  validateTaskName(taskName);
  const series: SlotSeries = {
    taskName,
    interval: parseInterval(options.every),
    timeZone: validateTimeZone(options.timeZone ?? "UTC"),
  };
  const mode = await engine.api.slots.mode(series);
  return new SlotSeriesClient(engine, taskName, options, mode);
}
