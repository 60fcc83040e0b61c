/** Each task's settings resolved from the configuration layers and its definition. */
import { type EngineConfig, type RetryPolicy, retryPolicySchema, suggest, type TaskSettings } from "./config.js";
import { ConfigError } from "./errors.js";
import type { TaskHandler } from "./handler.js";

/** A task's settings after precedence: \`taskOverrides[name]\` > definition > \`taskDefaults\` > built-in. */
export interface ResolvedTaskSettings {
  readonly maxParallelInCluster?: number;
  readonly retry: RetryPolicy;
  readonly timeoutMs?: number;
  readonly deadLetter: boolean;
}

const DEFAULT_RETRY: RetryPolicy = retryPolicySchema.parse({ mode: "BACKOFF" });

/**
 * Each task's settings with DTF's precedence: \`taskOverrides[name]\` over the
 * task definition over \`taskDefaults\`, field by field (a retry policy is
 * replaced whole). Overrides for tasks this process does not define are refused
 * (a typo would silently do nothing).
 */
export function resolveTaskSettings(
  config: EngineConfig,
  handlers: ReadonlyMap<string, TaskHandler>,
): Map<string, ResolvedTaskSettings> {
  for (const name of Object.keys(config.taskOverrides)) {
    if (!handlers.has(name)) {
      const hint = suggest(name, [...handlers.keys()]);
      throw new ConfigError(
        `taskOverrides.${name}`,
        `no task "${name}" is defined here${hint ? `; did you mean "${hint}"?` : ""}`,
      );
    }
  }
  const resolved = new Map<string, ResolvedTaskSettings>();
  for (const [name, handler] of handlers) {
    const layers = [config.taskOverrides[name], handler.settings, config.taskDefaults];
    const pick = <K extends keyof TaskSettings>(key: K): TaskSettings[K] | undefined => {
      for (const layer of layers) if (layer?.[key] !== undefined) return layer[key];
      return undefined;
    };
    const limit = pick("maxParallelInCluster");
    const timeoutMs = pick("timeoutMs");
    resolved.set(name, {
      ...(limit !== undefined ? { maxParallelInCluster: limit } : {}),
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      retry: pick("retry") ?? DEFAULT_RETRY,
      deadLetter: pick("deadLetter") ?? true,
    });
  }
  return resolved;
}

/** Each task's maxParallelInCluster (see resolveTaskSettings). */
export function resolveTaskLimits(
  config: EngineConfig,
  handlers: ReadonlyMap<string, TaskHandler>,
): Record<string, number> {
  const limits: Record<string, number> = {};
  for (const [name, s] of resolveTaskSettings(config, handlers)) {
    if (s.maxParallelInCluster !== undefined) limits[name] = s.maxParallelInCluster;
  }
  return limits;
}
