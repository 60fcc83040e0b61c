import { useState } from "preact/hooks";
import { api, qs, type WorkflowSummary } from "../api.js";
import { ErrorNote, StateBadge, span, time, useData } from "../components.js";

// The workflows list: filters and keyset pages.

/**
 * Finished and not failed. The list reads the workflows' counters (total,
 * unfinished, failed: no count query per row), which do not tell cancelled
 * tasks apart: a workflow cancelled as a whole counts its cancelled tasks here.
 */
function completedLabel(w: WorkflowSummary): string {
  const n = Math.max(0, w.totalTasks - w.pendingTasks - w.failedTasks);
  if (n === 0) return "0";
  return w.status === "CANCELLED" ? `✓/⊘ ${n}` : `✓ ${n}`;
}

export function Workflows() {
  const [status, setStatus] = useState("");
  const [root, setRoot] = useState("");
  // What is typed, applied on change (blur or Enter): the input keeps it when a
  // page that was loading arrives and redraws the form meanwhile.
  const [rootDraft, setRootDraft] = useState("");
  const [after, setAfter] = useState("");
  const [before, setBefore] = useState("");
  const [search, setSearch] = useState("");
  // The cursors of the pages before this one, for Previous.
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const cursor = cursors[cursors.length - 1] ?? null;
  const [data, error] = useData(
    () =>
      api<{ items: WorkflowSummary[]; nextCursor: string | null }>(
        `/v1/workflows${qs({
          status,
          rootTaskName: root,
          createdAfter: after ? new Date(after).toISOString() : undefined,
          createdBefore: before ? new Date(before).toISOString() : undefined,
          limit: 25,
          cursor,
        })}`,
      ),
    [status, root, after, before, cursor],
  );
  const reset = () => setCursors([null]);
  return (
    <>
      <h1>Workflows</h1>
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          if (search.trim()) location.hash = `#/workflows/${search.trim().toUpperCase()}`;
        }}
      >
        <label>
          Status{" "}
          <select
            value={status}
            onChange={(e) => {
              setStatus(e.currentTarget.value);
              reset();
            }}
          >
            <option value="">any</option>
            {["RUNNING", "COMPLETED", "FAILED", "CANCELLED"].map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          Root task{" "}
          <input
            value={rootDraft}
            placeholder="name"
            onInput={(e) => setRootDraft(e.currentTarget.value)}
            onChange={(e) => {
              setRoot(e.currentTarget.value.trim());
              reset();
            }}
          />
        </label>
        <label>
          From{" "}
          <input
            type="datetime-local"
            value={after}
            onChange={(e) => {
              setAfter(e.currentTarget.value);
              reset();
            }}
          />
        </label>
        <label>
          To{" "}
          <input
            type="datetime-local"
            value={before}
            onChange={(e) => {
              setBefore(e.currentTarget.value);
              reset();
            }}
          />
        </label>
        <label>
          Id <input value={search} placeholder="workflow id" onInput={(e) => setSearch(e.currentTarget.value)} />
        </label>
        <button type="submit">Open</button>
      </form>
      <ErrorNote error={error} />
      {data && (
        <>
          <table data-testid="workflows">
            <thead>
              <tr>
                <th scope="col">Workflow</th>
                <th scope="col">Root task</th>
                <th scope="col">Status</th>
                <th scope="col" class="num">
                  Tasks
                </th>
                <th scope="col" class="num" title="not finished yet: pending or running">
                  Unfinished
                </th>
                <th
                  scope="col"
                  class="num"
                  title="finished and not failed (in a cancelled workflow: completed or cancelled)"
                >
                  Completed
                </th>
                <th scope="col" class="num">
                  Failed
                </th>
                <th scope="col">Created</th>
                <th scope="col">Duration</th>
              </tr>
            </thead>
            <tbody>
              {data.items.length === 0 && (
                <tr>
                  <td colSpan={8}>No workflows on this page.</td>
                </tr>
              )}
              {data.items.map((w) => (
                <tr key={w.id}>
                  <td>
                    <a href={`#/workflows/${w.id}`}>
                      <code>{w.id}</code>
                    </a>
                  </td>
                  <td>{w.rootTaskName ?? "—"}</td>
                  <td>
                    <StateBadge state={w.status} />
                  </td>
                  <td class="num" data-col="total">
                    {w.totalTasks}
                  </td>
                  <td class="num" data-col="unfinished">
                    {w.pendingTasks}
                  </td>
                  <td class="num" data-col="completed">
                    {completedLabel(w)}
                  </td>
                  <td class="num" data-col="failed">
                    {w.failedTasks > 0 ? `✕ ${w.failedTasks}` : 0}
                  </td>
                  <td>{time(w.createdAt)}</td>
                  <td data-col="duration">
                    {w.finishedAt ? span(w.createdAt, w.finishedAt) : `running for ${span(w.createdAt, null)}`}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <p class="hint">
            Counts from each workflow's counters: <em>Unfinished</em> is its pending and running tasks together; in a
            cancelled workflow <em>Completed</em> (✓/⊘) holds its cancelled tasks too. The workflow's page has every
            state apart.
          </p>
          <nav class="pager" aria-label="pages">
            <button type="button" disabled={cursors.length < 2} onClick={() => setCursors((c) => c.slice(0, -1))}>
              ← Newer
            </button>
            <button
              type="button"
              disabled={data.nextCursor === null}
              onClick={() => setCursors((c) => [...c, data.nextCursor])}
            >
              Older →
            </button>
          </nav>
        </>
      )}
    </>
  );
}
