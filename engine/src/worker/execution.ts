import type { Span } from "@opentelemetry/api";
import type { Queryable } from "../db/pg.js";
import { InvalidArgumentError } from "../errors.js";
import type { ChildSpec, TaskExecution, UpstreamOutcome } from "../handler.js";
import { newId } from "../ids.js";
import type { Logger } from "../logger.js";
import type { AssignedTaskRow, NewJoinEdges, NewTaskRow } from "../store/types.js";
import type { Tracing } from "../telemetry/traces.js";

/** The children of an attempt that scheduled none (never written to). */
const NONE: NewTaskRow[] = [];

/** What every attempt of one worker shares (one object per worker, not per task). */
export interface ExecutionHost {
  readonly nodeId: string;
  readonly log: Logger;
  /** Weft's spans, when a tracer provider is in use. */
  readonly tracing: Tracing | undefined;
  /** Saves an attempt's state, fenced by its token. */
  saveAttemptState(row: AssignedTaskRow, state: string): Promise<void>;
}

/** What an execution reads of its running attempt (see Running in attempt.ts). */
export interface AttemptHandle {
  /** The attempt's span, while it is open (tracing only). */
  readonly span: Span | undefined;
  readonly signal: AbortSignal;
}

/**
 * One attempt as its handler sees it. A class, not a literal with closures:
 * one is made per task, so it holds references only (the row's fields are
 * read through getters, the worker's through its host).
 */
export class Execution implements TaskExecution {
  // Made on first use: most attempts schedule nothing (one allocation fewer per task each).
  children: NewTaskRow[] = NONE;
  edges: NewJoinEdges[] | undefined;
  outbox: { joinName: string; message: string }[] | undefined;
  /** Children by id, to attach the joins that list them. */
  private byId: Map<string, { ownJoins: string[] }> | undefined;
  /** The attempt's logger, made when the task first uses it (a pino child per task costs). */
  private logger: Logger | undefined;

  constructor(
    private readonly row: AssignedTaskRow,
    private readonly entry: AttemptHandle,
    private readonly host: ExecutionHost,
    readonly upstream: readonly UpstreamOutcome[] | undefined,
    readonly messages: readonly unknown[] | undefined,
    readonly tx: Queryable | undefined,
  ) {}

  get taskId(): string {
    return this.row.id;
  }

  get workflowId(): string {
    return this.row.workflow_id;
  }

  get parentId(): string | null {
    return this.row.parent_id;
  }

  get taskName(): string {
    return this.row.task_name;
  }

  get attempt(): number {
    return this.row.attempt;
  }

  get input(): unknown {
    return this.row.input;
  }

  get nodeId(): string {
    return this.host.nodeId;
  }

  get log(): Logger {
    const span = this.entry.span;
    this.logger ??= this.host.log.child({
      taskId: this.row.id,
      workflowId: this.row.workflow_id,
      taskName: this.row.task_name,
      attempt: this.row.attempt,
      ...(span ? { trace_id: span.spanContext().traceId, span_id: span.spanContext().spanId } : {}),
    });
    return this.logger;
  }

  get signal(): AbortSignal {
    return this.entry.signal;
  }

  get savedState(): unknown {
    return this.row.saved_state ?? undefined;
  }

  saveState(state: string): Promise<void> {
    return this.host.saveAttemptState(this.row, state);
  }

  spawn(child: ChildSpec): string {
    return this.add(child, null).id;
  }

  sendToJoin(joinName: string, message: string): void {
    this.outbox ??= [];
    this.outbox.push({ joinName, message });
  }

  spawnJoin(join: ChildSpec, upstream: readonly string[]): string {
    if (!Array.isArray(upstream) || upstream.length === 0) {
      throw new InvalidArgumentError("upstream", "a join needs at least one upstream task");
    }
    const listed = new Set<string>();
    for (const id of upstream) {
      if (listed.has(id)) throw new InvalidArgumentError("upstream", `task ${id} is listed twice`);
      if (!this.byId?.has(id)) {
        throw new InvalidArgumentError(
          "upstream",
          `task ${id} was not scheduled by this attempt; a join inside a task lists the tasks it scheduled (join existing tasks from the client)`,
        );
      }
      listed.add(id);
    }
    const row = this.add(join, upstream.length);
    for (const id of upstream) this.byId?.get(id)?.ownJoins.push(row.id);
    this.edges ??= [];
    this.edges.push({ joinId: row.id, upstream: [...upstream], parentId: this.row.id });
    return row.id;
  }

  private add(child: ChildSpec, joinPending: number | null): NewTaskRow & { ownJoins: string[] } {
    const row = this.row;
    const created = {
      id: newId(),
      workflowId: row.workflow_id,
      parentId: row.id,
      taskName: child.taskName,
      input: child.input,
      priority: child.priority ?? 0,
      runAfter: child.runAfter ?? null,
      delayMs: child.delayMs ?? null,
      affinityGroup: child.affinityGroup === undefined ? row.affinity_group : child.affinityGroup,
      affinity: child.affinity === undefined ? row.affinity : child.affinity,
      isFork: child.fork ?? false,
      joinPending,
      ownJoins: [] as string[],
      traceContext: null as string | null,
    };
    const tracing = this.host.tracing;
    if (tracing !== undefined) {
      // Written with the attempt's outcome: the publish span ends here, when scheduled.
      const published = tracing.publish(created, this.entry.span);
      created.traceContext = published.traceContext;
      published.span.end();
    }
    if (this.children === NONE) this.children = [];
    this.children.push(created);
    this.byId ??= new Map();
    this.byId.set(created.id, created);
    return created;
  }
}
