#!/usr/bin/env node
// The `weft` command line: see docs/operations.md ("CLI").
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CommanderError } from "commander";
import { EXIT_OK, EXIT_USAGE } from "./context.js";
import { describe } from "./errors.js";
import { buildProgram } from "./program.js";

/** The SDK's version, from the nearest package.json up from this file (the source tree or the built package). */
function sdkVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const file = join(dir, "package.json");
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, "utf8")) as { name?: string; version?: string };
      if (pkg.name === "@weft/sdk" && pkg.version) return pkg.version;
    }
    dir = dirname(dir);
  }
  return "0.0.0";
}

/** The value of --schema on the command line (for error messages), else the default. */
function schemaOf(argv: readonly string[]): string {
  const i = argv.indexOf("--schema");
  const inline = argv.find((a) => a.startsWith("--schema="));
  return inline?.slice("--schema=".length) ?? (i !== -1 ? (argv[i + 1] ?? "weft") : "weft");
}

function report(json: boolean, code: string, message: string, stack?: string): void {
  if (json) process.stderr.write(`${JSON.stringify({ error: { code, message } })}\n`);
  else process.stderr.write(`error [${code}]: ${message}\n`);
  if (stack) process.stderr.write(`${stack}\n`);
}

async function main(argv: readonly string[]): Promise<number> {
  const json = argv.includes("--json");
  const verbose = argv.includes("--verbose");
  const program = buildProgram(sdkVersion(), { json, usageError: (message) => report(json, "USAGE", message) });
  try {
    await program.parseAsync([...argv]);
    return typeof process.exitCode === "number" ? process.exitCode : EXIT_OK;
  } catch (error) {
    // Help and --version end parsing with exit code 0; every other parse error is a usage error.
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    const r = describe(error, schemaOf(argv));
    report(json, r.code, r.message, verbose && error instanceof Error ? error.stack : undefined);
    if (r.exitCode === EXIT_USAGE && !json) process.stderr.write("(run with --help for usage)\n");
    return r.exitCode;
  }
}

// The process ends when nothing is left to do (the client and its pool are
// closed by every command); the exit code is set, not forced.
process.exitCode = await main(process.argv);
