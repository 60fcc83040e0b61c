import { monotonicFactory, ulid } from "ulid";

/**
 * New task, workflow and node ids: ULIDs, time-ordered. The monotonic factory
 * reuses the random part within a millisecond (incrementing it), which also keeps
 * ids strictly increasing in this process; the plain `ulid()` draws 80 fresh
 * random bits per id, one byte at a time, at about 55 µs per id.
 */
export const newId: () => string = monotonicFactory();

/**
 * An id whose time part is `ms` (a slot's start, say) rather than now: such ids
 * sort by that time. The random part is drawn fresh (80 bits).
 */
export function newIdAt(ms: number): string {
  return ulid(ms);
}
