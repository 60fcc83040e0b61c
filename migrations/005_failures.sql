-- Failure semantics: retries, dead letters, timeouts, state across attempts.
--
-- Retries: a failed attempt that its policy retries goes back to PARKED
-- (park_reason 'RUN_AFTER') with run_after = now() + the policy's delay, on the
-- database clock, in the statement that records the failure. Every failed or
-- lost attempt is appended to attempt_log:
--   { attempt, node, startedAt, endedAt, error }
-- so the dead-letter copy can list them all. attempt_log stays NULL for tasks
-- that never failed (the usual case writes nothing extra).
ALTER TABLE tasks ADD COLUMN attempt_log jsonb;

-- DTF's StatefulTask: a small value an attempt saves (fenced by its token) and
-- the next attempt reads, e.g. a cursor so that a retry resumes.
ALTER TABLE tasks ADD COLUMN saved_state jsonb;

-- The database-side timeout: set at assignment for tasks with a timeout, to
-- now() + timeout + grace. The planner re-plans an assignment whose deadline has
-- passed even if its node is alive (a hung attempt must not hold the task).
ALTER TABLE tasks ADD COLUMN deadline timestamptz;
CREATE INDEX tasks_deadline_idx ON tasks (deadline)
  WHERE deadline IS NOT NULL AND queue = 'READY' AND assigned_node IS NOT NULL;

-- Nodes publish each task's resolved timeout (ms) by task name, as they publish
-- limits; the planner uses the largest published value for a name.
ALTER TABLE nodes ADD COLUMN task_timeouts jsonb NOT NULL DEFAULT '{}';

-- Tasks that failed their last attempt, copied with everything needed to
-- investigate and requeue them. One row per task: requeueing removes it (the
-- task's attempt_log keeps the history), and a requeued task that fails again
-- is copied anew with all its attempts.
CREATE TABLE dead_letters (
  task_id          text COLLATE "C" PRIMARY KEY,
  workflow_id      text COLLATE "C" NOT NULL,
  parent_id        text COLLATE "C",
  task_name        text NOT NULL,
  input            jsonb NOT NULL,
  error            jsonb,
  -- Every attempt, oldest first: { attempt, node, startedAt, endedAt, error }.
  attempts         jsonb NOT NULL,
  task_created_at  timestamptz NOT NULL,
  failed_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letters_failed_idx ON dead_letters (failed_at, task_id);
CREATE INDEX dead_letters_name_idx ON dead_letters (task_name, failed_at);
CREATE INDEX dead_letters_workflow_idx ON dead_letters (workflow_id);
