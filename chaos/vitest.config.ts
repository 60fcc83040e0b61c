import { defineConfig } from "vitest/config";

// The fault tests (`pnpm test:chaos`; `pnpm test:chaos --long` for the long scenarios).
// One file at a time: each starts its own PostgreSQL and several node processes,
// and the machine has two cores.
export default defineConfig({
  test: {
    root: new URL("..", import.meta.url).pathname,
    include: ["chaos/test/**/*.test.ts"],
    pool: "forks",
    fileParallelism: false,
    maxWorkers: 1,
    testTimeout: 300_000,
    hookTimeout: 180_000,
    reporters: ["default"],
  },
});
