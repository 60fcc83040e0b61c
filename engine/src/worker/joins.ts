import type { Queryable } from "../db/pg.js";
import type { TaskErrorInfo } from "../errors.js";
import type { UpstreamOutcome } from "../handler.js";
import type { Store } from "../store/index.js";
import type { UpstreamRow } from "../store/types.js";

/** Adds \`value\` to the list of \`key\`. */
function appendTo<T>(lists: Map<string, T[]>, key: string, value: T): void {
  const list = lists.get(key);
  if (list) list.push(value);
  else lists.set(key, [value]);
}

function toUpstreamOutcome(u: UpstreamRow): UpstreamOutcome {
  return {
    taskId: u.id,
    status: (u.state ?? "PURGED") as UpstreamOutcome["status"],
    result: u.state === "COMPLETED" ? u.result : null,
    error: (u.error as TaskErrorInfo | null) ?? null,
  };
}

/**
 * The upstream outcomes and messages of the given joins, by join; with
 * \`upstreamSpans\` (tracing only), the spans of their upstream tasks too.
 */
export async function joinInputs(
  store: Store,
  q: Queryable,
  joinIds: readonly string[],
  upstreamSpans: Map<string, (string | null)[]> | undefined,
): Promise<{ upstream: Map<string, UpstreamOutcome[]>; messages: Map<string, unknown[]> }> {
  const upstream = new Map<string, UpstreamOutcome[]>();
  const messages = new Map<string, unknown[]>();
  for (const m of await store.worker.joinMessages(q, joinIds)) appendTo(messages, m.join_task_id, m.message);
  for (const u of await store.worker.upstreams(q, joinIds)) {
    appendTo(upstream, u.join_task_id, toUpstreamOutcome(u));
    if (upstreamSpans !== undefined) appendTo(upstreamSpans, u.join_task_id, u.span);
  }
  return { upstream, messages };
}
