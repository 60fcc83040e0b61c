import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { freshDatabase } from "../../test/support.js";
import { createWeft, defineTask, type Weft } from "../src/index.js";

const add = defineTask({
  name: "add",
  input: z.object({ a: z.number(), b: z.number() }),
  output: z.object({ sum: z.number() }),
  run: ({ input }) => ({ sum: input.a + input.b }),
});

describe("schedule → run → COMPLETED", () => {
  let weft: Weft;
  beforeAll(async () => {
    const url = await freshDatabase();
    weft = createWeft({ connectionString: url, tasks: [add] });
    await weft.start();
  });
  afterAll(() => weft.stop());

  it("runs a task and returns its typed result", async () => {
    const ref = await weft.client.schedule(add, { a: 2, b: 3 });
    const wf = await weft.client.waitForWorkflow(ref.workflowId, { timeoutMs: 10_000 });
    expect(wf.status).toBe("COMPLETED");
    const task = await weft.client.getTask(ref.taskId, add);
    expect(task.state).toBe("COMPLETED");
    expect(task.queue).toBe("DELETED");
    expect(task.result).toEqual({ sum: 5 });
    expect(task.attempt).toBe(1);
  });
});
