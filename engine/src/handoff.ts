/**
 * The planner's contract with the worker of its own node: the leader hands
 * that worker its assignments directly and counts its room as the worker does.
 */
import type { AssignedTaskRow, LocalNode } from "./store/types.js";

/**
 * The worker of the leader's own node. Its assignments are handed to it by the
 * apply that makes them, instead of a notification and a fetch (see
 * PlannerStore.apply): one statement and a round trip less per cycle.
 */
export interface LocalWorker {
  /** The node and the highest token its worker has seen; null while it takes no work. */
  handoffTarget(): LocalNode | null;
  /** Runs assignments an apply handed over. */
  handOver(rows: readonly AssignedTaskRow[]): void;
  /**
   * The attempts the node can take now, as it counts them: those that ended
   * free their room before their outcomes are recorded, which the database's
   * count of assignments shows only once the completion batch commits.
   */
  room(): number;
  /** \`listener\` runs when attempts ended and room was freed. */
  onRoom(listener: () => void): void;
}
