import { preparedName } from "../../db/statement.js";
import type { AffinityHolder } from "../types.js";

/** The hand-over of affinity keys their holders finished with (release_affinity_keys, migration 007). */
export function releaseKeysName(schema: string): string {
  return preparedName("release_keys", schema);
}

/**
 * $1 groups, $2 keys, $3 workflows (holders that finished tasks with the
 * keys), $4 whether each workflow is known to have finished, $5 lock
 * timeout (ms, null: none), $6 the channel to wake the planner on.
 */
export function releaseKeysSql(s: string): string {
  return `SELECT keys_freed AS freed, tasks_released AS unparked
      FROM ${s}.release_affinity_keys($1::text[], $2::text[], $3::text[], $4::boolean[], $5::integer, $6::text)`;
}

export type ReleaseKeysParams = [
  groups: string[],
  keys: string[],
  workflows: string[],
  finished: boolean[],
  lockTimeoutMs: number | null,
  channel: string,
];

/** \`lockTimeoutMs\`: how long to wait for a holder row (null: as long as it takes). */
export function releaseKeysParams(
  keys: readonly AffinityHolder[],
  lockTimeoutMs: number | null,
  channel: string,
): ReleaseKeysParams {
  return [
    keys.map((k) => k.affinity_group),
    keys.map((k) => k.affinity),
    keys.map((k) => k.workflow_id),
    keys.map((k) => k.finished === true),
    lockTimeoutMs,
    channel,
  ];
}
