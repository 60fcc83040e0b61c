import type pg from "pg";
import { CronSchedule } from "../cron.js";
import { newIdAt } from "../ids.js";
import type { EventLogger } from "../logger.js";
import { parseInterval } from "../slots.js";
import type { PublishedCron } from "../store/cron.js";
import type { Store } from "../store/index.js";
import { LoopService, OutageLog } from "./service.js";

/** Ticks computed per task and cycle at most; beyond, the older ones count as missed. */
const MAX_TICKS_PER_CYCLE = 1_000;

export interface CronConfig {
  readonly nodeDeadAfterMs: number;
  /** A tick later than this (leader down, database unreachable) is "missed": its task's policy decides. */
  readonly misfireGraceMs: number;
}

/**
 * Fires cron ticks, on the leader only. Each cycle reads the schedules the live
 * nodes publish, and for each task the newest recorded tick, then records the
 * ticks due since (on the database clock) with one statement per task: the
 * tick's row (primary key task + time: a tick fires once across the cluster,
 * whichever leader records it) and its task, fenced by the leader epoch. A new
 * leader resumes from the newest recorded tick, so a failover loses no tick
 * younger than the misfire grace and doubles none.
 *
 * A task with a slot series does not get a task per tick: the tick ensures the
 * slots that closed since the previous tick, whose tasks then run (gap-free
 * coverage of time, even across missed ticks).
 */
export class CronService extends LoopService {
  readonly name = "cron";
  private readonly schedules = new Map<string, CronSchedule>();
  private readonly outage: OutageLog;

  constructor(
    private readonly store: Store,
    private readonly pool: pg.Pool,
    private readonly config: CronConfig,
    private readonly epoch: number,
    private readonly log: EventLogger,
    private readonly onDeposed: () => void,
  ) {
    super();
    this.outage = new OutageLog(log, "cron");
  }

  private schedule(spec: PublishedCron): CronSchedule {
    const key = `${spec.expression}\u0000${spec.timeZone}`;
    let s = this.schedules.get(key);
    if (!s) {
      s = new CronSchedule(spec.expression, spec.timeZone);
      this.schedules.set(key, s);
    }
    return s;
  }

  protected async tick(): Promise<number> {
    try {
      const wait = await this.cycle();
      this.outage.success();
      return wait;
    } catch (error) {
      this.outage.failure(error);
      return 1_000;
    }
  }

  /** One cycle; returns the milliseconds until the next tick is due (at most 1 s). */
  async cycle(): Promise<number> {
    const specs = await this.store.cron.specs(this.pool, this.config.nodeDeadAfterMs);
    if (specs.size === 0) return 1_000;
    const { ticks: last, now } = await this.store.cron.last(this.pool, [...specs.keys()]);
    let wait = 1_000;
    for (const [name, spec] of specs) {
      let schedule: CronSchedule;
      try {
        schedule = this.schedule(spec);
      } catch (error) {
        this.log.error(
          { event: "cron.invalid_schedule", err: error, task: name },
          "invalid published cron schedule; skipped",
        );
        continue;
      }
      const previous = last.get(name) ?? null;
      if (previous === null) {
        // First sight: a baseline at now, so every later leader resumes from here.
        if (!(await this.record(name, [now], [null]))) return 0;
      } else if (!(await this.fireDue(name, spec, schedule, previous, now))) {
        return 0;
      }
      const next = schedule.next(now);
      if (next) wait = Math.min(wait, Math.max(10, next.getTime() - now.getTime()));
    }
    return wait;
  }

  /** Fires the ticks of (previous, now]; false if this leader was deposed. */
  private async fireDue(
    name: string,
    spec: PublishedCron,
    schedule: CronSchedule,
    previous: Date,
    now: Date,
  ): Promise<boolean> {
    const graceStart = new Date(now.getTime() - this.config.misfireGraceMs);
    let due = schedule.between(previous, now, MAX_TICKS_PER_CYCLE);
    let missedBeyond = false;
    if (due.length === MAX_TICKS_PER_CYCLE) {
      // Too many: everything before the grace window is missed.
      due = schedule.between(
        new Date(Math.max(previous.getTime(), graceStart.getTime() - 1)),
        now,
        MAX_TICKS_PER_CYCLE,
      );
      missedBeyond = true;
    }
    if (due.length === 0) return true;
    const missed = due.filter((t) => t.getTime() < graceStart.getTime());
    const recent = due.filter((t) => t.getTime() >= graceStart.getTime());
    const fire =
      spec.missed === "catch-up" ? [...missed.slice(Math.max(0, missed.length - spec.maxCatchUp)), ...recent] : recent;
    const skipped = missed.filter((t) => !fire.includes(t));
    if (skipped.length > 0 || missedBeyond) {
      this.log.warn(
        { event: "cron.missed", task: name, skipped: skipped.length, policy: spec.missed, from: previous, to: now },
        "cron ticks were missed while no leader ran",
      );
    }
    const ticks: Date[] = [];
    const ids: (string | null)[] = [];
    // The newest skipped tick is recorded (without a task) when nothing later fires, so the next cycle starts after it.
    const lastSkipped = skipped[skipped.length - 1];
    if (lastSkipped && fire.length === 0) {
      ticks.push(lastSkipped);
      ids.push(null);
    }
    for (const t of fire) {
      ticks.push(t);
      ids.push(spec.slot ? null : newIdAt(t.getTime()));
    }
    if (!(await this.record(name, ticks, ids))) return false;
    // A slot series covers time without gaps: missed ticks too ensure the slots
    // that closed since the previous tick (they get no task of their own anyway).
    if (spec.slot && ticks.length > 0) {
      const newest = ticks[ticks.length - 1] as Date;
      const interval = parseInterval(spec.slot.every);
      // From the previous tick (its slot aligned down): slots that closed since.
      await this.store.slots.ensure(
        this.pool,
        { taskName: name, interval, timeZone: spec.slot.timeZone },
        previous,
        newest,
        { ordered: spec.slot.ordered },
        newest,
      );
    }
    return true;
  }

  private async record(name: string, ticks: Date[], ids: (string | null)[]): Promise<boolean> {
    const { fenced } = await this.store.cron.fire(this.pool, name, ticks, ids, this.epoch);
    if (fenced) {
      this.log.warn({ event: "leader.deposed", epoch: this.epoch }, "a newer planner leader took over; cron stops");
      this.stopped = true;
      this.onDeposed();
      return false;
    }
    return true;
  }
}
