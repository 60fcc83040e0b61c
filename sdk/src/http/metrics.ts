import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import { ConfigError } from "@weft/engine";
import { engineOf } from "../internal.js";
import type { Weft } from "../weft.js";

/** The \`metrics\` option of createHttpApi (docs/observability.md, "Prometheus"). */
export type HttpMetricsOption =
  | boolean
  | {
      /**
       * A PrometheusExporter that is a reader of the meter provider Weft
       * records into (yours, given to createWeft as \`meterProvider\` or
       * registered globally). Default: Weft makes a provider of its own with
       * one, for Weft's metrics only.
       */
      readonly exporter?: PrometheusExporter;
      /** Serve /metrics without a token (the API's other routes keep theirs). Default false: a read token. */
      readonly public?: boolean;
    };

/** What the /metrics route serves. */
export interface MetricsEndpoint {
  readonly public: boolean;
  /** The Prometheus text exposition of everything the exporter's provider holds. */
  render(): Promise<string>;
}

/**
 * The /metrics endpoint for \`option\`, or null when off. Without an exporter,
 * Weft's engine starts recording into a MeterProvider of its own, read by a
 * PrometheusExporter that starts no server of its own (the route serves it).
 */
export function metricsEndpoint(weft: Weft, option: HttpMetricsOption | undefined): MetricsEndpoint | null {
  if (option === undefined || option === false) return null;
  if (option !== true && (typeof option !== "object" || option === null)) {
    throw new ConfigError("http.metrics", "expected true, false or { exporter?, public? }");
  }
  const settings = option === true ? {} : option;
  if (settings.public !== undefined && typeof settings.public !== "boolean") {
    throw new ConfigError("http.metrics.public", "expected a boolean");
  }
  let exporter = settings.exporter;
  if (exporter !== undefined) {
    if (typeof (exporter as { collect?: unknown }).collect !== "function") {
      throw new ConfigError(
        "http.metrics.exporter",
        "expected a PrometheusExporter (@opentelemetry/exporter-prometheus)",
      );
    }
  } else {
    const engine = engineOf(weft);
    if (engine.metrics.instruments !== undefined) {
      throw new ConfigError(
        "http.metrics",
        "Weft already records into a meter provider (given as meterProvider, or registered globally): pass a PrometheusExporter reading it as metrics.exporter",
      );
    }
    exporter = new PrometheusExporter({ preventServerStart: true });
    engine.useMeterProvider(new MeterProvider({ readers: [exporter] }));
  }
  const reader = exporter;
  const serializer = new PrometheusSerializer();
  return {
    public: settings.public ?? false,
    async render() {
      const { resourceMetrics } = await reader.collect();
      return serializer.serialize(resourceMetrics);
    },
  };
}
