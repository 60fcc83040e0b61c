import type { Queryable } from "../db/pg.js";
import type { Store } from "../store/index.js";
import type { Candidate, PlanDecision } from "../store/types.js";
import { affinityKeyOf, parkUnheld } from "./decide.js";

/**
 * Affinity: a candidate with a key may run only in the workflow holding the
 * key. Free keys are first given to the oldest workflow waiting for them (which
 * may not be the candidate's); candidates of other workflows are parked until
 * the key is handed to theirs.
 */
export async function holdAffinity(
  store: Store,
  db: Queryable,
  epoch: number,
  fetched: readonly Candidate[],
): Promise<{ candidates: Candidate[]; parked: PlanDecision[] }> {
  const keyed = fetched.filter((c) => c.affinity !== null && c.affinity !== undefined);
  if (keyed.length === 0) return { candidates: [...fetched], parked: [] };
  // Holders as the candidates query read them; keys nobody holds (rare:
  // schedules claim theirs) are handed over first, and read again.
  const holders = new Map<string, string>();
  const free = new Map<string, { affinity_group: string; affinity: string }>();
  for (const c of keyed) {
    const g = c.affinity_group as string;
    const a = c.affinity as string;
    if (c.holder !== null && c.holder !== undefined) holders.set(affinityKeyOf(g, a), c.holder);
    else free.set(affinityKeyOf(g, a), { affinity_group: g, affinity: a });
  }
  if (free.size > 0) {
    await store.affinity.handOver(db, [...free.values()], epoch);
    for (const h of await store.affinity.holders(db, [...free.values()])) {
      holders.set(affinityKeyOf(h.affinity_group, h.affinity), h.workflow_id);
    }
  }
  return parkUnheld(fetched, holders);
}
