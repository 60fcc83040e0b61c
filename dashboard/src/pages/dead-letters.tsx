import { useState } from "preact/hooks";
import { api, type DeadLetter, type DeadLetterDetail, qs, type Whoami } from "../api.js";
import { ago, ErrorNote, Json, StateBadge, TaskErrorView, time, useData } from "../components.js";

// Dead letters: the list, and one with its actions.

export function DeadLetters({ me }: { me: Whoami }) {
  const [taskName, setTaskName] = useState("");
  // What is typed, applied on change: kept when a list arriving meanwhile redraws the form.
  const [draft, setDraft] = useState("");
  const [data, error] = useData(
    () => api<{ items: DeadLetter[] }>(`/v1/dead-letters${qs({ taskName, limit: 200 })}`),
    [taskName],
  );
  return (
    <>
      <h1>Dead letters</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Task{" "}
          <input
            value={draft}
            placeholder="name"
            onInput={(e) => setDraft(e.currentTarget.value)}
            onChange={(e) => setTaskName(e.currentTarget.value.trim())}
          />
        </label>
      </form>
      <ErrorNote error={error} />
      {data && (
        <table data-testid="dead-letters">
          <thead>
            <tr>
              <th scope="col">Task</th>
              <th scope="col">Name</th>
              <th scope="col">Error</th>
              <th scope="col" class="num">
                Attempts
              </th>
              <th scope="col">Failed</th>
            </tr>
          </thead>
          <tbody>
            {data.items.length === 0 && (
              <tr>
                <td colSpan={5}>No dead letters.</td>
              </tr>
            )}
            {data.items.map((d) => (
              <tr key={d.taskId}>
                <td>
                  <a href={`#/dead-letters/${d.taskId}`}>
                    <code>{d.taskId}</code>
                  </a>
                </td>
                <td>{d.taskName}</td>
                <td class="names">{d.error ? `${d.error.name}: ${d.error.message}` : "—"}</td>
                <td class="num">{d.attempts.length}</td>
                <td>{ago(d.failedAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {me.scope === "read" && <p class="hint">This token is read-only: requeue and delete are not offered.</p>}
    </>
  );
}

export function DeadLetterPage({ taskId, me }: { taskId: string; me: Whoami }) {
  const [data, error] = useData(() => api<DeadLetterDetail>(`/v1/dead-letters/${taskId}`), [taskId]);
  const [done, setDone] = useState<string | null>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const act = async (what: "requeue" | "delete") => {
    const ok = window.confirm(
      what === "requeue"
        ? `Requeue task ${taskId}? It runs again with a fresh attempt budget.`
        : `Delete the dead letter of task ${taskId}? This cannot be undone.`,
    );
    if (!ok) return;
    try {
      if (what === "requeue") await api(`/v1/dead-letters/${taskId}/requeue`, { method: "POST" });
      else await api(`/v1/dead-letters/${taskId}`, { method: "DELETE" });
      setDone(what === "requeue" ? "Requeued: the task runs again." : "Deleted.");
    } catch (e) {
      setActionError(e);
    }
  };
  const d = data?.deadLetter;
  return (
    <>
      <h1>
        Dead letter <code>{taskId}</code>
      </h1>
      <ErrorNote error={error ?? actionError} />
      {done && (
        <p class="ok" role="status" data-testid="action-done">
          {done} {data && <a href={`#/workflows/${data.deadLetter.workflowId}`}>Open its workflow</a>}
        </p>
      )}
      {d && (
        <>
          <p>
            <strong>{d.taskName}</strong> failed {ago(d.failedAt)} after {d.attempts.length} attempt(s). Workflow{" "}
            <a href={`#/workflows/${d.workflowId}`}>
              <code>{d.workflowId}</code>
            </a>
            {data.workflow ? (
              <>
                {" "}
                (<StateBadge state={data.workflow.status} />)
              </>
            ) : null}
          </p>
          {data.slot && (
            <p>
              Slot {time(data.slot.start)} – {time(data.slot.end)} of {data.slot.taskName} ({data.slot.status})
            </p>
          )}
          {me.scope === "write" && !done && (
            <div class="actions">
              <button type="button" data-action="requeue" onClick={() => act("requeue")}>
                Requeue
              </button>
              <button type="button" class="danger" data-action="delete" onClick={() => act("delete")}>
                Delete
              </button>
            </div>
          )}
          <h3>Error</h3>
          <TaskErrorView error={d.error} />
          <h3>Attempts</h3>
          <table>
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">Node</th>
                <th scope="col">Started</th>
                <th scope="col">Ended</th>
                <th scope="col">Error</th>
              </tr>
            </thead>
            <tbody>
              {d.attempts.map((a) => (
                <tr key={a.attempt}>
                  <td>{a.attempt}</td>
                  <td>{a.node ?? "—"}</td>
                  <td>{time(a.startedAt)}</td>
                  <td>{time(a.endedAt)}</td>
                  <td class="names">{a.error ? `${a.error.name}: ${a.error.message}` : "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <h3>Input</h3>
          <Json value={d.input} />
        </>
      )}
    </>
  );
}
