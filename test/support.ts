import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterAll, inject } from "vitest";
import { createDatabase, dropDatabase } from "../engine/src/testing/index.js";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

/** A fresh database cloned from the migrated template, dropped after the file. */
export async function freshDatabase(): Promise<string> {
  const server = inject("serverUrl");
  const name = `weft_t_${randomBytes(6).toString("hex")}`;
  const url = await createDatabase(server, name, inject("templateDatabase"));
  afterAll(async () => {
    await dropDatabase(server, name);
  });
  return url;
}

/** A pool on `url`, closed after the file. */
export function poolFor(url: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  afterAll(() => pool.end());
  return pool;
}

export interface NodeProcess {
  readonly child: ChildProcess;
  readonly messages: NodeMessage[];
  /** Resolves with the first message matching `pred`. */
  waitFor(pred: (m: NodeMessage) => boolean, timeoutMs?: number): Promise<NodeMessage>;
  send(msg: unknown): void;
  exited: Promise<number | null>;
  /** What the process wrote to stdout and stderr (only with \`capture\`). */
  output(): string;
}

export type NodeMessage = { type: string; [key: string]: unknown };

/** Starts `script` (a TypeScript file) as a separate Node process with an IPC channel. */
export function spawnNode(
  script: string,
  env: Record<string, string>,
  options: { capture?: boolean } = {},
): NodeProcess {
  const child = fork(script, [], {
    execArgv: ["--import", "tsx"],
    env: { ...process.env, ...env },
    stdio: ["ignore", options.capture ? "pipe" : "inherit", options.capture ? "pipe" : "inherit", "ipc"],
  });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  const messages: NodeMessage[] = [];
  const listeners = new Set<(m: NodeMessage) => void>();
  child.on("message", (m) => {
    messages.push(m as NodeMessage);
    for (const l of listeners) l(m as NodeMessage);
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  afterAll(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  return {
    child,
    messages,
    exited,
    send: (msg) => child.send(msg as pg.QueryResultRow),
    output: () => output,
    waitFor(pred, timeoutMs = 30_000) {
      const found = messages.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          listeners.delete(l);
          reject(new Error(`timed out waiting for a message from ${script}`));
        }, timeoutMs);
        const l = (m: NodeMessage) => {
          if (pred(m)) {
            clearTimeout(timer);
            listeners.delete(l);
            resolve(m);
          }
        };
        listeners.add(l);
      });
    },
  };
}

/** Polls `check` until it returns a value other than undefined. */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 30_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Highest number of overlapping [started_at, ended_at] intervals (an end at the same instant as a start does not overlap). */
export function maxOverlap(rows: readonly { started_at: Date; ended_at: Date }[]): number {
  const events = rows.flatMap((r) => [
    { t: r.started_at.getTime(), d: 1 },
    { t: r.ended_at.getTime(), d: -1 },
  ]);
  events.sort((a, b) => a.t - b.t || a.d - b.d);
  let cur = 0;
  let max = 0;
  for (const e of events) {
    cur += e.d;
    max = Math.max(max, cur);
  }
  return max;
}
