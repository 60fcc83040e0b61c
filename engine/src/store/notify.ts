/**
 * Notifications: one channel per schema, and payloads that start with a kind
 * (one letter), then for most kinds a colon and a comma-separated list. The
 * SQL that sends them and the Listener that dispatches them both use these.
 */

/** The NOTIFY channel of a schema (quoted as an SQL literal and as an identifier where used; schema names are validated). */
export function channelOf(schema: string): string {
  return `weft:${schema}`;
}

/** Wake the planner: work was scheduled, outcomes recorded, a node registered or left. No list. */
export const NOTIFY_PLANNER = "p";
/** `n:<node ids>`: those nodes have new assignments (fetch now). */
export const NOTIFY_NODES = "n";
/** `w:<workflow ids>`: those workflows finished (at most 250 ids per notification). */
export const NOTIFY_WORKFLOWS = "w";
/** `r:<node ids>`: assignments of those nodes were revoked (reconcile now: abort what no longer is theirs). */
export const NOTIFY_RECONCILE = "r";
/** `d:<ms>`: a retry is due in that many ms (the planner sleeps no longer). */
export const NOTIFY_DUE = "d";

/** An SQL text literal of a kind's prefix, `'n:'`, to concatenate a list to. */
export function notifyPrefixSql(kind: string): string {
  return `'${kind}:'`;
}
