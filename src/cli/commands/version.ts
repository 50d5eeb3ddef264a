import type { Command } from "commander";
import { applyBatchOps } from "../../batch/apply.ts";
import { PgfilesError } from "../../errors.ts";
import { fileKey } from "../../keys.ts";
import { parseMeta } from "../../meta.ts";
import { storedVersions, versions } from "../../store/store.ts";
import { tellMounts } from "../notify.ts";
import { out, reportOffline, table, withContext } from "../run.ts";

interface VersionRow {
  version: number | null;
  id: string;
  size: number;
  etag: string | null;
  mtime: string | null;
  deleted: boolean;
  pending: boolean;
  held: string | null;
}

export function registerVersion(program: Command) {
  program
    .command("version <path>")
    .description("list the versions of a file (oldest first); pending ones are still in the local journal")
    .option("--json", "machine-readable output")
    .action(async (path: string, opts: { json?: boolean }, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        const key = fileKey(ctx.config.prefix, ctx.prefixPath(path));
        const { offline } = await ctx.deliver();
        const rows: VersionRow[] = [];
        const sql = offline ? null : await ctx.online();
        if (sql) {
          for (const v of await versions(sql, key)) {
            const m = parseMeta(v.meta);
            rows.push({ version: v.version, id: v.id, size: v.length, etag: m.etag ?? null, mtime: m.mtime ?? null, deleted: m.deleted === true, pending: false, held: null });
          }
        }
        for (const p of ctx.journal.pendingForKey(key)) {
          const m = parseMeta(p.meta);
          rows.push({ version: null, id: p.id, size: p.size, etag: m.etag ?? null, mtime: m.mtime ?? null, deleted: p.op === "delete", pending: true, held: p.held_reason });
        }
        if (opts.json) {
          out(JSON.stringify({ key, online: sql !== null, versions: rows }, null, 2));
        } else if (rows.length > 0) {
          out(
            table(
              ["VERSION", "SIZE", "ETAG", "MTIME", "STATE"],
              rows.map((r) => [
                r.version === null ? "-" : String(r.version),
                String(r.size),
                r.etag ? r.etag.slice(0, 12) : "-",
                r.mtime ?? "-",
                [r.deleted ? "deleted" : "", r.pending ? "pending" : "", r.held ? `held: ${r.held}` : ""].filter(Boolean).join(", "),
              ]),
            ),
          );
        }
        if (offline) {
          reportOffline(offline, ctx.journal.stats().pending, ctx.journal.dir);
          process.exitCode = 3;
          return;
        }
        if (rows.length === 0) throw new PgfilesError(`${path} has no versions (key ${JSON.stringify(key)}).`, { errno: "ENOENT" });
      });
    });

  program
    .command("restore <path> <version>")
    .description("make an old version the latest again (a new version with its content; works for deleted files)")
    .action(async (path: string, version: string, _opts: unknown, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        if (!/^[1-9]\d{0,15}$/.test(version)) {
          throw new PgfilesError(`The version ${JSON.stringify(version)} is not a positive whole number.`, { exitCode: 2, errno: "EINVAL" });
        }
        ctx.requireWritable("restore");
        await ctx.deliver();
        const sql = await ctx.online();
        const [rec] = await applyBatchOps([{ op: "restore", line: 1, path: ctx.prefixPath(path), version: Number(version) }], {
          journal: ctx.journal,
          prefix: ctx.config.prefix,
          sql,
          durable: true,
        }).catch((e) => {
          if (e instanceof PgfilesError) throw new PgfilesError(e.message.replace(/^line 1: /, ""), { exitCode: e.exitCode, errno: e.errno });
          throw e;
        });
        const { offline } = await ctx.deliver();
        await tellMounts([rec.key]);
        if (offline || !sql) {
          out(`Queued the restore of ${path} to version ${version} in the local journal.`);
          reportOffline(offline ?? ctx.offlineReason, ctx.journal.stats().pending, ctx.journal.dir);
          return;
        }
        const held = ctx.journal.pendingById(rec.id);
        if (held?.held_reason) throw new PgfilesError(`PostgreSQL refused the restore: ${held.held_reason}`);
        const stored = (await storedVersions(sql, [rec.id])).get(rec.id);
        out(`Restored ${path} to the content of version ${version}; it is now version ${stored?.version ?? "?"}.`);
      });
    });
}
