import type { Command } from "commander";
import { formatDuration, formatSize } from "../../config/index.ts";
import { dsnHost } from "../../store/connect.ts";
import { out, withContext } from "../run.ts";

/** Exit codes: 0 everything is in Postgres, 4 versions are pending, 3 Postgres is unreachable. */
export function registerStatus(program: Command) {
  program
    .command("status")
    .description("Postgres online/offline, pending versions, cache (exit 0 clean, 4 pending, 3 offline)")
    .option("--json", "machine-readable output")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        const { offline } = await ctx.deliver();
        const online = offline ? false : (await ctx.online()) !== null;
        const s = ctx.journal.stats();
        const held = ctx.journal.heldRows().map((r) => ({ key: r.key, id: r.id, reason: r.held_reason }));
        const status = {
          mount: null,
          prefix: ctx.config.prefix,
          postgres: { server: dsnHost(ctx.dsn), online, reason: online ? null : (offline ?? ctx.offlineReason) },
          pending: { versions: s.pending, bytes: s.pendingBytes, oldestAgeMs: s.oldestPendingMs, held },
          cache: { bytes: s.bytes, entries: s.entries, maxBytes: s.maxBytes, hitRate: s.hitRate },
          flushed: { versions: ctx.journal.counter("flushed_versions"), bytes: ctx.journal.counter("flushed_bytes") },
          journal: ctx.journal.dir,
        };
        if (opts.json) out(JSON.stringify(status, null, 2));
        else {
          out(`mount:    none`);
          out(`prefix:   ${JSON.stringify(status.prefix)}`);
          out(`postgres: ${status.postgres.server} ${online ? "online" : `OFFLINE (${status.postgres.reason})`}`);
          out(`pending:  ${s.pending} versions, ${formatSize(s.pendingBytes)}${s.oldestPendingMs !== null ? `, oldest ${formatDuration(s.oldestPendingMs)} ago` : ""}`);
          for (const h of held) out(`held:     ${h.key}: ${h.reason}`);
          out(`cache:    ${formatSize(s.bytes)} of ${formatSize(s.maxBytes)}, hit rate ${s.hitRate === null ? "n/a" : `${(s.hitRate * 100).toFixed(1)}%`}`);
          out(`journal:  ${ctx.journal.dir}`);
        }
        process.exitCode = !online ? 3 : s.pending > 0 ? 4 : 0;
      });
    });
}
