// The journal: versions recorded locally before Postgres has them, the data
// cache and the metadata cache. The only code that speaks SQL to SQLite.
import type { Database } from "bun:sqlite";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PgfilesError } from "../errors.ts";
import type { Meta } from "../meta.ts";
import { type Checkpointer, startCheckpointer } from "./checkpointer.ts";
import { BodyStore, fsyncDir, fsyncPath, type StagedBody } from "./bodies.ts";
import { processAlive } from "../pid.ts";
import { databaseIdentity, journalDir, openDatabase } from "./open.ts";

export type Op = "put" | "delete" | "copy";

/** A version to record. For "copy" the body comes from a source version in Postgres
 * (or pending here): by id when known, else by key and version, resolved at flush. */
export interface NewVersion {
  id: string;
  key: string;
  op: Op;
  meta: Partial<Meta>;
  body?: StagedBody;
  src?: { id?: string; key?: string; version?: number };
}

export interface PendingRow {
  seq: number;
  id: string;
  key: string;
  op: Op;
  meta: string;
  body: Uint8Array | null;
  body_file: string | null;
  size: number;
  src_id: string | null;
  src_key: string | null;
  src_version: number | null;
  grp: number;
  created_at: number;
  held_reason: string | null;
  attempts: number;
}

export interface CacheStats {
  entries: number;
  bytes: number;
  maxBytes: number;
  hits: number;
  misses: number;
  hitRate: number | null;
  metaEntries: number;
  pending: number;
  pendingBytes: number;
  held: number;
  oldestPendingMs: number | null;
}

export interface JournalOptions {
  cacheDir: string;
  dsn: string;
  prefix: string;
  cacheMaxSize: number;
  /** LRU stamps are refreshed at most this often per body (a cache hit should
   * not cost a SQLite write); default one minute. */
  lruGranularityMs?: number;
}

const LEASE_MS = 30_000;
/** Disk space held back for the flusher (see ensureReserve). */
const RESERVE_BYTES = 4 * 1024 * 1024;

export class Journal {
  readonly dir: string;
  readonly db: Database;
  readonly bodies: BodyStore;
  readonly maxBytes: number;
  private readonly holder = `${os.hostname()}:${process.pid}:${crypto.randomUUID()}`;

  constructor(opts: JournalOptions) {
    this.dir = journalDir(opts.cacheDir, opts.dsn, opts.prefix);
    this.db = openDatabase(this.dir, databaseIdentity(opts.dsn), opts.prefix);
    this.bodies = new BodyStore(path.join(this.dir, "blobs"));
    this.maxBytes = opts.cacheMaxSize;
    this.lruGranularityMs = opts.lruGranularityMs ?? 60_000;
  }

  private readonly lruGranularityMs: number;

  /**
   * Makes what is already committed durable against power loss: the WAL (commits
   * run with synchronous=NORMAL, so a close's version is in the WAL but not yet
   * on disk) and, for a pending version with a body file, that file and its
   * directory. This is what fsync of an unchanged file, and fsyncdir, promise.
   */
  makeDurable(id?: string) {
    try {
      fsyncPath(path.join(this.dir, "journal.db-wal"));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e; // no WAL: everything is in the database file
    }
    // A pending copy (a chmod, a rename, …) has no body of its own: the bytes
    // are its pending source's, whose file may not have been fsynced yet (a
    // close records without fsync). Follow the chain to the body.
    let row = id ? this.pendingById(id) : null;
    for (let hops = 0; row && row.op === "copy" && hops < 1000; hops++) {
      row = row.src_id
        ? this.pendingById(row.src_id)
        : row.src_key !== null && row.src_version === null
          ? ((this.db.query("SELECT * FROM pending WHERE key = $key AND seq < $seq ORDER BY seq DESC LIMIT 1").get({ key: row.src_key, seq: row.seq }) as PendingRow | null) ?? null)
          : null;
    }
    if (row?.body_file) {
      fsyncPath(this.bodies.pathOf(row.body_file));
      fsyncDir(this.bodies.dir);
    }
  }

  /** For a long-running writer (the mount): WAL checkpoints in a background thread, not inside its commits. */
  checkpointInBackground(onError?: (message: string) => void) {
    this.checkpointer ??= startCheckpointer(this.db, path.join(this.dir, "journal.db"), { onError });
  }

  private checkpointer: Checkpointer | undefined;

  /** Bumped by every markFlushed of this Journal object: a reader that combines a Postgres listing with the
   * pending versions can tell that versions moved from one to the other while it waited. */
  flushGeneration = 0;

  close() {
    this.checkpointer?.stop();
    this.saveCounters();
    this.releaseLease();
    this.db.close();
  }

  // ---- pending versions ----

  /** Records versions as one group: all of them or none, flushed to Postgres in
   * one transaction. durable: fsync before returning (survives power loss); else
   * the commit survives a crash of this process. */
  record(versions: NewVersion[], durable: boolean): void {
    if (versions.length === 0) return;
    const now = Date.now();
    const insert = this.db.query(
      `INSERT INTO pending (id, key, op, meta, body, body_file, size, src_id, src_key, src_version, grp, created_at)
       VALUES ($id, $key, $op, $meta, $body, $body_file, $size, $src_id, $src_key, $src_version, $grp, $created_at)`,
    );
    if (durable) this.db.exec("PRAGMA synchronous = FULL");
    try {
      this.immediate(() => {
        const grp = ((this.db.query("SELECT COALESCE(MAX(grp), 0) + 1 AS g FROM pending").get() as { g: number }).g);
        for (const v of versions) {
          insert.run({
            id: v.id,
            key: v.key,
            op: v.op,
            meta: JSON.stringify(v.meta),
            body: v.body?.inline ?? null,
            body_file: v.body?.file ?? null,
            size: v.body?.size ?? 0,
            src_id: v.src?.id ?? null,
            src_key: v.src?.key ?? null,
            src_version: v.src?.version ?? null,
            grp,
            created_at: now,
          });
        }
      });
    } catch (e) {
      const full = isDiskFull(e);
      // The rows did not commit: their body files are orphans now. On a full disk they stay for the caller's
      // retry after it made room (collectGarbage removes them at the next start if that fails too).
      if (!full) for (const v of versions) if (v.body?.file) this.bodies.remove(v.body.file);
      if (full) {
        throw new PgfilesError(`The cache directory's disk is full (${this.dir}); free space and try again.`, { errno: "ENOSPC", cause: e });
      }
      throw e;
    } finally {
      if (durable) this.db.exec("PRAGMA synchronous = NORMAL");
    }
  }

  /** The next versions to flush, in order: whole groups only, never a group that
   * touches a key with a held (rejected) version, at least one group even when it
   * is larger than the limits. */
  nextBatch(maxRows: number, maxBytes: number, maxSeq = Number.MAX_SAFE_INTEGER): PendingRow[] {
    const rows = this.db
      .query(
        `SELECT * FROM pending
          WHERE held_reason IS NULL AND seq <= $maxSeq
            AND grp NOT IN (SELECT q.grp FROM pending q
                             WHERE q.key IN (SELECT h.key FROM pending h WHERE h.held_reason IS NOT NULL))
          ORDER BY seq LIMIT $limit`,
      )
      .all({ limit: maxRows + 1, maxSeq }) as PendingRow[];
    if (rows.length === 0) return rows;
    const out: PendingRow[] = [];
    let bytes = 0;
    let i = 0;
    while (i < rows.length) {
      const grp = rows[i].grp;
      let j = i;
      let groupBytes = 0;
      while (j < rows.length && rows[j].grp === grp) groupBytes += rows[j++].size;
      const cut = j === rows.length && rows.length > maxRows; // this group may continue past the limit
      if (out.length > 0 && (cut || out.length + (j - i) > maxRows || bytes + groupBytes > maxBytes)) break;
      if (cut && out.length === 0) {
        // One group larger than the row limit: take all of it.
        return this.db.query("SELECT * FROM pending WHERE grp = $grp ORDER BY seq").all({ grp }) as PendingRow[];
      }
      out.push(...rows.slice(i, j));
      bytes += groupBytes;
      i = j;
    }
    return out;
  }

  /** Versions recorded up to `seq` that still wait for a flush: neither held nor behind a held version. */
  flowingUpTo(seq: number): number {
    return (
      this.db
        .query(
          `SELECT COUNT(*) AS n FROM pending
            WHERE seq <= $seq AND held_reason IS NULL
              AND key NOT IN (SELECT h.key FROM pending h WHERE h.held_reason IS NOT NULL)`,
        )
        .get({ seq }) as { n: number }
    ).n;
  }

  /** The newest recorded version's sequence number (0: none yet). A group is
   * recorded in one transaction, so it lies wholly at or below this, or above. */
  lastSeq(): number {
    return (this.db.query("SELECT COALESCE(MAX(seq), 0) AS s FROM pending").get() as { s: number }).s;
  }

  pendingForKey(key: string): PendingRow[] {
    return this.db.query("SELECT * FROM pending WHERE key = $key ORDER BY seq").all({ key }) as PendingRow[];
  }

  /** The latest pending version of every key under `prefix` (body columns omitted). */
  pendingUnder(prefix: string): Omit<PendingRow, "body">[] {
    return this.db
      .query(
        `SELECT seq, id, key, op, meta, NULL AS body, body_file, size, src_id, src_key, src_version, grp, created_at, held_reason, attempts
           FROM pending p
          WHERE substr(key, 1, length($prefix)) = $prefix
            AND seq = (SELECT MAX(seq) FROM pending q WHERE q.key = p.key)
          ORDER BY key`,
      )
      .all({ prefix }) as Omit<PendingRow, "body">[];
  }

  pendingById(id: string): PendingRow | null {
    return (this.db.query("SELECT * FROM pending WHERE id = $id").get({ id }) as PendingRow | null) ?? null;
  }

  heldRows(): PendingRow[] {
    return this.db.query("SELECT * FROM pending WHERE held_reason IS NOT NULL ORDER BY seq").all() as PendingRow[];
  }

  /** Versions Postgres has committed: drop them from pending, keep their bodies in
   * the data cache and their meta in the metadata cache. */
  markFlushed(rows: PendingRow[], stored: Map<string, { version: number; meta: string }>) {
    this.flushGeneration++;
    const now = this.tick();
    let bytes = 0;
    this.immediate(() => {
      const del = this.db.query("DELETE FROM pending WHERE id = $id");
      const cache = this.db.query(
        `INSERT INTO data_cache (id, size, body, body_file, last_used) VALUES ($id, $size, $body, $body_file, $now)
         ON CONFLICT (id) DO NOTHING`,
      );
      const metaPut = this.db.query(
        `INSERT INTO meta_cache (key, id, meta, fetched_at) VALUES ($key, $id, $meta, $now)
         ON CONFLICT (key) DO UPDATE SET id = excluded.id, meta = excluded.meta, fetched_at = excluded.fetched_at`,
      );
      const cachedSrc = this.db.query("SELECT size, body, body_file FROM data_cache WHERE id = $id");
      for (const r of rows) {
        del.run({ id: r.id });
        if (r.op === "put" && (r.body !== null || r.body_file !== null)) {
          cache.run({ id: r.id, size: r.size, body: r.body, body_file: r.body_file, now });
        } else if (r.op === "copy" && r.src_id) {
          // A rename, chmod or restore stores a copy: its body is its source's. Cache it under the copy's id too,
          // or the next read of a renamed file (git's objects, save-by-rename) fetches it from Postgres again.
          const src = cachedSrc.get({ id: r.src_id }) as { size: number; body: Uint8Array | null; body_file: string | null } | null;
          if (src?.body_file) {
            // A second name for the same file: each cache entry owns (and evicts) its own link.
            if (this.bodies.link(src.body_file, r.id)) cache.run({ id: r.id, size: src.size, body: null, body_file: r.id, now });
          } else if (src) cache.run({ id: r.id, size: src.size, body: src.body, body_file: null, now });
        }
        const s = stored.get(r.id);
        if (s) metaPut.run({ key: r.key, id: r.id, meta: s.meta, now });
        bytes += r.size;
      }
      this.bump("flushed_versions", rows.length);
      this.bump("flushed_bytes", bytes);
    });
    this.evict();
  }

  /**
   * markFlushed on a full cache disk (its transaction needs room in the WAL, and
   * caching inline bodies needs more): make room by evicting clean bodies and try
   * again; if it is still full, drop the local copies of these versions (Postgres
   * has them now) without caching them — files first, since removing them is what
   * frees space. A version whose pending row survives a failed DELETE is skipped
   * by the next flush (its id is stored), so nothing is sent twice or lost.
   */
  markFlushedOnFullDisk(rows: PendingRow[], stored: Map<string, { version: number; meta: string }>) {
    this.evictForSpace(64 * 1024 * 1024);
    try {
      this.markFlushed(rows, stored);
      return;
    } catch (e) {
      if (!isDiskFull(e)) throw e;
    }
    for (const r of rows) if (r.body_file) this.bodies.remove(r.body_file);
    const del = this.db.query("DELETE FROM pending WHERE id = $id");
    this.immediate(() => {
      for (const r of rows) del.run({ id: r.id });
    });
    this.flushGeneration++;
  }

  /**
   * Room kept back for the flusher: a file of RESERVE_BYTES in the journal
   * directory. When writers have filled the disk with pending versions, SQLite
   * cannot write even the flush lease, and the only way out — flushing, after
   * which the data is clean and can be evicted — would be stuck. The flusher then
   * deletes the reserve, flushes, and it is put back once there is room.
   */
  ensureReserve() {
    const file = path.join(this.dir, "reserve");
    try {
      if (fs.existsSync(file)) return;
      const st = fs.statfsSync(this.dir);
      if (st.bavail * st.bsize < 4 * RESERVE_BYTES) return;
      fs.writeFileSync(file, Buffer.alloc(RESERVE_BYTES), { mode: 0o600 });
    } catch {
      fs.rmSync(file, { force: true });
    }
  }

  /** Gives the reserve up (true if there was one). */
  releaseReserve(): boolean {
    const file = path.join(this.dir, "reserve");
    if (!fs.existsSync(file)) return false;
    fs.rmSync(file, { force: true });
    return true;
  }

  /** Postgres rejected these versions for good: keep them, out of the flow, with the reason. */
  hold(rows: PendingRow[], reason: string) {
    this.immediate(() => {
      const q = this.db.query("UPDATE pending SET held_reason = $reason, attempts = attempts + 1 WHERE id = $id");
      for (const r of rows) q.run({ reason, id: r.id });
    });
  }

  /** Puts held versions back into the flow (after the cause was fixed). */
  releaseHeld(): number {
    return this.db.query("UPDATE pending SET held_reason = NULL WHERE held_reason IS NOT NULL").run().changes;
  }

  // ---- purge (hard delete) ----

  /** Drops every local trace of keys equal to `key` (exact) or, with prefix=true,
   * starting with it: pending versions included, since purge means gone. */
  purge(key: string, prefix: boolean): number {
    const where = prefix ? "substr(key, 1, length($key)) = $key" : "key = $key";
    const files: string[] = [];
    let n = 0;
    this.immediate(() => {
      for (const r of this.db.query(`SELECT body_file FROM pending WHERE ${where} AND body_file IS NOT NULL`).all({ key }) as { body_file: string }[]) {
        files.push(r.body_file);
      }
      n = this.db.query(`DELETE FROM pending WHERE ${where}`).run({ key }).changes;
      this.db.query(`DELETE FROM meta_cache WHERE ${where}`).run({ key });
    });
    for (const f of files) this.bodies.remove(f);
    return n;
  }

  /** Forgets cached bodies of the given version ids (after they were purged in Postgres). */
  dropCached(ids: string[]) {
    const files: string[] = [];
    this.immediate(() => {
      const get = this.db.query("SELECT body_file FROM data_cache WHERE id = $id");
      const del = this.db.query("DELETE FROM data_cache WHERE id = $id");
      for (const id of ids) {
        const r = get.get({ id }) as { body_file: string | null } | null;
        if (r?.body_file) files.push(r.body_file);
        del.run({ id });
      }
    });
    for (const f of files) this.bodies.remove(f);
  }

  // ---- data cache ----

  /** A cached body by version id, counted as a hit or a miss. */
  cached(id: string): { body: Uint8Array | null; file: string | null; size: number } | null {
    const r = this.db.query("SELECT body, body_file, size, last_used FROM data_cache WHERE id = $id").get({ id }) as
      | { body: Uint8Array | null; body_file: string | null; size: number; last_used: number }
      | null;
    if (r && r.body_file && !fs.existsSync(this.bodies.pathOf(r.body_file))) {
      // Its file was evicted to make room on a full disk, but the row could not be removed then.
      try {
        this.db.query("DELETE FROM data_cache WHERE id = $id").run({ id });
      } catch {
        // still full: a miss all the same
      }
      this.countLater("cache_misses");
      return null;
    }
    if (r) {
      if (r.last_used <= Date.now() - this.lruGranularityMs) this.db.query("UPDATE data_cache SET last_used = $now WHERE id = $id").run({ id, now: this.tick() });
      this.countLater("cache_hits");
      return { body: r.body, file: r.body_file, size: r.size };
    }
    this.countLater("cache_misses");
    return null;
  }

  /** A use stamp for LRU order: milliseconds, but strictly increasing, so two
   * uses within one millisecond still order. */
  private tick(): number {
    const r = this.db.query("SELECT MAX(last_used) AS m FROM data_cache").get() as { m: number | null };
    return Math.max(Date.now(), (r.m ?? 0) + 1);
  }

  /** Adds a body fetched from Postgres to the cache. */
  cachePut(id: string, body: StagedBody) {
    this.db
      .query(
        `INSERT INTO data_cache (id, size, body, body_file, last_used) VALUES ($id, $size, $body, $file, $now)
         ON CONFLICT (id) DO NOTHING`,
      )
      .run({ id, size: body.size, body: body.inline ?? null, file: body.file ?? null, now: this.tick() });
    // Never the body just fetched: its reader is about to open it (one body larger than the whole cap would
    // otherwise be removed before it is read, and the read would fail). The next eviction takes it.
    this.evict(id);
  }

  /** Evicts least recently used clean bodies until clean + pending fit the cap.
   * Pending bodies are never evicted: they live in `pending`, not in the cache. */
  evict(keep?: string): number {
    const total = this.db.query("SELECT SUM(bytes) AS t FROM totals WHERE name IN ('data_cache', 'pending')").get() as { t: number };
    let over = total.t - this.maxBytes;
    if (over <= 0) return 0;
    const victims: { id: string; size: number; body_file: string | null }[] = [];
    for (const r of this.db.query("SELECT id, size, body_file FROM data_cache ORDER BY last_used, id").iterate() as Iterable<{
      id: string;
      size: number;
      body_file: string | null;
    }>) {
      if (over <= 0) break;
      if (r.id === keep) continue;
      victims.push(r);
      over -= r.size;
    }
    const del = this.db.query("DELETE FROM data_cache WHERE id = $id");
    this.immediate(() => {
      for (const v of victims) del.run({ id: v.id });
    });
    for (const v of victims) if (v.body_file) this.bodies.remove(v.body_file);
    return victims.length;
  }

  /**
   * The cache disk is full: evicts clean cached bodies (Postgres has them), least
   * recently used first, until `wantFree` bytes are free on that filesystem or
   * nothing clean is left. Returns how many it evicted. Pending versions are
   * never touched.
   */
  evictForSpace(wantFree: number): number {
    let evicted = 0;
    const free = () => {
      const st = fs.statfsSync(this.dir);
      return st.bavail * st.bsize;
    };
    const page = this.db.query("SELECT id, size, body_file FROM data_cache ORDER BY last_used, id LIMIT 64 OFFSET $skip");
    const del = this.db.query("DELETE FROM data_cache WHERE id = $id");
    let stuck = 0; // rows whose files are gone but whose DELETE failed: skipped, not selected again
    while (free() < wantFree) {
      const victims = page.all({ skip: stuck }) as { id: string; size: number; body_file: string | null }[];
      if (victims.length === 0) break;
      // Files first: removing them is what frees space, and the rows' DELETE itself needs room in the WAL. A
      // row whose file is gone reads as a miss (see cached()), so a DELETE that still fails loses nothing.
      for (const v of victims) if (v.body_file) this.bodies.remove(v.body_file);
      try {
        this.immediate(() => {
          for (const v of victims) del.run({ id: v.id });
        });
      } catch {
        // Still full: the rows go at the next eviction or cache clear.
        stuck += victims.length;
      }
      evicted += victims.length;
    }
    if (evicted > 0) {
      try {
        this.db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
      } catch {
        // Readers in the way: the background checkpointer shrinks it later.
      }
    }
    return evicted;
  }

  /** Empties the data and metadata caches; pending versions are untouched. */
  clearCache(): { entries: number; bytes: number } {
    const files: string[] = [];
    let entries = 0;
    let bytes = 0;
    this.immediate(() => {
      const s = this.db.query("SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS b FROM data_cache").get() as { n: number; b: number };
      entries = s.n;
      bytes = s.b;
      for (const r of this.db.query("SELECT body_file FROM data_cache WHERE body_file IS NOT NULL").all() as { body_file: string }[]) {
        files.push(r.body_file);
      }
      this.db.exec("DELETE FROM data_cache");
      this.db.exec("DELETE FROM meta_cache");
    });
    for (const f of files) this.bodies.remove(f);
    return { entries, bytes };
  }

  stats(): CacheStats {
    const c = this.db.query("SELECT count AS n, bytes AS b FROM totals WHERE name = 'data_cache'").get() as { n: number; b: number };
    const p = this.db
      .query(
        `SELECT t.count AS n, t.bytes AS b,
                (SELECT created_at FROM pending ORDER BY seq LIMIT 1) AS oldest,
                (SELECT COUNT(*) FROM pending WHERE held_reason IS NOT NULL) AS held
           FROM totals t WHERE t.name = 'pending'`,
      )
      .get() as { n: number; b: number; oldest: number | null; held: number | null };
    const m = this.db.query("SELECT COUNT(*) AS n FROM meta_cache").get() as { n: number };
    const hits = this.counter("cache_hits");
    const misses = this.counter("cache_misses");
    return {
      entries: c.n,
      bytes: c.b,
      maxBytes: this.maxBytes,
      hits,
      misses,
      hitRate: hits + misses > 0 ? hits / (hits + misses) : null,
      metaEntries: m.n,
      pending: p.n,
      pendingBytes: p.b,
      held: p.held ?? 0,
      oldestPendingMs: p.oldest === null ? null : Date.now() - p.oldest,
    };
  }

  /** Pending and held counts without scanning the cache (the flusher asks after every run). */
  pendingCounts(): { pending: number; held: number } {
    const r = this.db
      .query("SELECT (SELECT count FROM totals WHERE name = 'pending') AS n, (SELECT COUNT(*) FROM pending WHERE held_reason IS NOT NULL) AS h")
      .get() as { n: number; h: number };
    return { pending: r.n, held: r.h };
  }

  counter(name: string): number {
    this.saveCounters();
    return ((this.db.query("SELECT value FROM stats WHERE name = $name").get({ name }) as { value: number } | null)?.value ?? 0);
  }

  /** Hit and miss counters are kept in memory and written at most once a second
   * (a cache hit should not cost a SQLite write). */
  private unsaved = new Map<string, number>();
  private savedAt = 0;
  private countLater(name: string) {
    this.unsaved.set(name, (this.unsaved.get(name) ?? 0) + 1);
    if (Date.now() - this.savedAt > 1000) this.saveCounters();
  }

  private saveCounters() {
    this.savedAt = Date.now();
    if (this.unsaved.size === 0) return;
    const pending = this.unsaved;
    this.unsaved = new Map();
    for (const [name, by] of pending) this.bump(name, by);
  }

  private bump(name: string, by: number) {
    this.db
      .query("INSERT INTO stats (name, value) VALUES ($name, $by) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value")
      .run({ name, by });
  }

  // ---- metadata cache ----

  /** Latest meta of a key as last seen in Postgres, if fetched within ttlMs. */
  cachedMeta(key: string, ttlMs: number): { id: string | null; meta: string | null } | null {
    const r = this.db.query("SELECT id, meta, fetched_at FROM meta_cache WHERE key = $key").get({ key }) as
      | { id: string | null; meta: string | null; fetched_at: number }
      | null;
    if (!r || Date.now() - r.fetched_at > ttlMs) return null;
    return { id: r.id, meta: r.meta };
  }

  putMeta(key: string, id: string | null, meta: string | null) {
    this.db
      .query(
        `INSERT INTO meta_cache (key, id, meta, fetched_at) VALUES ($key, $id, $meta, $now)
         ON CONFLICT (key) DO UPDATE SET id = excluded.id, meta = excluded.meta, fetched_at = excluded.fetched_at`,
      )
      .run({ key, id, meta, now: Date.now() });
  }

  // ---- the flush lease: one flusher per journal ----

  /** Takes or renews the lease. False when another live process holds it. */
  acquireLease(): boolean {
    const now = Date.now();
    const host = os.hostname();
    let ok = false;
    this.immediate(() => {
      const cur = this.db.query("SELECT holder, pid, host, expires_at FROM flush_lease WHERE singleton = 1").get() as
        | { holder: string; pid: number; host: string; expires_at: number }
        | null;
      const free =
        !cur || cur.holder === this.holder || cur.expires_at < now || (cur.host === host && !processAlive(cur.pid));
      if (!free) return;
      this.db
        .query(
          `INSERT INTO flush_lease (singleton, holder, pid, host, expires_at) VALUES (1, $holder, $pid, $host, $exp)
           ON CONFLICT (singleton) DO UPDATE SET holder = excluded.holder, pid = excluded.pid, host = excluded.host, expires_at = excluded.expires_at`,
        )
        .run({ holder: this.holder, pid: process.pid, host, exp: now + LEASE_MS });
      ok = true;
    });
    return ok;
  }

  releaseLease() {
    try {
      this.db.query("DELETE FROM flush_lease WHERE holder = $holder").run({ holder: this.holder });
    } catch {
      // closing anyway
    }
  }

  /** Who flushes this journal now, if not us. */
  leaseHolder(): { pid: number; host: string } | null {
    const cur = this.db.query("SELECT holder, pid, host, expires_at FROM flush_lease WHERE singleton = 1").get() as
      | { holder: string; pid: number; host: string; expires_at: number }
      | null;
    if (!cur || cur.holder === this.holder || cur.expires_at < Date.now()) return null;
    if (cur.host === os.hostname() && !processAlive(cur.pid)) return null;
    return { pid: cur.pid, host: cur.host };
  }

  /** Removes body files that no row references (left by a crash mid-record). */
  collectGarbage(): number {
    const q = this.db.query(
      "SELECT 1 FROM pending WHERE body_file = $f UNION ALL SELECT 1 FROM data_cache WHERE body_file = $f LIMIT 1",
    );
    return this.bodies.collectGarbage((f) => q.get({ f }) !== null);
  }

  private immediate(fn: () => void) {
    this.db.transaction(fn).immediate();
  }
}

/** SQLite (or the file system) says the cache disk is full. */
export function isDiskFull(e: unknown): boolean {
  const x = e as { code?: string; errno?: unknown };
  return x?.code === "ENOSPC" || x?.code === "SQLITE_FULL" || x?.errno === "ENOSPC" || /SQLITE_FULL|disk is full|ENOSPC/i.test(String(e));
}
