/** SQL fragments shared by the hot statements (and the planner's other writes). */

/**
 * The leader's fence: a statement of the planner writes only while the leader
 * row still has the epoch this planner took over with. The row is locked FOR
 * SHARE for the statement, so a takeover (which bumps the epoch) waits for a
 * statement in flight, and every later statement of the deposed leader finds the
 * new epoch and writes nothing. This covers a leader whose advisory lock no
 * longer means anything (behind a transaction-mode pooler, say).
 */
export function fenceSql(s: string, epochParam: string): string {
  return `fence AS MATERIALIZED (SELECT 1 AS ok FROM ${s}.leader WHERE epoch = ${epochParam}::bigint FOR SHARE)`;
}

/**
 * Whether an apply may hand the leader's own node its assignments directly
 * (\`ownNode\`, NULL for none): only when the node has fetched every earlier
 * assignment (none of its tokens above \`cursor\`, the highest it has seen), as
 * of this statement's snapshot. Its worker then moves its cursor past the
 * handed rows, and a later fetch skips nothing it has not seen. Served by
 * tasks_assigned_idx; the snapshot does not see this statement's own updates.
 */
export function handoffSql(s: string, ownNode: string, cursor: string): string {
  return `handoff AS MATERIALIZED (
        SELECT ${ownNode}::text IS NOT NULL AND NOT EXISTS (
                 SELECT 1 FROM ${s}.tasks h
                  WHERE h.assigned_node = ${ownNode}::text AND h.queue = 'READY' AND h.token > ${cursor}::bigint) AS ok
      )`;
}

/**
 * One attempt as attempt_log and the dead-letter table record it, built from the
 * task row \`t\` as it was before the statement (node, start) and \`error\`.
 */
export function attemptEntrySql(t: string, error: string): string {
  return `jsonb_build_object('attempt', ${t}.attempt, 'node', ${t}.assigned_node, 'startedAt', ${t}.assigned_at,
    'endedAt', now(), 'error', ${error})`;
}
