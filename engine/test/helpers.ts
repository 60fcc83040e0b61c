import { ulid } from "ulid";
import type { NewTaskRow } from "../src/store/types.js";

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
