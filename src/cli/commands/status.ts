import type { Command } from "commander";
import { formatDuration, formatSize } from "../../config/index.ts";
import { request } from "../../daemon/control.ts";
import { journalStatus, type Status, statusExitCode } from "../../daemon/status.ts";
import { dsnHost } from "../../store/connect.ts";
import { out, withContext } from "../run.ts";

/** Exit codes: see statusExitCode. */
export function registerStatus(program: Command) {
  program
    .command("status")
    .description("Postgres online/offline, pending versions, cache (exit 0 clean, 4 pending, 5 held: Postgres refused versions, 3 offline)")
    .option("--json", "machine-readable output")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        let status: Status;
        if (ctx.mount) {
          // A mount answers for itself: it owns the journal and the flusher.
          status = (await request(ctx.mount.record.socket, { cmd: "status" }, undefined, 10_000)) as Status;
        } else {
          const { offline } = await ctx.deliver();
          const online = offline ? false : (await ctx.online()) !== null;
          status = journalStatus(
            ctx.journal,
            { mount: null, prefix: ctx.config.prefix },
            { server: dsnHost(ctx.dsn), online, reason: online ? null : (offline ?? ctx.offlineReason) },
          );
        }
        print(status, Boolean(opts.json));
        process.exitCode = statusExitCode(status);
      });
    });
}

function print(s: Status, json: boolean) {
  if (json) {
    out(JSON.stringify(s, null, 2));
    return;
  }
  out(`mount:    ${s.mount ?? "none"}`);
  out(`prefix:   ${JSON.stringify(s.prefix)}`);
  const last = s.postgres.reason ? `online, but the last flush failed: ${s.postgres.reason}` : "online";
  out(`postgres: ${s.postgres.server} ${s.postgres.online ? last : `OFFLINE (${s.postgres.reason ?? "no answer"})`}`);
  out(`pending:  ${s.pending.versions} versions, ${formatSize(s.pending.bytes)}${s.pending.oldestAgeMs !== null ? `, oldest ${formatDuration(s.pending.oldestAgeMs)} ago` : ""}`);
  for (const h of s.pending.held) out(`held:     ${h.key}: ${h.reason}`);
  out(`cache:    ${formatSize(s.cache.bytes)} of ${formatSize(s.cache.maxBytes)}, hit rate ${s.cache.hitRate === null ? "n/a" : `${(s.cache.hitRate * 100).toFixed(1)}%`}`);
  out(`flushed:  ${s.flushed.versions} versions, ${formatSize(s.flushed.bytes)} since the journal was created`);
  if (s.flushRate) out(`rate:     ${s.flushRate.versionsPerSec} versions/s, ${formatSize(s.flushRate.bytesPerSec)}/s over the last ${s.flushRate.windowSec} s`);
  out(`journal:  ${s.journal}`);
  if (s.io) out(`io:       ${s.io.requests} kernel requests; passthrough ${s.io.passthrough ? `on (${s.io.passthroughOpens} opens)` : "off"}`);
}
