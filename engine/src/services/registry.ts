import type { Service } from "./service.js";

/**
 * Services started and stopped as one group (River's manner: a node's duties,
 * a leader's duties). `start()` starts them in order, and if one fails stops
 * those already started and rethrows. `stop()` stops what was started, in
 * reverse order (or all at once with `parallelStop`), each once, even when one
 * of them fails (the first failure is rethrown after). Stop before start is
 * final: a later `start()` starts nothing, so a group whose owner gave up
 * (leadership lost while it waited) never runs. Stopping twice is one stop.
 */
export class ServiceGroup {
  private readonly started: Service[] = [];
  private starting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;

  constructor(
    readonly name: string,
    private readonly services: readonly Service[],
    private readonly options: { readonly parallelStop?: boolean } = {},
  ) {}

  /** The group's services, in start order. */
  get members(): readonly Service[] {
    return this.services;
  }

  /** Whether stop() was called. */
  get stopped(): boolean {
    return this.stopping !== undefined;
  }

  start(): Promise<void> {
    this.starting ??= this.startAll();
    return this.starting;
  }

  stop(): Promise<void> {
    this.stopping ??= this.stopAll();
    return this.stopping;
  }

  private async startAll(): Promise<void> {
    for (const service of this.services) {
      if (this.stopping) return;
      this.started.push(service);
      try {
        await service.start();
      } catch (error) {
        // Not stop(): it would wait for this start.
        this.stopping ??= this.stopStarted();
        await this.stopping.catch(() => undefined);
        throw error;
      }
    }
  }

  private async stopAll(): Promise<void> {
    // A start in progress finishes the service it is starting first (then sees the stop).
    await this.starting?.catch(() => undefined);
    await this.stopStarted();
  }

  private async stopStarted(): Promise<void> {
    const services = [...this.started].reverse();
    const failures: unknown[] = [];
    if (this.options.parallelStop) {
      const results = await Promise.allSettled(services.map((s) => s.stop()));
      for (const r of results) if (r.status === "rejected") failures.push(r.reason);
    } else {
      for (const service of services) {
        try {
          await service.stop();
        } catch (error) {
          failures.push(error);
        }
      }
    }
    if (failures.length > 0) throw failures[0];
  }
}
