import { preparedName } from "../../db/statement.js";
import { fenceSql } from "./fragments.js";

/** The planner's release of due PARKED tasks (retries, delays). */
export function dueName(schema: string): string {
  return preparedName("due", schema);
}

/**
 * Releases due PARKED tasks, and says how long until the next one is due
 * (ms, on the database clock; null when none waits). Fenced by the epoch.
 */
export function dueSql(s: string): string {
  return `
      WITH ${fenceSql(s, "$2")}, due AS (
        UPDATE ${s}.tasks SET queue = 'READY', park_reason = NULL
         WHERE id IN (SELECT id FROM ${s}.tasks
                       WHERE queue = 'PARKED' AND park_reason = 'RUN_AFTER' AND run_after <= now()
                       ORDER BY run_after, id LIMIT $1 FOR UPDATE SKIP LOCKED)
           AND EXISTS (SELECT 1 FROM fence)
        RETURNING 1
      )
      SELECT (SELECT count(*)::int FROM due) AS promoted,
             (SELECT extract(epoch FROM min(run_after) - now()) * 1000 FROM ${s}.tasks
               WHERE queue = 'PARKED' AND park_reason = 'RUN_AFTER' AND run_after > now())::float8 AS next_due_ms`;
}

export type DueParams = [limit: number, epoch: number];

export function dueParams(limit: number, epoch: number): DueParams {
  return [limit, epoch];
}
