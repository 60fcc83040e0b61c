import pg from "pg";
import { isConnectionError } from "../db/pg.js";
import type { EventLogger } from "../logger.js";
import { LEADER_LOCK_CLASS } from "../store/locks.js";
import { LoopService } from "./service.js";

export interface LeaderCallbacks {
  /** Called with the dedicated connection that holds the lock. */
  elected(client: pg.Client): Promise<void>;
  /** Called when leadership is lost or given up; stop using the connection. */
  deposed(): Promise<void>;
}

/**
 * Leader election with a session advisory lock held on a dedicated connection.
 * The lock lives exactly as long as that connection: when the leader process
 * dies or its connection drops, PostgreSQL releases it and another node takes
 * over within `retryMs`. The planner runs its statements on that same
 * connection, so a node that lost the lock cannot go on planning.
 */
export class LeaderElector extends LoopService {
  readonly name = "leader-elector";
  private client: pg.Client | undefined;
  private opening: Promise<pg.Client> | undefined;
  private leading = false;

  constructor(
    private readonly clientConfig: pg.ClientConfig,
    private readonly schema: string,
    private readonly retryMs: number,
    private readonly callbacks: LeaderCallbacks,
    private readonly log: EventLogger,
    /**
     * The server ends the leader's session after this long without a statement
     * (idle_session_timeout), releasing the lock: a frozen leader process
     * (SIGSTOP, a stalled VM) whose TCP connection stays up would otherwise keep
     * leadership forever. The leader runs a statement at least every \`retryMs\`.
     */
    private readonly frozenAfterMs: number = 0,
  ) {
    super();
  }

  get isLeader(): boolean {
    return this.leading;
  }

  override async stop(): Promise<void> {
    await super.stop();
    await this.opening?.catch(() => undefined);
    await this.resign();
  }

  /** Called by the planner when a statement on the leader connection failed for connection reasons. */
  connectionLost(): void {
    if (!this.leading) return;
    this.log.warn({ event: "leader.lost", schema: this.schema }, "leader connection lost; giving up leadership");
    void this.resign().finally(() => this.wake());
  }

  protected async tick(): Promise<number> {
    if (this.leading) await this.checkConnection();
    else await this.tryAcquire();
    return this.retryMs;
  }

  private async checkConnection(): Promise<void> {
    try {
      await this.client?.query("SELECT 1");
    } catch (error) {
      if (isConnectionError(error) || this.leading) this.connectionLost();
    }
  }

  /**
   * Opens the election connection ahead of the first attempt (the engine does
   * this while the migrations are checked, so that becoming leader costs one
   * round trip at start). Best effort: the first attempt opens it if this failed.
   */
  async connect(): Promise<void> {
    try {
      await this.openClient();
    } catch (error) {
      this.log.debug(
        { event: "leader.connection_error", err: error },
        "could not open the leader election connection yet",
      );
    }
  }

  private async openClient(): Promise<pg.Client> {
    if (this.client) return this.client;
    this.opening ??= (async () => {
      const client = new pg.Client({ ...this.clientConfig, keepAlive: true });
      client.on("error", (err) => {
        this.log.debug({ event: "leader.connection_error", err }, "leader connection error");
        if (this.client === client) {
          if (this.leading) this.connectionLost();
          else {
            this.client = undefined;
            client.end().catch(() => undefined);
          }
        }
      });
      try {
        await client.connect();
        if (this.frozenAfterMs > 0) {
          // Not supported before PostgreSQL 14: the lock then lasts as long as the TCP connection.
          const ms = Math.max(this.frozenAfterMs, 3 * this.retryMs) | 0;
          // Idle in a transaction too: frozen in the middle of its sweep's transaction, it would keep the lock.
          await client.query(`SET idle_in_transaction_session_timeout = ${ms}`);
          await client.query(`SET idle_session_timeout = ${ms}`).catch(() => undefined);
        }
      } catch (error) {
        await client.end().catch(() => undefined);
        throw error;
      }
      this.client = client;
      return client;
    })().finally(() => {
      this.opening = undefined;
    });
    return this.opening;
  }

  private async tryAcquire(): Promise<void> {
    try {
      const client = await this.openClient();
      const { rows } = await client.query<{ locked: boolean }>(
        "SELECT pg_try_advisory_lock($1, hashtext($2)) AS locked",
        [LEADER_LOCK_CLASS, this.schema],
      );
      if (rows[0]?.locked && !this.stopped) {
        this.leading = true;
        this.log.info({ event: "leader.elected", schema: this.schema }, "elected planner leader");
        await this.callbacks.elected(client);
      }
    } catch (error) {
      this.log.debug({ event: "leader.election_failed", err: error }, "leader election attempt failed");
      const c = this.client;
      this.client = undefined;
      this.leading = false;
      await c?.end().catch(() => undefined);
    }
  }

  private async resign(): Promise<void> {
    const wasLeading = this.leading;
    this.leading = false;
    if (wasLeading) await this.callbacks.deposed().catch(() => undefined);
    const c = this.client;
    this.client = undefined;
    // Closing the session releases the advisory lock.
    await c?.end().catch(() => undefined);
  }
}
