import type { Command } from "commander";
import { formatDuration, formatSize } from "../../config/index.ts";
import path from "node:path";
import { request } from "../../daemon/control.ts";
import { findMount } from "../../daemon/registry.ts";
import { dsnHost } from "../../store/connect.ts";
import { out, withContext } from "../run.ts";

/** Exit codes: 0 everything is in Postgres, 4 versions are pending, 3 Postgres is unreachable. */
export function registerStatus(program: Command) {
  program
    .command("status")
    .description("Postgres online/offline, pending versions, cache (exit 0 clean, 4 pending, 3 offline)")
    .option("--json", "machine-readable output")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const cwd = process.env.PWD && path.isAbsolute(process.env.PWD) ? process.env.PWD : process.cwd();
      const m = findMount(cwd);
      if (m) {
        // A mount answers for itself: it owns the journal and the flusher.
        const s = (await request(m.record.socket, { cmd: "status" }, undefined, 10_000)) as MountStatus;
        print(s, Boolean(opts.json));
        process.exitCode = !s.postgres.online ? 3 : s.pending.versions > 0 ? 4 : 0;
        return;
      }
      await withContext(cmd, async (ctx) => {
        const { offline } = await ctx.deliver();
        const online = offline ? false : (await ctx.online()) !== null;
        const s = ctx.journal.stats();
        const held = ctx.journal.heldRows().map((r) => ({ key: r.key, id: r.id, reason: r.held_reason }));
        const status: MountStatus & { pending: { held: { id: string }[] } } = {
          mount: null,
          prefix: ctx.config.prefix,
          postgres: { server: dsnHost(ctx.dsn), online, reason: online ? null : (offline ?? ctx.offlineReason) },
          pending: { versions: s.pending, bytes: s.pendingBytes, oldestAgeMs: s.oldestPendingMs, held },
          cache: { bytes: s.bytes, entries: s.entries, maxBytes: s.maxBytes, hitRate: s.hitRate },
          flushed: { versions: ctx.journal.counter("flushed_versions"), bytes: ctx.journal.counter("flushed_bytes") },
          journal: ctx.journal.dir,
        };
        print(status, Boolean(opts.json));
        process.exitCode = !online ? 3 : s.pending > 0 ? 4 : 0;
      });
    });
}

interface MountStatus {
  mount: string | null;
  prefix: string;
  postgres: { server: string; online: boolean; reason: string | null };
  pending: { versions: number; bytes: number; oldestAgeMs: number | null; held: { key: string; reason: string | null }[] };
  cache: { bytes: number; entries: number; maxBytes: number; hitRate: number | null };
  flushed: { versions: number; bytes: number };
  journal: string;
}

function print(s: MountStatus, json: boolean) {
  if (json) {
    out(JSON.stringify(s, null, 2));
    return;
  }
  out(`mount:    ${s.mount ?? "none"}`);
  out(`prefix:   ${JSON.stringify(s.prefix)}`);
  out(`postgres: ${s.postgres.server} ${s.postgres.online ? "online" : `OFFLINE (${s.postgres.reason})`}`);
  out(`pending:  ${s.pending.versions} versions, ${formatSize(s.pending.bytes)}${s.pending.oldestAgeMs !== null ? `, oldest ${formatDuration(s.pending.oldestAgeMs)} ago` : ""}`);
  for (const h of s.pending.held) out(`held:     ${h.key}: ${h.reason}`);
  out(`cache:    ${formatSize(s.cache.bytes)} of ${formatSize(s.cache.maxBytes)}, hit rate ${s.cache.hitRate === null ? "n/a" : `${(s.cache.hitRate * 100).toFixed(1)}%`}`);
  out(`flushed:  ${s.flushed.versions} versions, ${formatSize(s.flushed.bytes)} since the journal was created`);
  out(`journal:  ${s.journal}`);
}
