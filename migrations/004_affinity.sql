-- Affinity: an affinity group + affinity key is held by one workflow at a time.
-- The holder is stored (written only by the planner's leader): it keeps the key
-- until it has no unfinished task with that key; then the oldest workflow with an
-- unfinished task with that key takes it (creation order = ULID order). Tasks of
-- other workflows with the key are PARKED with park_reason 'AFFINITY'.
CREATE TABLE affinity_holders (
  affinity_group  text NOT NULL,
  affinity        text NOT NULL,
  workflow_id     text COLLATE "C" NOT NULL,
  acquired_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (affinity_group, affinity)
);

-- Unfinished tasks by key, oldest workflow first: "who holds, who is next".
CREATE INDEX tasks_affinity_idx ON tasks (affinity_group, affinity, workflow_id)
  WHERE affinity IS NOT NULL AND queue <> 'DELETED';
