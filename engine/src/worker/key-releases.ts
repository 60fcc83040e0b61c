import type { AffinityHolder } from "../store/types.js";
import type { WorkerContext } from "./context.js";

/** Affinity keys per release statement, and releases running at once. */
const RELEASE_CHUNK = 250;
const RELEASES_IN_FLIGHT = 2;

/**
 * The worker's affinity key releases: after a commit that finished tasks with
 * affinity keys, the keys their workflows are done with are handed on.
 */
export class KeyReleases {
  /** Affinity keys to release (see queue), and the releases running. */
  private readonly keysToRelease = new Map<string, AffinityHolder>();
  private readonly releases = new Set<Promise<void>>();

  constructor(private readonly ctx: WorkerContext) {}

  /**
   * After a commit that finished tasks with affinity keys: queues the keys for
   * a release. Releases run beside the completion batches (which go on
   * meanwhile), a few at a time, each taking the keys queued so far.
   */
  queue(keys: readonly AffinityHolder[]): void {
    if (keys.length === 0) return;
    for (const k of keys) {
      const id = `${k.affinity_group}\u0000${k.affinity}\u0000${k.workflow_id}`;
      // Queued twice (two batches of one workflow): finished if either says so.
      if (!k.finished && this.keysToRelease.get(id)?.finished) continue;
      this.keysToRelease.set(id, k);
    }
    this.pump();
  }

  /** Resolves when no release is queued or running. */
  async settled(): Promise<void> {
    while (this.releases.size > 0) await Promise.all(this.releases);
  }

  /** Starts releases, up to RELEASES_IN_FLIGHT, of up to RELEASE_CHUNK keys each. */
  private pump(): void {
    while (this.releases.size < RELEASES_IN_FLIGHT && this.keysToRelease.size > 0) {
      // In chunks: the planner places the tasks of one while the next is released.
      const keys: AffinityHolder[] = [];
      for (const [id, key] of this.keysToRelease) {
        keys.push(key);
        this.keysToRelease.delete(id);
        if (keys.length >= RELEASE_CHUNK) break;
      }
      const release: Promise<void> = this.release(keys).finally(() => {
        this.releases.delete(release);
        this.pump();
      });
      this.releases.add(release);
    }
  }

  /**
   * Hands on the keys their workflows are done with. Best effort: a release
   * that fails is done by the planner's sweep instead.
   */
  private async release(keys: readonly AffinityHolder[]): Promise<void> {
    try {
      await this.ctx.store.affinity.release(this.ctx.hotPool, keys);
    } catch (error) {
      // A lock timeout means a caller's open transaction scheduled with the key.
      const level = (error as { code?: string }).code === "55P03" ? "debug" : "warn";
      this.ctx.log[level](
        { event: "affinity.release_failed", err: error, keys: keys.length },
        "could not release affinity keys; the planner's sweep will",
      );
    }
  }
}
