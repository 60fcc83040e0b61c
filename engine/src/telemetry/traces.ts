import {
  type Attributes,
  context,
  createTraceState,
  type Exception,
  isValidSpanId,
  isValidTraceId,
  type Link,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  type TracerProvider,
  trace,
} from "@opentelemetry/api";

/** The instrumentation scope of Weft's spans and metrics. */
export const INSTRUMENTATION_NAME = "weft";

/**
 * The tracer provider Weft traces with, or undefined when nothing listens:
 * \`provider\` when given, else the global one if an SDK registered it. The
 * API's global is a proxy that always exists; it has a delegate only once an
 * SDK called \`trace.setGlobalTracerProvider\` (\`getDelegateTracer\` answers
 * undefined before that), which is the test used here. Decided once, when the
 * engine is made: register the SDK before creating Weft (docs/observability.md).
 */
export function activeTracerProvider(provider?: TracerProvider): TracerProvider | undefined {
  if (provider !== undefined) return provider;
  const global = trace.getTracerProvider() as TracerProvider & {
    getDelegateTracer?: (name: string) => Tracer | undefined;
  };
  if (typeof global.getDelegateTracer === "function") {
    return global.getDelegateTracer(INSTRUMENTATION_NAME) === undefined ? undefined : global;
  }
  return global;
}

/** A span's context as stored with a task: the W3C traceparent, then " " and the tracestate if any. */
export function encodeSpanContext(sc: SpanContext): string {
  const flags = (sc.traceFlags & 0xff).toString(16).padStart(2, "0");
  const parent = `00-${sc.traceId}-${sc.spanId}-${flags}`;
  const state = sc.traceState?.serialize();
  return state ? `${parent} ${state}` : parent;
}

/** The span context \`encodeSpanContext\` wrote (remote), or undefined for anything else. */
export function decodeSpanContext(text: string | null | undefined): SpanContext | undefined {
  // Sliced, not matched: this runs once per traced attempt.
  if (
    !text ||
    text.length < 55 ||
    !text.startsWith("00-") ||
    text.charCodeAt(35) !== 45 ||
    text.charCodeAt(52) !== 45
  ) {
    return undefined;
  }
  const traceId = text.slice(3, 35);
  const spanId = text.slice(36, 52);
  const traceFlags = Number.parseInt(text.slice(53, 55), 16);
  if (!isValidTraceId(traceId) || !isValidSpanId(spanId) || Number.isNaN(traceFlags)) return undefined;
  return text.length > 56
    ? { traceId, spanId, traceFlags, isRemote: true, traceState: createTraceState(text.slice(56)) }
    : { traceId, spanId, traceFlags, isRemote: true };
}

/** Messaging semantic conventions (https://opentelemetry.io/docs/specs/semconv/messaging/). */
const SYSTEM = "messaging.system";
const OPERATION_TYPE = "messaging.operation.type";
const DESTINATION = "messaging.destination.name";
const MESSAGE_ID = "messaging.message.id";

/** What the spans of one attempt need to know about the task. */
export interface TracedTask {
  readonly id: string;
  readonly workflow_id: string;
  readonly parent_id: string | null;
  readonly task_name: string;
  readonly attempt: number;
  readonly affinity_group: string | null;
  readonly affinity: string | null;
  readonly trace_context: string | null;
  readonly attempt_span: string | null;
}

/**
 * Weft's spans (docs/observability.md, "Traces"): a PRODUCER span \`publish
 * <task>\` per scheduled task, whose context is stored with the task, and a
 * CONSUMER span \`process <task>\` per attempt, child of that context.
 */
export class Tracing {
  readonly tracer: Tracer;

  constructor(provider: TracerProvider) {
    this.tracer = provider.getTracer(INSTRUMENTATION_NAME);
  }

  /**
   * Starts the publish span of a task being scheduled, child of the active
   * context (or of \`fallback\` when that has no span), and returns it with the
   * context to store. The caller ends it once the task is written.
   */
  publish(
    task: {
      readonly id: string;
      readonly workflowId: string;
      readonly taskName: string;
      readonly parentId: string | null;
    },
    fallback?: Span,
  ): { span: Span; traceContext: string } {
    let parent = context.active();
    if (fallback !== undefined && trace.getSpan(parent) === undefined) parent = trace.setSpan(parent, fallback);
    // The task's name and id are the destination and the message id; Weft's
    // own attributes only add what the conventions have no name for. Few
    // attributes: each costs the SDK a check and a copy per span.
    const attributes: Attributes = {
      [SYSTEM]: "weft",
      [OPERATION_TYPE]: "publish",
      [DESTINATION]: task.taskName,
      [MESSAGE_ID]: task.id,
      "weft.workflow.id": task.workflowId,
    };
    if (task.parentId !== null) attributes["weft.task.parent_id"] = task.parentId;
    const span = this.tracer.startSpan(`publish ${task.taskName}`, { kind: SpanKind.PRODUCER, attributes }, parent);
    return { span, traceContext: encodeSpanContext(span.spanContext()) };
  }

  /**
   * Starts the span of an attempt: child of the context stored with its task
   * (a root span when there is none), linked to the previous attempt's span
   * and, for a join, to its upstream tasks' spans.
   */
  attempt(row: TracedTask, nodeId: string, upstreamSpans: readonly (string | null)[] | undefined): Span {
    const parent = decodeSpanContext(row.trace_context);
    const links: Link[] = [];
    const previous = row.attempt > 1 ? decodeSpanContext(row.attempt_span) : undefined;
    if (previous) links.push({ context: previous, attributes: { "weft.link": "previous_attempt" } });
    if (upstreamSpans) {
      for (const text of upstreamSpans) {
        const upstream = decodeSpanContext(text);
        if (upstream) links.push({ context: upstream, attributes: { "weft.link": "upstream" } });
      }
    }
    const attributes: Attributes = {
      [SYSTEM]: "weft",
      [OPERATION_TYPE]: "process",
      [DESTINATION]: row.task_name,
      [MESSAGE_ID]: row.id,
      "weft.workflow.id": row.workflow_id,
      "weft.task.attempt": row.attempt,
      "weft.node.id": nodeId,
    };
    if (row.parent_id !== null) attributes["weft.task.parent_id"] = row.parent_id;
    if (row.affinity_group !== null) attributes["weft.affinity.group"] = row.affinity_group;
    if (row.affinity !== null) attributes["weft.affinity.key"] = row.affinity;
    return this.tracer.startSpan(
      `process ${row.task_name}`,
      { kind: SpanKind.CONSUMER, attributes, links },
      parent ? trace.setSpanContext(ROOT_CONTEXT, parent) : ROOT_CONTEXT,
    );
  }

  /** Runs \`fn\` with \`span\` active, so the handler's own spans and schedules nest under it. */
  within<T>(span: Span, fn: () => T): T {
    return context.with(trace.setSpan(ROOT_CONTEXT, span), fn);
  }
}

/** Ends an attempt's span with its outcome: ERROR with the exception for a failure. */
export function endAttemptSpan(
  span: Span,
  outcome: { readonly state: string; readonly error: string | null; readonly retry?: { readonly delayMs: number } },
): void {
  if (outcome.state === "FAILED") {
    let info: Exception = { name: "Error", message: String(outcome.error) };
    try {
      const parsed = JSON.parse(outcome.error ?? "null") as { name?: string; message?: string; stack?: string } | null;
      if (parsed !== null && typeof parsed === "object") {
        info = {
          name: parsed.name ?? "Error",
          message: parsed.message ?? "",
          ...(parsed.stack ? { stack: parsed.stack } : {}),
        };
      }
    } catch {
      // The error text as it is.
    }
    span.recordException(info);
    span.setStatus({ code: SpanStatusCode.ERROR, message: info.message });
    span.setAttribute("weft.task.outcome", outcome.retry ? "retried" : "failed");
    if (outcome.retry) span.setAttribute("weft.retry.delay_ms", outcome.retry.delayMs);
  }
  span.end();
}

/** Marks an attempt's span aborted (\`cancel\`: revoked, cancelled, node stopping; \`timeout\`), and ends it unless timed out. */
export function abortAttemptSpan(span: Span, reason: unknown, timedOut: boolean): void {
  const message = reason instanceof Error ? reason.message : String(reason);
  span.addEvent(timedOut ? "timeout" : "cancel", { "weft.reason": message });
  if (!timedOut) {
    span.setAttribute("weft.task.outcome", "cancelled");
    span.end();
  }
}

/** A slot task's slot (input \`{ start, end }\`) or a cron tick's time (\`{ tick }\`) on its attempt's span. */
export function scheduledTimeAttributes(span: Span, input: unknown): void {
  if (typeof input !== "object" || input === null) return;
  const { start, end, tick } = input as { start?: unknown; end?: unknown; tick?: unknown };
  if (typeof start === "string") span.setAttribute("weft.slot.start", start);
  if (typeof end === "string") span.setAttribute("weft.slot.end", end);
  if (typeof tick === "string") span.setAttribute("weft.cron.tick", tick);
}
