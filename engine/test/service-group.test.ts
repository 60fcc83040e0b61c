import { describe, expect, it } from "vitest";
import { ServiceGroup } from "../src/services/registry.js";
import type { Service } from "../src/services/service.js";

/** A service that records its calls in `log`; `failStart`/`failStop` make that call throw. */
function recorder(
  name: string,
  log: string[],
  options: { failStart?: boolean; failStop?: boolean; startMs?: number } = {},
): Service {
  return {
    name,
    async start() {
      log.push(`start ${name}`);
      if (options.startMs) await new Promise((r) => setTimeout(r, options.startMs));
      if (options.failStart) throw new Error(`${name} cannot start`);
    },
    async stop() {
      log.push(`stop ${name}`);
      if (options.failStop) throw new Error(`${name} cannot stop`);
    },
  };
}

describe("ServiceGroup", () => {
  it("starts in order and stops in reverse order, each once", async () => {
    const log: string[] = [];
    const group = new ServiceGroup("node", [recorder("a", log), recorder("b", log), recorder("c", log)]);
    await group.start();
    await group.start();
    await Promise.all([group.stop(), group.stop()]);
    await group.stop();
    expect(log).toEqual(["start a", "start b", "start c", "stop c", "stop b", "stop a"]);
  });

  it("stop before start is final: nothing starts afterwards", async () => {
    const log: string[] = [];
    const group = new ServiceGroup("leader", [recorder("a", log)]);
    await group.stop();
    await group.start();
    expect(log).toEqual([]);
    expect(group.stopped).toBe(true);
  });

  it("a failed start stops what had started and rethrows", async () => {
    const log: string[] = [];
    const group = new ServiceGroup("node", [
      recorder("a", log),
      recorder("b", log, { failStart: true }),
      recorder("c", log),
    ]);
    await expect(group.start()).rejects.toThrow("b cannot start");
    expect(log).toEqual(["start a", "start b", "stop b", "stop a"]);
    await group.stop();
    expect(log).toHaveLength(4);
  });

  it("a stop during a start waits for the service being started, then stops it; the rest never start", async () => {
    const log: string[] = [];
    const group = new ServiceGroup("node", [recorder("a", log, { startMs: 50 }), recorder("b", log)]);
    const starting = group.start();
    await group.stop();
    await starting;
    expect(log).toEqual(["start a", "stop a"]);
  });

  it("a failing stop does not keep the others running; its error is rethrown", async () => {
    const log: string[] = [];
    for (const parallelStop of [false, true]) {
      log.length = 0;
      const group = new ServiceGroup(
        "g",
        [recorder("a", log), recorder("b", log, { failStop: true }), recorder("c", log)],
        {
          parallelStop,
        },
      );
      await group.start();
      await expect(group.stop()).rejects.toThrow("b cannot stop");
      expect(log.filter((l) => l.startsWith("stop")).sort()).toEqual(["stop a", "stop b", "stop c"]);
    }
  });
});
