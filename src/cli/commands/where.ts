import type { Command } from "commander";
import path from "node:path";
import { findMount } from "../../daemon/registry.ts";
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
      const cwd = process.env.PWD && path.isAbsolute(process.env.PWD) ? process.env.PWD : process.cwd();
      const m = findMount(cwd);
      const prefix = m ? m.record.prefix : ctx.config.prefix;
      // Inside a mount, paths are relative to the cwd; elsewhere to the prefix root.
      let rel: string;
      if (m) {
        const abs = path.resolve(cwd, target ?? ".");
        rel = path.relative(m.record.mountpoint, abs);
        if (rel.startsWith("..")) rel = target ?? "";
      } else rel = target ?? "";
      const isDir = target === undefined || rel === "" || (target ?? "").endsWith("/");
      const key = isDir ? dirKey(prefix, rel) : fileKey(prefix, rel);
      const journal = m ? m.record.journal : ctx.config.dsn ? journalDir(ctx.config.cacheDir, ctx.config.dsn, prefix) : null;
      const info = {
        mount: m ? { path: m.record.mountpoint, pid: m.record.pid } : null,
        cwd,
        cwdRelation: m ? m.relation : "outside",
        prefix,
        path: rel || "/",
        key,
        journal,
      };
      if (opts.json) {
        out(JSON.stringify(info, null, 2));
        return;
      }
      out(`mount:   ${m ? `${m.record.mountpoint} (pid ${m.record.pid})` : "none"}`);
      out(`prefix:  ${JSON.stringify(prefix)}`);
      if (!m) out(`cwd:     ${cwd} (not inside a pgfiles mount)`);
      else if (m.relation === "inside") out(`cwd:     ${cwd} (inside the mount)`);
      else out(`cwd:     ${cwd} (beneath the mount: your shell still points at the directory underneath; run \`cd .\`)`);
      out(`key:     ${JSON.stringify(key)}`);
      if (journal) out(`journal: ${journal}`);
    });
}
