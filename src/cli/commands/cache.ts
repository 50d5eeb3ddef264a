import type { Command } from "commander";
import { formatSize } from "../../config/index.ts";
import { out, withContext } from "../run.ts";

export function registerCache(program: Command) {
  const cache = program.command("cache").description("the local data and metadata cache");
  cache
    .command("stats")
    .description("cache size, entries and hit rate, and what is pending in the journal")
    .option("--json", "machine-readable output")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        await ctx.deliver();
        const s = ctx.journal.stats();
        if (opts.json) {
          out(JSON.stringify({ journal: ctx.journal.dir, ...s }, null, 2));
          return;
        }
        out(`cache:    ${s.entries} bodies, ${formatSize(s.bytes)} of ${formatSize(s.maxBytes)}`);
        out(`hit rate: ${s.hitRate === null ? "n/a" : `${(s.hitRate * 100).toFixed(1)}%`} (${s.hits} hits, ${s.misses} misses)`);
        out(`metadata: ${s.metaEntries} keys`);
        out(`pending:  ${s.pending} versions, ${formatSize(s.pendingBytes)}${s.held ? `, ${s.held} held` : ""}`);
        out(`journal:  ${ctx.journal.dir}`);
      });
    });
  cache
    .command("clear")
    .description("evict cached bodies and metadata (never versions still waiting for Postgres)")
    .action(async (_opts: unknown, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        const r = ctx.journal.clearCache();
        const s = ctx.journal.stats();
        out(`Cleared ${r.entries} cached bodies (${formatSize(r.bytes)}) and the metadata cache.${s.pending ? ` ${s.pending} pending versions were kept.` : ""}`);
      });
    });
}
