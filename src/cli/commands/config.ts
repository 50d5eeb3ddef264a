import type { Command } from "commander";
import { formatConfig } from "../../config/index.ts";
import { Context } from "../context.ts";
import { out } from "../run.ts";

export function registerConfig(program: Command) {
  const config = program.command("config").description("inspect the resolved configuration");
  config
    .command("show")
    .description("print every setting, its value (DSN password masked) and where it came from")
    .option("--json", "machine-readable output")
    .action(async (opts: { json?: boolean }) => {
      const ctx = new Context(program);
      out(formatConfig(ctx.resolved, Boolean(opts.json)));
    });
}
