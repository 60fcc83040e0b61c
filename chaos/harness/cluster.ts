// Weft node processes for the fault tests: started from chaos/harness/node.ts,
// signalled (SIGKILL, SIGSTOP, SIGCONT, SIGTERM), their stdout JSON logs kept.
import { type ChildProcess, fork } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const NODE_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), "node.ts");

export type NodeMessage = { type: string; [key: string]: unknown };

/** One line a node logged (pino JSON), with the harness's receive time. */
export interface LogLine {
  readonly at: number;
  readonly level: number;
  readonly msg: string;
  readonly [key: string]: unknown;
}

/**
 * Polls `check` until it returns a value other than undefined; after `timeoutMs`
 * fails with what it was waiting for (and the last value `describe` gives).
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  options: { timeoutMs?: number; everyMs?: number; describe?: () => Promise<string> | string } = {},
): Promise<T> {
  const { timeoutMs = 30_000, everyMs = 100 } = options;
  const started = Date.now();
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
      lastError = undefined;
    } catch (error) {
      // A check that fails (the database is down) is retried until the deadline.
      lastError = error;
    }
    if (Date.now() - started > timeoutMs) {
      const detail = options.describe ? await Promise.resolve(options.describe()).catch((e) => String(e)) : "";
      throw new Error(
        `timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${detail ? ` (${detail})` : ""}${
          lastError ? `; last error: ${String(lastError)}` : ""
        }`,
      );
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A promise that fails with `what` after `ms`. */
export function within<T>(what: string, ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${Math.round(ms / 1000)} s waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export class ChaosNode {
  readonly messages: NodeMessage[] = [];
  readonly logs: LogLine[] = [];
  /** stdout lines that are not JSON, and stderr. */
  readonly otherOutput: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly listeners = new Set<(m: NodeMessage) => void>();
  private partial = "";

  constructor(
    readonly label: string,
    readonly child: ChildProcess,
  ) {
    child.stdout?.on("data", (d: Buffer) => this.onStdout(d.toString()));
    child.stderr?.on("data", (d: Buffer) => this.otherOutput.push(d.toString()));
    child.on("message", (m) => {
      this.messages.push(m as NodeMessage);
      for (const l of this.listeners) l(m as NodeMessage);
    });
    this.exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  }

  private onStdout(text: string): void {
    const lines = (this.partial + text).split("\n");
    this.partial = lines.pop() ?? "";
    for (const line of lines) {
      if (!line.trim()) continue;
      try {
        this.logs.push({ ...(JSON.parse(line) as { level: number; msg: string }), at: Date.now() });
      } catch {
        this.otherOutput.push(line);
      }
    }
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The node id it reported last (a node declared dead registers again under a new id). */
  get nodeId(): string | undefined {
    for (let i = this.messages.length - 1; i >= 0; i--) {
      const id = this.messages[i]?.nodeId;
      if (typeof id === "string") return id;
    }
    return undefined;
  }

  get isLeader(): boolean {
    for (let i = this.messages.length - 1; i >= 0; i--) {
      const m = this.messages[i];
      if (m?.type === "status") return m.isLeader === true;
    }
    return false;
  }

  signal(sig: "SIGKILL" | "SIGSTOP" | "SIGCONT" | "SIGTERM"): void {
    if (this.alive) this.child.kill(sig);
  }

  /** The first message matching `pred` (already received or to come), bounded. */
  waitForMessage(what: string, pred: (m: NodeMessage) => boolean, timeoutMs = 60_000): Promise<NodeMessage> {
    const found = this.messages.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listeners.delete(l);
        reject(new Error(`timed out after ${timeoutMs / 1000} s waiting for ${this.label}: ${what}`));
      }, timeoutMs);
      const l = (m: NodeMessage) => {
        if (!pred(m)) return;
        clearTimeout(timer);
        this.listeners.delete(l);
        resolve(m);
      };
      this.listeners.add(l);
      this.child.once("exit", () => {
        if (!this.listeners.has(l)) return;
        clearTimeout(timer);
        this.listeners.delete(l);
        reject(new Error(`${this.label} exited while waiting for ${what}: ${this.otherOutput.join("").slice(-2000)}`));
      });
    });
  }

  /** Log lines logged since `since` (harness time) whose message contains `text`. */
  logged(text: string, since = 0): LogLine[] {
    return this.logs.filter((l) => l.at >= since && typeof l.msg === "string" && l.msg.includes(text));
  }
}

export class Cluster {
  readonly nodes: ChaosNode[] = [];

  constructor(private readonly baseEnv: Record<string, string>) {}

  /** Starts a node process and waits until it reports ready. */
  async start(label: string, env: Record<string, string> = {}): Promise<ChaosNode> {
    const child = fork(NODE_SCRIPT, [], {
      execArgv: ["--import", "tsx"],
      env: { ...process.env, WEFT_LOG_LEVEL: "info", ...this.baseEnv, ...env, NODE_LABEL: label },
      stdio: ["ignore", "pipe", "pipe", "ipc"],
    });
    const node = new ChaosNode(label, child);
    this.nodes.push(node);
    await node.waitForMessage("ready", (m) => m.type === "ready", 90_000);
    return node;
  }

  startMany(labels: readonly string[], env: Record<string, string> = {}): Promise<ChaosNode[]> {
    return Promise.all(labels.map((l) => this.start(l, env)));
  }

  get alive(): ChaosNode[] {
    return this.nodes.filter((n) => n.alive);
  }

  leader(): ChaosNode | undefined {
    return this.alive.find((n) => n.isLeader);
  }

  async waitForLeader(timeoutMs = 30_000, exclude?: ChaosNode): Promise<ChaosNode> {
    return waitFor("a leader among the live nodes", () => this.alive.find((n) => n !== exclude && n.isLeader), {
      timeoutMs,
    });
  }

  /** Stops every live node gracefully (SIGCONT first, in case it is frozen), then SIGKILLs what is left. */
  async stopAll(graceMs = 15_000): Promise<void> {
    await Promise.all(
      this.alive.map(async (node) => {
        node.signal("SIGCONT");
        node.child.send({ type: "stop" });
        await Promise.race([node.exited, new Promise((r) => setTimeout(r, graceMs))]);
        node.signal("SIGKILL");
        await node.exited;
      }),
    );
  }
}
