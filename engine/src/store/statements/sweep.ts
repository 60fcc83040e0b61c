import { preparedName } from "../../db/statement.js";
import { NOTIFY_RECONCILE, notifyPrefixSql } from "../notify.js";
import { attemptEntrySql, fenceSql } from "./fragments.js";

/** The planner's sweep of dead and gone nodes and attempts past their deadline. */
export function sweepName(schema: string): string {
  return preparedName("sweep", schema);
}

/**
 * Recovers lost attempts: the tasks of nodes whose heartbeat is stale
 * (deleting their rows), of nodes that no longer exist at all (a node that
 * stopped while a planner cycle that had not yet seen it draining assigned it
 * more work), and assignments past their database deadline (a hung attempt
 * on a live node). Assignments only go to nodes that have a row, so one to a
 * missing node is always an orphan. Each release is fenced by the token read
 * here: an outcome recorded meanwhile (queue DELETED) or a newer assignment
 * (another token) is left alone. A lost attempt counts as an attempt and is
 * logged in attempt_log; the live nodes of overdue ones are told to abort
 * them (NOTIFY_RECONCILE). Scans are bounded by what runs (tasks_assigned_idx,
 * tasks_deadline_idx), not by the table. $2: the leader's epoch.
 */
export function sweepSql(s: string, channel: string): string {
  return `
      WITH ${fenceSql(s, "$2")}, dead AS (
        DELETE FROM ${s}.nodes
         WHERE heartbeat_at < now() - make_interval(secs => $1::float8 / 1000) AND EXISTS (SELECT 1 FROM fence)
        RETURNING id
      ), gone AS (
        SELECT DISTINCT t.assigned_node AS id FROM ${s}.tasks t
         WHERE t.assigned_node IS NOT NULL AND t.queue = 'READY'
           AND NOT EXISTS (SELECT 1 FROM ${s}.nodes n WHERE n.id = t.assigned_node)
      ), lost AS (
        SELECT t.id, t.token, 'node ' || t.assigned_node || ' was declared dead' AS reason FROM ${s}.tasks t
         WHERE t.assigned_node = ANY((SELECT array_agg(id) FROM (SELECT id FROM dead UNION SELECT id FROM gone) x)::text[])
           AND t.queue = 'READY'
        UNION ALL
        SELECT t.id, t.token, 'the attempt passed its deadline (timeout + grace) on node ' || t.assigned_node
          FROM ${s}.tasks t
         WHERE t.deadline < now() AND t.queue = 'READY' AND t.assigned_node IS NOT NULL
      ), released AS (
        UPDATE ${s}.tasks t
           SET assigned_node = NULL, token = NULL, state = 'PENDING', assigned_at = NULL, deadline = NULL,
               attempt_log = coalesce(t.attempt_log, '[]'::jsonb) || ${attemptEntrySql(
                 "t",
                 `jsonb_build_object('name', 'AttemptLost', 'code', 'ATTEMPT_LOST', 'message', l.reason)`,
               )}
          FROM (SELECT DISTINCT ON (id) id, token, reason FROM lost) l
         WHERE t.id = l.id AND t.token = l.token AND t.queue = 'READY' AND EXISTS (SELECT 1 FROM fence)
        RETURNING t.id, l.reason
      ), revoked AS (
        SELECT pg_notify('${channel}', ${notifyPrefixSql(NOTIFY_RECONCILE)} || string_agg(DISTINCT o.assigned_node, ','))
          FROM ${s}.tasks o WHERE o.id = ANY(ARRAY(SELECT id FROM released)) AND o.assigned_node IS NOT NULL
        HAVING count(*) > 0
      )
      SELECT (SELECT coalesce(array_agg(id), '{}') FROM dead) AS dead_nodes,
             (SELECT coalesce(array_agg(id), '{}') FROM gone) AS gone_nodes,
             (SELECT count(*)::int FROM released) AS released,
             (SELECT count(*)::int FROM released WHERE reason LIKE 'the attempt passed%') AS overdue,
             (SELECT count(*) FROM revoked) AS notified,
             NOT EXISTS (SELECT 1 FROM fence) AS fenced`;
}

export type SweepParams = [deadAfterMs: number, epoch: number];

export function sweepParams(deadAfterMs: number, epoch: number): SweepParams {
  return [deadAfterMs, epoch];
}
