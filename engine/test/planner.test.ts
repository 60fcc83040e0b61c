import { describe, expect, it } from "vitest";
import { engineConfigSchema, parseConfig, pollingDelayFor } from "../src/config.js";
import { ConfigError } from "../src/errors.js";
import type { TaskHandler } from "../src/handler.js";
import { resolveTaskLimits } from "../src/task-settings.js";

describe("polling delay", () => {
  const map = { "0": 1000, "100": 500, "1000": 250 };
  it("uses the entry with the largest key not above the last count", () => {
    expect(pollingDelayFor(map, 0)).toBe(1000);
    expect(pollingDelayFor(map, 99)).toBe(1000);
    expect(pollingDelayFor(map, 100)).toBe(500);
    expect(pollingDelayFor(map, 5000)).toBe(250);
  });
});

describe("task settings precedence", () => {
  const handler = (name: string, maxParallelInCluster?: number): [string, TaskHandler] => [
    name,
    { name, execute: async () => null, ...(maxParallelInCluster ? { settings: { maxParallelInCluster } } : {}) },
  ];
  const handlers = new Map([handler("a", 5), handler("b"), handler("c", 7)]);

  it("per-task override > definition > global default", () => {
    const config = parseConfig(engineConfigSchema, {
      taskDefaults: { maxParallelInCluster: 100 },
      taskOverrides: { c: { maxParallelInCluster: 2 } },
    });
    expect(resolveTaskLimits(config, handlers)).toEqual({ a: 5, b: 100, c: 2 });
    expect(resolveTaskLimits(parseConfig(engineConfigSchema, {}), handlers)).toEqual({ a: 5, c: 7 });
  });

  it("an override for a task this process does not define is refused, with a suggestion", () => {
    const config = parseConfig(engineConfigSchema, { taskOverrides: { bb: { maxParallelInCluster: 1 } } });
    expect(() => resolveTaskLimits(config, handlers)).toThrow(ConfigError);
    expect(() => resolveTaskLimits(config, handlers)).toThrow(/did you mean "b"/);
    expect(() => parseConfig(engineConfigSchema, { taskDefaults: { maxParallelInCluster: 0 } })).toThrow(
      /taskDefaults\.maxParallelInCluster/,
    );
    expect(() => parseConfig(engineConfigSchema, { planner: { nodeCpuLoadingLimit: 1.5 } })).toThrow(
      /planner\.nodeCpuLoadingLimit/,
    );
  });
});
