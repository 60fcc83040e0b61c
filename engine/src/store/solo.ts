/**
 * Solo workflows (migration 008): a workflow of one task has no workflow row
 * until it gets a second task or is cancelled; its root task (id = workflow
 * id, solo = true) stands for it. These expressions derive the workflow's
 * columns from the root task row \`t\`.
 */

/** The workflow's status: RUNNING until the root task is finished, then the task's state. */
export function soloStatusSql(t: string): string {
  return `CASE WHEN ${t}.queue <> 'DELETED' THEN 'RUNNING' ELSE ${t}.state END`;
}

/** A \`workflows\` row (same columns and order as WorkflowRecord reads them) from the root task \`t\`. */
export function soloWorkflowSql(t: string): string {
  return `${t}.id, ${soloStatusSql(t)} AS status, ${t}.id AS root_task_id,
    (${t}.queue <> 'DELETED')::int AS pending_tasks, 1 AS total_tasks, (${t}.state = 'FAILED')::int AS failed_tasks,
    NULL::text AS cancel_reason, ${t}.created_at, CASE WHEN ${t}.queue = 'DELETED' THEN ${t}.finished_at END AS finished_at`;
}

/** Filter on \`t\` for the root task of a solo workflow (add the id condition). */
export function soloRootSql(t: string): string {
  return `${t}.workflow_id = ${t}.id AND ${t}.solo`;
}
