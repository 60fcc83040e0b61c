import { useEffect, useState } from "preact/hooks";
import { ApiError, type TaskError } from "./api.js";

// Pieces every page uses: state badges, times and durations, JSON, errors, data loading.

/** Each state has a colour AND a symbol and a word: never colour alone. */
export const STATE_MARK: Record<string, string> = {
  PENDING: "○",
  RUNNING: "▶",
  COMPLETED: "✓",
  FAILED: "✕",
  CANCELLED: "⊘",
};

export function StateBadge({ state }: { state: string }) {
  return (
    <span class={`badge s-${state}`}>
      <span aria-hidden="true">{STATE_MARK[state] ?? "•"}</span> {state}
    </span>
  );
}

export function ago(iso: string | null): string {
  if (!iso) return "—";
  const ms = Date.now() - new Date(iso).getTime();
  return `${duration(Math.abs(ms))} ${ms >= 0 ? "ago" : "from now"}`;
}
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${Math.floor(ms / 3_600_000)} h ${Math.round((ms % 3_600_000) / 60_000)} min`;
}
export function time(iso: string | null): string {
  return iso ? new Date(iso).toLocaleString() : "—";
}
export function span(from: string | null, to: string | null): string {
  if (!from) return "—";
  return duration((to ? new Date(to).getTime() : Date.now()) - new Date(from).getTime());
}

export function Json({ value }: { value: unknown }) {
  return <pre class="json">{value === undefined ? "—" : JSON.stringify(value, null, 2)}</pre>;
}

/** A task's error: its name and message, its code, other fields, the stack as lines. */
export function TaskErrorView({ error }: { error: TaskError | null }) {
  if (!error) return <p>—</p>;
  const { name, message, code, stack, ...rest } = error;
  return (
    <div class="task-error">
      <p>
        <strong>{name}</strong>: {message}
        {code ? (
          <>
            {" "}
            <code>{code}</code>
          </>
        ) : null}
      </p>
      {Object.keys(rest).length > 0 && <Json value={rest} />}
      {typeof stack === "string" && <pre class="json">{stack}</pre>}
    </div>
  );
}

export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  const message = error instanceof ApiError ? `${error.code}: ${error.message}` : String(error);
  return (
    <p class="error" role="alert">
      {message}
    </p>
  );
}

/** Loads `load()` now, when `deps` change, and when reload() is called. */
export function useData<T>(load: () => Promise<T>, deps: unknown[]): [T | null, unknown, () => void] {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    load().then(
      (d) => {
        if (live) {
          setData(d);
          setError(null);
        }
      },
      (e: unknown) => live && setError(e),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  return [data, error, () => setTick((t) => t + 1)];
}
