import type { PlannerConfig } from "../config.js";
import type { Queryable } from "../db/pg.js";
import type { EventLogger } from "../logger.js";
import type { Store } from "../store/index.js";

/** What one rescue did (see DeadNodeRescue.run). */
export interface RescueResult {
  /** The epoch is over: nothing was written, and the planner is deposed. */
  readonly fenced: boolean;
  /** Tasks moved: lost attempts released, and tasks unparked by freed keys. */
  readonly handled: number;
  /** Nodes were declared dead or found gone, or keys freed: a reading taken before is out of date. */
  readonly changed: boolean;
}

const FENCED: RescueResult = { fenced: true, handled: 0, changed: false };

/**
 * Dead-node rescue, every \`deadNodeSweepMs\`, inside the leader's cycle (on its
 * connection, fenced by its epoch): declares nodes with a stale heartbeat dead
 * and returns their attempts to READY, as it does the attempts of nodes that no
 * longer exist and attempts past their database deadline; then frees the
 * affinity keys whose holder finished without a release.
 */
export class DeadNodeRescue {
  /**
   * When the last sweep ran. A new leader sweeps one interval after it took
   * over, not at once: its first cycles place the backlog, and a node that died
   * with the old leader is declared dead only once its heartbeat is
   * \`nodeDeadAfterMs\` old anyway.
   */
  private lastSweep = Date.now();

  constructor(
    private readonly store: Store,
    private readonly config: Pick<PlannerConfig, "deadNodeSweepMs" | "nodeDeadAfterMs">,
    private readonly log: EventLogger,
  ) {}

  /** Whether a sweep is due at \`now\` (Date.now()). */
  due(now: number): boolean {
    return now - this.lastSweep >= this.config.deadNodeSweepMs;
  }

  /** Sweeps now; the next one is due an interval after \`now\`, whether this one succeeds or not. */
  async run(db: Queryable, epoch: number, now: number = Date.now()): Promise<RescueResult> {
    const { store, config } = this;
    this.lastSweep = now;
    const swept = await store.planner.sweepDeadNodes(db, config.nodeDeadAfterMs, epoch);
    if (swept.fenced) return FENCED;
    if (swept.dead_nodes.length > 0) {
      this.log.warn(
        { event: "planner.nodes_dead", nodes: swept.dead_nodes, released: swept.released },
        "declared nodes dead; re-planning their tasks",
      );
    }
    if (swept.overdue > 0) {
      this.log.warn(
        { event: "planner.attempts_overdue", tasks: swept.overdue },
        "attempts passed their deadline; re-planning them",
      );
    }
    let handled = swept.released;
    // Keys are released by whoever finishes their holder's last task; this
    // catches a release that never ran (a node that died right after its commit).
    const keys = await store.affinity.releaseFinished(db, epoch);
    if (keys.freed > 0)
      this.log.debug({ event: "planner.keys_freed", keys: keys.freed }, "freed affinity keys left held");
    handled += keys.unparked;
    const changed = swept.dead_nodes.length > 0 || swept.gone_nodes.length > 0 || keys.freed > 0;
    return { fenced: false, handled, changed };
  }
}
