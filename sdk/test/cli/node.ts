// A Weft node for the CLI test, in its own process: env DATABASE_URL.
import pg from "pg";
import { createWeft } from "../../src/index.js";
import { cliTasks, SLOT_FAIL_DDL } from "./tasks.js";

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 2 });
await pool.query(SLOT_FAIL_DDL);
const weft = createWeft({
  connectionString: process.env.DATABASE_URL,
  appName: "cli-test",
  tasks: Object.values(cliTasks(pool)),
  node: { heartbeatIntervalMs: 500 },
  planner: { leaderRetryMs: 200 },
});
await weft.start();
process.send?.({ type: "ready", nodeId: weft.nodeId });
process.on("message", async (m: { type: string }) => {
  if (m.type !== "stop") return;
  await weft.stop();
  await pool.end();
  process.exit(0);
});
