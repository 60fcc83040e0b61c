-- Trace context of tasks (OpenTelemetry, docs/observability.md).
--
-- trace_context: the W3C traceparent of the span that scheduled the task (its
-- "publish" span), followed by a space and the tracestate when there is one.
-- Written in the statements that insert the task, by nodes and clients with a
-- tracer provider; NULL otherwise.
-- attempt_span: the traceparent of the span of the task's latest recorded
-- attempt (written with the outcome), so that a retry's attempt and a join can
-- link to it across nodes. NULL when tracing is off.
--
-- Additive and not breaking: nodes of the previous release insert and finish
-- tasks without these columns (they stay NULL, and their tasks' attempts start
-- traces of their own).
ALTER TABLE tasks ADD COLUMN trace_context text;
ALTER TABLE tasks ADD COLUMN attempt_span text;
