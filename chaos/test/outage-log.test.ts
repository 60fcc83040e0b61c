import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Logger } from "../../engine/src/logger.js";
import { OUTAGE_FLAP_MS, OutageLog } from "../../engine/src/services/service.js";

// The outage log's own rule, on a recording logger (the scenarios check it on real outages).
describe("OutageLog", () => {
  const recorder = () => {
    const lines: string[] = [];
    const log: Logger = {
      debug: () => undefined,
      error: (_: object, msg?: string) => lines.push(`error ${msg}`),
      warn: (_: object, msg?: string) => lines.push(`warn ${msg}`),
      info: (_: object, msg?: string) => lines.push(`info ${msg}`),
      child: () => log,
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
    outage.success();
    expect(lines).toHaveLength(2);
  });

  describe("flapping", () => {
    beforeEach(() => {
      vi.useFakeTimers();
      vi.setSystemTime(new Date("2026-01-01T00:00:00Z"));
    });
    afterEach(() => {
      vi.useRealTimers();
    });

    it("failures and successes by turns soon after a recovery log nothing more; a failure that lasts is logged", () => {
      const { lines, log } = recorder();
      const outage = new OutageLog(log, "recording outcomes");
      outage.failure(new Error("timeout"));
      outage.success();
      // A statement timeout that some statements pass: fail, succeed, fail, succeed, ... within seconds.
      for (let i = 0; i < 20; i++) {
        vi.advanceTimersByTime(500);
        outage.failure(new Error("timeout"));
        vi.advanceTimersByTime(100);
        outage.success();
      }
      expect(lines).toHaveLength(2);
      // Failing without a success for OUTAGE_FLAP_MS: a real outage again, logged, and its recovery.
      vi.advanceTimersByTime(500);
      outage.failure(new Error("down"));
      vi.advanceTimersByTime(OUTAGE_FLAP_MS);
      outage.failure(new Error("down"));
      outage.success();
      expect(lines.slice(2)).toEqual([
        "warn recording outcomes failed; retrying until the database answers",
        "info recording outcomes recovered",
      ]);
    });

    it("a failure long after the recovery is a new outage at once", () => {
      const { lines, log } = recorder();
      const outage = new OutageLog(log, "cleaner");
      outage.failure(new Error("down"));
      outage.success();
      vi.advanceTimersByTime(OUTAGE_FLAP_MS + 1);
      outage.failure(new Error("down again"));
      expect(lines).toHaveLength(3);
      expect(lines[2]).toBe("warn cleaner failed; retrying until the database answers");
    });
  });
});
