import type { Command } from "commander";
import { dirKey, fileKey } from "../../keys.ts";
import { journalDir } from "../../journal/open.ts";
import { Context } from "../context.ts";
import { out } from "../run.ts";

export function registerWhere(program: Command) {
  program
    .command("where [path]")
    .description("show the mount, prefix, cwd and the key a path maps to")
    .option("--json", "machine-readable output")
    .action(async (target: string | undefined, opts: { json?: boolean }) => {
      const ctx = new Context(program);
      const m = ctx.mount;
      const prefix = ctx.config.prefix; // the mount's, inside a mount
      // Inside a mount, paths are relative to the cwd (no path: the cwd itself); elsewhere to the prefix root.
      const rel = ctx.prefixPath(target ?? (m ? "." : ""));
      const isDir = target === undefined || rel === "" || rel === "/" || (target ?? "").endsWith("/");
      const key = isDir ? dirKey(prefix, rel) : fileKey(prefix, rel);
      const journal = m ? m.record.journal : ctx.config.dsn ? journalDir(ctx.config.cacheDir, ctx.config.dsn, prefix) : null;
      const info = {
        mount: m ? { path: m.record.mountpoint, pid: m.record.pid } : null,
        cwd: ctx.cwd,
        cwdRelation: m ? m.relation : "outside",
        prefix,
        path: rel === "" ? "/" : rel,
        key,
        journal,
      };
      if (opts.json) {
        out(JSON.stringify(info, null, 2));
        return;
      }
      out(`mount:   ${m ? `${m.record.mountpoint} (pid ${m.record.pid})` : "none"}`);
      out(`prefix:  ${JSON.stringify(prefix)}`);
      if (!m) out(`cwd:     ${ctx.cwd} (not inside a pgfiles mount)`);
      else if (m.relation === "inside") out(`cwd:     ${ctx.cwd} (inside the mount)`);
      else out(`cwd:     ${ctx.cwd} (beneath the mount: your shell still points at the directory underneath; run \`cd .\`)`);
      out(`key:     ${JSON.stringify(key)}`);
      if (journal) out(`journal: ${journal}`);
    });
}
