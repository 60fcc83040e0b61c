-- Handing affinity keys on, in one call.
--
-- release_affinity_keys(groups, keys, workflows, finished, lock_timeout_ms,
-- channel): for each key (group, key) still held by the workflow given with it,
-- if that workflow has no unfinished task with the key any more, the key goes to
-- the oldest workflow with an unfinished task with it (creation order = ULID
-- order) and that workflow's tasks parked for the key become READY; with nobody
-- waiting, the holder row is deleted. Returns how many
-- keys were freed and how many tasks released; notifies `channel` ('p') when
-- tasks were.
--
-- Why a function: it must lock the holder rows first (FOR UPDATE, in key order)
-- and only then read the tasks, in a statement with a fresh snapshot: whoever
-- parked a task behind a holder kept the holder row locked FOR SHARE until it
-- committed, so the release sees every such task. In a VOLATILE function each
-- statement takes a new snapshot, so lock and release are one round trip
-- instead of a transaction of five.
--
-- finished: per key, true when its workflow is known to have finished (a
-- finished workflow gets no new task), which spares the look for its unfinished
-- tasks; NULL or false: look.
--
-- lock_timeout_ms: how long to wait for a holder row (NULL: no limit); a
-- timeout raises 55P03 and the planner's sweep frees the key later. The commit
-- need not wait for the disk: a release lost in a crash is redone by the sweep,
-- since its holder has finished with the key.
--
-- It runs after the commit that finished the tasks, not inside it: of two
-- batches finishing a holder's last two tasks at once, the release of the
-- later one sees both. (Releasing inside the completion statement, skipping
-- rows locked elsewhere, was measured: it lengthened the completion, which is
-- what the pipeline waits on, and the affinity bench went from 50% to 42%.)
CREATE FUNCTION release_affinity_keys(
  groups text[], keys text[], workflows text[], finished boolean[], lock_timeout_ms integer, channel text
) RETURNS TABLE (keys_freed integer, tasks_released integer)
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
  lg text[];
  la text[];
  lw text[];
  lf boolean[];
  n_freed integer;
  n_unparked integer;
BEGIN
  IF lock_timeout_ms IS NOT NULL THEN
    PERFORM set_config('lock_timeout', lock_timeout_ms || 'ms', true);
  END IF;
  PERFORM set_config('synchronous_commit', 'off', true);
  -- Lock the holder rows that still name the workflow given, in key order. A
  -- join with the keys, not `= ANY` filters: those compared every row with every key.
  SELECT array_agg(x.g), array_agg(x.a), array_agg(x.w), array_agg(x.f) INTO lg, la, lw, lf FROM (
    SELECT k.g, k.a, k.w, k.f FROM unnest(groups, keys, workflows, finished) AS k(g, a, w, f)
      JOIN affinity_holders h ON h.affinity_group = k.g AND h.affinity = k.a AND h.workflow_id = k.w
     ORDER BY h.affinity_group, h.affinity FOR UPDATE OF h) x;
  IF lg IS NULL THEN
    RETURN QUERY SELECT 0, 0;
    RETURN;
  END IF;
  WITH freed AS MATERIALIZED (
    SELECT h.affinity_group, h.affinity,
           -- The next holder: served by tasks_affinity_idx.
           (SELECT t.workflow_id FROM tasks t
             WHERE t.affinity_group = h.affinity_group AND t.affinity = h.affinity
               AND t.affinity IS NOT NULL AND t.queue <> 'DELETED'
             ORDER BY t.workflow_id LIMIT 1) AS next
      FROM unnest(lg, la, lw, lf) AS k(g, a, w, f)
      JOIN affinity_holders h ON h.affinity_group = k.g AND h.affinity = k.a
     WHERE h.workflow_id = k.w
       AND (k.f OR NOT EXISTS (
         SELECT 1 FROM tasks t
          WHERE t.affinity_group = h.affinity_group AND t.affinity = h.affinity
            AND t.workflow_id = h.workflow_id AND t.affinity IS NOT NULL AND t.queue <> 'DELETED'))
  ), moved AS (
    -- In place (HOT: only the key is indexed).
    UPDATE affinity_holders h SET workflow_id = f.next, acquired_at = now()
      FROM freed f
     WHERE h.affinity_group = f.affinity_group AND h.affinity = f.affinity AND f.next IS NOT NULL
    RETURNING h.affinity_group, h.affinity, h.workflow_id
  ), dropped AS (
    DELETE FROM affinity_holders h USING freed f
     WHERE h.affinity_group = f.affinity_group AND h.affinity = f.affinity AND f.next IS NULL
  ), released AS (
    -- One probe of tasks_affinity_idx per key handed over (LATERAL keeps it so).
    UPDATE tasks t SET queue = 'READY', park_reason = NULL
     WHERE t.id = ANY(ARRAY(
             SELECT w.id FROM moved m CROSS JOIN LATERAL (
               SELECT t2.id FROM tasks t2
                WHERE t2.affinity_group = m.affinity_group AND t2.affinity = m.affinity
                  AND t2.workflow_id = m.workflow_id AND t2.affinity IS NOT NULL AND t2.queue <> 'DELETED') w))
       AND t.queue = 'PARKED' AND t.park_reason = 'AFFINITY'
    RETURNING 1
  )
  SELECT (SELECT count(*)::integer FROM freed), (SELECT count(*)::integer FROM released)
    INTO n_freed, n_unparked;
  IF n_unparked > 0 THEN
    PERFORM pg_notify(channel, 'p');
  END IF;
  RETURN QUERY SELECT n_freed, n_unparked;
END
$$;
