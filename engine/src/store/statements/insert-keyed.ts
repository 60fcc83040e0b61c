import { preparedName } from "../../db/statement.js";
import { encodeNewTasks, newTasksRelation } from "../packed.js";
import type { NewTaskRow } from "../types.js";
import { affinityHeldSql, parkedForAffinitySql, TASK_INSERT_COLUMNS, taskSelectList } from "./insert.js";

/**
 * The insert of tasks scheduled with idempotency keys (migration 012): used
 * only when keys are given, so the plain insert (insert.ts) is unchanged. Like
 * it, it runs unprepared on the caller's connection; the name says what it is.
 */
export function insertKeyedName(schema: string): string {
  return preparedName("insert_keyed", schema);
}

/**
 * Claims each key of $2 (task name $1) for the task id at the same position
 * of $3 (its input's hash at $4) for $5 ms, and inserts the tasks of $6
 * (encodeNewTasks; each the root of a solo workflow) whose keys it claimed.
 * Returns one row per key: the task that holds it, ours when it was claimed.
 *
 * A key row that has not expired is kept as it is. DO UPDATE (a no-op for
 * such a row) rather than DO NOTHING: DO NOTHING returns nothing for it, and
 * a read in the same statement would not see a row committed by a racing
 * schedule this statement waited for (its snapshot predates it). DO UPDATE
 * locks the row and RETURNING gives its current version, so the loser of a
 * race gets the winner's ids. An expired row is taken over (treated as
 * absent). Keys are locked in key order, so batches cannot deadlock.
 */
export function insertKeyedSql(s: string): string {
  const fresh = "x.expires_at <= now()";
  const take = (column: string) => `${column} = CASE WHEN ${fresh} THEN excluded.${column} ELSE x.${column} END`;
  return `
      WITH claim AS MATERIALIZED (
        INSERT INTO ${s}.idempotency_keys AS x (task_name, key, task_id, workflow_id, input_hash, expires_at)
        SELECT $1::text, k.key, k.task_id, k.task_id, k.input_hash, now() + $5::float8 * interval '1 millisecond'
          FROM unnest($2::text[], $3::text[], $4::text[]) AS k(key, task_id, input_hash)
         ORDER BY k.key COLLATE "C"
        ON CONFLICT (task_name, key) DO UPDATE
           SET ${["task_id", "workflow_id", "input_hash", "created_at", "expires_at"].map(take).join(",\n               ")}
        RETURNING x.key, x.task_id, x.workflow_id, x.input_hash
      ), c AS MATERIALIZED (
        SELECT * FROM ${newTasksRelation(6)} WHERE c.id = ANY(ARRAY(SELECT task_id FROM claim))
      ), ${affinityHeldSql(s)}
      ), inserted AS (
        INSERT INTO ${s}.tasks (${TASK_INSERT_COLUMNS})
        SELECT ${taskSelectList("NULL::text[]", parkedForAffinitySql, "true")} FROM c
      )
      SELECT key, task_id, workflow_id, input_hash FROM claim`;
}

export type InsertKeyedParams = [
  taskName: string,
  keys: string[],
  taskIds: string[],
  inputHashes: string[],
  windowMs: number,
  tasks: string,
];

/** Parameters of insertKeyedSql: \`rows\` (one task name, each a new solo workflow) with their keys and input hashes. */
export function insertKeyedParams(
  rows: readonly NewTaskRow[],
  keys: readonly string[],
  hashes: readonly string[],
  windowMs: number,
): InsertKeyedParams {
  return [rows[0]?.taskName ?? "", [...keys], rows.map((r) => r.id), [...hashes], windowMs, encodeNewTasks(rows)];
}

/** The holder of one key, as insertKeyedSql returns it. */
export interface KeyHolderRow {
  readonly key: string;
  readonly task_id: string;
  readonly workflow_id: string;
  readonly input_hash: string;
}
