import type { Command } from "commander";
import { action, common } from "../context.js";
import { table, time } from "../output.js";

export function cronCommand(program: Command): void {
  const cron = program.command("cron").description("cron schedules, as the live nodes publish them");
  common(cron.command("list").description("every schedule with its last and next tick")).action(
    action(async (session) => {
      const items = await session.client.listCron();
      session.emit({ items }, (c, d) =>
        d.items.length === 0
          ? "no cron schedules (no live node publishes one)"
          : table(
              c,
              ["TASK", "PATTERN", "TIMEZONE", "LAST TICK", "NEXT TICK"],
              d.items.map((x) => [x.taskName, x.pattern, x.timezone ?? "UTC", time(x.lastTickAt), time(x.nextTickAt)]),
            ),
      );
    }),
  );
}
