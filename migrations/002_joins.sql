-- Joins and map-reduce.
--
-- A join task waits (queue PARKED, park_reason 'JOIN') for the tasks it lists and,
-- transitively, for everything they spawn except forks. Readiness is a counter on
-- the join's row, maintained in the transactions that insert and finish the tasks
-- it waits for, never found by scanning edges:
--   * `awaited_by` on a task lists the joins it must report to when it finishes;
--     a child (not a fork) inherits its parent's list, and each join's counter
--     grows by one per such child in the statement that inserts it;
--   * when a task finishes, each join in its list is decremented in the same
--     statement; the one that reaches zero moves to READY there and then.

-- On join tasks: how many awaited tasks have not finished (NULL on other tasks).
ALTER TABLE tasks ADD COLUMN join_pending integer CHECK (join_pending >= 0);
-- Joins waiting for this task (directly, or through its ancestors).
ALTER TABLE tasks ADD COLUMN awaited_by text[] COLLATE "C";
-- A fork is excluded from the joins of its parent.
ALTER TABLE tasks ADD COLUMN is_fork boolean NOT NULL DEFAULT false;

-- Typed messages sent from a join's subtree to the join (DTF's
-- setJoinMessageToBranch), written with the sender's outcome.
CREATE TABLE join_messages (
  join_task_id  text COLLATE "C" NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
  from_task_id  text COLLATE "C" NOT NULL,
  seq           bigint GENERATED ALWAYS AS IDENTITY,
  message       jsonb NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (join_task_id, seq)
);

-- Subtree walks (join creation, cancelTask) go through tasks_workflow_idx and
-- parent_id within one workflow: they are rare, and an index on parent_id would
-- be maintained on every transition of every child task.
