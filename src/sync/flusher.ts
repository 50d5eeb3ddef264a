// The flusher: copies pending journal versions to Postgres in batches, one
// Postgres transaction per batch, in journal order. Retries with capped
// exponential backoff while Postgres is away; holds back versions Postgres
// rejects for good so that the rest keeps flowing.
import type { Logger } from "pino";
import { errorMessage, OfflineError, RejectedError } from "../errors.ts";
import { isDiskFull, type Journal, type PendingRow } from "../journal/journal.ts";
import { applyBatch, type BatchRow } from "../store/apply.ts";
import { describe, dsnHost, type Sql } from "../store/connect.ts";

export interface FlushResult {
  versions: number;
  bytes: number;
  /** Versions still pending (held ones included). */
  remaining: number;
  held: number;
}

export interface FlusherOptions {
  journal: Journal;
  sql: Sql;
  dsn: string;
  log?: Logger;
  maxRows?: number;
  maxBytes?: number;
  onProgress?: (flushedVersions: number, flushedBytes: number) => void;
}

export type FlushState = "online" | "offline" | "busy";

export class Flusher {
  state: FlushState | "unknown" = "unknown";
  lastError: string | null = null;
  private readonly maxRows: number;
  private readonly maxBytes: number;

  constructor(private readonly o: FlusherOptions) {
    this.maxRows = o.maxRows ?? 2000;
    this.maxBytes = o.maxBytes ?? 64 * 1024 * 1024;
  }

  /** Flushes until the journal has nothing flushable left. Throws OfflineError
   * when Postgres is unreachable (nothing is lost: the journal keeps it all),
   * or a PgfilesError when the schema is missing. Returns what it did. Another
   * process holding the flush lease makes this a no-op with state "busy".
   * `upToSeq`: only versions recorded up to that journal sequence number (the
   * background flusher's snapshot, so that a busy writer does not keep it in a
   * loop of tiny batches). */
  async flushAll(opts: { upToSeq?: number } = {}): Promise<FlushResult> {
    try {
      const r = await this.flushAllOnce(opts);
      this.o.journal.ensureReserve();
      return r;
    } catch (e) {
      // A disk full of pending versions: use the room held back for exactly this, once.
      if (!isDiskFull(e) || !this.o.journal.releaseReserve()) throw e;
      this.o.log?.warn("the cache disk is full; flushing with the space held in reserve");
      return await this.flushAllOnce(opts);
    }
  }

  private async flushAllOnce(opts: { upToSeq?: number }): Promise<FlushResult> {
    const j = this.o.journal;
    let versions = 0;
    let bytes = 0;
    // Idle: nothing flushable, no lease write, no Postgres round trip.
    const idle = j.pendingCounts();
    if (idle.pending === idle.held) {
      return { versions, bytes, remaining: idle.pending, held: idle.held };
    }
    if (!j.acquireLease()) {
      this.state = "busy";
      return { versions, bytes, ...this.remaining() };
    }
    try {
      for (;;) {
        if (!j.acquireLease()) {
          this.state = "busy";
          break;
        }
        const rows = j.nextBatch(this.maxRows, this.maxBytes, opts.upToSeq);
        if (rows.length === 0) break;
        const done = await this.flushRows(rows);
        versions += done.versions;
        bytes += done.bytes;
        this.o.onProgress?.(versions, bytes);
      }
      if (this.state !== "busy") this.state = "online";
      this.lastError = null;
    } catch (e) {
      this.lastError = errorMessage(e);
      if (e instanceof OfflineError) this.state = "offline";
      throw e;
    } finally {
      j.releaseLease();
    }
    return { versions, bytes, ...this.remaining() };
  }

  private remaining() {
    const s = this.o.journal.pendingCounts();
    return { remaining: s.pending, held: s.held };
  }

  /** One batch; on a permanent rejection, retries group by group and holds the
   * groups Postgres refuses. */
  private async flushRows(rows: PendingRow[]): Promise<{ versions: number; bytes: number }> {
    try {
      await this.storeRetryingConflicts(rows);
      return { versions: rows.length, bytes: sum(rows) };
    } catch (e) {
      // Postgres has the batch; only the journal could not say so. Not a rejection: retry the whole thing
      // later (the stored ids are skipped then).
      if (e instanceof JournalAfterCommitError) throw e;
      const err = describe(e, dsnHost(this.o.dsn));
      if (!(err instanceof RejectedError)) throw err;
      const groups = groupRows(rows);
      if (groups.length === 1) {
        this.o.log?.warn({ keys: rows.map((r) => r.key).slice(0, 10), reason: err.message }, "postgres rejected versions; holding them");
        this.o.journal.hold(rows, err.message);
        return { versions: 0, bytes: 0 };
      }
      let versions = 0;
      let bytes = 0;
      const heldKeys = new Set<string>();
      for (const g of groups) {
        // A key with a held version keeps its later versions behind it.
        if (g.some((r) => heldKeys.has(r.key))) continue;
        const d = await this.flushRows(g);
        if (d.versions === 0) for (const r of g) heldKeys.add(r.key);
        versions += d.versions;
        bytes += d.bytes;
      }
      return { versions, bytes };
    }
  }

  /** Two flushers on two machines writing the same keys in different orders can
   * deadlock on head rows; Postgres aborts one of them. That is not an outage:
   * retry the batch after a short random pause. */
  private async storeRetryingConflicts(rows: PendingRow[]) {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.store(rows);
      } catch (e) {
        const code = (e as { code?: string })?.code;
        if ((code !== "40P01" && code !== "40001") || attempt >= 20) throw e;
        this.o.log?.debug({ code, attempt }, "write conflict with another flusher; retrying");
        await Bun.sleep(20 + Math.random() * 100 * Math.min(attempt, 5));
      }
    }
  }

  private async store(rows: PendingRow[]) {
    const j = this.o.journal;
    const batch: BatchRow[] = rows.map((r) => ({
      id: r.id,
      key: r.key,
      op: r.op,
      meta: r.meta,
      body: r.body,
      bodyPath: r.body_file ? j.bodies.pathOf(r.body_file) : null,
      size: r.size,
      dataNull: r.op === "put" && r.body === null && r.body_file === null && JSON.parse(r.meta).type !== "file",
      src_id: r.src_id,
      src_key: r.src_key,
      src_version: r.src_version,
    }));
    const t0 = performance.now();
    const stored = await applyBatch(this.o.sql, batch);
    try {
      try {
        j.markFlushed(rows, stored);
      } catch (e) {
        if (!isDiskFull(e)) throw e;
        j.markFlushedOnFullDisk(rows, stored);
      }
    } catch (e) {
      throw new JournalAfterCommitError(e);
    }
    this.o.log?.debug({ versions: rows.length, bytes: sum(rows), ms: Math.round(performance.now() - t0) }, "flushed batch");
  }

  /** Flushes in the background until stopped: immediately when poked, else every
   * `intervalMs`; while offline, retries with capped exponential backoff. */
  run(opts: { intervalMs?: number; minBackoffMs?: number; maxBackoffMs?: number } = {}): BackgroundFlusher {
    const interval = opts.intervalMs ?? 200;
    const minBackoff = opts.minBackoffMs ?? 500;
    const maxBackoff = opts.maxBackoffMs ?? 30_000;
    let stopped = false;
    let wake: (() => void) | null = null;
    let backoff = minBackoff;
    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          wake = null;
          resolve();
        }, ms);
        wake = () => {
          clearTimeout(t);
          wake = null;
          resolve();
        };
      });
    const loop = (async () => {
      while (!stopped) {
        let delay = interval;
        try {
          // What was recorded until now, in as few transactions as the limits allow; what arrives meanwhile
          // waits for the next round. Flushing "until empty" under a steady writer made one Postgres
          // transaction per ~13 versions (779 batches for 10,000 files), each with a WAL fsync and a journal
          // commit, and took 40% of the thread that answers the kernel.
          await this.flushAll({ upToSeq: this.o.journal.lastSeq() });
          backoff = minBackoff;
        } catch (e) {
          delay = backoff;
          backoff = Math.min(maxBackoff, backoff * 2);
          this.o.log?.warn({ err: errorMessage(e), retryInMs: delay }, "flush failed; will retry");
        }
        if (!stopped) await sleep(delay);
      }
    })();
    return {
      poke: () => wake?.(),
      stop: async () => {
        stopped = true;
        wake?.();
        await loop;
      },
    };
  }
}

export interface BackgroundFlusher {
  /** Flush now rather than at the next tick. */
  poke(): void;
  stop(): Promise<void>;
}

function sum(rows: PendingRow[]): number {
  return rows.reduce((n, r) => n + r.size, 0);
}

function groupRows(rows: PendingRow[]): PendingRow[][] {
  const out: PendingRow[][] = [];
  for (const r of rows) {
    const last = out[out.length - 1];
    if (last && last[0].grp === r.grp) last.push(r);
    else out.push([r]);
  }
  return out;
}

/** The journal failed to record a batch that Postgres already committed (a full or broken cache disk). */
export class JournalAfterCommitError extends Error {
  constructor(override readonly cause: unknown) {
    super(`Postgres stored a batch but the local journal could not mark it flushed: ${errorMessage(cause)}`);
    this.name = "JournalAfterCommitError";
  }
}
