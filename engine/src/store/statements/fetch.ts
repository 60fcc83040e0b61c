import { preparedName } from "../../db/statement.js";
import { packedAssignedSql } from "../packed.js";

/** The worker's fetch of its new assignments; traced: with the trace fields (see packed.ts). */
export function fetchName(schema: string, traced: boolean): string {
  return preparedName(traced ? "fetch_traced" : "fetch", schema);
}

/**
 * Served by tasks_assigned_idx (assigned_node, token): the worker reads only
 * assignments newer than the last token it saw, packed in one text.
 */
export function fetchSql(s: string, traced: boolean): string {
  return `SELECT ${packedAssignedSql(traced)} AS rows FROM (
        SELECT * FROM ${s}.tasks WHERE assigned_node = $1 AND queue = 'READY' AND token > $2 ORDER BY token LIMIT $3) t`;
}

export type FetchParams = [nodeId: string, afterToken: number, limit: number];

export function fetchParams(nodeId: string, afterToken: number, limit: number): FetchParams {
  return [nodeId, afterToken, limit];
}
