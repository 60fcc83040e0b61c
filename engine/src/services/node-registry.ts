import { cpus, hostname, loadavg } from "node:os";
import type pg from "pg";
import { newId } from "../ids.js";
import type { EventLogger } from "../logger.js";
import type { PublishedCron } from "../store/cron.js";
import type { Store } from "../store/index.js";
import { LoopService, OutageLog } from "./service.js";

export interface NodeIdentity {
  readonly appName: string;
  readonly capacity: number;
  readonly taskNames: readonly string[];
  readonly taskLimits?: Readonly<Record<string, number>>;
  /** timeoutMs by task name, for the names that have one. */
  readonly taskTimeouts?: Readonly<Record<string, number>>;
  readonly taskCrons?: Readonly<Record<string, PublishedCron>>;
}

/** The process's CPU load as a fraction of its cores (0..1), as the planner's CPU limit reads it. */
export function systemCpuLoad(): number {
  return Math.min(1, (loadavg()[0] ?? 0) / Math.max(1, cpus().length));
}

/**
 * Registers this process as a node and keeps its heartbeat. If a heartbeat finds
 * the row gone, the planner declared the node dead and re-planned its tasks:
 * `onDeclaredDead` stops the node's current work, and the node re-registers
 * under a new id (so nothing it still holds can be confused with the new
 * assignments).
 */
export class NodeRegistry extends LoopService {
  readonly name = "node-registry";
  private id = newId();
  private readonly outage: OutageLog;

  constructor(
    private readonly store: Store,
    private readonly pool: pg.Pool,
    private readonly identity: NodeIdentity,
    private readonly intervalMs: number,
    private readonly log: EventLogger,
    private readonly onDeclaredDead: (oldId: string, newId: string) => Promise<void>,
    private readonly cpuLoad: () => number = systemCpuLoad,
  ) {
    super();
    this.outage = new OutageLog(log, "node heartbeat");
  }

  get nodeId(): string {
    return this.id;
  }

  override async start(): Promise<void> {
    if (!this.stopped) return;
    await this.register();
    await super.start();
  }

  /** Tells the planner to assign nothing more to this node. */
  async drain(): Promise<void> {
    await this.store.nodes.drain(this.pool, this.id);
  }

  override async stop(): Promise<void> {
    if (this.stopped) return;
    await super.stop();
    await this.store.nodes
      .deregister(this.pool, this.id)
      .catch((err) => this.log.warn({ event: "node.deregister_failed", err }, "deregister failed"));
  }

  private async register(): Promise<void> {
    await this.store.nodes.register(this.pool, {
      id: this.id,
      appName: this.identity.appName,
      host: hostname(),
      pid: process.pid,
      capacity: this.identity.capacity,
      taskNames: this.identity.taskNames,
      ...(this.identity.taskLimits ? { taskLimits: this.identity.taskLimits } : {}),
      ...(this.identity.taskTimeouts ? { taskTimeouts: this.identity.taskTimeouts } : {}),
      ...(this.identity.taskCrons ? { taskCrons: this.identity.taskCrons } : {}),
    });
    this.log.info({ event: "node.started", node: this.id, taskNames: this.identity.taskNames }, "node registered");
  }

  protected override firstDelayMs(): number {
    return this.intervalMs;
  }

  protected async tick(): Promise<number> {
    try {
      const alive = await this.store.nodes.heartbeat(this.pool, this.id, this.cpuLoad());
      this.outage.success();
      if (!alive && !this.stopped) {
        const oldId = this.id;
        this.id = newId();
        this.log.warn(
          { event: "node.declared_dead", node: oldId, newNode: this.id },
          "node was declared dead; re-registering",
        );
        await this.onDeclaredDead(oldId, this.id);
        await this.register();
      }
    } catch (error) {
      this.outage.failure(error);
    }
    return this.intervalMs;
  }
}
