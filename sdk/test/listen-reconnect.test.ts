import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { eventually, freshDatabase, poolFor } from "../../test/support.js";
import { createWeft, defineTask, type Weft } from "../src/index.js";

/** The LISTEN connection drops while a cancellation is notified: the cancellation still arrives. */
describe("LISTEN supervision", () => {
  let weft: Weft;
  let pool: pg.Pool;
  const waiter = defineTask({
    name: "waiter",
    input: z.null(),
    output: z.null(),
    retry: { mode: "OFF" },
    run: (ctx) =>
      new Promise<null>((_, reject) => {
        ctx.signal.addEventListener("abort", () => {
          void pool.query("INSERT INTO public.aborted (task_id) VALUES ($1)", [ctx.taskId]);
          reject(ctx.signal.reason);
        });
      }),
  });

  beforeAll(async () => {
    const url = await freshDatabase();
    pool = poolFor(url);
    await pool.query("CREATE TABLE public.aborted (task_id text)");
    // Reconcile by interval practically never: only the notification or the reconnect can abort the task.
    const session = new URL(url);
    session.searchParams.set("application_name", "weft-session");
    weft = createWeft({
      connectionString: url,
      // The LISTEN and leader connections use their own connection string (PgBouncer setups).
      sessionConnectionString: session.toString(),
      tasks: [waiter],
      node: { reconcileIntervalMs: 600_000 },
    });
    await weft.start();
  });
  afterAll(() => weft.stop(1_000));

  it("a cancel notified while the connection is down aborts the running attempt after the reconnect", async () => {
    const ref = await weft.client.schedule(waiter, null);
    await eventually(async () => ((await weft.client.getTask(ref.taskId)).state === "RUNNING" ? true : undefined));
    // pg_stat_activity may lag a loaded server for a moment: poll for the listener's backend.
    const rows = await eventually(async () => {
      const found = await pool.query<{ pid: number; application_name: string }>(
        "SELECT pid, application_name FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'",
      );
      return found.rows.length === 1 ? found.rows : undefined;
    }, 10_000);
    expect(rows[0]?.application_name).toBe("weft-session");
    await pool.query("SELECT pg_terminate_backend($1)", [rows[0]?.pid]);
    // Notified now, while the listener is disconnected: this notification is lost.
    await weft.client.cancelWorkflow(ref.workflowId);
    const started = Date.now();
    await eventually(async () => {
      const aborted = await pool.query("SELECT 1 FROM public.aborted WHERE task_id = $1", [ref.taskId]);
      return aborted.rows.length > 0 ? true : undefined;
    }, 10_000);
    expect(Date.now() - started).toBeLessThan(5_000);
    // The listener is back.
    await eventually(async () => {
      const back = await pool.query<{ pid: number }>(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'",
      );
      return back.rows.length === 1 && back.rows[0]?.pid !== rows[0]?.pid ? true : undefined;
    });
  });
});
