import { Command } from "commander";
import { benchCommand } from "./commands/bench.js";
import { cancelCommand } from "./commands/cancel.js";
import { cronCommand } from "./commands/cron.js";
import { dltCommand } from "./commands/dlt.js";
import { migrateCommand } from "./commands/migrate.js";
import { serveCommand } from "./commands/serve.js";
import { slotsCommand } from "./commands/slots.js";
import { statusCommand } from "./commands/status.js";
import { workflowsCommand } from "./commands/workflows.js";

/** The `weft` command line, its commands registered; errors are thrown (see main.ts), never exit the process. */
export function buildProgram(
  version: string,
  output: { json: boolean; usageError: (message: string) => void },
): Command {
  const program = new Command("weft")
    .description("Operate Weft: migrations, status, workflows, dead letters, cron, slots, the HTTP API")
    .version(version, "-V, --version")
    .exitOverride()
    .showHelpAfterError(output.json ? false : "(run with --help for usage)")
    // Commander's own messages (unknown option, missing argument) as the CLI's usage errors.
    .configureOutput({
      writeOut: (s) => process.stdout.write(s),
      writeErr: (s) => process.stderr.write(s),
      outputError: (s) => output.usageError(s.replace(/^error: /, "").trimEnd()),
    })
    .addHelpText(
      "after",
      "\nEvery command takes --url (default $DATABASE_URL), --schema (default weft), --json and --verbose.\nExit codes: 0 ok, 1 failure, 2 usage error.",
    );
  migrateCommand(program);
  statusCommand(program);
  workflowsCommand(program);
  cancelCommand(program);
  dltCommand(program);
  cronCommand(program);
  slotsCommand(program);
  serveCommand(program);
  benchCommand(program);
  return program;
}
