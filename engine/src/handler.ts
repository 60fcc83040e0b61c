/**
 * The handler contract: what a task definition gives the engine (TaskHandler)
 * and what the engine hands it for one attempt (TaskExecution). The SDK builds
 * handlers from its task definitions; the worker runs them.
 */
import type { TaskSettings } from "./config.js";
import type { Queryable } from "./db/pg.js";
import type { TaskErrorInfo } from "./errors.js";
import type { Logger } from "./logger.js";

/** A child task to be written with its parent's outcome. `input` is JSON text. */
export interface ChildSpec {
  readonly taskName: string;
  readonly input: string;
  readonly priority?: number;
  readonly runAfter?: Date | null;
  readonly delayMs?: number | null;
  /** Inherited from the parent when omitted. */
  readonly affinityGroup?: string | null;
  readonly affinity?: string | null;
  /** Excluded from the joins that wait for its parent. */
  readonly fork?: boolean;
}

/** A listed upstream task's outcome, as its join receives it. */
export interface UpstreamOutcome {
  readonly taskId: string;
  /** COMPLETED, FAILED or CANCELLED; PURGED if it is older than the retention. */
  readonly status: "COMPLETED" | "FAILED" | "CANCELLED" | "PURGED";
  readonly result: unknown;
  readonly error: TaskErrorInfo | null;
}

/** What the engine hands a task handler for one attempt. */
export interface TaskExecution {
  readonly taskId: string;
  readonly workflowId: string;
  readonly parentId: string | null;
  readonly taskName: string;
  readonly attempt: number;
  readonly input: unknown;
  readonly nodeId: string;
  /** Aborts when the attempt is revoked (cancelled, re-planned) or the node stops. */
  readonly signal: AbortSignal;
  readonly log: Logger;
  /** Buffers a child; it is written only if this attempt's outcome is recorded. */
  spawn(child: ChildSpec): string;
  /**
   * Buffers a join over \`upstream\`: ids of children this attempt spawned. The
   * join waits for them and everything they spawn (except forks).
   */
  spawnJoin(join: ChildSpec, upstream: readonly string[]): string;
  /** On a join task: its listed upstream tasks' outcomes, in list order. */
  readonly upstream: readonly UpstreamOutcome[] | undefined;
  /** On a join task: messages its subtree sent it, oldest first. */
  readonly messages: readonly unknown[] | undefined;
  /** Sends \`message\` (JSON text) to the joins named \`joinName\` that await this task; written with its outcome. */
  sendToJoin(joinName: string, message: string): void;
  /** The state an earlier attempt saved, or undefined. */
  readonly savedState: unknown;
  /** Saves \`state\` (JSON text) for the next attempts, fenced by this attempt's token. */
  saveState(state: string): Promise<void>;
  /**
   * Exactly-once tasks only: the transaction that will record this attempt's
   * outcome. Work done through it commits if and only if the outcome does.
   */
  readonly tx: Queryable | undefined;
}

/** What \`onFailure\` sees of a failed attempt. */
export interface FailureInfo {
  readonly taskId: string;
  readonly workflowId: string;
  readonly taskName: string;
  readonly input: unknown;
  /** The failed attempt (1 for the first). */
  readonly attempt: number;
  readonly error: unknown;
  /** Whether the retry policy would retry (before \`stopRetrying\`). */
  readonly willRetry: boolean;
  /** No further attempts: the task fails now (and is dead-lettered if enabled). */
  stopRetrying(): void;
}

export interface TaskHandler {
  readonly name: string;
  /** Settings from the task definition (overridden by \`taskOverrides\`). */
  readonly settings?: TaskSettings;
  /**
   * Returns the task's result (JSON-serialisable), or a promise of it; throws
   * (or rejects) to fail the attempt. A result returned synchronously is
   * recorded without a promise chain.
   */
  execute(execution: TaskExecution): unknown;
  /** Called after each failed attempt, before the retry decision is recorded. */
  onFailure?(failure: FailureInfo): void | Promise<void>;
  /** 'exactly-once': the attempt's \`tx\` commits with its outcome. Default 'at-least-once'. */
  readonly guarantee?: "at-least-once" | "exactly-once";
  /** A slot series' task: its outcome finishes its slot. */
  readonly slot?: { readonly every: string; readonly timeZone: string; readonly ordered: boolean };
  /** A cron schedule: the leader fires the task at each tick. */
  readonly cron?: CronSpec;
}

/** A task's cron schedule, as nodes publish it. */
export interface CronSpec {
  readonly expression: string;
  readonly timeZone: string;
  /** Ticks missed while no leader ran: fire none ('skip') or up to maxCatchUp ('catch-up'). */
  readonly missed: "skip" | "catch-up";
  readonly maxCatchUp: number;
}
