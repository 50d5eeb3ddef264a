import type { Command } from "commander";
import { dirKey, fileKey } from "../../keys.ts";
import { journalDir } from "../../journal/open.ts";
import { Context } from "../context.ts";
import { out } from "../run.ts";

export function registerWhere(program: Command) {
  program
    .command("where [path]")
    .description("show the prefix and the key a path maps to (paths are relative to the prefix root)")
    .option("--json", "machine-readable output")
    .action(async (path: string | undefined, opts: { json?: boolean }) => {
      const ctx = new Context(program);
      const prefix = ctx.config.prefix;
      const key = path === undefined || path === "" || path === "/" || path.endsWith("/") ? dirKey(prefix, path ?? "") : fileKey(prefix, path);
      const journal = ctx.config.dsn ? journalDir(ctx.config.cacheDir, ctx.config.dsn, prefix) : null;
      const info = { prefix, path: path ?? "/", key, cwd: process.cwd(), mount: null, journal };
      if (opts.json) {
        out(JSON.stringify(info, null, 2));
        return;
      }
      out(`prefix:  ${JSON.stringify(prefix)}`);
      out(`path:    ${info.path}`);
      out(`key:     ${JSON.stringify(key)}`);
      out(`cwd:     ${info.cwd} (not inside a pgfiles mount)`);
      if (journal) out(`journal: ${journal}`);
    });
}
