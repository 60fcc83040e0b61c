import { describe, expect, it } from "vitest";
import { OutageLog } from "../../engine/src/services/service.js";

// The outage log's own rule, on a recording logger (the scenarios check it on real outages).
describe("OutageLog", () => {
  const recorder = () => {
    const lines: string[] = [];
    const log = {
      warn: (_: object, msg?: string) => lines.push(`warn ${msg}`),
      info: (_: object, msg?: string) => lines.push(`info ${msg}`),
    };
    return { lines, log };
  };

  it("logs one warning per outage and one recovery, however many statements fail", () => {
    const { lines, log } = recorder();
    const outage = new OutageLog(log, "recording outcomes");
    for (let i = 0; i < 50; i++) outage.failure(new Error("down"));
    outage.success();
    outage.success();
    expect(lines).toEqual([
      "warn recording outcomes failed; retrying until the database answers",
      "info recording outcomes recovered",
    ]);
  });

  it("a statement that started before the recovery and fails after it belongs to the outage already logged", () => {
    const { lines, log } = recorder();
    const outage = new OutageLog(log, "recording outcomes");
    const before = Date.now() - 1_000;
    outage.failure(new Error("down"));
    outage.success();
    // Two batches were in flight: the slower one, started before the recovery, fails now.
    outage.failure(new Error("terminated"), before);
    expect(lines).toHaveLength(2);
    // A statement started after the recovery that fails is a new outage.
    outage.failure(new Error("down again"), Date.now() + 1);
    expect(lines.at(-1)).toBe("warn recording outcomes failed; retrying until the database answers");
  });
});
