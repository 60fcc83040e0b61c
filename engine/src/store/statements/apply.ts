import { preparedName } from "../../db/statement.js";
import { NOTIFY_NODES, notifyPrefixSql } from "../notify.js";
import { packedAssignedColumns, packedAssignedSql } from "../packed.js";
import type { LocalNode, PlanDecision } from "../types.js";
import { fenceSql, handoffSql } from "./fragments.js";

/** The planner's apply of its decisions; traced: the hand-over reads the trace fields (see packed.ts). */
export function applyName(schema: string, traced: boolean): string {
  return preparedName(traced ? "apply_traced" : "apply", schema);
}

/** The apply when every decision assigns to one node. */
export function applyToOneNodeName(schema: string, traced: boolean): string {
  return preparedName(traced ? "apply_one_node_traced" : "apply_one_node", schema);
}

/**
 * The guard (NEW or READY, unassigned) makes a decision void for a task that
 * was cancelled or planned meanwhile. Assignment draws a fresh fencing token
 * and counts an attempt.
 *
 * $1: the ids, comma-separated: ULIDs need no escaping, and a text[]
 * parameter costs the client an escaping pass per element.
 *
 * No join: rows are found by \`id = ANY($1)\` (primary key) and each row's
 * decision is looked up in jsonb objects ($2: id -> node, $3: id -> park
 * reason; binary search). A join with unnest() lets stale statistics pick a
 * nested loop that compares every pair: 15M comparisons for a batch of 1,000
 * measured on a 20,000-row table.
 *
 * $4: timeout by task name (ms, grace included): an assigned task with one
 * gets a database deadline. $5: the leader's epoch (see fenceSql).
 *
 * Parks for AFFINITY ($6 groups, $7 keys) are checked again against the
 * holders as they are now, locked FOR SHARE until this commits (so a
 * release, which locks them FOR UPDATE and then takes a fresh snapshot,
 * sees the parks). A key handed on to the task's own workflow since the
 * planner read it, or being handed on right now (its row locked: skipped,
 * the planner never waits), leaves the task as it is for the next cycle:
 * parking it would strand it. The InitPlan takes the locks before any task row.
 *
 * $8, $9: the leader's own node and its cursor (see handoffSql): its new
 * assignments come back packed, instead of a notification.
 */
export function applySql(s: string, channel: string, traced: boolean): string {
  return `
      WITH ${fenceSql(s, "$5")}, held AS MATERIALIZED (
        SELECT h.affinity_group, h.affinity, h.workflow_id FROM ${s}.affinity_holders h
         WHERE h.affinity_group = ANY($6::text[]) AND h.affinity = ANY($7::text[])
         ORDER BY h.affinity_group, h.affinity
           FOR SHARE SKIP LOCKED
      ), applied AS (
        UPDATE ${s}.tasks t
           SET queue = CASE WHEN $3::jsonb ? t.id THEN 'PARKED' ELSE 'READY' END,
               park_reason = $3::jsonb ->> t.id,
               state = CASE WHEN $2::jsonb ? t.id THEN 'RUNNING' ELSE 'PENDING' END,
               assigned_node = $2::jsonb ->> t.id,
               token = CASE WHEN $2::jsonb ? t.id THEN nextval('${s}.task_token_seq') END,
               assigned_at = CASE WHEN $2::jsonb ? t.id THEN now() END,
               attempt = t.attempt + ($2::jsonb ? t.id)::int,
               deadline = CASE WHEN $2::jsonb ? t.id AND $4::jsonb ? t.task_name
                               THEN now() + make_interval(secs => ($4::jsonb ->> t.task_name)::float8 / 1000) END
         WHERE t.id = ANY(string_to_array($1::text, ',')) AND t.queue IN ('NEW', 'READY') AND t.assigned_node IS NULL
           AND EXISTS (SELECT 1 FROM fence) AND (SELECT count(*) FROM held) >= 0
           AND (cardinality($7::text[]) = 0 OR $3::jsonb ->> t.id IS DISTINCT FROM 'AFFINITY' OR EXISTS (
                 SELECT 1 FROM held h WHERE h.affinity_group = t.affinity_group AND h.affinity = t.affinity
                    AND h.workflow_id <> t.workflow_id))
        RETURNING ${packedAssignedColumns(traced)}
      ), ${handoffSql(s, "$8", "$9")}
      SELECT count(*)::int AS applied, NOT EXISTS (SELECT 1 FROM fence) AS fenced,
             (SELECT pg_notify('${channel}', ${notifyPrefixSql(NOTIFY_NODES)} || string_agg(DISTINCT assigned_node, ','))
                FROM applied WHERE assigned_node IS NOT NULL
                 AND (assigned_node IS DISTINCT FROM $8::text OR NOT (SELECT ok FROM handoff))
               HAVING count(*) > 0) AS notified,
             (SELECT ${packedAssignedSql(traced)} FROM applied WHERE assigned_node = $8::text AND (SELECT ok FROM handoff)) AS rows
        FROM applied`;
}

/**
 * The usual cycle: every decision assigns a task to the same node (one node
 * in the cluster, or one with room). The node is one parameter ($2) instead
 * of a jsonb entry per task: PostgreSQL does one lookup per row instead of
 * eight, and the statement is a third smaller on the wire. $3 timeouts, $4
 * the epoch, $5 and $6 the own node and its cursor (as $4, $5, $8, $9 of applySql).
 */
export function applyToOneNodeSql(s: string, channel: string, traced: boolean): string {
  return `
      WITH ${fenceSql(s, "$4")}, applied AS (
        UPDATE ${s}.tasks t
           SET queue = 'READY', park_reason = NULL, state = 'RUNNING', assigned_node = $2,
               token = nextval('${s}.task_token_seq'), assigned_at = now(), attempt = t.attempt + 1,
               deadline = CASE WHEN $3::jsonb ? t.task_name
                               THEN now() + make_interval(secs => ($3::jsonb ->> t.task_name)::float8 / 1000) END
         WHERE t.id = ANY(string_to_array($1::text, ',')) AND t.queue IN ('NEW', 'READY') AND t.assigned_node IS NULL
           AND EXISTS (SELECT 1 FROM fence)
        RETURNING ${packedAssignedColumns(traced)}
      ), ${handoffSql(s, "$5", "$6")}
      SELECT count(*)::int AS applied, NOT EXISTS (SELECT 1 FROM fence) AS fenced,
             (SELECT pg_notify('${channel}', ${notifyPrefixSql(NOTIFY_NODES)} || $2::text) FROM applied
               WHERE $2::text IS DISTINCT FROM $5::text OR NOT (SELECT ok FROM handoff) HAVING count(*) > 0) AS notified,
             (SELECT ${packedAssignedSql(traced)} FROM applied WHERE $2::text = $5::text AND (SELECT ok FROM handoff)) AS rows
        FROM applied`;
}

export type ApplyParams = [
  ids: string,
  nodes: string,
  parks: string,
  timeouts: string,
  epoch: number,
  groups: string[],
  keys: string[],
  localNode: string | null,
  localCursor: number,
];

export type ApplyToOneNodeParams = [
  ids: string,
  node: string,
  timeouts: string,
  epoch: number,
  localNode: string | null,
  localCursor: number,
];

/** Which of the two statements applies \`decisions\`, with its parameters. */
export type ApplyPlan =
  | { readonly oneNode: true; readonly params: ApplyToOneNodeParams }
  | { readonly oneNode: false; readonly params: ApplyParams };

/**
 * The parameters of the apply of \`decisions\` (not empty): \`timeouts\` (ms by
 * task name, grace included) set the deadlines of tasks assigned now; \`local\`
 * is the leader's own node, handed its assignments.
 */
export function applyParams(
  decisions: readonly PlanDecision[],
  epoch: number,
  timeouts: Readonly<Record<string, number>> = {},
  local: LocalNode | null = null,
): ApplyPlan {
  const ids = decisions.map((d) => d.id).join(",");
  const node = oneNode(decisions);
  const localId = local?.id ?? null;
  const localCursor = local?.cursor ?? 0;
  if (node !== null) {
    return { oneNode: true, params: [ids, node, JSON.stringify(timeouts), epoch, localId, localCursor] };
  }
  // The jsonb maps are written as text directly: ids, node ids and park
  // reasons are ULIDs and upper-case words, which need no escaping.
  const nodes: string[] = [];
  const parked: string[] = [];
  const groups = new Set<string>();
  const keys = new Set<string>();
  for (const d of decisions) {
    if (d.node !== null) nodes.push(`"${d.id}":"${d.node}"`);
    else if (d.queue === "PARKED") parked.push(`"${d.id}":"${d.parkReason ?? "UNKNOWN"}"`);
    if (d.affinityKey) {
      groups.add(d.affinityKey.group);
      keys.add(d.affinityKey.affinity);
    }
  }
  return {
    oneNode: false,
    params: [
      ids,
      `{${nodes.join(",")}}`,
      `{${parked.join(",")}}`,
      JSON.stringify(timeouts),
      epoch,
      [...groups],
      [...keys],
      localId,
      localCursor,
    ],
  };
}

/** The node every decision assigns its task to, or null if they differ or some park. */
function oneNode(decisions: readonly PlanDecision[]): string | null {
  const node = decisions[0]?.node ?? null;
  if (node === null) return null;
  for (const d of decisions) if (d.node !== node) return null;
  return node;
}
