-- The slot of a dead-lettered slot task.
--
-- A task of an engine-run slot series that fails its last attempt makes its slot
-- FAILED. Its dead letter now says which slot that was: the series is the task
-- name with slot_every (the interval), and slot_start the slot's start. Both stay
-- NULL for other tasks, and for dead letters written by nodes that predate this
-- migration (they insert without these columns).
--
-- Additive and not breaking: nodes of the previous release go on writing dead
-- letters without the slot, and a requeue finds the slot by its task either way.
ALTER TABLE dead_letters ADD COLUMN slot_every text;
ALTER TABLE dead_letters ADD COLUMN slot_start timestamptz;
