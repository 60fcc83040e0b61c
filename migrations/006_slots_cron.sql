-- Time slots (DTC/DTM) and cron.
--
-- A slot is one interval of a series: task name + interval ("every") + start,
-- unique. DTM's states: AVAILABLE (to do: never run, or failed with a message
-- and an attempt count), COMPLETE, SKIP, FAILED (the retry policy's last
-- attempt failed). ACQUIRED is not stored: an engine-run slot is acquired while
-- its task runs; a pull-mode slot while a caller's transaction holds its row
-- lock (and, for coverage reports, an advisory lock on its id).
CREATE TABLE slots (
  id            bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  task_name     text NOT NULL,
  every         text NOT NULL,
  slot_start    timestamptz NOT NULL,
  slot_end      timestamptz NOT NULL CHECK (slot_end > slot_start),
  status        text NOT NULL DEFAULT 'AVAILABLE'
                CHECK (status IN ('AVAILABLE', 'COMPLETE', 'SKIP', 'FAILED')),
  -- Bumped by every re-open: a run of an older generation cannot complete the slot.
  generation    integer NOT NULL DEFAULT 1,
  -- Failed attempts of the current generation, and the last failure's message.
  attempts      integer NOT NULL DEFAULT 0,
  message       text,
  -- Engine-run slots: the task of the current generation (NULL in pull mode).
  task_id       text COLLATE "C",
  completed_at  timestamptz,
  -- The task (engine-run) or the worker name given by the caller (pull mode).
  completed_by  text,
  -- Earlier generations, oldest first: { generation, status, completedAt, completedBy, message, reopenedAt }.
  history       jsonb,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (task_name, every, slot_start)
);
-- The completion statement finds an engine-run slot by its task.
CREATE INDEX slots_task_idx ON slots (task_id) WHERE task_id IS NOT NULL;
-- Pull mode: the first slot of a series with a status in a range.
CREATE INDEX slots_status_idx ON slots (task_name, every, status, slot_start);

-- Cron ticks, one row per task and tick: the primary key makes each tick fire
-- once across the cluster; the newest row per task is where the next cycle
-- resumes. task_id is NULL for ticks skipped by the missed-tick policy.
CREATE TABLE cron_ticks (
  task_name  text NOT NULL,
  tick_at    timestamptz NOT NULL,
  task_id    text COLLATE "C",
  fired_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (task_name, tick_at)
);

-- Nodes publish the cron schedules of the tasks they run; the leader fires them.
ALTER TABLE nodes ADD COLUMN task_crons jsonb NOT NULL DEFAULT '{}';
