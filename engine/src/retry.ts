import type { RetryPolicy } from "./config.js";

/** Attempts a task gets under `policy`: the first plus its retries. */
export function maxAttempts(policy: RetryPolicy): number {
  return policy.mode === "OFF" ? 1 : policy.maxRetries + 1;
}

/**
 * The delay before retry `n` (after the n-th failed attempt), or null when the
 * policy allows no further retry. BACKOFF: the first retry waits
 * `initialDelayMs`, retry n > 1 waits `delayPeriodMs × 2^(n-1)`, shortened by up
 * to `jitter` × itself at random. The retry window (`maxIntervalMs` from the
 * first failure) is checked on the database clock when the failure is recorded.
 */
export function retryDelayMs(
  policy: RetryPolicy,
  failedAttempts: number,
  random: () => number = Math.random,
): number | null {
  if (policy.mode === "OFF" || failedAttempts > policy.maxRetries) return null;
  if (policy.mode === "FIXED") return policy.delayMs;
  const n = failedAttempts;
  // 2^(n-1) overflows to Infinity long after any sensible window; cap at a year.
  const base = n <= 1 ? policy.initialDelayMs : Math.min(policy.delayPeriodMs * 2 ** (n - 1), 365 * 24 * 3_600_000);
  return Math.round(base * (1 - policy.jitter * random()));
}
