import { ulid } from "ulid";
import type { Queryable } from "../src/db/pg.js";
import type { Store } from "../src/store/index.js";
import type { AssignedTaskRow, NewTaskRow } from "../src/store/types.js";

export function newTask(overrides: Partial<NewTaskRow> = {}): NewTaskRow {
  const id = ulid();
  return {
    id,
    workflowId: id,
    parentId: null,
    taskName: "t",
    input: "{}",
    priority: 0,
    runAfter: null,
    affinityGroup: null,
    affinity: null,
    ...overrides,
  };
}

/** A new single-task workflow whose task is assigned to \`node\`, as the worker fetches it. */
export async function assignedTask(store: Store, q: Queryable, node = "N1"): Promise<AssignedTaskRow> {
  const t = newTask();
  await store.schedule.insert(q, [t], new Set([t.id]));
  await store.planner.apply(q, [{ id: t.id, queue: "READY", node, parkReason: null }], 0);
  const [row] = await store.worker.fetchByIds(q, node, [t.id]);
  if (!row) throw new Error("not assigned");
  return row;
}

/** A logger that keeps lines for assertions. */
export function memoryLogger() {
  const lines: { level: string; msg: string; obj: object }[] = [];
  const make = (): import("../src/logger.js").Logger => ({
    debug: (obj, msg) => lines.push({ level: "debug", msg: msg ?? "", obj }),
    info: (obj, msg) => lines.push({ level: "info", msg: msg ?? "", obj }),
    warn: (obj, msg) => lines.push({ level: "warn", msg: msg ?? "", obj }),
    error: (obj, msg) => lines.push({ level: "error", msg: msg ?? "", obj }),
    child: () => make(),
  });
  return { logger: make(), lines };
}
