// The 22 NFSv3 procedures (RFC 1813 §3.3) over the vfs, in ONE table: each
// entry decodes its arguments, calls the vfs, and returns an encoder for its
// result. Failures go through status.ts's one errno table and the procedure's
// own resfail layout. No filesystem meaning lives here that the vfs has: this
// layer adds only what NFS needs and the vfs has no reason to know:
// persistent handles (the journal's handle table), stateless I/O over
// open/close (open-files.ts), and stateless directory cookies.
import { randomBytes } from "node:crypto";
import type { HandleRow, HandleTable } from "../journal/handles.ts";
import { MAX_FILE_SIZE } from "../meta.ts";
import { type Attr, type Caller, Errno, type SetAttr, VfsError } from "../vfs/types.ts";
import type { PgVfs } from "../vfs/vfs.ts";
import { decodeFileHandle, encodeFileHandle } from "./filehandle.ts";
import * as A from "./nfs3-args.ts";
import * as R from "./nfs3-results.ts";
import * as X from "./nfs3-xdr.ts";
import { OpenFiles } from "./open-files.ts";
import { nfsStatusOf } from "./status.ts";
import type { XdrReader, XdrString, XdrWriter } from "./xdr.ts";

/** Largest READ and WRITE: one record of DEFAULT_MAX_RECORD (record.ts) holds this plus every header. */
export const RTMAX = 1024 * 1024;
export const WTMAX = 1024 * 1024;
/** Preferred READDIR size: a page of a few hundred names per round trip. */
const DTPREF = 64 * 1024;

/** A procedure's failure with its nfsstat3 (STALE, BADHANDLE, NOT_SYNC, ...): not a vfs error. */
export class NfsError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "NfsError";
  }
}

export type Encode = (w: XdrWriter) => void;

export interface Proc<T = any> {
  name: string;
  decode(r: XdrReader): T;
  run(args: T, who: Caller): Promise<Encode>;
  /** Writes the result for a failure with `status`, in this procedure's resfail layout. */
  fail(w: XdrWriter, status: number): void;
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const O_RDWR = 2;
const O_CREAT = 0o100;
const O_EXCL = 0o200;
const NS = 1_000_000_000n;

function ftype(mode: number): number {
  switch (mode & S_IFMT) {
    case S_IFDIR:
      return X.NF3DIR;
    case S_IFLNK:
      return X.NF3LNK;
    default:
      return X.NF3REG;
  }
}

function time3(ns: bigint): X.Nfstime3 {
  let sec = ns / NS;
  let nsec = ns % NS;
  if (nsec < 0n) {
    sec -= 1n;
    nsec += NS;
  }
  // nfstime3 seconds are unsigned 32-bit: before 1970 or after 2106 is clamped, not wrapped.
  if (sec < 0n) return { seconds: 0, nseconds: 0 };
  if (sec > 0xffffffffn) return { seconds: 0xffffffff, nseconds: 999_999_999 };
  return { seconds: Number(sec), nseconds: Number(nsec) };
}

function nsOf(t: X.Nfstime3): bigint {
  return BigInt(t.seconds) * NS + BigInt(Math.min(t.nseconds, 999_999_999));
}

function sameTime(a: X.Nfstime3, b: X.Nfstime3) {
  return a.seconds === b.seconds && a.nseconds === b.nseconds;
}

function childPath(dir: string, name: string): string {
  return dir === "" ? name : `${dir}/${name}`;
}

function parentPath(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "" : path.slice(0, i);
}

/**
 * A directory cookie from a name: 64-bit, deterministic (two 32-bit
 * multiply-xorshift lanes over the UTF-8 bytes), at least 3 (0 starts a
 * listing, 1 and 2 are "." and ".."). Entries are listed in cookie order, so
 * a cookie says where to resume in any later state of the directory, in any
 * later process: ext4's htree cookies, for the same reason.
 */
export function nameCookie(name: string): bigint {
  const b = Buffer.from(name, "utf8");
  let h1 = 0xdeadbeef ^ b.length;
  let h2 = 0x41c6ce57 ^ b.length;
  for (let i = 0; i < b.length; i++) {
    h1 = Math.imul(h1 ^ b[i], 2654435761);
    h2 = Math.imul(h2 ^ b[i], 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  // 62 bits: positive in every signed reading a client might make, and room for the +3.
  return ((BigInt(h1 >>> 0) & 0x3fffffffn) << 32n) + BigInt(h2 >>> 0) + 3n;
}

interface Listed {
  name: string;
  nameBytes: number;
  cookie: bigint;
  ino: bigint;
  attr: Attr;
}

export interface Nfs3Options {
  vfs: PgVfs;
  handles: HandleTable;
  /** WRITE and COMMIT's first writeverf3: random per server start (it changes when UNSTABLE data may be lost). */
  verifier: Buffer;
  log: { warn(obj: object, msg?: string): void; error(obj: object, msg?: string): void; debug(obj: object, msg?: string): void };
  idleCloseMs?: number;
}

/** The NFSv3 program: the procedure table and the state it needs. */
export class Nfs3 {
  readonly files: OpenFiles;
  readonly procs: Proc[];
  private readonly vfs: PgVfs;
  private readonly handles: HandleTable;
  /** WRITE and COMMIT's writeverf3 now. The one place it changes: loseUnstable(). */
  private verf: Buffer;
  /** fattr3.fsid: the export id, so two pgfiles mounts never look like one file system to a client. */
  private readonly fsid: bigint;
  /** fileid → the vfs inode last seen for it (inode numbers live only as long as this process). */
  private readonly inoOf = new Map<bigint, bigint>();
  /** A directory's sorted listing, reused while the directory is unchanged (a 10,000-name READDIRPLUS is ~200 calls). */
  private readonly listings = new Map<bigint, { stamp: string; at: number; entries: Listed[] }>();
  private readonly root: HandleRow;
  /** Per (directory, name) locks for the calls that add or remove a name. */
  private readonly names = new KeyedLocks();

  constructor(private readonly o: Nfs3Options) {
    this.vfs = o.vfs;
    this.handles = o.handles;
    this.verf = Buffer.from(o.verifier);
    this.fsid = o.handles.exportId.readBigUInt64BE(0);
    this.files = new OpenFiles(o.vfs, o.log, o.idleCloseMs, (fileid, err) => this.loseUnstable(fileid, err));
    this.root = o.handles.ensure("");
    this.inoOf.set(this.root.fileid, 1n);
    this.procs = this.table();
  }

  /** The write verifier WRITE and COMMIT answer now. */
  get verifier(): Buffer {
    return this.verf;
  }

  /**
   * UNSTABLE writes to `fileid` that no COMMIT covered may be lost (closing its
   * open failed). RFC 1813: the server must then change its write verifier, so
   * every client sees a COMMIT answer a verifier its WRITEs did not get and
   * sends its uncommitted writes again (all files, all clients: the verifier is
   * per server, and resending more than was lost is harmless).
   */
  private loseUnstable(fileid: bigint, err: unknown) {
    let next = randomBytes(8);
    while (next.equals(this.verf)) next = randomBytes(8);
    this.verf = next;
    this.o.log.warn(
      { fileid: String(fileid), err: (err as Error)?.message, verifier: next.toString("hex") },
      "nfs: closing a file failed; its UNSTABLE writes may be lost: new write verifier, clients will send them again",
    );
  }

  /** The export's root handle (MNT's answer). */
  rootHandle(): Buffer {
    return this.fh(this.root);
  }

  private fh(row: HandleRow): Buffer {
    return encodeFileHandle({ exportId: this.handles.exportId, fileid: row.fileid, generation: row.generation });
  }

  fattr(a: Attr, fileid: bigint): X.Fattr3 {
    return {
      type: ftype(a.mode), mode: a.mode & 0o7777, nlink: a.nlink, uid: a.uid, gid: a.gid, size: BigInt(a.size),
      used: BigInt(a.blocks) * 512n, rdev: { specdata1: 0, specdata2: 0 }, fsid: this.fsid, fileid,
      atime: time3(a.atimeNs), mtime: time3(a.mtimeNs), ctime: time3(a.ctimeNs),
    };
  }

  private static wcc(a: Attr): X.WccAttr {
    return { size: BigInt(a.size), mtime: time3(a.mtimeNs), ctime: time3(a.ctimeNs) };
  }

  // ---- handles ↔ inodes ----

  /** The row and current inode a handle names; BADHANDLE when it is not one of ours, STALE when its file is gone. */
  private async resolve(fh: Buffer, who: Caller): Promise<{ row: HandleRow; ino: bigint }> {
    const h = decodeFileHandle(fh);
    if (!h) throw new NfsError(X.NFS3ERR_BADHANDLE, "not a pgfiles file handle");
    if (!h.exportId.equals(this.handles.exportId)) throw new NfsError(X.NFS3ERR_STALE, "a handle of another export");
    const row = this.handles.byFileid(h.fileid);
    if (!row || row.generation !== h.generation) throw new NfsError(X.NFS3ERR_STALE, "the file was removed");
    return { row, ino: await this.inoFor(row, who) };
  }

  /** The inode at the row's path: the one seen last if it is still there, else found again from the root. */
  private async inoFor(row: HandleRow, who: Caller): Promise<bigint> {
    const known = this.inoOf.get(row.fileid);
    if (known !== undefined && this.vfs.pathOf(known) === row.path) return known;
    let ino = 1n;
    if (row.path !== "") {
      for (const name of row.path.split("/")) {
        try {
          ino = (await this.vfs.lookup(ino, name, who)).ino;
        } catch (e) {
          // Gone (removed by another writer, or in a previous life of this daemon): the handle is stale.
          // The row stays: a directory not reachable while Postgres is away may be back later.
          if (e instanceof VfsError && (e.errno === Errno.ENOENT || e.errno === Errno.ENOTDIR)) {
            throw new NfsError(X.NFS3ERR_STALE, `${row.path} is gone`);
          }
          throw e;
        }
        // NFS holds no kernel references: a node lives as long as its directory holds it.
        this.vfs.forget(ino, 1);
      }
    }
    this.inoOf.set(row.fileid, ino);
    return ino;
  }

  /** A name in a directory as the vfs takes it: UTF-8 text of at most 255 bytes. */
  private static name(n: XdrString, forCreate: boolean): string {
    if (!n.isUtf8) throw new VfsError(forCreate ? Errno.EINVAL : Errno.ENOENT, "names must be UTF-8");
    if (n.bytes.length > X.NFS3_MAXNAMLEN) throw new VfsError(Errno.ENAMETOOLONG, "name too long");
    if (n.bytes.length === 0) throw new VfsError(forCreate ? Errno.EINVAL : Errno.ENOENT, "empty name");
    return n.text;
  }

  /** Looks up a child and records its row; the attributes are the vfs's. */
  private async child(dir: { row: HandleRow; ino: bigint }, name: string, who: Caller): Promise<{ row: HandleRow; ino: bigint; attr: Attr }> {
    if (name === ".") return { ...dir, attr: await this.vfs.getattr(dir.ino, who) };
    if (name === "..") {
      const row = this.handles.ensure(parentPath(dir.row.path));
      const ino = await this.inoFor(row, who);
      return { row, ino, attr: await this.vfs.getattr(ino, who) };
    }
    const attr = await this.vfs.lookup(dir.ino, name, who);
    this.vfs.forget(attr.ino, 1);
    const row = this.handles.ensure(childPath(dir.row.path, name));
    this.inoOf.set(row.fileid, attr.ino);
    return { row, ino: attr.ino, attr: await this.attrOf(row.fileid, attr.ino, attr, who) };
  }

  /** A file this server holds open shows the size its writes made: ask the vfs, not a snapshot. */
  private async attrOf(fileid: bigint, ino: bigint, snapshot: Attr, who: Caller): Promise<Attr> {
    return this.files.isOpen(fileid) ? this.vfs.getattr(ino, who) : snapshot;
  }

  /**
   * A new object at `path`: a new identity (fileid), even if a handle for an
   * older file there exists. But a row already seen for this very inode (vfs
   * inode numbers are never reused in a process) was made for this object by
   * a call that ran while it was being made (the vfs shows a new name before
   * its create returns): a LOOKUP or a READDIRPLUS. That handle is out
   * already; it is kept, not made STALE.
   */
  private fresh(path: string, ino: bigint): HandleRow {
    const existing = this.handles.byPathOf(path);
    if (existing && this.inoOf.get(existing.fileid) === ino) return existing;
    this.handles.remove(path);
    const row = this.handles.ensure(path);
    this.inoOf.set(row.fileid, ino);
    return row;
  }

  private async dirAttr(ino: bigint, who: Caller): Promise<Attr> {
    return this.vfs.getattr(ino, who);
  }

  private toSetAttr(s: X.Sattr3): SetAttr {
    const set: SetAttr = {};
    if (s.mode !== undefined) set.mode = s.mode & 0o7777;
    if (s.uid !== undefined) set.uid = s.uid;
    if (s.gid !== undefined) set.gid = s.gid;
    if (s.size !== undefined) {
      if (s.size > BigInt(MAX_FILE_SIZE)) throw new VfsError(Errno.EFBIG, "file larger than pgfiles can store");
      set.size = Number(s.size);
    }
    if (s.atime !== undefined) set.atimeNs = s.atime === "server" ? "now" : nsOf(s.atime);
    if (s.mtime !== undefined) set.mtimeNs = s.mtime === "server" ? "now" : nsOf(s.mtime);
    return set;
  }

  private static hasAny(s: SetAttr): boolean {
    return Object.keys(s).length > 0;
  }

  /**
   * The server clears setuid/setgid itself, as a local filesystem (and knfsd) would: a truncate by a caller
   * other than root, and any change of owner or group. The vfs decides which bits go (and keeps a directory's).
   */
  private static dropPrivileges(s: SetAttr, who: Caller): SetAttr {
    const truncate = s.size !== undefined && who.uid !== 0;
    return truncate || s.uid !== undefined || s.gid !== undefined ? { ...s, killSuidGid: true } : s;
  }

  // ---- directories ----

  private async listing(dir: { row: HandleRow; ino: bigint }, who: Caller): Promise<Listed[]> {
    const a = await this.vfs.getattr(dir.ino, who);
    const stamp = `${dir.ino}:${a.mtimeNs}:${a.ctimeNs}:${a.nlink}`;
    const cached = this.listings.get(dir.row.fileid);
    // Reused for a second at most: another writer's changes arrive without touching the directory's times.
    if (cached && cached.stamp === stamp && Date.now() - cached.at < 1000) return cached.entries;
    const fh = await this.vfs.opendir(dir.ino, who);
    let raw;
    try {
      raw = await this.vfs.readdir(dir.ino, fh, 0n, Number.MAX_SAFE_INTEGER, false);
    } finally {
      await this.vfs.releasedir(dir.ino, fh);
    }
    const entries: Listed[] = raw
      .filter((e) => e.name !== "." && e.name !== "..")
      .map((e) => ({ name: e.name, nameBytes: Buffer.byteLength(e.name), cookie: nameCookie(e.name), ino: e.attr.ino, attr: e.attr }));
    entries.sort((x, y) => (x.cookie < y.cookie ? -1 : x.cookie > y.cookie ? 1 : x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
    this.listings.set(dir.row.fileid, { stamp, at: Date.now(), entries });
    if (this.listings.size > 64) this.listings.delete(this.listings.keys().next().value!);
    return entries;
  }

  /** Index of the first entry after `cookie` (0: the start, 1: after ".", 2: after ".."). */
  private static after(entries: Listed[], cookie: bigint): number {
    let lo = 0;
    let hi = entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (entries[mid].cookie <= cookie) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * The entries of one READDIR or READDIRPLUS reply. "." (cookie 1) and ".."
   * (cookie 2) come first, as every NFS server sends them; then the names in
   * cookie order. `fits` says whether one more entry still fits.
   *
   * cookieverf is always zeros and any verifier is accepted: a cookie is a
   * hash of a name, valid in every state of the directory, so there is no
   * listing to go stale and NFS3ERR_BAD_COOKIE never needs to be said (which
   * clients answer by restarting the listing: duplicated names in `ls`).
   * Names added or removed during a listing may or may not show, as POSIX
   * allows readdir; no name present throughout is skipped or shown twice.
   */
  private async page(
    dir: { row: HandleRow; ino: bigint },
    cookie: bigint,
    who: Caller,
    fits: (name: string, nameBytes: number) => boolean,
  ): Promise<{ items: { name: string; cookie: bigint; ino: bigint; attr: Attr; path: string }[]; eof: boolean }> {
    const entries = await this.listing(dir, who);
    const items: { name: string; cookie: bigint; ino: bigint; attr: Attr; path: string }[] = [];
    if (cookie === 0n) {
      if (!fits(".", 1)) return { items, eof: false };
      items.push({ name: ".", cookie: 1n, ino: dir.ino, attr: await this.vfs.getattr(dir.ino, who), path: dir.row.path });
    }
    if (cookie <= 1n) {
      if (!fits("..", 2)) return { items, eof: false };
      const up = await this.child(dir, "..", who);
      items.push({ name: "..", cookie: 2n, ino: up.ino, attr: up.attr, path: up.row.path });
    }
    let i = cookie <= 2n ? 0 : Nfs3.after(entries, cookie);
    for (; i < entries.length; i++) {
      const e = entries[i];
      if (!fits(e.name, e.nameBytes)) break;
      items.push({ name: e.name, cookie: e.cookie, ino: e.ino, attr: e.attr, path: childPath(dir.row.path, e.name) });
    }
    return { items, eof: i >= entries.length };
  }

  // ---- the procedures ----

  private table(): Proc[] {
    const attrFail = (w: XdrWriter, status: number) => R.encodeAttrFail3(w, status, undefined);
    const wccFail = (w: XdrWriter, status: number) => R.encodeWccFail3(w, status, {});
    const ZERO_VERF = Buffer.alloc(8);

    const procs: Proc[] = [];
    const def = <T>(num: number, p: Omit<Proc<T>, "name">) => {
      procs[num] = { name: X.nfs3ProcName(num), ...p };
    };

    def(X.NFSPROC3_NULL, { decode: () => null, run: async () => () => {}, fail: () => {} });

    def(X.NFSPROC3_GETATTR, {
      decode: A.decodeGetattr3Args,
      run: async (a, who) => {
        const f = await this.resolve(a.object, who);
        const attr = await this.vfs.getattr(f.ino, who);
        return (w) => R.encodeGetattr3Ok(w, { objAttributes: this.fattr(attr, f.row.fileid) });
      },
      fail: R.encodeFail3,
    });

    def(X.NFSPROC3_SETATTR, {
      decode: A.decodeSetattr3Args,
      run: async (a, who) => {
        const f = await this.resolve(a.object, who);
        const set = this.toSetAttr(a.newAttributes);
        return this.files.lock(f.row.fileid, async () => {
          const before = await this.vfs.getattr(f.ino, who);
          // The guard: apply only if nobody changed the file since the client looked (its ctime then).
          if (a.guard && !sameTime(a.guard, time3(before.ctimeNs))) {
            return (w: XdrWriter) => R.encodeWcc3Res(w, X.NFS3ERR_NOT_SYNC, { before: Nfs3.wcc(before), after: this.fattr(before, f.row.fileid) });
          }
          const fh = this.files.writeFh(f.row.fileid);
          if (set.size !== undefined && fh !== undefined) set.fh = fh;
          const after = await this.vfs.setattr(f.ino, Nfs3.dropPrivileges(set, who), who);
          return (w: XdrWriter) => R.encodeWcc3Res(w, X.NFS3_OK, { before: Nfs3.wcc(before), after: this.fattr(after, f.row.fileid) });
        });
      },
      fail: (w, status) => R.encodeWcc3Res(w, status, {}),
    });

    def(X.NFSPROC3_LOOKUP, {
      decode: A.decodeLookup3Args,
      run: async (a, who) => {
        const dir = await this.resolve(a.what.dir, who);
        const name = Nfs3.name(a.what.name, false);
        const dirAttr = await this.dirAttr(dir.ino, who);
        if ((dirAttr.mode & S_IFMT) !== S_IFDIR) throw new VfsError(Errno.ENOTDIR, "not a directory");
        const c = await this.child(dir, name, who);
        return (w) =>
          R.encodeLookup3Ok(w, { object: this.fh(c.row), objAttributes: this.fattr(c.attr, c.row.fileid), dirAttributes: this.fattr(dirAttr, dir.row.fileid) });
      },
      fail: attrFail,
    });

    def(X.NFSPROC3_ACCESS, {
      decode: A.decodeAccess3Args,
      run: async (a, who) => {
        const f = await this.resolve(a.object, who);
        await this.vfs.access(f.ino, 0, who);
        const attr = await this.vfs.getattr(f.ino, who);
        const granted = accessBits(attr, who) & a.access;
        return (w) => R.encodeAccess3Ok(w, { objAttributes: this.fattr(attr, f.row.fileid), access: granted });
      },
      fail: attrFail,
    });

    def(X.NFSPROC3_READLINK, {
      decode: A.decodeReadlink3Args,
      run: async (a, who) => {
        const f = await this.resolve(a.symlink, who);
        const target = await this.vfs.readlink(f.ino, who);
        const attr = await this.vfs.getattr(f.ino, who);
        return (w) => R.encodeReadlink3Ok(w, { symlinkAttributes: this.fattr(attr, f.row.fileid), data: target });
      },
      fail: attrFail,
    });

    def(X.NFSPROC3_READ, {
      decode: A.decodeRead3Args,
      run: async (a, who) => {
        const f = await this.resolve(a.file, who);
        const count = Math.min(a.count, RTMAX);
        return this.files.lock(f.row.fileid, async () => {
          const pre = await this.vfs.getattr(f.ino, who);
          regularFile(pre);
          let data: Uint8Array = new Uint8Array(0);
          if (a.offset < BigInt(pre.size) && count > 0) {
            const fh = await this.files.forRead(f.row.fileid, f.ino, who);
            data = await this.vfs.read(f.ino, fh, Number(a.offset), count);
          }
          const attr = await this.vfs.getattr(f.ino, who);
          const eof = a.offset + BigInt(data.length) >= BigInt(attr.size);
          return (w: XdrWriter) => R.encodeRead3Ok(w, { fileAttributes: this.fattr(attr, f.row.fileid), eof, data });
        });
      },
      fail: attrFail,
    });

    def(X.NFSPROC3_WRITE, {
      decode: A.decodeWrite3Args,
      run: async (a, who) => {
        const f = await this.resolve(a.file, who);
        if (a.count > WTMAX) throw new VfsError(Errno.EINVAL, `a WRITE of ${a.count} bytes is over wtmax`);
        if (a.offset + BigInt(a.count) > BigInt(MAX_FILE_SIZE)) throw new VfsError(Errno.EFBIG, "file larger than pgfiles can store");
        return this.files.lock(f.row.fileid, async () => {
          const before = await this.vfs.getattr(f.ino, who);
          regularFile(before);
          const fh = await this.files.forWrite(f.row.fileid, f.ino, who);
          // A write by anyone but root drops setuid/setgid (nobody else tells this server to, unlike FUSE's flag).
          if (who.uid !== 0) await this.vfs.setattr(f.ino, { killSuidGid: true }, who);
          const n = await this.vfs.write(f.ino, fh, Number(a.offset), a.data, who);
          // The verifier these bytes went in under (taken under the lock: a failed close of this open changes it after).
          const verf = this.verifier;
          let committed = X.UNSTABLE;
          if (a.stable !== X.UNSTABLE) {
            // DATA_SYNC and FILE_SYNC: durable before we answer. fsync records the version in the journal with
            // everything it has (data and attributes), so the answer is FILE_SYNC either way.
            await this.vfs.fsync(f.ino, fh);
            committed = X.FILE_SYNC;
          }
          const after = await this.vfs.getattr(f.ino, who);
          return (w: XdrWriter) =>
            R.encodeWrite3Ok(w, { fileWcc: { before: Nfs3.wcc(before), after: this.fattr(after, f.row.fileid) }, count: n, committed, verf });
        });
      },
      fail: wccFail,
    });

    def(X.NFSPROC3_CREATE, {
      decode: A.decodeCreate3Args,
      run: async (a, who) => {
        const dir = await this.resolve(a.where.dir, who);
        const name = Nfs3.name(a.where.name, true);
        const path = childPath(dir.row.path, name);
        const before = await this.dirAttr(dir.ino, who);
        const how = a.how;
        const attrs = how.mode === X.EXCLUSIVE ? {} : how.objAttributes;
        const set = this.toSetAttr(attrs);
        const done = async (row: HandleRow, ino: bigint) => {
          const attr = await this.vfs.getattr(ino, who);
          const dirAfter = await this.dirAttr(dir.ino, who);
          return (w: XdrWriter) =>
            R.encodeNewObject3Ok(w, { obj: this.fh(row), objAttributes: this.fattr(attr, row.fileid), dirWcc: { before: Nfs3.wcc(before), after: this.fattr(dirAfter, dir.row.fileid) } });
        };
        const existing = async () => {
          const c = await this.child(dir, name, who);
          if (how.mode === X.GUARDED) throw new VfsError(Errno.EEXIST, "file exists");
          if (how.mode === X.EXCLUSIVE) {
            // A retransmitted CREATE whose first answer was lost: the same verifier made this file.
            if (c.row.createVerf?.equals(how.verf)) return done(c.row, c.ino);
            throw new VfsError(Errno.EEXIST, "file exists");
          }
          // UNCHECKED: the existing file, with the attributes asked for (a size of 0 truncates it).
          if ((c.attr.mode & S_IFMT) !== S_IFREG) throw new VfsError((c.attr.mode & S_IFMT) === S_IFDIR ? Errno.EISDIR : Errno.EEXIST, "not a regular file");
          if (Nfs3.hasAny(set)) {
            await this.files.lock(c.row.fileid, async () => {
              const fh = this.files.writeFh(c.row.fileid);
              await this.vfs.setattr(c.ino, Nfs3.dropPrivileges({ ...set, ...(set.size !== undefined && fh !== undefined ? { fh } : {}) }, who), who);
            });
          }
          return done(c.row, c.ino);
        };
        try {
          await this.vfs.lookup(dir.ino, name, who).then((x) => this.vfs.forget(x.ino, 1));
          return await existing();
        } catch (e) {
          if (!(e instanceof VfsError && e.errno === Errno.ENOENT)) throw e;
        }
        let made;
        try {
          made = await this.vfs.create(dir.ino, name, set.mode ?? 0o644, O_RDWR | O_CREAT | O_EXCL, who);
        } catch (e) {
          // Created meanwhile (a retransmission of this very CREATE running alongside): as if it existed.
          if (e instanceof VfsError && e.errno === Errno.EEXIST) return existing();
          throw e;
        }
        this.vfs.forget(made.attr.ino, 1);
        const row = this.fresh(path, made.attr.ino);
        // The new file stays open for the WRITEs that follow; it becomes its version at COMMIT or when idle.
        await this.files.lock(row.fileid, async () => {
          this.files.adopt(row.fileid, made.attr.ino, made.opened.fh, true);
          if (how.mode === X.EXCLUSIVE) this.handles.setCreateVerf(path, how.verf);
          const rest = { ...set };
          delete rest.mode;
          if (Nfs3.hasAny(rest)) await this.vfs.setattr(made.attr.ino, { ...rest, ...(rest.size !== undefined ? { fh: made.opened.fh } : {}) }, who);
        });
        return done(row, made.attr.ino);
      },
      fail: wccFail,
    });

    def(X.NFSPROC3_MKDIR, {
      decode: A.decodeMkdir3Args,
      run: async (a, who) => {
        const dir = await this.resolve(a.where.dir, who);
        const name = Nfs3.name(a.where.name, true);
        const before = await this.dirAttr(dir.ino, who);
        const set = this.toSetAttr(a.attributes);
        const attr0 = await this.vfs.mkdir(dir.ino, name, set.mode ?? 0o755, who);
        this.vfs.forget(attr0.ino, 1);
        const row = this.fresh(childPath(dir.row.path, name), attr0.ino);
        const rest = { ...set };
        delete rest.mode;
        delete rest.size;
        const attr = Nfs3.hasAny(rest) ? await this.vfs.setattr(attr0.ino, rest, who) : attr0;
        const after = await this.dirAttr(dir.ino, who);
        return (w) =>
          R.encodeNewObject3Ok(w, { obj: this.fh(row), objAttributes: this.fattr(attr, row.fileid), dirWcc: { before: Nfs3.wcc(before), after: this.fattr(after, dir.row.fileid) } });
      },
      fail: wccFail,
    });

    def(X.NFSPROC3_SYMLINK, {
      decode: A.decodeSymlink3Args,
      run: async (a, who) => {
        const dir = await this.resolve(a.where.dir, who);
        const name = Nfs3.name(a.where.name, true);
        if (!a.symlink.symlinkData.isUtf8) throw new VfsError(Errno.EINVAL, "symlink targets must be UTF-8");
        const before = await this.dirAttr(dir.ino, who);
        const attr = await this.vfs.symlink(dir.ino, name, a.symlink.symlinkData.text, who);
        this.vfs.forget(attr.ino, 1);
        const row = this.fresh(childPath(dir.row.path, name), attr.ino);
        const after = await this.dirAttr(dir.ino, who);
        return (w) =>
          R.encodeNewObject3Ok(w, { obj: this.fh(row), objAttributes: this.fattr(attr, row.fileid), dirWcc: { before: Nfs3.wcc(before), after: this.fattr(after, dir.row.fileid) } });
      },
      fail: wccFail,
    });

    def(X.NFSPROC3_MKNOD, {
      decode: A.decodeMknod3Args,
      run: async (a, who) => {
        const dir = await this.resolve(a.where.dir, who);
        Nfs3.name(a.where.name, true);
        // RFC 1813: regular files, directories and symlinks are made with CREATE, MKDIR and SYMLINK.
        if (a.what.type === X.NF3REG || a.what.type === X.NF3DIR || a.what.type === X.NF3LNK) {
          throw new NfsError(X.NFS3ERR_BADTYPE, "MKNOD makes only devices, sockets and FIFOs");
        }
        void dir;
        // Devices, sockets and FIFOs have no place in an object store (FUSE's mknod says EPERM for the same reason).
        throw new NfsError(X.NFS3ERR_NOTSUPP, "pgfiles stores no devices, sockets or FIFOs");
      },
      fail: wccFail,
    });

    def(X.NFSPROC3_REMOVE, {
      decode: A.decodeRemove3Args,
      run: async (a, who) => {
        const dir = await this.resolve(a.object.dir, who);
        const name = Nfs3.name(a.object.name, false);
        const before = await this.dirAttr(dir.ino, who);
        const path = childPath(dir.row.path, name);
        const gone = this.handles.byPathOf(path);
        await this.vfs.unlink(dir.ino, name, who);
        // Removed: its open (if this server had one) makes no version, and every handle to it is STALE now.
        if (gone) await this.files.lock(gone.fileid, () => this.files.close(gone.fileid));
        this.handles.remove(path);
        const after = await this.dirAttr(dir.ino, who);
        return (w) => R.encodeWcc3Res(w, X.NFS3_OK, { before: Nfs3.wcc(before), after: this.fattr(after, dir.row.fileid) });
      },
      fail: (w, status) => R.encodeWcc3Res(w, status, {}),
    });

    def(X.NFSPROC3_RMDIR, {
      decode: A.decodeRmdir3Args,
      run: async (a, who) => {
        const dir = await this.resolve(a.object.dir, who);
        const name = Nfs3.name(a.object.name, false);
        if (name === ".") throw new VfsError(Errno.EINVAL, "cannot remove .");
        if (name === "..") throw new VfsError(Errno.ENOTEMPTY, "cannot remove ..");
        const before = await this.dirAttr(dir.ino, who);
        await this.vfs.rmdir(dir.ino, name, who);
        this.handles.remove(childPath(dir.row.path, name));
        const after = await this.dirAttr(dir.ino, who);
        return (w) => R.encodeWcc3Res(w, X.NFS3_OK, { before: Nfs3.wcc(before), after: this.fattr(after, dir.row.fileid) });
      },
      fail: (w, status) => R.encodeWcc3Res(w, status, {}),
    });

    def(X.NFSPROC3_RENAME, {
      decode: A.decodeRename3Args,
      run: async (a, who) => {
        const from = await this.resolve(a.from.dir, who);
        const to = await this.resolve(a.to.dir, who);
        const name = Nfs3.name(a.from.name, false);
        const newName = Nfs3.name(a.to.name, true);
        for (const n of [name, newName]) if (n === "." || n === "..") throw new VfsError(Errno.EINVAL, "cannot rename . or ..");
        const fromBefore = await this.dirAttr(from.ino, who);
        const toBefore = await this.dirAttr(to.ino, who);
        const fromPath = childPath(from.row.path, name);
        const toPath = childPath(to.row.path, newName);
        const replaced = this.handles.byPathOf(toPath);
        await this.vfs.rename(from.ino, name, to.ino, newName, 0, who);
        if (fromPath !== toPath) {
          // The replaced file is gone: its open (if any) makes no version, its handles are STALE.
          if (replaced) await this.files.lock(replaced.fileid, () => this.files.close(replaced.fileid));
          this.handles.rename(fromPath, toPath);
        }
        const fromAfter = await this.dirAttr(from.ino, who);
        const toAfter = await this.dirAttr(to.ino, who);
        return (w) =>
          R.encodeRename3Res(w, X.NFS3_OK, {
            fromdirWcc: { before: Nfs3.wcc(fromBefore), after: this.fattr(fromAfter, from.row.fileid) },
            todirWcc: { before: Nfs3.wcc(toBefore), after: this.fattr(toAfter, to.row.fileid) },
          });
      },
      fail: (w, status) => R.encodeRename3Res(w, status, { fromdirWcc: {}, todirWcc: {} }),
    });

    def(X.NFSPROC3_LINK, {
      decode: A.decodeLink3Args,
      run: async (a, who) => {
        const f = await this.resolve(a.file, who);
        await this.resolve(a.link.dir, who);
        const attr = await this.vfs.getattr(f.ino, who);
        // One key is one file: a second name for it has no representation (FUSE's LINK says EPERM). FSINFO does
        // not claim FSF3_LINK, so a client that reads it does not even try.
        return (w) => R.encodeLink3Res(w, X.NFS3ERR_NOTSUPP, { fileAttributes: this.fattr(attr, f.row.fileid), linkdirWcc: {} });
      },
      fail: (w, status) => R.encodeLink3Res(w, status, { linkdirWcc: {} }),
    });

    def(X.NFSPROC3_READDIR, {
      decode: A.decodeReaddir3Args,
      run: async (a, who) => {
        const dir = await this.resolve(a.dir, who);
        const dirAttr = await this.dirAttr(dir.ino, who);
        if ((dirAttr.mode & S_IFMT) !== S_IFDIR) throw new VfsError(Errno.ENOTDIR, "not a directory");
        const count = Math.min(a.count, RTMAX);
        let used = R.readdirResokBaseSize(true);
        const { items, eof } = await this.page(dir, a.cookie, who, (_n, bytes) => {
          const size = R.entry3Size(bytes);
          if (used + size > count) return false;
          used += size;
          return true;
        });
        if (items.length === 0 && !eof) throw new NfsError(X.NFS3ERR_TOOSMALL, "count too small for one entry");
        const rows = this.handles.ensureMany(items.map((i) => i.path));
        const entries = items.map((it, k) => ({ fileid: rows[k].fileid, name: it.name, cookie: it.cookie }));
        return (w) => R.encodeReaddir3Ok(w, { dirAttributes: this.fattr(dirAttr, dir.row.fileid), cookieverf: ZERO_VERF, entries, eof });
      },
      fail: attrFail,
    });

    def(X.NFSPROC3_READDIRPLUS, {
      decode: A.decodeReaddirplus3Args,
      run: async (a, who) => {
        const dir = await this.resolve(a.dir, who);
        const dirAttr = await this.dirAttr(dir.ino, who);
        if ((dirAttr.mode & S_IFMT) !== S_IFDIR) throw new VfsError(Errno.ENOTDIR, "not a directory");
        const maxcount = Math.min(a.maxcount, RTMAX);
        let used = R.readdirResokBaseSize(true);
        let dirUsed = 0;
        const { items, eof } = await this.page(dir, a.cookie, who, (_n, bytes) => {
          const size = R.entryplus3Size(bytes, true, 24);
          const dirSize = R.entry3Size(bytes);
          // dircount bounds the names part; at least one entry goes whatever it says (clients send small ones).
          if (used + size > maxcount || (dirUsed > 0 && dirUsed + dirSize > a.dircount)) return false;
          used += size;
          dirUsed += dirSize;
          return true;
        });
        if (items.length === 0 && !eof) throw new NfsError(X.NFS3ERR_TOOSMALL, "maxcount too small for one entry");
        const rows = this.handles.ensureMany(items.map((i) => i.path));
        const entries: R.Entryplus3[] = [];
        for (let k = 0; k < items.length; k++) {
          const it = items[k];
          const row = rows[k];
          this.inoOf.set(row.fileid, it.ino);
          const attr = await this.attrOf(row.fileid, it.ino, it.attr, who);
          entries.push({ fileid: row.fileid, name: it.name, cookie: it.cookie, nameAttributes: this.fattr(attr, row.fileid), nameHandle: this.fh(row) });
        }
        return (w) => R.encodeReaddirplus3Ok(w, { dirAttributes: this.fattr(dirAttr, dir.row.fileid), cookieverf: ZERO_VERF, entries, eof });
      },
      fail: attrFail,
    });

    def(X.NFSPROC3_FSSTAT, {
      decode: A.decodeFsstat3Args,
      run: async (a, who) => {
        const f = await this.resolve(a.fsroot, who);
        const attr = await this.vfs.getattr(f.ino, who);
        const s = await this.vfs.statfs();
        const unit = BigInt(s.frsize || s.bsize);
        return (w) =>
          R.encodeFsstat3Ok(w, {
            objAttributes: this.fattr(attr, f.row.fileid),
            tbytes: BigInt(s.blocks) * unit, fbytes: BigInt(s.bfree) * unit, abytes: BigInt(s.bavail) * unit,
            tfiles: BigInt(s.files), ffiles: BigInt(s.ffree), afiles: BigInt(s.ffree),
            invarsec: 0,
          });
      },
      fail: attrFail,
    });

    def(X.NFSPROC3_FSINFO, {
      decode: A.decodeFsinfo3Args,
      run: async (a, who) => {
        const f = await this.resolve(a.fsroot, who);
        const attr = await this.vfs.getattr(f.ino, who);
        return (w) =>
          R.encodeFsinfo3Ok(w, {
            objAttributes: this.fattr(attr, f.row.fileid),
            rtmax: RTMAX, rtpref: RTMAX, rtmult: 4096,
            wtmax: WTMAX, wtpref: WTMAX, wtmult: 4096,
            dtpref: DTPREF,
            maxfilesize: BigInt(MAX_FILE_SIZE),
            // Times are kept to the nanosecond.
            timeDelta: { seconds: 0, nseconds: 1 },
            // Symlinks yes, hard links no; every file has the same limits; SETATTR takes client times.
            properties: X.FSF3_SYMLINK | X.FSF3_HOMOGENEOUS | X.FSF3_CANSETTIME,
          });
      },
      fail: attrFail,
    });

    def(X.NFSPROC3_PATHCONF, {
      decode: A.decodePathconf3Args,
      run: async (a, who) => {
        const f = await this.resolve(a.object, who);
        const attr = await this.vfs.getattr(f.ino, who);
        return (w) =>
          R.encodePathconf3Ok(w, {
            objAttributes: this.fattr(attr, f.row.fileid),
            linkmax: 1, // no hard links: every file has exactly one name
            nameMax: X.NFS3_MAXNAMLEN,
            noTrunc: true, // a longer name is refused (NAMETOOLONG), never cut
            chownRestricted: true,
            caseInsensitive: false,
            casePreserving: true,
          });
      },
      fail: attrFail,
    });

    def(X.NFSPROC3_COMMIT, {
      decode: A.decodeCommit3Args,
      run: async (a, who) => {
        const f = await this.resolve(a.file, who);
        // The whole file, whatever range was asked: a version is the whole file.
        return this.files.lock(f.row.fileid, async () => {
          const before = await this.vfs.getattr(f.ino, who);
          if ((before.mode & S_IFMT) === S_IFREG) await this.files.commit(f.row.fileid, f.ino, who);
          const after = await this.vfs.getattr(f.ino, who);
          // After the commit: if an earlier close of this file lost UNSTABLE writes, this is the new verifier, and
          // the client, seeing it differ from its WRITEs', sends them again.
          const verf = this.verifier;
          return (w: XdrWriter) => R.encodeCommit3Ok(w, { fileWcc: { before: Nfs3.wcc(before), after: this.fattr(after, f.row.fileid) }, verf });
        });
      },
      fail: wccFail,
    });

    // Calls that change a name run one at a time per (directory, name): two CREATEs of one new name at once would
    // otherwise both pass the vfs's "does it exist?" before either adds it, and make two files, the first one's
    // handle STALE as soon as it is answered. The second now finds the first's file (UNCHECKED: the same handle;
    // GUARDED: EXIST). Keyed by the directory's handle bytes (one handle per directory) and the name's bytes.
    const at = (d: X.Diropargs3) => `${Buffer.from(d.dir).toString("hex")}/${d.name.bytes.toString("hex")}`;
    const serialise = <T>(num: number, keys: (a: T) => string[]) => {
      const p = procs[num] as Proc<T>;
      const run = p.run;
      p.run = (a, who) => this.names.run(keys(a), () => run(a, who));
    };
    serialise<A.Create3Args>(X.NFSPROC3_CREATE, (a) => [at(a.where)]);
    serialise<A.Mkdir3Args>(X.NFSPROC3_MKDIR, (a) => [at(a.where)]);
    serialise<A.Symlink3Args>(X.NFSPROC3_SYMLINK, (a) => [at(a.where)]);
    serialise<A.Remove3Args>(X.NFSPROC3_REMOVE, (a) => [at(a.object)]);
    serialise<A.Rmdir3Args>(X.NFSPROC3_RMDIR, (a) => [at(a.object)]);
    serialise<A.Rename3Args>(X.NFSPROC3_RENAME, (a) => [at(a.from), at(a.to)]);

    return procs;
  }

  /** The nfsstat3 for a failure of any procedure, and whether it was expected. */
  static statusOf(e: unknown): { status: number; expected: boolean } {
    if (e instanceof NfsError) return { status: e.status, expected: true };
    return nfsStatusOf(e);
  }
}

/** READ and WRITE are for regular files: a directory is ISDIR, anything else INVAL (RFC 1813). */
function regularFile(a: Attr) {
  const t = a.mode & S_IFMT;
  if (t === S_IFDIR) throw new VfsError(Errno.EISDIR, "is a directory");
  if (t !== S_IFREG) throw new VfsError(Errno.EINVAL, "not a regular file");
}

/**
 * ACCESS: what the mode bits grant this caller, as a local file system would
 * (root may do anything but execute a file nobody may execute). A directory's
 * write bit grants MODIFY, EXTEND and DELETE (of its entries); a file's MODIFY
 * and EXTEND.
 */
export function accessBits(a: Attr, who: Caller & { gids?: number[] }): number {
  const dir = (a.mode & S_IFMT) === S_IFDIR;
  let r: boolean, wr: boolean, x: boolean;
  if (who.uid === 0) {
    r = true;
    wr = true;
    x = dir || (a.mode & 0o111) !== 0;
  } else {
    const shift = who.uid === a.uid ? 6 : who.gid === a.gid || who.gids?.includes(a.gid) ? 3 : 0;
    const bits = (a.mode >> shift) & 7;
    r = (bits & 4) !== 0;
    wr = (bits & 2) !== 0;
    x = (bits & 1) !== 0;
  }
  let out = 0;
  if (r) out |= X.ACCESS3_READ;
  if (wr) out |= X.ACCESS3_MODIFY | X.ACCESS3_EXTEND | (dir ? X.ACCESS3_DELETE : 0);
  if (x) out |= dir ? X.ACCESS3_LOOKUP : X.ACCESS3_EXECUTE;
  return out;
}

/** Locks by string key: run(keys, fn) runs fn holding every key (taken in sorted order, so two callers never deadlock). */
class KeyedLocks {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(keys: string[], fn: () => Promise<T>): Promise<T> {
    const sorted = [...new Set(keys)].sort();
    const prev = Promise.all(sorted.map((k) => this.tails.get(k)));
    const next = prev.then(fn);
    const tail = next.catch(() => {});
    for (const k of sorted) this.tails.set(k, tail);
    void tail.then(() => {
      for (const k of sorted) if (this.tails.get(k) === tail) this.tails.delete(k);
    });
    return next;
  }
}
