// What `pgfiles status` reports: one shape, built from a journal, whether a
// mount's daemon answers (it owns the journal) or the CLI reads it directly.
import type { Journal } from "../journal/journal.ts";

export interface Status {
  mount: string | null;
  prefix: string;
  pid?: number;
  backend?: "fuse" | "nfs";
  postgres: { server: string; online: boolean; reason: string | null };
  pending: { versions: number; bytes: number; oldestAgeMs: number | null; held: { key: string; id: string; reason: string | null }[] };
  cache: { bytes: number; entries: number; maxBytes: number; hitRate: number | null };
  flushed: { versions: number; bytes: number };
  journal: string;
  /** A mount's kernel session: requests served, and whether open files' I/O bypasses the daemon. */
  io?: { requests: number; passthrough: boolean; passthroughOpens: number };
}

export function journalStatus(
  journal: Journal,
  where: { mount: string | null; prefix: string; pid?: number; backend?: "fuse" | "nfs" },
  postgres: Status["postgres"],
): Status {
  const s = journal.stats();
  return {
    ...where,
    postgres,
    pending: {
      versions: s.pending,
      bytes: s.pendingBytes,
      oldestAgeMs: s.oldestPendingMs,
      held: journal.heldRows().map((r) => ({ key: r.key, id: r.id, reason: r.held_reason })),
    },
    cache: { bytes: s.bytes, entries: s.entries, maxBytes: s.maxBytes, hitRate: s.hitRate },
    flushed: { versions: journal.counter("flushed_versions"), bytes: journal.counter("flushed_bytes") },
    journal: journal.dir,
  };
}

/** 0 everything is in Postgres, 4 versions are pending, 3 Postgres is unreachable. */
export function statusExitCode(s: Status): number {
  return !s.postgres.online ? 3 : s.pending.versions > 0 ? 4 : 0;
}
