import pg from "pg";
import type { EventLogger } from "../logger.js";
import { NOTIFY_DUE, NOTIFY_NODES, NOTIFY_PLANNER, NOTIFY_RECONCILE, NOTIFY_WORKFLOWS } from "../store/notify.js";
import { backoffMs, OutageLog, type Service, Sleeps } from "./service.js";

export type NotificationKind = "planner" | "nodes" | "workflows" | "reconcile" | "due";
type Handler = (ids: readonly string[]) => void;

/** Payload prefixes (before the colon) and what they announce (see store/notify.ts). */
const KINDS: ReadonlyMap<string, NotificationKind> = new Map([
  [NOTIFY_NODES, "nodes"],
  [NOTIFY_WORKFLOWS, "workflows"],
  [NOTIFY_RECONCILE, "reconcile"],
  [NOTIFY_DUE, "due"],
]);

/**
 * Holds the node's LISTEN connection to the schema's channel. Payloads (see
 * store/notify.ts): wake the planner, new assignments of nodes, workflows
 * finished, assignments revoked (reconcile now), a retry due in some ms.
 * When the connection drops it reconnects with backoff,
 * re-subscribes, and calls the reconnect handlers so their owners re-read what
 * they may have missed.
 */
export class Listener implements Service {
  readonly name = "listener";
  private client: pg.Client | undefined;
  private stopped = true;
  private readonly handlers = new Map<NotificationKind, Set<Handler>>();
  private readonly reconnectHandlers = new Set<() => void>();
  private readonly outage: OutageLog;
  private connecting: Promise<void> | undefined;
  private readonly sleeps = new Sleeps();

  constructor(
    private readonly clientConfig: pg.ClientConfig,
    private readonly channel: string,
    private readonly log: EventLogger,
  ) {
    this.outage = new OutageLog(log, "LISTEN connection");
  }

  on(kind: NotificationKind, handler: Handler): () => void {
    let set = this.handlers.get(kind);
    if (!set) {
      set = new Set();
      this.handlers.set(kind, set);
    }
    set.add(handler);
    return () => set.delete(handler);
  }

  onReconnect(handler: () => void): () => void {
    this.reconnectHandlers.add(handler);
    return () => this.reconnectHandlers.delete(handler);
  }

  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    await this.connect(true);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    // A reconnect waiting out its backoff gives up now.
    this.sleeps.cancelAll();
    await this.connecting?.catch(() => undefined);
    const c = this.client;
    this.client = undefined;
    await c?.end().catch(() => undefined);
  }

  private async connect(initial: boolean): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      const client = new pg.Client({ ...this.clientConfig, keepAlive: true });
      client.on("error", () => undefined);
      try {
        await client.connect();
        client.on("notification", (msg) => this.dispatch(msg.payload ?? ""));
        client.on("error", (err) => this.lost(client, err));
        client.on("end", () => this.lost(client, new Error("connection ended")));
        await client.query(`LISTEN ${pg.escapeIdentifier(this.channel)}`);
        if (this.stopped) {
          await client.end().catch(() => undefined);
          return;
        }
        this.client = client;
        this.outage.success();
        if (!initial) for (const h of this.reconnectHandlers) h();
        this.log.debug({ event: "listener.listening", channel: this.channel }, "listening");
        return;
      } catch (error) {
        await client.end().catch(() => undefined);
        if (initial) throw error;
        this.outage.failure(error);
        await this.sleeps.sleep(backoffMs(attempt));
      }
    }
  }

  private lost(client: pg.Client, error: unknown): void {
    if (this.client !== client || this.stopped) return;
    this.client = undefined;
    client.end().catch(() => undefined);
    this.outage.failure(error);
    this.connecting = this.connect(false).finally(() => {
      this.connecting = undefined;
    });
  }

  private dispatch(payload: string): void {
    if (payload === NOTIFY_PLANNER) {
      this.emit("planner", []);
      return;
    }
    const colon = payload.indexOf(":");
    const kind = KINDS.get(payload.slice(0, colon));
    // Finished workflows come 250 ids to a notification: a node with nobody
    // waiting for one does not split them.
    if (kind === undefined || !this.handlers.get(kind)?.size) return;
    this.emit(kind, payload.slice(colon + 1).split(","));
  }

  private emit(kind: NotificationKind, ids: readonly string[]): void {
    for (const h of this.handlers.get(kind) ?? []) {
      try {
        h(ids);
      } catch (error) {
        this.log.error({ event: "listener.handler_failed", err: error }, "notification handler failed");
      }
    }
  }
}

/**
 * Wakes the planner after work was scheduled outside a transaction of ours.
 * At most one NOTIFY is in flight per process, and it is sent outside the
 * scheduling transactions: NOTIFY takes a global lock at commit, so one per
 * scheduling transaction would serialise them.
 */
export class PlannerNudge {
  private inFlight = false;
  private again = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly channel: string,
    private readonly log: EventLogger,
  ) {}

  nudge(): void {
    if (this.inFlight) {
      this.again = true;
      return;
    }
    this.inFlight = true;
    this.pool
      .query("SELECT pg_notify($1, $2)", [this.channel, NOTIFY_PLANNER])
      .catch((error) =>
        this.log.debug({ event: "planner.nudge_failed", err: error }, "planner nudge failed; the planner polls"),
      )
      .finally(() => {
        this.inFlight = false;
        if (this.again) {
          this.again = false;
          this.nudge();
        }
      });
  }
}
