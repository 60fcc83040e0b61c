-- Join edges and join messages without foreign keys to tasks.
--
-- Both are only ever written together with their join task (in the statement
-- that records the outcome of the task that scheduled the join, or in the
-- client's schedule transaction), and the cleaner now deletes them in the same
-- statement that purges their join task. The foreign keys added nothing to
-- that, and cost a trigger call per inserted edge (about 48 ms of the 187 ms
-- statement that writes a 10,000-way fan-out) and per purged task.
ALTER TABLE task_edges DROP CONSTRAINT IF EXISTS task_edges_join_task_id_fkey;
ALTER TABLE join_messages DROP CONSTRAINT IF EXISTS join_messages_join_task_id_fkey;
