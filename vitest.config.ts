import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["engine/test/**/*.test.ts", "sdk/test/**/*.test.ts", "dashboard/test/**/*.test.ts"],
    globalSetup: ["./test/global-setup.ts"],
    pool: "forks",
    // Two cores: files that spawn node processes compete for them.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ["default"],
    // Weft's logs stay out of the test output (node processes the tests start
    // inherit it); a test that asserts log lines passes a logger or a level of
    // its own. WEFT_LOG_LEVEL=debug pnpm test shows them.
    env: { WEFT_LOG_LEVEL: process.env.WEFT_LOG_LEVEL ?? "silent" },
  },
});
