import { spawn } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { freshDatabase, ROOT } from "../../test/support.js";

const SCRIPT = join(ROOT, "test/fixtures/exit-tail.ts");

describe("a stopped node lets its process exit", () => {
  it("exits within a couple of seconds of stop() resolving", async () => {
    const url = await freshDatabase();
    const child = spawn(process.execPath, ["--import", "tsx", SCRIPT], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: url },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let stoppedAt: number | undefined;
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /stopped (\d+)/.exec(out);
      if (m && stoppedAt === undefined) stoppedAt = Number(m[1]);
    });
    child.stderr.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const killer = setTimeout(() => child.kill("SIGKILL"), 50_000);
    const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    const exitedAt = Date.now();
    clearTimeout(killer);
    expect(code, out).toBe(0);
    expect(stoppedAt, out).toBeDefined();
    // Before the fix the process stayed up for node.shutdownGraceMs (10 s) after stop().
    // Generous for a loaded machine; the tail being measured is of the order of 10 s.
    expect(exitedAt - (stoppedAt as number)).toBeLessThan(2_500);
  });
});
