/**
 * Every advisory lock Weft takes, in one place: a lock is (class, key), the
 * class one of these constants (all 0x57ef_, so that an application's own
 * advisory locks are unlikely to collide). No imports: the migration runner
 * (db/, below the store) takes one too.
 */

/** Migrations; the second key is hashtext(schema), so different schemas in one database migrate independently. */
export const MIGRATION_LOCK_CLASS = 0x57ef7;

/** The planner's leadership (a session lock on the leader's connection); second key hashtext(schema). */
export const LEADER_LOCK_CLASS = 0x57ef8;

/** Workflow buckets (see workflowBucket); the second key is the bucket. */
export const WORKFLOW_LOCK_CLASS = 0x57efa;

/**
 * Pull-mode slots: one bigint key, (class << 40) | slot id. A caller's
 * transaction holds it with the row lock, so coverage can see what is
 * acquired (pg_locks).
 */
export const SLOT_LOCK_CLASS = 0x57efb;

/** The SQL bigint that a slot id is or-ed into (see SLOT_LOCK_CLASS). */
export const SLOT_LOCK_BASE = `(x'${SLOT_LOCK_CLASS.toString(16)}'::bigint << 40)`;

/**
 * Few buckets: a batch holds one lock per bucket its workflows fall in, and
 * advisory locks share PostgreSQL's lock table (max_locks_per_transaction ×
 * connections, 6,400 entries by default). With 1,024 buckets a batch of 2,000
 * outcomes held ~880 locks, and a dozen batches in flight across a cluster
 * could fill the table ("out of shared memory"); each lock also cost the batch
 * ~0.6 µs. A cancel now shares its bucket with more workflows, so it may wait
 * for a batch of unrelated ones (a few milliseconds).
 */
export const WORKFLOW_BUCKETS = 64;

/**
 * The advisory-lock bucket of a workflow. Completion batches hold their
 * workflows' buckets shared while they record outcomes and insert children;
 * cancellation holds its workflow's bucket exclusively before it reads the
 * workflow's tasks. So a cancel waits for batches already recording, its task
 * scan then sees every child they wrote, and batches that start later find
 * their tasks cancelled. Advisory locks live in memory: unlike a row lock, they
 * cost the completion batch no write. Buckets bound the locks a batch takes.
 */
export function workflowBucket(workflowId: string): number {
  let h = 0;
  for (let i = 0; i < workflowId.length; i++) h = (Math.imul(h, 31) + workflowId.charCodeAt(i)) | 0;
  return (h >>> 0) % WORKFLOW_BUCKETS;
}

/** Takes a workflow's bucket exclusively until the transaction ends (cancel, joins over existing tasks); $1 the bucket. */
export const LOCK_WORKFLOW_BUCKET_SQL = `SELECT pg_advisory_xact_lock(${WORKFLOW_LOCK_CLASS}, $1)`;

/** Takes a workflow's bucket shared until the transaction ends (a dead-letter requeue); $1 the bucket. */
export const SHARE_WORKFLOW_BUCKET_SQL = `SELECT pg_advisory_xact_lock_shared(${WORKFLOW_LOCK_CLASS}, $1)`;
