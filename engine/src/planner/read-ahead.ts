import type { Queryable } from "../db/pg.js";
import type { EventLogger } from "../logger.js";
import type { PlanDecision } from "../store/types.js";
import type { Reading } from "./reading.js";

/**
 * The next cycle's reading, taken on the reader connection while this cycle's
 * apply runs. It is used only if the next cycle starts within this long after
 * the read began: an older one would hide tasks scheduled since (a higher
 * priority among them) and the room freed since, for longer than a cycle.
 */
export const PREFETCH_FRESH_MS = 100;

/** A read of the next cycle on \`q\`, leaving out (and counting) \`inFlight\`: the planner's read. */
export type ReadNext = (q: Queryable, inFlight: readonly PlanDecision[]) => Promise<Reading>;

/**
 * The planner's read-ahead: while an apply runs on the leader connection, the
 * next cycle's nodes and candidates are read on a second connection, so that
 * a cycle costs about its apply rather than all of its statements one after
 * another. The planner tells it when an apply starts and ends, and takes the
 * reading at the start of the next cycle if it is still fresh.
 */
export class ReadAhead {
  /** The assignments of the apply in flight, if any (see attach). */
  private applyInFlight: readonly PlanDecision[] | undefined;
  /** The next cycle's reading, in flight or done (see PREFETCH_FRESH_MS). */
  private prefetch:
    | {
        startedAt: number;
        /** A read again after a wake waits for this one (see wake); more wakes meanwhile add none. */
        rereadQueued: boolean;
        readonly reading: Promise<Reading | undefined>;
      }
    | undefined;

  constructor(
    private readonly readNext: ReadNext,
    private readonly log: EventLogger,
    /** A reading of this many candidates is a full batch (see wake). */
    private readonly batchSize: number,
    /** The read connection, if any; dropped when a read on it fails. */
    private reader: Queryable | undefined,
  ) {}

  /** Whether reads overlap applies on a second connection. */
  get readsOnSecondConnection(): boolean {
    return this.reader !== undefined;
  }

  /**
   * Gives the planner its read connection. One that arrives while an apply
   * runs (the first cycle's, as the engine opens it) reads the next cycle at
   * once: without it, the second cycle read on the leader connection after
   * the first apply, ~25 ms at a start.
   */
  attach(reader: Queryable): void {
    this.reader = reader;
    if (this.applyInFlight !== undefined && this.prefetch === undefined) this.readAhead(reader, this.applyInFlight);
  }

  /** An apply of \`placed\` (the assignments among its decisions) was sent: read the next cycle meanwhile. */
  applying(placed: readonly PlanDecision[]): void {
    if (placed.length === 0) return;
    this.applyInFlight = placed;
    if (this.reader) this.readAhead(this.reader, placed);
  }

  /** The apply in flight returned (or failed). */
  applied(): void {
    this.applyInFlight = undefined;
  }

  /** Drops the reading in flight, if any: the apply failed, or this planner's epoch is over. */
  discard(): void {
    this.prefetch = undefined;
  }

  /**
   * The reading taken during the last apply, if it is fresh and the cycle's
   * sweep and promotion changed nothing (\`changed\`: a node declared dead, or
   * tasks released or promoted, would be missing from it); undefined if none.
   * Either way the reading is consumed. Not async: a cycle without one goes
   * on to its own read at once.
   */
  take(changed: boolean): Promise<Reading | undefined> | undefined {
    const prefetch = this.prefetch;
    this.prefetch = undefined;
    if (prefetch && !changed && performance.now() - prefetch.startedAt <= PREFETCH_FRESH_MS) return prefetch.reading;
    return undefined;
  }

  /** Starts reading the next cycle on the read connection while \`placed\` are applied (see PREFETCH_FRESH_MS). */
  private readAhead(reader: Queryable, placed: readonly PlanDecision[]): void {
    // Taken now, it cannot see the apply: its tasks are left out and its
    // assignments counted against their nodes and names by hand.
    this.prefetch = {
      startedAt: performance.now(),
      rereadQueued: false,
      reading: this.readOn(reader, placed, undefined),
    };
  }

  /** A read on the read connection; if that fails, the planner reads on the leader connection from now on. */
  private readOn(
    reader: Queryable,
    placed: readonly PlanDecision[],
    onFailure: Reading | undefined,
  ): Promise<Reading | undefined> {
    return this.readNext(reader, placed).catch((error: unknown) => {
      this.log.warn(
        { event: "planner.reader_failed", err: error },
        "planner read connection failed; reading on the leader connection",
      );
      if (this.reader === reader) this.reader = undefined;
      return onFailure;
    });
  }

  /**
   * The planner was woken. A wake while an apply runs (a completion freed
   * room, or tasks arrived) has the next cycle read again once the reading in
   * flight is done: taken at the apply's start, that reading found room only
   * as it was then, and in a busy cluster it is often none. The next cycle then
   * starts its apply as soon as this one's returns, instead of reading first.
   */
  wake(): void {
    const placed = this.applyInFlight;
    const reader = this.reader;
    const previous = this.prefetch;
    if (placed === undefined || reader === undefined || previous === undefined || previous.rereadQueued) return;
    const next = {
      startedAt: performance.now(),
      rereadQueued: true,
      reading: previous.reading.then((reading) => {
        next.rereadQueued = false;
        // A full batch needs no second look.
        if (reading === undefined || reading.fetched.length >= this.batchSize) return reading;
        if (this.applyInFlight !== placed || this.reader !== reader) return reading;
        next.startedAt = performance.now();
        return this.readOn(reader, placed, reading);
      }),
    };
    this.prefetch = next;
  }

  /** Waits for a read still in flight (its connection closes next), and drops it. */
  async stop(): Promise<void> {
    const prefetch = this.prefetch;
    this.prefetch = undefined;
    await prefetch?.reading;
  }
}
