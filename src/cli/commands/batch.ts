import type { Command } from "commander";
import fs from "node:fs";
import { applyBatchOps } from "../../batch/apply.ts";
import { BatchSyntaxError, parseBatch } from "../../batch/parse.ts";
import { BatchInputError, readBatch } from "../../batch/read.ts";
import { PgfilesError } from "../../errors.ts";
import { keyToPath } from "../../keys.ts";
import { storedVersions } from "../../store/store.ts";
import { tellMounts } from "../notify.ts";
import { out, reportOffline, withContext } from "../run.ts";

export function registerBatch(program: Command) {
  program
    .command("batch")
    .description("apply operations from stdin atomically, one per line (see docs/batch.md): all or nothing")
    .option("-f, --file <file>", "read the operations from a file instead of stdin")
    .option("--json", "machine-readable output")
    .action(async (opts: { file?: string; json?: boolean }, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        ctx.requireWritable("batch");
        let ops;
        try {
          ops = parseBatch(readBatchFrom(opts.file));
        } catch (e) {
          if (e instanceof BatchSyntaxError) throw new PgfilesError(`The batch was rejected, nothing was applied: ${e.message}`, { exitCode: 2, errno: "EINVAL" });
          throw e;
        }
        if (ops.length === 0) throw new PgfilesError("The batch is empty; nothing to apply.", { exitCode: 2 });
        await ctx.deliver();
        const sql = await ctx.online();
        let recorded;
        try {
          recorded = await applyBatchOps(ops, { journal: ctx.journal, prefix: ctx.config.prefix, sql, durable: true });
        } catch (e) {
          if (e instanceof PgfilesError) throw new PgfilesError(`The batch was rejected, nothing was applied: ${e.message}`, { exitCode: e.exitCode, errno: e.errno });
          throw e;
        }
        const { offline } = sql ? await ctx.deliver({ progress: true }) : { offline: ctx.offlineReason };
        await tellMounts([...new Set(recorded.map((r) => r.key))]);
        const stored = offline || !sql ? new Map() : await storedVersions(sql, recorded.map((r) => r.id));
        const held = recorded.map((r) => ctx.journal.pendingById(r.id)).find((p) => p?.held_reason);
        const results = recorded.map((r) => ({
          line: r.line,
          op: r.op,
          path: keyToPath(ctx.config.prefix, r.key),
          key: r.key,
          id: r.id,
          version: stored.get(r.id)?.version ?? null,
        }));
        if (opts.json) {
          out(JSON.stringify({ stored: !offline && !held, queued: Boolean(offline), results }, null, 2));
        } else {
          for (const r of results) out(`${r.op.padEnd(7)} ${r.path}  ${r.version === null ? "queued" : `version ${r.version}`}`);
        }
        if (held) throw new PgfilesError(`PostgreSQL refused the batch; it is held in the journal: ${held.held_reason}`);
        if (offline) {
          out(`Queued ${recorded.length} operation${recorded.length === 1 ? "" : "s"} in the local journal; PostgreSQL is unreachable.`);
          reportOffline(offline, ctx.journal.stats().pending, ctx.journal.dir);
        }
      });
    });
}

/** The batch's text from a file or stdin; a line too long, a batch too large or bad UTF-8 is a BatchSyntaxError. */
function readBatchFrom(file: string | undefined): string {
  let fd = 0;
  try {
    if (file !== undefined) fd = fs.openSync(file, "r");
    return readBatch(fd);
  } catch (e) {
    if (e instanceof BatchSyntaxError) throw e;
    if (e instanceof BatchInputError) throw new PgfilesError(`The batch was rejected, nothing was applied: ${e.message}`, { exitCode: 2, errno: "EINVAL" });
    throw new PgfilesError(`Cannot read the batch from ${file ?? "stdin"}: ${(e as Error).message}.`, { exitCode: 2 });
  } finally {
    if (fd !== 0) fs.closeSync(fd);
  }
}
