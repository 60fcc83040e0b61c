import { preparedName } from "../../db/statement.js";
import { WORKFLOW_LOCK_CLASS, workflowBucket } from "../locks.js";
import { NOTIFY_DUE, NOTIFY_PLANNER, NOTIFY_WORKFLOWS, notifyPrefixSql } from "../notify.js";
import { encodeNewTasks, newTasksRelation } from "../packed.js";
import type { NewJoinEdges, NewTaskRow, OutcomeRow } from "../types.js";
import { attemptEntrySql } from "./fragments.js";
import { joinEdgesFrom, joinEdgesJson, joinEdgesSelectList, TASK_INSERT_COLUMNS, taskSelectList } from "./insert.js";

/** The worker's record of a batch of outcomes; traced: it stores the attempts' spans. */
export function completeName(schema: string, traced: boolean): string {
  return preparedName(traced ? "complete_traced" : "complete", schema);
}

/**
 * One statement records a batch of outcomes. Every write is fenced: a task is
 * finished only while its token matches and it is still READY (not cancelled,
 * not re-planned), and only the children of recorded outcomes are inserted.
 * Workflow rows are upserted in id order, so concurrent batches lock shared
 * workflows in the same order (a separate FOR UPDATE pass cost one more
 * write per workflow); solo workflows have none to write. Should
 * a plan ever differ, the rare deadlock is retried: the statement is idempotent.
 *
 * There is no join with a parameter set: rows are found with \`= ANY(array)\`
 * and per-row values looked up in jsonb objects, so no statistics can turn a
 * batch into a quadratic nested loop (see PlannerStore.apply).
 * $1 ids, comma-separated (see PlannerStore.apply); $13 their tokens,
 * comma-separated, then those of the retries ($10), made into one jsonb
 * { id: token } once per statement (token_map): a map written out by the
 * worker cost it a string per outcome and the server a 70 KB parse per
 * 1,000 outcomes;
 * $2 jsonb { id: { s: state, r: result, e: error } } for the outcomes that
 * are not a plain success (COMPLETED with a null result): absent means
 * exactly that, so a batch of plain successes looks up each row once, in
 * the token map, rather than five times. $6 the workflow buckets, comma-separated.
 * Joins: a recorded task reports to every join in its \`awaited_by\` (-1);
 * each inserted child inherits its parent's list (+1 to each of those joins;
 * forks inherit nothing) plus the joins scheduled with it that list it; new
 * joins ($4) start with the count of their listed children, and their edges
 * come in $5 (joinEdgesJson: one id list per join). A join whose
 * count reaches zero moves from PARKED to READY in this same statement. A
 * failure counts against its workflow unless a join lists the task (the join
 * receives the outcome and decides).
 *
 * Retries ($10: ids; map entries carry d: delay ms, w: retry window ms) go
 * back to PARKED until now() + delay, unless the retry would start later than
 * the window after the first failure: then they fail for good here. A final
 * failure with l = 1 is copied to the dead-letter table.
 */
export function completeSql(s: string, channel: string, traced: boolean): string {
  return `
      WITH token_map AS MATERIALIZED (
        SELECT jsonb_object(string_to_array($1::text, ',') || $10::text[], string_to_array($13::text, ',')) AS m
      ), past_window AS MATERIALIZED (
        SELECT coalesce(array_agg(t.id), '{}') AS ids FROM ${s}.tasks t
         WHERE t.id = ANY($10::text[])
           -- The window starts at the first failure since the last requeue (which
           -- restarts attempts at 1).
           AND coalesce((SELECT max((e ->> 'endedAt')::timestamptz) FROM jsonb_array_elements(t.attempt_log) e
                          WHERE (e ->> 'attempt')::int = 1), now())
               + make_interval(secs => ($2::jsonb -> t.id ->> 'w')::float8 / 1000)
               < now() + make_interval(secs => ($2::jsonb -> t.id ->> 'd')::float8 / 1000)
      ), retried AS (
        UPDATE ${s}.tasks t
           SET queue = 'PARKED', park_reason = 'RUN_AFTER', state = 'PENDING',
               run_after = now() + make_interval(secs => ($2::jsonb -> t.id ->> 'd')::float8 / 1000),
               error = $2::jsonb -> t.id -> 'e',
               attempt_log = coalesce(t.attempt_log, '[]'::jsonb) || ${attemptEntrySql("t", "$2::jsonb -> t.id -> 'e'")},
               ${traced ? "attempt_span = $2::jsonb -> t.id ->> 't'," : ""}
               assigned_node = NULL, token = NULL, assigned_at = NULL, deadline = NULL
         WHERE t.id = ANY($10::text[]) AND NOT (t.id = ANY((SELECT ids FROM past_window)::text[]))
           AND t.queue = 'READY' AND t.token = ((SELECT m FROM token_map) ->> t.id)::bigint
        RETURNING t.id, ($2::jsonb -> t.id ->> 'd')::float8 AS delay
      ), done AS (
        UPDATE ${s}.tasks t
           SET queue = 'DELETED',
               state = coalesce($2::jsonb -> t.id ->> 's', 'COMPLETED'),
               result = coalesce($2::jsonb -> t.id -> 'r', 'null'),
               error = coalesce($2::jsonb -> t.id -> 'e', 'null'),
               attempt_log = CASE WHEN $2::jsonb -> t.id ->> 's' = 'FAILED'
                                  THEN coalesce(t.attempt_log, '[]'::jsonb) || ${attemptEntrySql("t", "$2::jsonb -> t.id -> 'e'")}
                                  ELSE t.attempt_log END,
               -- The attempt's span (migration 011), for the joins that link to it:
               -- written by tracing nodes only, so the others' statement is as it was.
               ${traced ? "attempt_span = coalesce($2::jsonb -> t.id ->> 't', t.attempt_span)," : ""}
               finished_at = now(),
               -- A solo root that spawns children ($12) gets its workflow row below.
               solo = t.solo AND NOT (t.id = ANY($12::text[]))
         WHERE t.id = ANY(string_to_array($1::text, ',') || (SELECT ids FROM past_window)) AND t.queue = 'READY'
           AND t.token = ((SELECT m FROM token_map) ->> t.id)::bigint
           -- Hold the workflows' buckets shared (sorted, in $6) before any row
           -- is locked: a cancel of one of them waits for this batch (see locks.ts).
           AND (SELECT count(*) FROM (SELECT pg_advisory_xact_lock_shared(${WORKFLOW_LOCK_CLASS}, b)
                                        FROM unnest(string_to_array($6::text, ',')::int[]) b) l) >= 0
        RETURNING t.id, t.workflow_id, t.state, t.awaited_by, t.affinity_group, t.affinity, t.solo, t.created_at
      ), dead AS (
        -- The dead-letter copy reads the task as it was before this statement
        -- (its node and start time), plus this attempt, and the slot of a slot
        -- task ($11) that still points at it (migration 010).
        INSERT INTO ${s}.dead_letters AS d (task_id, workflow_id, parent_id, task_name, input, error, attempts,
                                            task_created_at, slot_every, slot_start)
        SELECT t.id, t.workflow_id, t.parent_id, t.task_name, t.input, $2::jsonb -> t.id -> 'e',
               coalesce(t.attempt_log, '[]'::jsonb) || ${attemptEntrySql("t", "$2::jsonb -> t.id -> 'e'")}, t.created_at,
               sl.every, sl.slot_start
          FROM ${s}.tasks t
          LEFT JOIN ${s}.slots sl ON sl.task_id = t.id AND sl.task_id = ANY($11::text[])
         WHERE t.id = ANY(ARRAY(SELECT id FROM done WHERE state = 'FAILED' AND $2::jsonb -> id ->> 'l' = '1'))
        ON CONFLICT (task_id) DO UPDATE
          SET error = EXCLUDED.error, attempts = EXCLUDED.attempts, failed_at = now(),
              slot_every = EXCLUDED.slot_every, slot_start = EXCLUDED.slot_start
        RETURNING 1
      ), slot_done AS (
        -- Engine-run slots ($11: the slot tasks of this batch; usually empty): the
        -- slot ends with its task, unless it was re-opened meanwhile (it points
        -- at another task then).
        UPDATE ${s}.slots sl
           SET status = CASE WHEN d.state = 'COMPLETED' THEN 'COMPLETE' ELSE 'FAILED' END,
               attempts = sl.attempts + (d.state = 'FAILED')::int,
               message = CASE WHEN d.state = 'FAILED' THEN $2::jsonb -> d.id -> 'e' ->> 'message' ELSE sl.message END,
               completed_at = CASE WHEN d.state = 'COMPLETED' THEN now() END,
               completed_by = CASE WHEN d.state = 'COMPLETED' THEN d.id END
          FROM done d
         WHERE sl.task_id = ANY($11::text[]) AND sl.task_id = d.id AND sl.status = 'AVAILABLE'
           AND cardinality($11::text[]) > 0
        RETURNING 1
      ), slot_retried AS (
        -- DTM's FAIL: the slot stays AVAILABLE with a message and an attempt count.
        UPDATE ${s}.slots sl
           SET attempts = sl.attempts + 1, message = $2::jsonb -> sl.task_id -> 'e' ->> 'message'
         WHERE sl.task_id = ANY(ARRAY(SELECT id FROM retried WHERE id = ANY($11::text[]))) AND sl.status = 'AVAILABLE'
        RETURNING 1
      ), done_map AS MATERIALIZED (
        SELECT coalesce(jsonb_object_agg(id, coalesce(to_jsonb(awaited_by), '[]'::jsonb)), '{}') AS m FROM done
      ), children AS (
        INSERT INTO ${s}.tasks (${TASK_INSERT_COLUMNS})
        SELECT ${taskSelectList(
          "ARRAY(SELECT jsonb_array_elements_text((SELECT m FROM done_map) -> c.parent_id))",
        )} FROM ${newTasksRelation(3)}
         WHERE (SELECT m FROM done_map) ? c.parent_id
        RETURNING workflow_id, awaited_by
      ), edges AS (
        INSERT INTO ${s}.task_edges (join_task_id, upstream_task_id, position)
        SELECT ${joinEdgesSelectList} FROM ${joinEdgesFrom(5)}
         WHERE (SELECT m FROM done_map) ? e.p
        RETURNING 1
      ), messages AS (
        -- A message goes to every join awaiting its sender (as of this statement)
        -- that has the task name it was addressed to.
        -- The joins are found by primary key. A batch without messages (the
        -- usual one) skips the whole join (a one-time filter): a generic plan
        -- had made it a hash join that scanned the task table for PARKED rows,
        -- 2 ms per batch at 20,000 tasks and growing with the table.
        INSERT INTO ${s}.join_messages (join_task_id, from_task_id, message)
        SELECT t.id, m.from_id, m.message
          FROM (SELECT msg.from_id, msg.join_name, msg.message,
                       jsonb_array_elements_text((SELECT m FROM done_map) -> msg.from_id) AS join_id
                  FROM unnest($7::text[], $8::text[], $9::jsonb[]) AS msg(from_id, join_name, message)) m
          JOIN ${s}.tasks t ON t.id = m.join_id
         WHERE t.task_name = m.join_name AND t.queue = 'PARKED' AND cardinality($7::text[]) > 0
        RETURNING 1
      ), join_delta AS (
        SELECT j, sum(d)::int AS d
          FROM (SELECT unnest(awaited_by) AS j, -1 AS d FROM done WHERE awaited_by IS NOT NULL
                UNION ALL
                SELECT unnest(awaited_by), 1 FROM children WHERE awaited_by IS NOT NULL) x
         WHERE NOT (j = ANY($4::text[]))
         GROUP BY j HAVING sum(d) <> 0
      ), join_map AS MATERIALIZED (
        SELECT jsonb_object_agg(j, d) AS m FROM join_delta
      ), joins AS (
        UPDATE ${s}.tasks t
           SET join_pending = t.join_pending + ((SELECT m FROM join_map) ->> t.id)::int,
               queue = CASE WHEN t.join_pending + ((SELECT m FROM join_map) ->> t.id)::int = 0 THEN 'READY' ELSE t.queue END,
               park_reason = CASE WHEN t.join_pending + ((SELECT m FROM join_map) ->> t.id)::int = 0 THEN NULL
                                  ELSE t.park_reason END
         WHERE t.id = ANY((SELECT array_agg(j ORDER BY j) FROM join_delta)::text[])
           AND t.queue = 'PARKED' AND t.join_pending IS NOT NULL
        RETURNING t.id
      ), delta AS (
        -- Solo workflows (no row, migration 008) finish with their task: only
        -- the others are counted.
        SELECT workflow_id, sum(pending)::int AS pending, sum(added)::int AS added, sum(failed)::int AS failed,
               min(created) AS created
          FROM (SELECT workflow_id, -1 AS pending, 0 AS added,
                       -- A failure is handled when its outcome is delivered to a join:
                       -- the task is a listed upstream (task_edges_upstream_idx).
                       (state = 'FAILED' AND NOT EXISTS (
                          SELECT 1 FROM ${s}.task_edges e WHERE e.upstream_task_id = done.id))::int AS failed,
                       CASE WHEN id = workflow_id THEN created_at END AS created
                  FROM done WHERE NOT solo
                UNION ALL
                SELECT workflow_id, 1, 1, 0, NULL FROM children) x
         GROUP BY workflow_id
      ), delta_map AS MATERIALIZED (
        SELECT jsonb_object_agg(workflow_id, jsonb_build_array(pending, added, failed)) AS m FROM delta
      ), wf AS (
        -- An upsert: a solo root that spawned children here gets its row
        -- (counting the root); and a row written for a solo workflow after this
        -- statement's snapshot (its root task locked by a schedule into it,
        -- which this statement waited for) is invisible to an UPDATE but found
        -- by ON CONFLICT. Rows are taken in id order.
        -- Scalar sub-selects are InitPlans: the map is built once, not per row.
        -- A workflow finishes at the clock, not at this statement's start: a
        -- concurrent batch that finished some of its tasks may have started
        -- later and committed first (this one waited for its lock on the row),
        -- and the workflow must not end before any of its tasks.
        INSERT INTO ${s}.workflows AS w
               (id, root_task_id, pending_tasks, total_tasks, failed_tasks, status, created_at, finished_at)
        SELECT d.workflow_id, d.workflow_id, greatest(1 + d.pending, 0), 1 + d.added, d.failed,
               CASE WHEN 1 + d.pending > 0 THEN 'RUNNING' WHEN d.failed > 0 THEN 'FAILED' ELSE 'COMPLETED' END,
               coalesce(d.created, now()), CASE WHEN 1 + d.pending > 0 THEN NULL ELSE clock_timestamp() END
          FROM delta d ORDER BY d.workflow_id
        ON CONFLICT (id) DO UPDATE
           SET pending_tasks = w.pending_tasks + ((SELECT m FROM delta_map) -> w.id ->> 0)::int,
               total_tasks = w.total_tasks + ((SELECT m FROM delta_map) -> w.id ->> 1)::int,
               failed_tasks = w.failed_tasks + ((SELECT m FROM delta_map) -> w.id ->> 2)::int,
               status = CASE WHEN w.pending_tasks + ((SELECT m FROM delta_map) -> w.id ->> 0)::int > 0 THEN w.status
                             WHEN w.failed_tasks + ((SELECT m FROM delta_map) -> w.id ->> 2)::int > 0 THEN 'FAILED'
                             ELSE 'COMPLETED' END,
               finished_at = CASE WHEN w.pending_tasks + ((SELECT m FROM delta_map) -> w.id ->> 0)::int > 0
                                  THEN NULL ELSE clock_timestamp() END
         WHERE w.status = 'RUNNING'
        RETURNING w.id, w.status
      ), finished AS (
        SELECT id FROM wf WHERE status <> 'RUNNING'
        UNION ALL
        SELECT workflow_id FROM done WHERE solo
      ), notified AS (
        -- NOTIFY payloads are limited to 8000 bytes: 250 ids per notification.
        SELECT pg_notify('${channel}', ${notifyPrefixSql(NOTIFY_WORKFLOWS)} || string_agg(id, ','))
          FROM (SELECT id, (row_number() OVER ()) / 250 AS chunk FROM finished) f
         GROUP BY chunk
      )
      -- Counts, not id lists: parsing 1,000 ids per batch showed in the worker's
      -- profile. The refused ids are listed only when some were refused (an
      -- InitPlan in a CASE branch runs only when the branch is taken).
      SELECT (SELECT count(*)::int FROM done) + (SELECT count(*)::int FROM retried) AS recorded,
             (SELECT count(*)::int FROM retried) AS retried,
             CASE WHEN (SELECT count(*) FROM done) + (SELECT count(*) FROM retried)
                       < cardinality(string_to_array($1::text, ',')) + cardinality($10::text[])
                  THEN ARRAY(SELECT o.id FROM unnest(string_to_array($1::text, ',') || $10::text[]) AS o(id)
                              WHERE NOT EXISTS (SELECT 1 FROM done WHERE done.id = o.id)
                                AND NOT EXISTS (SELECT 1 FROM retried WHERE retried.id = o.id)
                                -- A batch sent again after a lost reply: already recorded.
                                AND NOT EXISTS (SELECT 1 FROM ${s}.tasks t WHERE t.id = o.id AND t.queue = 'DELETED'
                                                  AND t.token = ((SELECT m FROM token_map) ->> o.id)::bigint)) END AS refused,
             (SELECT count(*)::int FROM dead) AS dead_lettered,
             (SELECT count(*)::int FROM slot_done) + (SELECT count(*)::int FROM slot_retried) AS slots,
             -- The planner sleeps until the earliest retry is due.
             (SELECT pg_notify('${channel}', ${notifyPrefixSql(NOTIFY_DUE)} || min(delay)::bigint) FROM retried HAVING count(*) > 0) AS retry_notified,
             (SELECT count(*)::int FROM finished) AS finished,
             (SELECT count(*)::int FROM notified) AS notified,
             (SELECT count(*)::int FROM edges) AS edges,
             (SELECT count(*)::int FROM joins) AS joins,
             (SELECT count(*)::int FROM messages) AS messages,
             -- The affinity keys of finished tasks: the caller releases those
             -- their workflow is done with once this has committed (AffinityStore),
             -- told which workflows finished here.
             (SELECT json_agg(json_build_array(affinity_group, affinity, workflow_id,
                                               workflow_id IN (SELECT id FROM finished)))
                FROM (SELECT DISTINCT affinity_group, affinity, workflow_id FROM done WHERE affinity IS NOT NULL) k)
               AS held_keys,
             pg_notify('${channel}', '${NOTIFY_PLANNER}')`;
}

export type CompleteParams = [
  finalIds: string,
  details: string,
  children: string,
  newJoins: string[],
  edges: string,
  buckets: string,
  messageFrom: string[],
  messageJoin: string[],
  messages: string[],
  retryIds: string[],
  slotIds: string[],
  parentIds: string[],
  tokens: string,
];

/** The parameters that record \`outcomes\` (see completeSql). */
export function completeParams(outcomes: readonly OutcomeRow[]): CompleteParams {
  const children: NewTaskRow[] = [];
  const joins: NewJoinEdges[] = [];
  const newJoins: string[] = [];
  const messages: { from: string; joinName: string; message: string }[] = [];
  // The outcome map is assembled from JSON fragments that are already valid
  // JSON (results were serialised by the worker; ids are ULIDs).
  const details: string[] = [];
  const finalIds: string[] = [];
  const finalTokens: number[] = [];
  const retryIds: string[] = [];
  const retryTokens: number[] = [];
  const slotIds: string[] = [];
  const parentIds: string[] = [];
  const buckets = new Set<number>();
  for (const o of outcomes) {
    buckets.add(workflowBucket(o.workflowId));
    if (o.slot) slotIds.push(o.id);
    if (o.children.length > 0) parentIds.push(o.id);
    for (const c of o.children) {
      children.push(c);
      if (c.joinPending !== undefined && c.joinPending !== null) newJoins.push(c.id);
    }
    if (o.edges) for (const e of o.edges) joins.push(e);
    if (o.messages) for (const m of o.messages) messages.push({ from: o.id, ...m });
    let extra = "";
    if (o.retry) {
      retryIds.push(o.id);
      retryTokens.push(o.token);
      extra = `,"d":${o.retry.delayMs},"w":${o.retry.maxIntervalMs}`;
    } else {
      finalIds.push(o.id);
      finalTokens.push(o.token);
    }
    if (o.deadLetter) extra += `,"l":"1"`;
    if (o.span !== undefined) extra += `,"t":"${o.span}"`;
    // A plain success (see completeSql) has no entry.
    const plain = o.state === "COMPLETED" && (o.result === null || o.result === "null") && o.error === null;
    if (!plain || extra !== "") {
      details.push(`"${o.id}":{"s":"${o.state}","r":${o.result ?? "null"},"e":${o.error ?? "null"}${extra}}`);
    }
  }
  return [
    finalIds.join(","),
    `{${details.join(",")}}`,
    encodeNewTasks(children),
    newJoins,
    joinEdgesJson(joins),
    [...buckets].sort((a, b) => a - b).join(","),
    messages.map((m) => m.from),
    messages.map((m) => m.joinName),
    messages.map((m) => m.message),
    retryIds,
    slotIds,
    parentIds,
    retryTokens.length === 0 ? finalTokens.join(",") : [...finalTokens, ...retryTokens].join(","),
  ];
}
