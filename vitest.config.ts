import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["engine/test/**/*.test.ts", "sdk/test/**/*.test.ts", "examples/test/**/*.test.ts"],
    globalSetup: ["./test/global-setup.ts"],
    pool: "forks",
    // Two cores: files that spawn node processes compete for them.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ["default"],
  },
});
