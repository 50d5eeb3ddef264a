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
  /** A mount's flush rate over the last minute (or since it started). */
  flushRate?: { versionsPerSec: number; bytesPerSec: number; windowSec: number };
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

/** 0 everything is in Postgres, 4 versions are pending, 3 Postgres is unreachable, 5 Postgres refused
 * versions that stay held in the journal (their reasons are in the status). */
export function statusExitCode(s: Status): number {
  return !s.postgres.online ? 3 : s.pending.held.length > 0 ? 5 : s.pending.versions > 0 ? 4 : 0;
}

/** Samples of the flushed counters, one per second for the last minute: the flush rate `status` shows. */
export class FlushRate {
  private readonly samples: { t: number; versions: number; bytes: number }[] = [];

  constructor(private readonly journal: Journal) {}

  sample(now = Date.now()) {
    this.samples.push({ t: now, versions: this.journal.counter("flushed_versions"), bytes: this.journal.counter("flushed_bytes") });
    while (this.samples.length > 61) this.samples.shift();
  }

  current(): NonNullable<Status["flushRate"]> {
    this.sample();
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    const sec = (last.t - first.t) / 1000;
    if (sec <= 0) return { versionsPerSec: 0, bytesPerSec: 0, windowSec: 0 };
    return {
      versionsPerSec: Math.round(((last.versions - first.versions) / sec) * 10) / 10,
      bytesPerSec: Math.round((last.bytes - first.bytes) / sec),
      windowSec: Math.round(sec),
    };
  }
}
