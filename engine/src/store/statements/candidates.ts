import { preparedName } from "../../db/statement.js";
import { packedCandidatesSql } from "../packed.js";

/** The planner's read of the tasks it may place. */
export function candidatesName(schema: string): string {
  return preparedName("candidates", schema);
}

/**
 * Per task name (fair share within a batch), highest priority first, then
 * oldest, up to the free capacity that can run the name: served by
 * tasks_plannable_idx (task_name, priority DESC, id).
 * A candidate with a key comes with the key's holder (a probe of the holders' primary key).
 * $3: ids to leave out, as jsonb keys: the decisions of an apply still in
 * flight, which this read cannot see yet (see Planner).
 * The rows come packed in one text (see packed.ts), as in the fetch.
 *
 * It also says how large the task table is and was when its statistics
 * were taken (see Planner: statistics refreshed on growth): two catalog
 * lookups, no scan.
 */
export function candidatesSql(s: string): string {
  const holder = `(SELECT h.workflow_id FROM ${s}.affinity_holders h
                                          WHERE h.affinity_group = r.affinity_group AND h.affinity = r.affinity)`;
  return `SELECT ${packedCandidatesSql(holder)} AS rows,
             (pg_relation_size('${s}.tasks'::regclass) / current_setting('block_size')::int)::int AS pages,
             (SELECT c.relpages FROM pg_class c WHERE c.oid = '${s}.tasks'::regclass) AS stats_pages
      FROM unnest($1::text[], $2::int[]) AS n(name, lim)
      CROSS JOIN LATERAL (
        SELECT id, task_name, priority, coalesce(run_after > now(), false) AS delayed,
               workflow_id, affinity_group, affinity FROM ${s}.tasks
         WHERE queue IN ('NEW', 'READY') AND assigned_node IS NULL AND task_name = n.name
           AND NOT ($3::jsonb ? id)
         ORDER BY priority DESC, id LIMIT n.lim) r`;
}

export type CandidatesParams = [names: string[], limits: number[], excluded: string];

/** \`limits\`: how many to read per task name; \`excluded\`: ids to leave out. */
export function candidatesParams(
  limits: ReadonlyMap<string, number>,
  excluded: readonly string[] = [],
): CandidatesParams {
  // ULIDs need no escaping.
  const exclusion = excluded.length === 0 ? "{}" : `{"${excluded.join('":0,"')}":0}`;
  return [[...limits.keys()], [...limits.values()], exclusion];
}
