-- Weft foundation schema.
--
-- Every object is created unqualified: the runner (and a team applying this file
-- with its own migration tool) sets `search_path` to the Weft schema first, e.g.
--   SET search_path TO weft; \i 001_foundation.sql
--
-- Hot-path rules (see docs/architecture.md):
-- * ids are ULIDs stored as text with the "C" collation (byte order = time order,
--   no locale-aware comparisons);
-- * every planner and worker query is served by one of the partial indexes below,
--   so its cost depends on the size of the queue it reads, not on the table;
-- * columns that change on every transition (result, error, finished_at, attempt)
--   are in no index.

CREATE TABLE workflows (
  id             text COLLATE "C" PRIMARY KEY,
  status         text NOT NULL DEFAULT 'RUNNING'
                 CHECK (status IN ('RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED')),
  root_task_id   text COLLATE "C",
  -- Tasks of this workflow not yet in a final state. Maintained in the same
  -- transaction that inserts or finishes a task, so the workflow ends in the
  -- transaction that finishes its last task.
  pending_tasks  integer NOT NULL DEFAULT 0 CHECK (pending_tasks >= 0),
  total_tasks    integer NOT NULL DEFAULT 0,
  failed_tasks   integer NOT NULL DEFAULT 0,
  cancel_reason  text,
  created_at     timestamptz NOT NULL DEFAULT now(),
  finished_at    timestamptz
);

-- No index on status or finished_at: the update that finishes a workflow stays
-- HOT. The cleaner walks the primary key instead (ULIDs are time-ordered: a
-- workflow finished before the cutoff was created before it).

CREATE SEQUENCE task_token_seq AS bigint;

CREATE TABLE tasks (
  id              text COLLATE "C" PRIMARY KEY,
  -- No foreign key to workflows: Weft inserts a task only together with, or into,
  -- its workflow, and a key check would lock the workflow row for every insert.
  workflow_id     text COLLATE "C" NOT NULL,
  parent_id       text COLLATE "C",
  task_name       text NOT NULL,
  -- Virtual queue, as in DTF: NEW (just written), READY (may be planned, or
  -- assigned to a node), PARKED (waiting: run_after, affinity, joins),
  -- DELETED (finished, kept for the retention window).
  queue           text NOT NULL DEFAULT 'NEW'
                  CHECK (queue IN ('NEW', 'READY', 'PARKED', 'DELETED')),
  state           text NOT NULL DEFAULT 'PENDING'
                  CHECK (state IN ('PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED')),
  park_reason     text,
  input           jsonb NOT NULL DEFAULT 'null',
  result          jsonb,
  error           jsonb,
  attempt         integer NOT NULL DEFAULT 0,
  max_attempts    integer NOT NULL DEFAULT 1,
  priority        integer NOT NULL DEFAULT 0,
  run_after       timestamptz,
  affinity_group  text,
  affinity        text,
  -- Node the task is assigned to and the fencing token of that assignment. A
  -- token is drawn from task_token_seq on every assignment; an outcome is
  -- recorded only while the token still matches.
  assigned_node   text COLLATE "C",
  token           bigint,
  created_at      timestamptz NOT NULL DEFAULT now(),
  assigned_at     timestamptz,
  finished_at     timestamptz,
  CHECK ((assigned_node IS NULL) = (token IS NULL)),
  CHECK ((affinity_group IS NULL) = (affinity IS NULL))
);

-- Workflow status, graph and cancellation read a workflow's tasks: the root task
-- by its id (a new workflow takes its root task's id), the others through this
-- index. Leaving the root out means a single-task workflow, the common case,
-- never writes to it.
CREATE INDEX tasks_workflow_idx ON tasks (workflow_id) WHERE id <> workflow_id;
-- Planner: the tasks it may place, per task name, highest priority first, then
-- oldest. NEW (never planned) and READY (planned before and returned, or released
-- from PARKED) are candidates alike, so a task waiting in a backlog is written
-- once when it is placed, not once when classified and again when assigned.
CREATE INDEX tasks_plannable_idx ON tasks (task_name, priority DESC, id)
  WHERE queue IN ('NEW', 'READY') AND assigned_node IS NULL;
-- Workers fetch their assignments by token; the planner counts a node's load and
-- recovers a dead node's tasks through the same index.
CREATE INDEX tasks_assigned_idx ON tasks (assigned_node, token)
  WHERE assigned_node IS NOT NULL AND queue = 'READY';
-- Planner: tasks PARKED until their run_after passes.
CREATE INDEX tasks_parked_idx ON tasks (run_after, id) WHERE queue = 'PARKED' AND park_reason = 'RUN_AFTER';
-- Cleaner: finished tasks by age.
CREATE INDEX tasks_deleted_idx ON tasks (finished_at) WHERE queue = 'DELETED';

-- Join dependencies: upstream task -> join task. Used from migration 002 on.
CREATE TABLE task_edges (
  join_task_id      text COLLATE "C" NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
  upstream_task_id  text COLLATE "C" NOT NULL,
  position          integer NOT NULL,
  PRIMARY KEY (join_task_id, upstream_task_id)
);
CREATE INDEX task_edges_upstream_idx ON task_edges (upstream_task_id);

-- Worker nodes. A node's row exists while it is alive; the planner deletes rows
-- whose heartbeat is older than the dead-node limit and re-plans their tasks.
CREATE TABLE nodes (
  id            text COLLATE "C" PRIMARY KEY,
  app_name      text NOT NULL,
  host          text NOT NULL,
  pid           integer NOT NULL,
  capacity      integer NOT NULL CHECK (capacity > 0),
  task_names    text[] NOT NULL,
  cpu_load      real,
  draining      boolean NOT NULL DEFAULT false,
  started_at    timestamptz NOT NULL DEFAULT now(),
  heartbeat_at  timestamptz NOT NULL DEFAULT now()
);

-- The planner's leader. The leader holds a session advisory lock; this row makes
-- leadership visible and gives every takeover a new epoch.
CREATE TABLE leader (
  singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  node_id      text COLLATE "C",
  epoch        bigint NOT NULL DEFAULT 0,
  acquired_at  timestamptz
);
INSERT INTO leader (singleton) VALUES (true);
