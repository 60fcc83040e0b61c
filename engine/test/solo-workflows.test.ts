import type pg from "pg";
import { beforeAll, describe, expect, it } from "vitest";
import { freshDatabase, poolFor } from "../../test/support.js";
import { WorkflowNotRunningError } from "../src/errors.js";
import { Store } from "../src/store/index.js";
import type { AssignedTaskRow, OutcomeRow } from "../src/store/types.js";
import { assignedTask, newTask } from "./helpers.js";

// Single-task workflows have no workflow row (migration 008): their root task
// stands for them until they get a second task or are cancelled. These tests
// drive the store on two connections to order the races that matter.
describe("solo workflows", () => {
  const store = new Store("weft");
  let pool: pg.Pool;
  beforeAll(async () => {
    pool = poolFor(await freshDatabase());
    await pool.query(
      "INSERT INTO weft.nodes (id, app_name, host, pid, capacity, task_names) VALUES ('N1', 'a', 'h', 1, 100, '{t}')",
    );
  });

  const assigned = () => assignedTask(store, pool);

  function outcome(row: AssignedTaskRow, state: "COMPLETED" | "FAILED" = "COMPLETED"): OutcomeRow {
    return {
      id: row.id,
      workflowId: row.workflow_id,
      token: row.token,
      state,
      result: state === "COMPLETED" ? '{"ok":true}' : null,
      error: state === "FAILED" ? '{"message":"boom"}' : null,
      children: [],
    };
  }

  const rowCount = async (id: string) =>
    (await pool.query("SELECT 1 FROM weft.workflows WHERE id = $1", [id])).rowCount ?? 0;

  /** Resolves to whether `promise` is still pending after `ms` (it waits for a lock). */
  async function stillWaiting(promise: Promise<unknown>, ms = 300): Promise<boolean> {
    let settled = false;
    promise.then(
      () => {
        settled = true;
      },
      () => {
        settled = true;
      },
    );
    await new Promise((r) => setTimeout(r, ms));
    return !settled;
  }

  it("has no row; its status is its task's, RUNNING then COMPLETED or FAILED", async () => {
    const ok = await assigned();
    const bad = await assigned();
    expect(await rowCount(ok.workflow_id)).toBe(0);
    expect(await store.read.workflow(pool, ok.workflow_id)).toMatchObject({
      id: ok.workflow_id,
      status: "RUNNING",
      root_task_id: ok.id,
      pending_tasks: 1,
      total_tasks: 1,
      failed_tasks: 0,
      finished_at: null,
    });
    const res = await store.worker.complete(pool, [outcome(ok), outcome(bad, "FAILED")]);
    expect(res).toMatchObject({ recorded: 2, finishedWorkflows: 2 });
    expect(await rowCount(ok.workflow_id)).toBe(0);
    const done = await store.read.workflow(pool, ok.workflow_id);
    expect(done).toMatchObject({ status: "COMPLETED", pending_tasks: 0, total_tasks: 1, failed_tasks: 0 });
    expect(done?.finished_at).toBeInstanceOf(Date);
    expect(await store.read.workflow(pool, bad.workflow_id)).toMatchObject({ status: "FAILED", failed_tasks: 1 });
    expect(await store.read.workflow(pool, "01NOSUCHWORKFLOW000000000")).toBeUndefined();
  });

  it("gets its row, counting the root, when the root spawns children", async () => {
    const row = await assigned();
    const children = [1, 2, 3].map(() => newTask({ workflowId: row.workflow_id, parentId: row.id }));
    await store.worker.complete(pool, [{ ...outcome(row), children }]);
    const wf = await pool.query("SELECT * FROM weft.workflows WHERE id = $1", [row.workflow_id]);
    expect(wf.rows[0]).toMatchObject({ status: "RUNNING", pending_tasks: 3, total_tasks: 4, failed_tasks: 0 });
    const root = await pool.query("SELECT solo, created_at FROM weft.tasks WHERE id = $1", [row.id]);
    expect(root.rows[0]?.solo).toBe(false);
    expect(wf.rows[0]?.created_at).toEqual(root.rows[0]?.created_at);
  });

  it("a schedule into it that commits first: the completion waiting for the root finds the new row", async () => {
    const row = await assigned();
    const second = newTask({ workflowId: row.workflow_id });
    const scheduler = await pool.connect();
    const recorder = await pool.connect();
    try {
      await scheduler.query("BEGIN");
      await store.schedule.insert(scheduler, [second], new Set());
      const completing = store.worker.complete(recorder, [outcome(row)]);
      expect(await stillWaiting(completing)).toBe(true);
      await scheduler.query("COMMIT");
      expect(await completing).toMatchObject({ recorded: 1, finishedWorkflows: 0 });
    } finally {
      scheduler.release();
      recorder.release();
    }
    expect(await store.read.workflow(pool, row.workflow_id)).toMatchObject({
      status: "RUNNING",
      pending_tasks: 1,
      total_tasks: 2,
    });
  });

  it("a completion of the root that commits first: the schedule into it is refused, nothing written", async () => {
    const row = await assigned();
    const second = newTask({ workflowId: row.workflow_id });
    const recorder = await pool.connect();
    const scheduler = await pool.connect();
    try {
      await recorder.query("BEGIN");
      await store.worker.complete(recorder, [outcome(row)]);
      await scheduler.query("BEGIN");
      const scheduling = store.schedule.insert(scheduler, [second], new Set());
      expect(await stillWaiting(scheduling)).toBe(true);
      await recorder.query("COMMIT");
      await expect(scheduling).rejects.toBeInstanceOf(WorkflowNotRunningError);
      await expect(scheduling).rejects.toMatchObject({ status: "COMPLETED" });
      await scheduler.query("ROLLBACK");
    } finally {
      recorder.release();
      scheduler.release();
    }
    expect(await rowCount(row.workflow_id)).toBe(0);
    expect(await store.read.task(pool, second.id)).toBeUndefined();
    expect(await store.read.workflow(pool, row.workflow_id)).toMatchObject({ status: "COMPLETED" });
  });

  it("cancelled: the row is written CANCELLED with the reason; the late outcome is refused", async () => {
    const row = await assigned();
    const canceller = await pool.connect();
    try {
      await canceller.query("BEGIN");
      expect(await store.cancel.cancelWorkflow(canceller, row.workflow_id, "no longer needed")).toEqual({
        cancelled: true,
        status: "CANCELLED",
        tasks: 1,
      });
      // The completion waits for the cancel (the workflow's bucket), then finds the task cancelled.
      const completing = store.worker.complete(pool, [outcome(row)]);
      expect(await stillWaiting(completing)).toBe(true);
      await canceller.query("COMMIT");
      expect(await completing).toMatchObject({ recorded: 0, refused: [row.id] });
    } finally {
      canceller.release();
    }
    expect(await store.read.workflow(pool, row.workflow_id)).toMatchObject({
      status: "CANCELLED",
      cancel_reason: "no longer needed",
      pending_tasks: 0,
      total_tasks: 1,
    });
    expect(await store.read.task(pool, row.id)).toMatchObject({ queue: "DELETED", state: "CANCELLED" });
    const again = await pool.connect();
    try {
      await again.query("BEGIN");
      expect(await store.cancel.cancelWorkflow(again, row.workflow_id, "twice")).toEqual({
        cancelled: false,
        status: "CANCELLED",
        tasks: 0,
      });
      await again.query("COMMIT");
    } finally {
      again.release();
    }
  });

  it("a cancel after it finished says so and writes nothing; cancelling its root task cancels it", async () => {
    const done = await assigned();
    await store.worker.complete(pool, [outcome(done)]);
    const client = await pool.connect();
    try {
      await client.query("BEGIN");
      expect(await store.cancel.cancelWorkflow(client, done.workflow_id, null)).toEqual({
        cancelled: false,
        status: "COMPLETED",
        tasks: 0,
      });
      expect(await store.cancel.cancelWorkflow(client, "01NOSUCHWORKFLOW000000000", null)).toBeUndefined();
      const pending = newTask();
      await store.schedule.insert(client, [pending], new Set([pending.id]));
      expect(await store.cancel.cancelTask(client, pending.id)).toEqual({ workflowId: pending.id, tasks: 1 });
      expect(await store.read.workflow(client, pending.id)).toMatchObject({ status: "CANCELLED", pending_tasks: 0 });
      await client.query("COMMIT");
    } finally {
      client.release();
    }
    expect(await rowCount(done.workflow_id)).toBe(0);
  });
});
