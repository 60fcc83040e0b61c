// A Weft node in its own process for the fault tests, running the shared ledger tasks.
// env: DATABASE_URL, NODE_LABEL, CAPACITY, HEARTBEAT_MS, DEAD_AFTER_MS, GRACE_MS,
// COMPLETION_BATCH, PLANNER (0: no planner), CRON (1: run the cron task),
// RETENTION_MS and CLEANER_INTERVAL_MS (the cleaner's, for the soak), PREPARED (0: no prepared
// statements, as behind a transaction pooler). Logs JSON (pino) to stdout at WEFT_LOG_LEVEL.
// IPC: sends {type: "ready"} once started and {type: "status"} every 200 ms; {type: "stop"} stops it.
import pg from "pg";
import { createWeft } from "../../sdk/src/index.js";
import { engineOf } from "../../sdk/src/internal.js";
import { chaosTasks, cronTask, LEDGER_DDL } from "./tasks.js";

const env = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
const label = process.env.NODE_LABEL ?? `node-${process.pid}`;
// The tasks' own connections (their at-least-once effects), as an application's would be.
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 8, application_name: `${label}-tasks` });
// A connection the server ends during a fault must not crash the process.
pool.on("error", () => undefined);
await pool.query(LEDGER_DDL).catch(() => undefined);
const weft = createWeft({
  connectionString: process.env.DATABASE_URL,
  appName: label,
  ...(process.env.PREPARED === "0" ? { preparedStatements: false } : {}),
  // CRON=1: also the every-second cron task (only the leadership scenarios want its ticks).
  tasks: [...Object.values(chaosTasks(pool, label)), ...(process.env.CRON === "1" ? [cronTask(pool, label)] : [])],
  node: {
    maxParallelTasksInNode: env("CAPACITY", 20),
    heartbeatIntervalMs: env("HEARTBEAT_MS", 300),
    shutdownGraceMs: env("GRACE_MS", 5_000),
    reconcileIntervalMs: 1_000,
    completionBatchSize: env("COMPLETION_BATCH", 1_000),
    handleSignals: true,
  },
  ...(process.env.RETENTION_MS
    ? { cleaner: { retentionMs: env("RETENTION_MS", 0), intervalMs: env("CLEANER_INTERVAL_MS", 5_000) } }
    : {}),
  planner: {
    enabled: process.env.PLANNER !== "0",
    nodeDeadAfterMs: env("DEAD_AFTER_MS", 3_000),
    leaderRetryMs: 200,
    deadNodeSweepMs: 200,
  },
});
await weft.start();
const send = (m: object) => process.send?.(m);
send({ type: "ready", label, nodeId: weft.nodeId, pid: process.pid });
const statusTimer = setInterval(
  () =>
    send({
      type: "status",
      label,
      nodeId: weft.nodeId,
      isLeader: weft.isLeader,
      active: engineOf(weft).worker?.activeCount ?? 0,
    }),
  200,
);

const exit = async () => {
  clearInterval(statusTimer);
  await weft.stop();
  await pool.end().catch(() => undefined);
  send({ type: "stopped", label });
  process.exit(0);
};
process.on("message", (m: { type: string }) => {
  if (m.type === "stop") void exit();
});
// handleSignals drains the engine on SIGTERM; the process exits once it is done.
process.on("SIGTERM", () => void exit());
