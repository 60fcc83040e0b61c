-- Idempotency keys (docs/concepts.md#idempotency-keys).
--
-- A client that schedules a task with an idempotency key records the key here,
-- in the statement that inserts the task (so the key and the task commit
-- together, or neither does). A second schedule of the same task name with the
-- same key, while the key has not expired, writes no task: it gets the first
-- schedule's ids, or an IDEMPOTENCY_CONFLICT when its input differs
-- (input_hash: sha256 of the encoded input, hex).
--
-- Keys are scoped per task name, as pg-boss singleton keys and graphile-worker
-- job keys are: two task names may use the same key for unrelated work.
-- A key whose expires_at has passed counts as absent (the schedule statement
-- takes it over); the cleaner deletes expired keys in batches
-- (idempotency_keys_expires_idx). workflow_id equals task_id today (a key starts
-- a workflow of its own); it is stored so that readers need not know that.
--
-- Additive and not breaking: nodes of the previous release never read or write
-- this table (and cannot be asked for keys).
CREATE TABLE idempotency_keys (
  task_name   text        NOT NULL,
  key         text COLLATE "C" NOT NULL,
  task_id     text COLLATE "C" NOT NULL,
  workflow_id text COLLATE "C" NOT NULL,
  input_hash  text        NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  PRIMARY KEY (task_name, key)
);
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);
