import type { Command } from "commander";
import readline from "node:readline/promises";
import { PgfilesError } from "../../errors.ts";
import { dirKey, fileKey } from "../../keys.ts";
import { countPrefix, purgeKey, purgePrefix } from "../../store/store.ts";
import type { Context } from "../context.ts";
import { tellMounts } from "../notify.ts";
import { out, withContext } from "../run.ts";

async function confirm(question: string, yes: boolean | undefined, what: string) {
  if (yes) return;
  if (!process.stdin.isTTY) {
    throw new PgfilesError(`${what} hard-deletes every version and cannot be undone; pass --yes to confirm.`, { exitCode: 2 });
  }
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
  const answer = await rl.question(`${question} This cannot be undone. [y/N] `);
  rl.close();
  if (!/^y(es)?$/i.test(answer.trim())) throw new PgfilesError("Nothing was deleted.", { exitCode: 1 });
}

/** Purging must not race the flusher: hold the journal's flush lease while deleting. */
async function withLease<T>(ctx: Context, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 15_000;
  while (!ctx.journal.acquireLease()) {
    if (Date.now() > deadline) {
      const h = ctx.journal.leaseHolder();
      throw new PgfilesError(`Another pgfiles process (pid ${h?.pid ?? "?"}) is flushing this journal; try again when it is done.`);
    }
    await Bun.sleep(200);
  }
  try {
    return await fn();
  } finally {
    ctx.journal.releaseLease();
  }
}

async function requireOnline(ctx: Context) {
  const sql = await ctx.online();
  if (!sql) throw new PgfilesError(`${ctx.offlineReason} Nothing was deleted.`, { exitCode: 3 });
  return sql;
}

export function registerPurge(program: Command) {
  program
    .command("purge <path>")
    .description("hard-delete every version of one file (destructive)")
    .option("-y, --yes", "do not ask for confirmation")
    .action(async (path: string, opts: { yes?: boolean }, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        const rel = ctx.prefixPath(path);
        const key = rel.endsWith("/") ? dirKey(ctx.config.prefix, rel) : fileKey(ctx.config.prefix, rel);
        if (key === ctx.config.prefix) throw new PgfilesError("purge needs a file, not the root; use purge-prefix for a subtree.", { exitCode: 2 });
        ctx.requireWritable("purge", "delete");
        const sql = await requireOnline(ctx);
        await confirm(`Hard-delete every version of ${path}?`, opts.yes, "purge");
        const { ids, local } = await withLease(ctx, async () => {
          const local = ctx.journal.purge(key, false);
          const ids = await purgeKey(sql, key);
          return { ids, local };
        });
        ctx.journal.dropCached(ids);
        await tellMounts([key]);
        if (ids.length === 0 && local === 0) throw new PgfilesError(`${path} has no versions; nothing was deleted.`, { errno: "ENOENT" });
        out(`Purged ${path}: ${ids.length} version${ids.length === 1 ? "" : "s"} deleted from PostgreSQL${local ? `, ${local} pending in the journal dropped` : ""}.`);
      });
    });

  program
    .command("purge-prefix <prefix>")
    .description("hard-delete every version of every file under a prefix (destructive)")
    .option("-y, --yes", "do not ask for confirmation")
    .action(async (prefixArg: string, opts: { yes?: boolean }, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        if (prefixArg === "" || prefixArg === "/" ) {
          throw new PgfilesError("purge-prefix refuses an empty prefix (that would be everything under PGFILES_PREFIX); name a subtree.", { exitCode: 2 });
        }
        // "a/b" and "a/b/" both mean the subtree a/b/.
        const sub = dirKey(ctx.config.prefix, ctx.prefixPath(prefixArg));
        if (sub === ctx.config.prefix) {
          throw new PgfilesError("purge-prefix refuses the whole prefix (that is everything under PGFILES_PREFIX); name a subtree.", { exitCode: 2 });
        }
        ctx.requireWritable("purge-prefix", "delete");
        const sql = await requireOnline(ctx);
        const { rows, keys } = await countPrefix(sql, sub);
        await confirm(`Hard-delete ${rows} versions of ${keys} keys under ${JSON.stringify(sub)}?`, opts.yes, "purge-prefix");
        let lastShown = 0;
        const { deleted, local } = await withLease(ctx, async () => {
          const local = ctx.journal.purge(sub, true);
          const deleted = await purgePrefix(sql, sub, (n, ids) => {
            ctx.journal.dropCached(ids);
            if (Date.now() - lastShown > 500 || n === rows) {
              lastShown = Date.now();
              process.stderr.write(`purged ${n} of ${Math.max(n, rows)} versions\n`);
            }
          });
          return { deleted, local };
        });
        await tellMounts([sub]);
        out(`Purged ${JSON.stringify(sub)}: ${deleted} version${deleted === 1 ? "" : "s"} deleted from PostgreSQL${local ? `, ${local} pending in the journal dropped` : ""}.`);
      });
    });
}
