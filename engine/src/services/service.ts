import type { EventLogger } from "../logger.js";

/** Every background duty of a node is a Service: started once, stopped once. */
export interface Service {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A sleep that can be cut short. `wake()` before `wait()` is remembered, so a
 * notification that arrives while the loop is busy is not lost.
 */
export class Wakeup {
  private pending = false;
  private resolve: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;

  wake(): void {
    if (this.resolve) this.fire();
    else this.pending = true;
  }

  wait(ms: number): Promise<void> {
    if (this.pending || ms <= 0) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.resolve = resolve;
      this.timer = setTimeout(() => this.fire(), ms);
    });
  }

  private fire(): void {
    const r = this.resolve;
    this.resolve = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = false;
    r?.();
  }
}

/**
 * A service that repeats one step: `tick()` runs, then the loop sleeps for the
 * delay it returned, or until `wake()`. `stop()` ends the loop and waits for the
 * step in progress.
 */
export abstract class LoopService implements Service {
  abstract readonly name: string;
  protected stopped = true;
  private loop: Promise<void> | undefined;
  private readonly wakeup = new Wakeup();

  /** One step; returns the milliseconds to sleep before the next. */
  protected abstract tick(): Promise<number>;

  /** Delay before the first step. */
  protected firstDelayMs(): number {
    return 0;
  }

  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.wakeup.wake();
    await this.loop;
  }

  /** Cuts the current sleep short. */
  wake(): void {
    this.wakeup.wake();
  }

  private async run(): Promise<void> {
    let delay = this.firstDelayMs();
    while (!this.stopped) {
      await this.wakeup.wait(delay);
      if (this.stopped) return;
      delay = await this.tick();
    }
  }
}

/**
 * A failure this soon after a recovery continues the outage already logged
 * (statements that fail and succeed by turns, under a short statement timeout
 * say); it is logged only if it lasts this long.
 */
export const OUTAGE_FLAP_MS = 10_000;

/**
 * Logs a repeating failure once per outage instead of once per attempt, and the
 * recovery when it ends.
 */
export class OutageLog {
  private failingSince: number | undefined;
  /** Whether the current failure was logged (a flap is not, unless it lasts). */
  private logged = false;
  private failures = 0;
  private recoveredAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly log: EventLogger,
    private readonly what: string,
  ) {}

  /**
   * `startedAt`: when the failed statement started. One that started before
   * the last recovery failed in the outage already logged (several statements
   * in flight at once: one succeeds, a slower one fails after it), and does
   * not start a new one.
   */
  failure(error: unknown, startedAt = Date.now()): void {
    this.failures++;
    const now = Date.now();
    if (this.failingSince === undefined) {
      if (startedAt < this.recoveredAt) return;
      this.failingSince = now;
      this.logged = now - this.recoveredAt >= OUTAGE_FLAP_MS;
      if (this.logged)
        this.log.warn(
          { event: "db.outage_began", what: this.what, err: error },
          `${this.what} failed; retrying until the database answers`,
        );
    } else if (!this.logged && now - this.failingSince >= OUTAGE_FLAP_MS) {
      this.logged = true;
      this.log.warn(
        { event: "db.outage_began", what: this.what, err: error },
        `${this.what} failed; retrying until the database answers`,
      );
    }
  }

  success(): void {
    if (this.failingSince === undefined) return;
    if (this.logged) {
      this.log.info(
        { event: "db.outage_ended", what: this.what, failures: this.failures, ms: Date.now() - this.failingSince },
        `${this.what} recovered`,
      );
      this.failures = 0;
    }
    this.recoveredAt = Date.now();
    this.failingSince = undefined;
    this.logged = false;
  }
}

/**
 * Sleeps a service can cut short when it stops: \`cancelAll()\` clears every
 * timer still pending (a timer left running keeps the process alive after
 * stop) and resolves its sleep at once.
 */
export class Sleeps {
  private readonly pending = new Map<NodeJS.Timeout, () => void>();

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(timer);
        resolve();
      }, ms);
      this.pending.set(timer, resolve);
    });
  }

  cancelAll(): void {
    for (const [timer, resolve] of this.pending) {
      clearTimeout(timer);
      resolve();
    }
    this.pending.clear();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Exponential backoff with jitter for reconnects: 100 ms doubling to 5 s. */
export function backoffMs(attempt: number): number {
  const base = Math.min(5_000, 100 * 2 ** Math.min(attempt, 10));
  return base / 2 + Math.random() * (base / 2);
}
