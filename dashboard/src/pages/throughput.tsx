import { api, qs, type Throughput } from "../api.js";

// The Overview's chart: tasks finished per second over the last 15 minutes,
// drawn as inline SVG (no chart library).

/** The chart's span, in seconds. */
const WINDOW = 900;
/**
 * Seconds read again on each refresh: a task's finished_at is its finishing
 * transaction's start, so a batch committed late adds to a second already read.
 */
const REREAD = 30;
/** Seconds per drawn point: 900 one-second values would be one pixel each, mostly noise. */
const BIN = 10;

export interface Second {
  at: number;
  completed: number;
  failed: number;
  cancelled: number;
}

export interface Series {
  /** ms, start of the first second; `to` is the end of the last one (the current second). */
  from: number;
  to: number;
  seconds: Second[];
}

/**
 * The last 15 minutes, kept between refreshes: the first read asks for the
 * whole window, later ones only for the seconds since the last read (plus
 * REREAD), so a refresh every 5 s reads ~35 s of finished tasks, not 900.
 */
export class ThroughputHistory {
  private readonly seconds = new Map<number, Second>();
  private lastRead = 0;

  async read(): Promise<Series> {
    const asked = Date.now();
    const window = this.lastRead === 0 ? WINDOW : Math.min(WINDOW, Math.ceil((asked - this.lastRead) / 1000) + REREAD);
    const t = await api<Throughput>(`/v1/throughput${qs({ window })}`);
    this.lastRead = asked;
    for (const b of t.buckets) {
      const at = Date.parse(b.at);
      this.seconds.set(at, { at, completed: b.completed, failed: b.failed, cancelled: b.cancelled });
    }
    const to = Date.parse(t.to);
    const from = to - WINDOW * 1000;
    for (const at of this.seconds.keys()) if (at < from) this.seconds.delete(at);
    const seconds: Second[] = [];
    for (let at = from; at < to; at += 1000) {
      seconds.push(this.seconds.get(at) ?? { at, completed: 0, failed: 0, cancelled: 0 });
    }
    return { from, to, seconds };
  }
}

const W = 920;
const H = 200;
const LEFT = 44;
const RIGHT = 8;
const TOP = 10;
const BOTTOM = 26;

/** A round top for the y axis: 1, 2 or 5 times a power of ten. */
function niceMax(v: number): number {
  if (v <= 1) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return ([1, 2, 5, 10].find((m) => m * p >= v) ?? 10) * p;
}

function rate(v: number): string {
  return v >= 10 || v === 0 ? String(Math.round(v)) : v.toFixed(1);
}

export function ThroughputChart({ series }: { series: Series }) {
  const { seconds } = series;
  const total = { completed: 0, failed: 0, cancelled: 0 };
  for (const s of seconds) {
    total.completed += s.completed;
    total.failed += s.failed;
    total.cancelled += s.cancelled;
  }
  // Per-second rates averaged over BIN seconds.
  const bins: { at: number; completed: number; failed: number }[] = [];
  for (let i = 0; i < seconds.length; i += BIN) {
    const part = seconds.slice(i, i + BIN);
    bins.push({
      at: part[0]?.at ?? 0,
      completed: part.reduce((a, s) => a + s.completed, 0) / part.length,
      failed: part.reduce((a, s) => a + s.failed, 0) / part.length,
    });
  }
  const peak = Math.max(0, ...bins.map((b) => Math.max(b.completed, b.failed)));
  const top = niceMax(peak);
  const plotW = W - LEFT - RIGHT;
  const plotH = H - TOP - BOTTOM;
  const x = (at: number) => LEFT + ((at - series.from) / (series.to - series.from)) * plotW;
  const y = (v: number) => TOP + plotH - (v / top) * plotH;
  const line = (key: "completed" | "failed") =>
    bins.map((b) => `${x(b.at + (BIN * 1000) / 2).toFixed(1)},${y(b[key]).toFixed(1)}`).join(" ");
  const lastMinute = seconds.slice(-60);
  const perSecond = (key: "completed" | "failed") => lastMinute.reduce((a, s) => a + s[key], 0) / 60;
  const summary =
    `Last 15 minutes: ${total.completed} completed, ${total.failed} failed, ${total.cancelled} cancelled. ` +
    `Last minute: ${rate(perSecond("completed"))}/s completed, ${rate(perSecond("failed"))}/s failed` +
    (peak > 0 ? `; peak ${rate(peak)}/s (${BIN} s average).` : ".");
  const minutes = [15, 10, 5, 0];
  return (
    <figure
      class="throughput"
      data-testid="throughput"
      data-completed={total.completed}
      data-failed={total.failed}
      data-cancelled={total.cancelled}
    >
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby="throughput-summary">
        <title>Tasks completed and failed per second over the last 15 minutes</title>
        {[0, top / 2, top].map((v) => (
          <g key={v}>
            <line class="tp-grid" x1={LEFT} x2={W - RIGHT} y1={y(v)} y2={y(v)} />
            <text class="tp-axis" x={LEFT - 6} y={y(v) + 4} text-anchor="end">
              {rate(v)}
            </text>
          </g>
        ))}
        {minutes.map((m) => (
          <text
            key={m}
            class="tp-axis"
            x={x(series.to - m * 60_000)}
            y={H - 8}
            text-anchor={m === 15 ? "start" : m === 0 ? "end" : "middle"}
          >
            {m === 0 ? "now" : `${m} min ago`}
          </text>
        ))}
        <text class="tp-axis" x={LEFT + 4} y={TOP + 12}>
          tasks/s
        </text>
        <polyline class="tp-line tp-completed" points={line("completed")} />
        <polyline class="tp-line tp-failed" points={line("failed")} />
      </svg>
      <figcaption>
        <span class="tp-key">
          <svg width="28" height="10" aria-hidden="true">
            <line class="tp-line tp-completed" x1="0" x2="28" y1="5" y2="5" />
          </svg>{" "}
          ✓ completed (solid)
        </span>
        <span class="tp-key">
          <svg width="28" height="10" aria-hidden="true">
            <line class="tp-line tp-failed" x1="0" x2="28" y1="5" y2="5" />
          </svg>{" "}
          ✕ failed (dashed)
        </span>
        <span id="throughput-summary" data-testid="throughput-summary">
          {summary}
        </span>
      </figcaption>
    </figure>
  );
}
