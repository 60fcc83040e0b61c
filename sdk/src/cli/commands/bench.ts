import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { Command } from "commander";

/** The harness, relative to the repository's root. */
export const HARNESS = "bench/src/main.ts";
const WHERE =
  "The benchmark harness lives in Weft's repository, not in the package: clone it, run `pnpm install`, then `weft bench` (or `pnpm bench`) from inside the clone. See docs/benchmarks.md there.";

/** The Weft repository around `from` (the nearest folder up with the harness and the workspace's package.json), if any. */
export function findRepository(from: string): string | undefined {
  let dir = resolve(from);
  for (;;) {
    if (existsSync(join(dir, HARNESS)) && existsSync(join(dir, "pnpm-workspace.yaml"))) {
      try {
        const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: unknown };
        if (pkg.name === "weft") return dir;
      } catch {
        // not a readable package.json: keep looking up
      }
    }
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

export function benchCommand(program: Command): void {
  program
    .command("bench")
    .description("run the benchmark harness (from inside Weft's repository); arguments go to it (weft bench --help)")
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument("[args...]", "the harness's arguments")
    .action(async (_args: string[], _opts: unknown, cmd: Command) => {
      // Everything after "bench", as typed: the harness parses its own options.
      const argv = process.argv;
      const at = argv.indexOf("bench", 2);
      const rest = at === -1 ? cmd.args : argv.slice(at + 1);
      const root = findRepository(process.cwd());
      if (!root) {
        process.stderr.write(
          `error [BENCH_NOT_FOUND]: not inside Weft's repository (looked up from ${process.cwd()}).\n${WHERE}\n`,
        );
        process.exitCode = 1;
        return;
      }
      const child = spawn(process.execPath, ["--import", "tsx", join(root, HARNESS), ...rest], {
        cwd: root,
        stdio: "inherit",
      });
      const forward = (signal: NodeJS.Signals) => child.kill(signal);
      process.on("SIGINT", forward);
      process.on("SIGTERM", forward);
      const code = await new Promise<number>((done) =>
        child.on("exit", (c, signal) => done(c ?? (signal === "SIGINT" ? 130 : signal === "SIGTERM" ? 143 : 1))),
      );
      process.off("SIGINT", forward);
      process.off("SIGTERM", forward);
      process.exitCode = code;
    });
}
