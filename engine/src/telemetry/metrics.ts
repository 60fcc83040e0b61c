import {
  type Attributes,
  type Counter,
  createNoopMeter,
  type Histogram,
  type Meter,
  type MeterProvider,
  metrics,
} from "@opentelemetry/api";
import type { EventLogger, LogFields, Logger } from "../logger.js";
import type { OutcomeRow } from "../store/types.js";
import { INSTRUMENTATION_NAME } from "./traces.js";

/**
 * The meter provider Weft records with, or undefined when nothing listens:
 * \`provider\` when given, else the global one if an SDK registered it (the
 * API answers its no-op provider otherwise, whose meters are the no-op meter).
 */
export function activeMeterProvider(provider?: MeterProvider): MeterProvider | undefined {
  if (provider !== undefined) return provider;
  const global = metrics.getMeterProvider();
  return global.getMeter(INSTRUMENTATION_NAME) === createNoopMeter() ? undefined : global;
}

/** Crockford's base32, as ULIDs are written. */
const ULID_DIGITS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/** The creation time (ms since the epoch) written in a ULID's first ten characters. */
export function ulidTime(id: string): number {
  let ms = 0;
  for (let i = 0; i < 10; i++) ms = ms * 32 + ULID_DIGITS.indexOf(id.charAt(i).toUpperCase());
  return ms;
}

/** Adds one to \`name\`'s total. */
export function count(totals: Map<string, number>, name: string): void {
  totals.set(name, (totals.get(name) ?? 0) + 1);
}

/** Seconds buckets for latencies and durations: 1 ms to 5 min. */
const SECONDS_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
/** Batch sizes: 1 to 10,000. */
const SIZE_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

/** Queue depth and lag as the leader last read them (see QueueDepthRow). */
export interface QueueDepth {
  readonly queue: string;
  readonly task_name: string;
  readonly count: number;
  /** Seconds the oldest due task of this name has waited for a node (ready queue only), else null. */
  readonly lag_seconds: number | null;
}

/** What the observable instruments read, given by the engine. */
export interface MetricSources {
  /** This node's capacity and attempts in flight; undefined for a process that runs no node. */
  node(): { readonly capacity: number; readonly inFlight: number } | undefined;
  /** Queue depths, read by the leader (undefined on other processes: only the leader reports them). */
  queues(): Promise<readonly QueueDepth[] | undefined>;
}

/** The instruments of one engine (docs/observability.md, "Metrics"). */
export class Instruments {
  /**
   * Task counts by name, kept in plain maps and reported by observable
   * counters at collection: a counter's add() costs the SDK an attribute hash
   * per call, which per task was as much as the rest of the node's metrics.
   */
  readonly started = new Map<string, number>();
  readonly completed = new Map<string, number>();
  readonly failed = new Map<string, number>();
  readonly retried = new Map<string, number>();
  readonly deadLettered = new Map<string, number>();
  readonly cancelled = new Map<string, number>();
  readonly scheduleToStart: Histogram;
  readonly duration: Histogram;
  readonly plannerCycle: Histogram;
  readonly plannerBatch: Histogram;
  readonly completionBatch: Histogram;
  readonly completionDuration: Histogram;
  readonly events: Counter;
  /** One attribute object per task name (no allocation per task). */
  private readonly byName = new Map<string, Attributes>();
  private readonly completedByName = new Map<string, Attributes>();
  private readonly failedByName = new Map<string, Attributes>();

  constructor(meter: Meter, sources: MetricSources) {
    const counters: [Map<string, number>, string, string][] = [
      [this.started, "started", "Attempts started on this node, by task name."],
      [this.completed, "completed", "Tasks completed (outcome recorded by this node), by task name."],
      [this.failed, "failed", "Tasks failed for good (no attempt left), by task name."],
      [this.retried, "retried", "Failed attempts scheduled for another attempt, by task name."],
      [this.deadLettered, "dead_lettered", "Final failures copied to the dead-letter table, by task name."],
      [
        this.cancelled,
        "cancelled",
        "Running attempts aborted here by a revocation (workflow cancelled, task re-planned), by task name.",
      ],
    ];
    const observables = counters.map(([, name, description]) =>
      meter.createObservableCounter(`weft.tasks.${name}`, { description, unit: "{task}" }),
    );
    meter.addBatchObservableCallback((result) => {
      counters.forEach(([totals], i) => {
        const counter = observables[i] as (typeof observables)[number];
        for (const [name, n] of totals) result.observe(counter, n, this.task(name));
      });
    }, observables);
    this.scheduleToStart = meter.createHistogram("weft.task.schedule_to_start", {
      description: "From a task's creation to the start of its first attempt, by task name.",
      unit: "s",
      advice: { explicitBucketBoundaries: SECONDS_BUCKETS },
    });
    this.duration = meter.createHistogram("weft.task.duration", {
      description: "Attempts' run time on this node, by task name and outcome.",
      unit: "s",
      advice: { explicitBucketBoundaries: SECONDS_BUCKETS },
    });
    this.plannerCycle = meter.createHistogram("weft.planner.cycle.duration", {
      description: "Planner cycles (leader only).",
      unit: "s",
      advice: { explicitBucketBoundaries: SECONDS_BUCKETS },
    });
    this.plannerBatch = meter.createHistogram("weft.planner.batch.size", {
      description: "Tasks moved per planner cycle that moved any (leader only).",
      unit: "{task}",
      advice: { explicitBucketBoundaries: SIZE_BUCKETS },
    });
    this.completionBatch = meter.createHistogram("weft.completion.batch.size", {
      description: "Outcomes per completion batch recorded by this node.",
      unit: "{outcome}",
      advice: { explicitBucketBoundaries: SIZE_BUCKETS },
    });
    this.completionDuration = meter.createHistogram("weft.completion.batch.duration", {
      description: "Time to record one completion batch (the statement, retries included).",
      unit: "s",
      advice: { explicitBucketBoundaries: SECONDS_BUCKETS },
    });
    this.events = meter.createCounter("weft.log.events", {
      description:
        "Lines of Weft's log events (docs/operations.md), by event, counted at any log level: db.outage_began counts outages, leader.elected leader changes.",
      unit: "{event}",
    });
    const capacity = meter.createObservableGauge("weft.node.capacity", {
      description: "Attempts this node runs at most at once (node.maxParallelTasksInNode).",
      unit: "{attempt}",
    });
    const inFlight = meter.createObservableGauge("weft.node.in_flight", {
      description: "Attempts running on this node.",
      unit: "{attempt}",
    });
    meter.addBatchObservableCallback(
      (result) => {
        const node = sources.node();
        if (node === undefined) return;
        result.observe(capacity, node.capacity);
        result.observe(inFlight, node.inFlight);
      },
      [capacity, inFlight],
    );
    const depth = meter.createObservableGauge("weft.queue.depth", {
      description:
        "Unfinished tasks by queue (ready: waiting for a node; running; delayed: parked until their time) and task name (leader only).",
      unit: "{task}",
    });
    const lag = meter.createObservableGauge("weft.queue.lag", {
      description: "Age of the oldest due task waiting for a node, by task name (leader only).",
      unit: "s",
    });
    meter.addBatchObservableCallback(
      async (result) => {
        const rows = await sources.queues();
        if (rows === undefined) return;
        for (const r of rows) {
          result.observe(depth, r.count, { queue: r.queue, task_name: r.task_name });
          if (r.lag_seconds !== null) result.observe(lag, r.lag_seconds, { task_name: r.task_name });
        }
      },
      [depth, lag],
    );
  }

  /** \`{ task_name }\`, one object per name. */
  task(name: string): Attributes {
    let a = this.byName.get(name);
    if (a === undefined) {
      a = { task_name: name };
      this.byName.set(name, a);
    }
    return a;
  }

  /** \`{ task_name, outcome }\`, one object per pair. */
  taskOutcome(name: string, outcome: "completed" | "failed"): Attributes {
    const map = outcome === "completed" ? this.completedByName : this.failedByName;
    let a = map.get(name);
    if (a === undefined) {
      a = { task_name: name, outcome };
      map.set(name, a);
    }
    return a;
  }

  /** Counts the outcomes of a recorded batch, less those refused (revoked assignments). */
  recorded(
    batch: readonly OutcomeRow[],
    result: { readonly refused: readonly string[]; readonly retried: number },
  ): void {
    const refused = result.refused.length > 0 ? new Set(result.refused) : undefined;
    let retries = 0;
    for (const o of batch) if (o.retry && !refused?.has(o.id)) retries++;
    // Retries past their window fail for good in the statement; which ones is
    // not returned, so when some did, the batch's retries count as failures.
    const retriesFailed = retries > result.retried;
    for (const o of batch) {
      if (refused?.has(o.id) || o.taskName === undefined) continue;
      const name = o.taskName;
      if (o.state === "COMPLETED") count(this.completed, name);
      else if (o.retry && !retriesFailed) count(this.retried, name);
      else {
        count(this.failed, name);
        if (o.deadLetter) count(this.deadLettered, name);
      }
    }
  }
}

/**
 * Holds an engine's instruments, made when a meter provider is in use (at
 * construction, or attached later: the HTTP handler's \`/metrics\` does).
 * Services read \`instruments\` each time: undefined means no metrics work.
 */
export class Metrics {
  instruments: Instruments | undefined;

  constructor(private readonly sources: MetricSources) {}

  /** Records into \`provider\`'s meter \`weft\` from now on (once; later calls are ignored). */
  use(provider: MeterProvider): void {
    if (this.instruments !== undefined) return;
    this.instruments = new Instruments(provider.getMeter(INSTRUMENTATION_NAME), this.sources);
  }

  /** \`log\`, counting each line's event in \`weft.log.events\` once metrics are on. */
  countEvents(log: Logger): EventLogger & Logger {
    const count = (fields: object) => {
      const i = this.instruments;
      const event = (fields as Partial<LogFields>).event;
      if (i !== undefined && typeof event === "string") i.events.add(1, { event });
    };
    return {
      debug: (obj: object, msg?: string) => {
        count(obj);
        log.debug(obj, msg);
      },
      info: (obj: object, msg?: string) => {
        count(obj);
        log.info(obj, msg);
      },
      warn: (obj: object, msg?: string) => {
        count(obj);
        log.warn(obj, msg);
      },
      error: (obj: object, msg?: string) => {
        count(obj);
        log.error(obj, msg);
      },
      child: (bindings: Record<string, unknown>) => log.child(bindings),
      get level() {
        return log.level;
      },
      set level(l: string | undefined) {
        if (l !== undefined) log.level = l;
      },
    };
  }
}
