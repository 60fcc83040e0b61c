import { describe, expect, it } from "vitest";
import { retryPolicySchema } from "../src/config.js";
import { maxAttempts, retryDelayMs } from "../src/retry.js";

describe("retry policies", () => {
  it("BACKOFF: initial delay, then delayPeriod × 2^(n-1), shortened by at most the jitter", () => {
    const p = retryPolicySchema.parse({
      mode: "BACKOFF",
      initialDelayMs: 500,
      delayPeriodMs: 1_000,
      maxRetries: 4,
      jitter: 0,
    });
    expect([1, 2, 3, 4].map((n) => retryDelayMs(p, n))).toEqual([500, 2_000, 4_000, 8_000]);
    expect(retryDelayMs(p, 5)).toBeNull();
    expect(maxAttempts(p)).toBe(5);
    const jittered = retryPolicySchema.parse({ mode: "BACKOFF", delayPeriodMs: 1_000, jitter: 0.5 });
    expect(retryDelayMs(jittered, 3, () => 0)).toBe(4_000);
    expect(retryDelayMs(jittered, 3, () => 1)).toBe(2_000);
    const spread = new Set(Array.from({ length: 50 }, () => retryDelayMs(jittered, 3)));
    expect(spread.size).toBeGreaterThan(10);
    for (const d of spread) expect(d).toBeGreaterThanOrEqual(2_000);
  });

  it("BACKOFF defaults: 1 s, 2 s, 4 s ... ten retries", () => {
    const p = retryPolicySchema.parse({ mode: "BACKOFF", jitter: 0 });
    expect([1, 2, 3].map((n) => retryDelayMs(p, n))).toEqual([1_000, 2_000, 4_000]);
    expect(maxAttempts(p)).toBe(11);
    // Very late retries do not overflow.
    const many = retryPolicySchema.parse({ mode: "BACKOFF", maxRetries: 5_000, jitter: 0 });
    expect(Number.isFinite(retryDelayMs(many, 4_000))).toBe(true);
  });

  it("FIXED: the same delay up to maxRetries; OFF: never", () => {
    const p = retryPolicySchema.parse({ mode: "FIXED", delayMs: 250, maxRetries: 2 });
    expect([1, 2, 3].map((n) => retryDelayMs(p, n))).toEqual([250, 250, null]);
    expect(maxAttempts(p)).toBe(3);
    const off = retryPolicySchema.parse({ mode: "OFF" });
    expect(retryDelayMs(off, 1)).toBeNull();
    expect(maxAttempts(off)).toBe(1);
  });

  it("rejects bad policies with the offending field", () => {
    expect(retryPolicySchema.safeParse({ mode: "SOMETIMES" }).success).toBe(false);
    const bad = retryPolicySchema.safeParse({ mode: "FIXED", delayMs: -1 });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.path).toEqual(["delayMs"]);
    expect(retryPolicySchema.safeParse({ mode: "OFF", delayMs: 5 }).success).toBe(false);
  });
});
