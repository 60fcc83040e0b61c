import { preparedName } from "../../db/statement.js";

// The planner's two reads of what runs where: the live nodes with their load,
// and the running tasks of the limited task names.

export function liveNodesName(schema: string): string {
  return preparedName("live_nodes", schema);
}

/**
 * The live, non-draining nodes. A node's load is counted from its assignments
 * (tasks_assigned_idx), so it cannot drift from the truth the way a maintained
 * counter could.
 */
export function liveNodesSql(s: string): string {
  return `SELECT n.id, n.capacity, n.task_names, n.task_limits, n.task_timeouts, n.cpu_load,
        (SELECT count(*) FROM ${s}.tasks t WHERE t.assigned_node = n.id AND t.queue = 'READY')::int AS active
      FROM ${s}.nodes n
      WHERE NOT n.draining AND n.heartbeat_at > now() - make_interval(secs => $1::float8 / 1000)
      ORDER BY n.id`;
}

export type LiveNodesParams = [deadAfterMs: number];

export function liveNodesParams(deadAfterMs: number): LiveNodesParams {
  return [deadAfterMs];
}

export function runningByNameName(schema: string): string {
  return preparedName("running_by_name", schema);
}

/** Running tasks of the limited task names, cluster-wide: bounded by what runs (tasks_assigned_idx), not by the table. */
export function runningByNameSql(s: string): string {
  return `SELECT task_name, count(*)::int AS running FROM ${s}.tasks
      WHERE assigned_node IS NOT NULL AND queue = 'READY' AND task_name = ANY($1::text[])
      GROUP BY task_name`;
}

export type RunningByNameParams = [taskNames: readonly string[]];

export function runningByNameParams(taskNames: readonly string[]): RunningByNameParams {
  return [taskNames];
}
