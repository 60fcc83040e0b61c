-- Limits. Each node publishes, for the task names it runs, the resolved
-- maxParallelInCluster (per-task configuration > task definition > global
-- default); the planner applies the smallest value published for a name, so a
-- cluster mid-deploy errs on the safe side.
ALTER TABLE nodes ADD COLUMN task_limits jsonb NOT NULL DEFAULT '{}';
