// NFS file handle identities, kept in the journal so that a restarted daemon
// serves the same handle for the same file (journal/migrations/003). One row
// per path the NFS server ever handed out: fileid ↔ path + generation. The
// NFS layer owns the meaning (src/nfs/filehandle.ts); this is only storage,
// with an in-memory copy so a handle costs no SQLite read after the first.
import type { Database } from "bun:sqlite";
import { randomInt } from "node:crypto";
import type { Journal } from "./journal.ts";

/** Rows at path ?1 or below it. Lengths are SQLite's (characters), never JavaScript's (UTF-16 units):
 * the two differ for names outside the BMP, such as emoji. */
const SUBTREE = "(path = ?1 OR substr(path, 1, length(?1) + 1) = ?1 || '/')";

export interface HandleRow {
  fileid: bigint;
  /** Relative to the mount root, "" for the root. */
  path: string;
  generation: number;
  createVerf: Buffer | null;
}

interface DbRow {
  fileid: number | bigint;
  path: string;
  generation: number;
  create_verf: Uint8Array | null;
}

function fromDb(r: DbRow): HandleRow {
  return { fileid: BigInt(r.fileid), path: r.path, generation: r.generation, createVerf: r.create_verf ? Buffer.from(r.create_verf) : null };
}

/** `path` is `dir` or below it. */
function within(path: string, dir: string): boolean {
  return path === dir || dir === "" || path.startsWith(dir + "/");
}

export class HandleTable {
  private readonly db: Database;
  /** 8 random bytes, fixed for the life of the journal. */
  readonly exportId: Buffer;
  private readonly byPath = new Map<string, HandleRow>();
  private readonly byId = new Map<bigint, HandleRow>();

  constructor(journal: Journal) {
    this.db = journal.db;
    const row = this.db.query("SELECT value FROM info WHERE name = 'nfs_export_id'").get() as { value: string } | null;
    if (!row || !/^[0-9a-f]{16}$/.test(row.value)) throw new Error("the journal has no NFS export id (migration 003 did not run)");
    this.exportId = Buffer.from(row.value, "hex");
  }

  private remember(r: HandleRow): HandleRow {
    this.byPath.set(r.path, r);
    this.byId.set(r.fileid, r);
    return r;
  }

  private forget(r: HandleRow) {
    if (this.byPath.get(r.path) === r) this.byPath.delete(r.path);
    if (this.byId.get(r.fileid) === r) this.byId.delete(r.fileid);
  }

  byFileid(fileid: bigint): HandleRow | null {
    const hit = this.byId.get(fileid);
    if (hit) return hit;
    // Above 2^63 SQLite cannot hold it: no such row (a forged handle).
    if (fileid > 0x7fffffffffffffffn) return null;
    const r = this.db.query("SELECT * FROM nfs_handles WHERE fileid = ?").get(fileid) as DbRow | null;
    return r ? this.remember(fromDb(r)) : null;
  }

  byPathOf(path: string): HandleRow | null {
    const hit = this.byPath.get(path);
    if (hit) return hit;
    const r = this.db.query("SELECT * FROM nfs_handles WHERE path = ?").get(path) as DbRow | null;
    return r ? this.remember(fromDb(r)) : null;
  }

  /** The row for `path`, made now if the path never had one. */
  ensure(path: string): HandleRow {
    return this.byPathOf(path) ?? this.insert(path);
  }

  /** ensure() for many paths in one SQLite transaction (a READDIRPLUS page of new names). */
  ensureMany(paths: string[]): HandleRow[] {
    const missing = paths.filter((p) => !this.byPathOf(p));
    if (missing.length > 1) this.db.transaction(() => missing.forEach((p) => this.insert(p)))();
    else if (missing.length === 1) this.insert(missing[0]);
    return paths.map((p) => this.byPathOf(p)!);
  }

  private insert(path: string): HandleRow {
    // Generation: random, never 0, so that fileid alone does not make a valid handle.
    const generation = randomInt(1, 0x7fffffff);
    const r = this.db
      .query("INSERT INTO nfs_handles (path, generation) VALUES (?, ?) ON CONFLICT (path) DO NOTHING RETURNING *")
      .get(path, generation) as DbRow | null;
    // Another process (a second server on the same journal) inserted it first: take theirs.
    const row = r ?? (this.db.query("SELECT * FROM nfs_handles WHERE path = ?").get(path) as DbRow);
    return this.remember(fromDb(row));
  }

  setCreateVerf(path: string, verf: Uint8Array | null) {
    const row = this.ensure(path);
    this.db.query("UPDATE nfs_handles SET create_verf = ? WHERE fileid = ?").run(verf, row.fileid);
    row.createVerf = verf ? Buffer.from(verf) : null;
  }

  /** The file at `path` (and, for a directory, everything below it) is gone: its handles become stale. */
  remove(path: string) {
    if (path === "") return; // the root never goes away
    this.db.query(`DELETE FROM nfs_handles WHERE ${SUBTREE}`).run(path);
    for (const r of [...this.byPath.values()]) if (within(r.path, path)) this.forget(r);
  }

  /**
   * A rename: `from` (and everything below it) now lives at `to`; whatever
   * was at `to` was replaced and is gone. One transaction.
   */
  rename(from: string, to: string) {
    if (from === to || from === "") return;
    this.db.transaction(() => {
      this.db.query(`DELETE FROM nfs_handles WHERE ${SUBTREE}`).run(to);
      this.db.query(`UPDATE nfs_handles SET path = ?2 || substr(path, length(?1) + 1) WHERE ${SUBTREE}`).run(from, to);
    })();
    for (const r of [...this.byPath.values()]) if (within(r.path, to)) this.forget(r);
    const moved = [...this.byPath.values()].filter((r) => within(r.path, from));
    for (const r of moved) this.forget(r);
    for (const r of moved) this.remember({ ...r, path: to + r.path.slice(from.length) });
  }
}
