import type pg from "pg";
import type { EventLogger } from "../logger.js";
import type { Store } from "../store/index.js";
import { LoopService, OutageLog } from "./service.js";

/** How often the leader looks for tasks no node can run. */
export const NO_NODE_CHECK_MS = 10_000;
/** A name is warned about at most once per this long. */
export const NO_NODE_WARN_EVERY_MS = 60_000;
/** Names reported per check at most. */
const NAMES_PER_CHECK = 100;

/**
 * On the leader, beside the planner and off its path: finds task names that
 * wait to be placed (NEW or READY) but that no live node serves (a definition
 * missing from every node's \`tasks\`, a typo in a name scheduled by name, the
 * only nodes serving it gone). The planner reads candidates only for names
 * with a serving node, so such tasks would wait silently. A name is reported
 * (\`queue.no_node\`, warn) when two checks in a row find it unserved, so a
 * node that is starting is not reported, and then at most once per
 * NO_NODE_WARN_EVERY_MS. The tasks themselves show \`parkReason: "NO_NODE"\`
 * when read (see WeftClient.getWorkflowTasks).
 */
export class NoNodeWatch extends LoopService {
  readonly name = "no-node-watch";
  /** Names found unserved by the last check. */
  private previous = new Set<string>();
  /** When each name was last warned about. */
  private readonly warnedAt = new Map<string, number>();
  private readonly outage: OutageLog;

  constructor(
    private readonly store: Store,
    private readonly pool: pg.Pool,
    private readonly nodeDeadAfterMs: number,
    private readonly log: EventLogger,
    private readonly intervalMs: number = NO_NODE_CHECK_MS,
  ) {
    super();
    this.outage = new OutageLog(log, "checking for tasks no node serves");
  }

  protected override firstDelayMs(): number {
    return this.intervalMs;
  }

  protected async tick(): Promise<number> {
    try {
      await this.check();
      this.outage.success();
    } catch (error) {
      this.outage.failure(error);
    }
    return this.intervalMs;
  }

  /** One check; returns the names it warned about. */
  async check(): Promise<string[]> {
    const names = await this.store.nodes.unservedNames(this.pool, this.nodeDeadAfterMs, NAMES_PER_CHECK);
    const now = Date.now();
    const warned: string[] = [];
    for (const name of names) {
      if (!this.previous.has(name)) continue;
      const last = this.warnedAt.get(name);
      if (last !== undefined && now - last < NO_NODE_WARN_EVERY_MS) continue;
      this.warnedAt.set(name, now);
      warned.push(name);
      this.log.warn(
        { event: "queue.no_node", taskName: name },
        `tasks of "${name}" wait, but no live node serves that name (is its definition missing from the nodes' tasks?)`,
      );
    }
    this.previous = new Set(names);
    for (const name of this.warnedAt.keys()) if (!this.previous.has(name)) this.warnedAt.delete(name);
    return warned;
  }
}
