import { useCallback, useEffect, useState } from "preact/hooks";
import { api, type Coverage, qs, type Slot, type Whoami } from "../api.js";
import { ago, ErrorNote, time } from "../components.js";

// Slots: the coverage grid.

const SLOT_MARK: Record<string, string> = {
  COMPLETE: "#",
  SKIP: "-",
  AVAILABLE: ".",
  ACQUIRED: ">",
  FAILED: "x",
  MISSING: "?",
};
const SLOT_WORD: Record<string, string> = {
  COMPLETE: "complete",
  SKIP: "skipped",
  AVAILABLE: "pending",
  ACQUIRED: "acquired",
  FAILED: "failed",
  MISSING: "missing",
};

function localInput(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

export function Slots({ me, query }: { me: Whoami; query: URLSearchParams }) {
  const now = new Date();
  const [name, setName] = useState(query.get("name") ?? "");
  const [every, setEvery] = useState(query.get("every") ?? "");
  const [from, setFrom] = useState(
    query.get("from") ? localInput(new Date(query.get("from") as string)) : localInput(new Date(+now - 86_400_000)),
  );
  const [to, setTo] = useState(query.get("to") ? localInput(new Date(query.get("to") as string)) : localInput(now));
  const [coverage, setCoverage] = useState<Coverage | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [picked, setPicked] = useState<Slot | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const load = useCallback(async () => {
    if (!name) return;
    try {
      setCoverage(
        await api<Coverage>(
          `/v1/slots/${encodeURIComponent(name)}/coverage${qs({
            every,
            from: new Date(from).toISOString(),
            to: new Date(to).toISOString(),
          })}`,
        ),
      );
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, [name, every, from, to]);
  useEffect(() => {
    if (query.get("name")) void load();
  }, []);
  const reopen = async (range: { from: string; to: string }, what: string) => {
    if (!window.confirm(`Reopen ${what}? Finished slots in it run again.`)) return;
    try {
      const r = await api<{ reopened: number }>(`/v1/slots/${encodeURIComponent(name)}/reopen`, {
        method: "POST",
        body: { ...range, ...(every ? { every } : {}) },
      });
      setNote(`${r.reopened} slot(s) reopened.`);
      setPicked(null);
      await load();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <>
      <h1>Slots</h1>
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          void load();
        }}
      >
        <label>
          Series{" "}
          <input value={name} required placeholder="slot task name" onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <label>
          Every <input value={every} size={5} placeholder="own" onInput={(e) => setEvery(e.currentTarget.value)} />
        </label>
        <label>
          From <input type="datetime-local" value={from} onInput={(e) => setFrom(e.currentTarget.value)} />
        </label>
        <label>
          To <input type="datetime-local" value={to} onInput={(e) => setTo(e.currentTarget.value)} />
        </label>
        <button type="submit">Show coverage</button>
      </form>
      <ErrorNote error={error} />
      {note && (
        <p class="ok" role="status">
          {note}
        </p>
      )}
      {coverage && (
        <>
          <p class="legend">
            {Object.keys(SLOT_MARK).map((s) => (
              <span key={s} class={`cell sl-${s}`}>
                {SLOT_MARK[s]} {SLOT_WORD[s]}
              </span>
            ))}
          </p>
          <p>
            {coverage.counts.total} slots of {coverage.every}: {coverage.counts.complete} complete,{" "}
            {coverage.counts.skipped} skipped, {coverage.counts.pending} pending, {coverage.counts.acquired} acquired,{" "}
            {coverage.counts.failed} failed, {coverage.counts.missing} missing
          </p>
          <div class="grid" data-testid="coverage-grid">
            {coverage.slots.map((s) => (
              <button
                type="button"
                key={s.start}
                class={`cell sl-${s.status}${picked?.start === s.start ? " selected" : ""}`}
                data-testid="slot"
                data-status={s.status}
                data-start={s.start}
                title={`${time(s.start)}: ${SLOT_WORD[s.status]}${s.generation > 0 ? `, generation ${s.generation}` : ""}`}
                aria-label={`${time(s.start)} ${SLOT_WORD[s.status]}`}
                onClick={() => setPicked(s)}
              >
                {SLOT_MARK[s.status]}
              </button>
            ))}
          </div>
          {picked && (
            <div class="panel-inline" data-testid="slot-detail">
              <strong>
                {time(picked.start)} – {time(picked.end)}
              </strong>
              : {SLOT_WORD[picked.status]}, generation {picked.generation}, {picked.attempts} attempt(s)
              {picked.completedAt ? `, done ${ago(picked.completedAt)}` : ""}
              {picked.message ? ` — ${picked.message}` : ""}
              {me.scope === "write" && ["COMPLETE", "SKIP", "FAILED"].includes(picked.status) && (
                <button
                  type="button"
                  data-action="reopen-slot"
                  onClick={() => reopen({ from: picked.start, to: picked.end }, `the slot at ${time(picked.start)}`)}
                >
                  Reopen this slot
                </button>
              )}
            </div>
          )}
          {me.scope === "write" && (
            <button
              type="button"
              data-action="reopen-range"
              onClick={() => reopen({ from: coverage.from, to: coverage.to }, "every finished slot of this range")}
            >
              Reopen the range
            </button>
          )}
        </>
      )}
    </>
  );
}
