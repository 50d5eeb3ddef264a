import type { Command } from "commander";
import { describe, dsnHost } from "../../store/connect.ts";
import { schemaSql } from "../../store/schema.ts";
import { initSchema } from "../../store/store.ts";
import { Context } from "../context.ts";
import { out } from "../run.ts";

export function registerInit(program: Command) {
  program
    .command("init [dsn]")
    .description("create the pgfiles schema (idempotent); reads PGFILES_DSN when dsn is omitted")
    .option("--print", "print the SQL instead of running it (for DBAs who apply migrations themselves)")
    .action(async (dsn: string | undefined, opts: { print?: boolean }) => {
      if (opts.print) {
        out(schemaSql());
        return;
      }
      const ctx = new Context(program, dsn ? { dsn } : {}, { mountAware: false });
      try {
        const host = dsnHost(ctx.dsn);
        let r;
        try {
          r = await initSchema(ctx.sql);
        } catch (e) {
          throw describe(e, host);
        }
        if (r.changed && r.recreated.length > 0) {
          const heads = r.headsRebuilt ? `; ${r.headsRebuilt} head row${r.headsRebuilt === 1 ? "" : "s"} rebuilt from the stored versions` : "";
          out(`Recreated what was missing from the pgfiles schema in ${host}: ${r.recreated.join(", ")}${heads}.`);
        } else if (r.changed) {
          out(`Created the pgfiles schema (version ${r.to}) in ${host}${r.from ? `, upgraded from version ${r.from}` : ""}.`);
        } else {
          out(`The pgfiles schema in ${host} is already at version ${r.version}; nothing changed.`);
        }
      } finally {
        await ctx.close();
      }
    });
}
