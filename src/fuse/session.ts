// The FUSE request loop: reader Workers hand raw requests to this thread,
// which decodes each one, calls the Vfs through ONE table of operations, and
// writes the encoded reply to the fd the request came from. No filesystem
// meaning lives here: decode, call, encode.
import os from "node:os";
import { PgfilesError } from "../errors.ts";
import { VfsError, type Attr, type Caller, type DirEntry, type Opened, type SetAttr, type Vfs } from "../vfs/types.ts";
import * as C from "./codec.ts";
import { closeBacking, closeDevice, cloneDevice, openBacking, startNotifier, startReader, writeMessage, MAX_WRITE, type Notifier, type Reader, type WriteResult } from "./device.ts";

/** A pino-like logger; every method optional in spirit, all three required in type. */
export interface SessionLog {
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface SessionOptions {
  /** The session fd from mount(); the session owns it from now on and closes it at the end. */
  fd: number;
  vfs: Vfs;
  /** Reader threads (each on its own fd: the session fd, then clones). Default 2. */
  readers?: number;
  /** How long the kernel may trust a name → inode mapping. Default 1000 ms. */
  entryTtlMs?: number;
  /** How long the kernel may trust attributes. Default 1000 ms. */
  attrTtlMs?: number;
  /** How long the kernel may remember "no such name". Default: entryTtlMs. */
  negativeTtlMs?: number;
  log?: SessionLog;
  /** FUSE_WRITEBACK_CACHE: the kernel buffers writes and sends them later. Default off. */
  writebackCache?: boolean;
  /** FUSE_DO_READDIRPLUS: names come with attributes. Default on. */
  readdirPlus?: boolean;
  /** FUSE_PASSTHROUGH when the kernel offers it (6.9+, needs CAP_SYS_ADMIN): the vfs's open files with a
   * backing fd are read and written by the kernel directly. Default off. */
  passthrough?: boolean;
}

export interface Session {
  /** Resolves when the kernel ended the session (unmount, abort, DESTROY) or stop() was called. */
  done: Promise<void>;
  /**
   * Ends the session now: reader threads are told to stop and the fds are
   * closed. Call it after unmounting; on a still-mounted directory the
   * connection ends when this process exits (clients then see ENOTCONN).
   */
  stop(): Promise<void>;
  /** Drop the kernel's cached `name` in `parent` (positive or negative). */
  invalidateEntry(parent: bigint, name: string): Promise<void>;
  /** Drop the kernel's cached attributes and data of `ino`. */
  invalidateInode(ino: bigint): Promise<void>;
  /** What the session negotiated and did: for status and tests. */
  stats(): SessionStats;
}

export interface SessionStats {
  /** FUSE_PASSTHROUGH was negotiated at INIT. */
  passthrough: boolean;
  /** Opens answered with a backing file (their reads and writes never reach this process). */
  passthroughOpens: number;
  requests: number;
}

const EIO = 5;
const EPERM = 1;
const EINVAL = 22;
const ENOENT = 2;
const ERANGE = 34;
const ENOSYS = 38;
const EPROTO = 71;
const EOPNOTSUPP = 95;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const O_WRONLY = 1;
const O_CREAT = 0o100;
const O_EXCL = 0o200;

/** One request as the handlers see it. */
interface Req {
  h: C.FuseInHeader;
  b: Buffer;
  /** Where the op's arguments end (request extensions follow). */
  end: number;
  who: Caller;
  /** Kernel references this reply hands out: forgotten again if the reply is lost. */
  refs?: bigint[];
  /** The fd the request came from (its reply goes there). */
  fd: number;
  /** Runs once the reply was written (or could not be). */
  after?: () => void;
}
type Handler = (r: Req) => Promise<Buffer>;

const ARG = C.IN_HEADER_SIZE;

/** The whole INIT negotiation; each flag says why it is on or off. */
function wantedInitFlags(o: { writebackCache: boolean; readdirPlus: boolean; passthrough: boolean }): bigint {
  let want =
    // Several READs of one file may be in flight at once (readahead): the vfs reads by offset and keeps no cursor.
    C.FUSE_ASYNC_READ |
    // O_TRUNC arrives inside OPEN instead of as a separate SETATTR(size=0): one round trip, and the vfs can start
    // the new version empty instead of copying the old content first.
    C.FUSE_ATOMIC_O_TRUNC |
    // Writes larger than one page (obsolete since MAX_PAGES, still honoured by older kernels).
    C.FUSE_BIG_WRITES |
    // 1 MiB requests (max_pages 256): fewer round trips per byte, the cost that matters.
    C.FUSE_MAX_PAGES |
    // Lookups and readdirs in one directory run concurrently; the vfs is safe under concurrency.
    C.FUSE_PARALLEL_DIROPS |
    // When a refreshed attr shows a new mtime or size, the kernel drops its page cache for that file: this is how
    // another machine's write becomes visible once the attr TTL runs out.
    C.FUSE_AUTO_INVAL_DATA |
    // readlink(2) results stay in the page cache; invalidateInode drops them with the rest.
    C.FUSE_CACHE_SYMLINKS |
    // Needed to say anything in flags2 (passthrough, later); costs nothing.
    C.FUSE_INIT_EXT |
    // The kernel marks the superblock SB_NOSEC and stops asking GETXATTR("security.capability") before every
    // write (measured: 33,608 round trips in the agent workload); in exchange it tells us, with
    // FUSE_WRITE_KILL_SUIDGID / FATTR_KILL_SUIDGID / FUSE_OPEN_KILL_SUIDGID, when to clear setuid/setgid.
    C.FUSE_HANDLE_KILLPRIV_V2;
  // Off on purpose:
  // - EXPORT_SUPPORT: NFS re-export would look up "." and ".." by node id, which the vfs does not serve.
  // - NO_OPENDIR_SUPPORT / NO_OPEN_SUPPORT: the vfs needs opens (staging files, directory snapshots).
  // - POSIX_LOCKS / FLOCK_LOCKS: without them the kernel keeps locks locally, and GETLK/SETLK never come.
  // - SETXATTR_EXT: we do not need setxattr_flags; fuse_setxattr_in stays 8 bytes.
  // - ABORT_ERROR: an aborted connection should read as ENOTCONN, which mount.ts recognises as a dead mount.
  // - SPLICE_*: replies are plain buffers.
  // - DONT_MASK: the kernel applies the umask before CREATE/MKDIR/MKNOD reach us.
  if (o.readdirPlus) {
    // Names come with attributes and node ids, so `ls -l` is one round trip per page instead of a LOOKUP per name;
    // AUTO lets the kernel fall back to plain READDIR when the caller does not stat what it lists.
    want |= C.FUSE_DO_READDIRPLUS | C.FUSE_READDIRPLUS_AUTO;
  }
  // The kernel keeps written pages and sends them later in large WRITEs: much faster small writes, but close()
  // returns before the data reached the vfs, mtime/size become the kernel's, and it cannot be combined with
  // passthrough. Off by default until the vfs's durability story says otherwise.
  if (o.writebackCache) want |= C.FUSE_WRITEBACK_CACHE;
  // Reads and writes of open files go from the kernel to the local staging file without a round trip to us
  // (the vfs offers a backing fd per open). The kernel refuses it together with the writeback cache.
  else if (o.passthrough) want |= C.FUSE_PASSTHROUGH;
  return want;
}

function ttl(ms: number): { sec: number; nsec: number } {
  const m = Math.max(0, ms);
  return { sec: Math.floor(m / 1000), nsec: Math.round((m % 1000) * 1e6) };
}

const NS = 1_000_000_000n;
function split(ns: bigint): { sec: number; nsec: number } {
  let sec = ns / NS;
  let nsec = ns % NS;
  if (nsec < 0n) {
    sec -= 1n;
    nsec += NS;
  }
  return { sec: Number(sec), nsec: Number(nsec) };
}

function fuseAttr(a: Attr): C.FuseAttr {
  const at = split(a.atimeNs);
  const mt = split(a.mtimeNs);
  const ct = split(a.ctimeNs);
  return {
    ino: a.ino,
    size: BigInt(a.size),
    blocks: BigInt(a.blocks),
    atime: at.sec,
    mtime: mt.sec,
    ctime: ct.sec,
    atimensec: at.nsec,
    mtimensec: mt.nsec,
    ctimensec: ct.nsec,
    mode: a.mode,
    nlink: a.nlink,
    uid: a.uid,
    gid: a.gid,
    rdev: 0,
    blksize: 4096,
    flags: 0,
  };
}

/** A name the Vfs can take: it speaks strings, so a name that is not UTF-8 cannot be passed on losslessly. */
function text(n: C.FuseName): string {
  if (!n.isUtf8) throw new VfsError(EINVAL, "names must be UTF-8");
  return n.text;
}

const errnoByName = os.constants.errno as Record<string, number>;

export function startSession(opts: SessionOptions): Session {
  const { vfs, log } = opts;
  const sessionFd = opts.fd;
  const entryTtl = ttl(opts.entryTtlMs ?? 1000);
  const attrTtl = ttl(opts.attrTtlMs ?? 1000);
  const negativeTtl = ttl(opts.negativeTtlMs ?? opts.entryTtlMs ?? 1000);
  const want = wantedInitFlags({ writebackCache: opts.writebackCache ?? false, readdirPlus: opts.readdirPlus ?? true, passthrough: opts.passthrough ?? false });
  const counters: SessionStats = { passthrough: false, passthroughOpens: 0, requests: 0 };

  /** Requests read but not yet answered, by unique: INTERRUPT names one of these. */
  const inflight = new Set<bigint>();
  let closed = false;
  let notifier: Notifier | undefined;
  const readers: Reader[] = [];
  let live = 0;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));

  const entry = (a: Attr): C.FuseEntryOut => ({
    nodeid: a.ino,
    generation: a.generation,
    entry_valid: entryTtl.sec,
    entry_valid_nsec: entryTtl.nsec,
    attr_valid: attrTtl.sec,
    attr_valid_nsec: attrTtl.nsec,
    attr: fuseAttr(a),
  });
  const attrOut = (a: Attr): C.FuseAttrOut => ({ attr_valid: attrTtl.sec, attr_valid_nsec: attrTtl.nsec, attr: fuseAttr(a) });
  /** A reply handing the kernel one reference to a.ino (LOOKUP, MKDIR, CREATE, …). */
  const entryFor = (r: Req, a: Attr) => {
    r.refs = [a.ino];
    return C.entryReply(r.h.unique, entry(a));
  };

  /**
   * Backing ids by the vfs's backing fd, shared by every open of that file and
   * forgotten at the release of the last one. One id per file, not per open:
   * the kernel compares backing *ids* (its fuse_backing objects), and an inode
   * whose previous passthrough file it has not let go of yet refuses an open
   * with a second id for the same file (EIO).
   */
  const backing = new Map<number, { id: number; opens: number }>();
  const backingOfFh = new Map<bigint, number>();

  /** An open's reply: with the vfs's backing file registered for passthrough when negotiated. */
  function openOut(r: Req, opened: Opened): C.FuseOpenOut {
    const out: C.FuseOpenOut = { fh: opened.fh, open_flags: opened.keepCache ? C.FOPEN_KEEP_CACHE : 0, backing_id: 0 };
    if (opened.backingFd === undefined) return out;
    // A file already in passthrough keeps it for every open (the kernel refuses a mix), even if passthrough
    // was turned off for new ones since.
    let b = backing.get(opened.backingFd);
    if (!b && !counters.passthrough) return out;
    if (!b) {
      try {
        b = { id: openBacking(r.fd, opened.backingFd), opens: 0 };
      } catch (e) {
        // Not allowed after all (no CAP_SYS_ADMIN): say so once, and stop offering it.
        log?.warn({ err: (e as Error).message }, "fuse: passthrough refused by the kernel; reads and writes go through pgfiles");
        counters.passthrough = false;
        vfs.setPassthrough?.(false);
        return out;
      }
      backing.set(opened.backingFd, b);
    }
    b.opens++;
    backingOfFh.set(opened.fh, opened.backingFd);
    counters.passthroughOpens++;
    return { fh: opened.fh, open_flags: C.FOPEN_PASSTHROUGH, backing_id: b.id };
  }

  /** After the vfs released `fh`: the last open of a backing file gives its id back. */
  function releaseBacking(fh: bigint) {
    const fd = backingOfFh.get(fh);
    if (fd === undefined) return;
    backingOfFh.delete(fh);
    const b = backing.get(fd)!;
    if (--b.opens > 0) return;
    backing.delete(fd);
    closeBacking(sessionFd, b.id);
  }

  function ofXattr(r: Req, asked: number, value: Uint8Array): Buffer {
    if (asked === 0) return C.xattrSizeReply(r.h.unique, value.length);
    if (asked < value.length) throw new VfsError(ERANGE, "xattr buffer too small");
    return C.dataReply(r.h.unique, value);
  }

  async function readdir(r: Req, plus: boolean): Promise<Buffer> {
    const a = C.decodeReadIn(r.b, ARG);
    // Ask for as many entries as could fit with short names; the ones that do not fit are dropped
    // (and, for readdirplus, their references given back).
    const smallest = plus ? C.direntplusSize(8) : C.direntSize(8);
    const entries: DirEntry[] = await vfs.readdir(r.h.nodeid, a.fh, a.offset, Math.max(1, Math.floor(a.size / smallest)), plus);
    const dirent = (e: DirEntry): C.FuseDirent => ({ ino: e.attr.ino, off: e.cookie, type: C.direntType(e.attr.mode), name: e.name });
    if (!plus) {
      const p = C.readdirPacker(r.h.unique, a.size);
      for (const e of entries) if (!p.add(dirent(e))) break;
      return p.finish();
    }
    // The vfs counted a kernel reference for every entry it returned but . and ..; the kernel takes one for
    // each entry packed. Those that did not fit are given back now, the packed ones if the reply is lost.
    const giveBack = (list: DirEntry[]) => forget(list.filter((e) => e.name !== "." && e.name !== "..").map((e) => ({ nodeid: e.attr.ino, nlookup: 1 })));
    const p = C.readdirplusPacker(r.h.unique, a.size);
    try {
      for (const e of entries) if (!p.add({ entry_out: entry(e.attr), dirent: dirent(e) })) break;
    } catch (e) {
      giveBack(entries); // a name the kernel would refuse: nothing is sent
      throw e;
    }
    r.refs = entries.slice(0, p.count).filter((e) => e.name !== "." && e.name !== "..").map((e) => e.attr.ino);
    giveBack(entries.slice(p.count));
    return p.finish();
  }

  function init(r: Req): Buffer {
    const i = C.decodeInitIn(r.b, ARG, r.end - ARG);
    if (i.major < C.FUSE_KERNEL_VERSION) throw new VfsError(EPROTO, `kernel FUSE protocol ${i.major}.${i.minor} is too old`);
    const flags = i.flags & want;
    counters.passthrough = (flags & C.FUSE_PASSTHROUGH) !== 0n;
    vfs.setPassthrough?.(counters.passthrough);
    log?.debug({ kernel: `${i.major}.${i.minor}`, flags: C.initFlagNames(flags) }, "fuse: INIT");
    return C.initReply(r.h.unique, {
      // A newer major: answer with ours and the kernel asks again in our version.
      major: C.FUSE_KERNEL_VERSION,
      minor: Math.min(i.minor, C.CODEC_MINOR_VERSION),
      max_readahead: i.max_readahead,
      flags,
      max_background: 64,
      congestion_threshold: 48,
      max_write: MAX_WRITE,
      // Timestamps are kept to the nanosecond.
      time_gran: 1,
      max_pages: MAX_WRITE / 4096,
      map_alignment: 0,
      // Backing files are plain local files (stack depth 0); 1 lets them be, and keeps this mount from being
      // stacked under another passthrough filesystem.
      max_stack_depth: counters.passthrough ? 1 : 0,
    });
  }

  const unsupported = (errno: number) => async (): Promise<Buffer> => {
    throw new VfsError(errno, "unsupported");
  };

  // The one table: opcode → handler. FORGET, BATCH_FORGET, INTERRUPT and NOTIFY_REPLY get no reply and are
  // handled in dispatch(); anything missing here is ENOSYS.
  const ops: Record<number, Handler> = {
    [C.FUSE_INIT]: async (r) => init(r),
    [C.FUSE_LOOKUP]: async (r) => {
      const n = C.decodeLookup(r.b, ARG, r.end);
      if (!n.isUtf8) throw new VfsError(ENOENT, "no such name");
      try {
        return entryFor(r, await vfs.lookup(r.h.nodeid, n.text, r.who));
      } catch (e) {
        // "No such name" is cached by the kernel as a negative entry for negativeTtl.
        if (e instanceof VfsError && e.errno === ENOENT && (negativeTtl.sec > 0 || negativeTtl.nsec > 0)) {
          return C.entryReply(r.h.unique, { nodeid: 0n, generation: 0n, entry_valid: negativeTtl.sec, entry_valid_nsec: negativeTtl.nsec, attr_valid: 0, attr_valid_nsec: 0, attr: ZERO_ATTR });
        }
        throw e;
      }
    },
    [C.FUSE_GETATTR]: async (r) => C.attrReply(r.h.unique, attrOut(await vfs.getattr(r.h.nodeid, r.who))),
    [C.FUSE_SETATTR]: async (r) => {
      const s = C.decodeSetattrIn(r.b, ARG);
      const set: SetAttr = {};
      if (s.valid & C.FATTR_MODE) set.mode = s.mode & 0o7777;
      if (s.valid & C.FATTR_UID) set.uid = s.uid;
      if (s.valid & C.FATTR_GID) set.gid = s.gid;
      if (s.valid & C.FATTR_SIZE) set.size = Number(s.size);
      if (s.valid & C.FATTR_ATIME_NOW) set.atimeNs = "now";
      else if (s.valid & C.FATTR_ATIME) set.atimeNs = BigInt(s.atime) * NS + BigInt(s.atimensec);
      if (s.valid & C.FATTR_MTIME_NOW) set.mtimeNs = "now";
      else if (s.valid & C.FATTR_MTIME) set.mtimeNs = BigInt(s.mtime) * NS + BigInt(s.mtimensec);
      if (s.valid & C.FATTR_FH) set.fh = s.fh;
      if (s.valid & C.FATTR_KILL_SUIDGID) set.killSuidGid = true;
      // FATTR_CTIME, FATTR_LOCKOWNER: the vfs sets ctime itself; locks are the kernel's.
      return C.attrReply(r.h.unique, attrOut(await vfs.setattr(r.h.nodeid, set, r.who)));
    },
    [C.FUSE_READLINK]: async (r) => C.dataReply(r.h.unique, Buffer.from(await vfs.readlink(r.h.nodeid, r.who))),
    [C.FUSE_SYMLINK]: async (r) => {
      const s = C.decodeSymlink(r.b, ARG, r.end);
      return entryFor(r, await vfs.symlink(r.h.nodeid, text(s.name), text(s.target), r.who));
    },
    [C.FUSE_MKNOD]: async (r) => {
      // mknod(2) of a regular file is a create that is closed at once; devices, fifos and sockets have no place
      // in an object store: EPERM, as mknod(2) documents for "type not supported by the filesystem".
      const m = C.decodeMknod(r.b, ARG, r.end);
      if ((m.mode & S_IFMT) !== S_IFREG) throw new VfsError(EPERM, "only regular files can be made with mknod");
      const c = await vfs.create(r.h.nodeid, text(m.name), m.mode, O_WRONLY | O_CREAT | O_EXCL, r.who);
      await vfs.flush(c.attr.ino, c.opened.fh, r.who);
      await vfs.release(c.attr.ino, c.opened.fh);
      return entryFor(r, c.attr);
    },
    [C.FUSE_MKDIR]: async (r) => {
      const m = C.decodeMkdir(r.b, ARG, r.end);
      return entryFor(r, await vfs.mkdir(r.h.nodeid, text(m.name), m.mode, r.who));
    },
    [C.FUSE_UNLINK]: async (r) => {
      await vfs.unlink(r.h.nodeid, text(C.decodeLookup(r.b, ARG, r.end)), r.who);
      return C.okReply(r.h.unique);
    },
    [C.FUSE_RMDIR]: async (r) => {
      await vfs.rmdir(r.h.nodeid, text(C.decodeLookup(r.b, ARG, r.end)), r.who);
      return C.okReply(r.h.unique);
    },
    [C.FUSE_RENAME]: async (r) => {
      const m = C.decodeRename(r.b, ARG, r.end);
      await vfs.rename(r.h.nodeid, text(m.oldname), m.newdir, text(m.newname), 0, r.who);
      return C.okReply(r.h.unique);
    },
    [C.FUSE_RENAME2]: async (r) => {
      const m = C.decodeRename2(r.b, ARG, r.end);
      await vfs.rename(r.h.nodeid, text(m.oldname), m.newdir, text(m.newname), m.flags, r.who);
      return C.okReply(r.h.unique);
    },
    // Hard links: one key is one file; a second name for it has no representation.
    [C.FUSE_LINK]: unsupported(EPERM),
    [C.FUSE_OPEN]: async (r) => {
      const o = C.decodeOpenIn(r.b, ARG);
      const opened = await vfs.open(r.h.nodeid, o.flags, r.who);
      if (o.open_flags & C.FUSE_OPEN_KILL_SUIDGID) await vfs.setattr(r.h.nodeid, { killSuidGid: true }, r.who);
      return C.openReply(r.h.unique, openOut(r, opened));
    },
    [C.FUSE_CREATE]: async (r) => {
      const c = C.decodeCreate(r.b, ARG, r.end);
      // FUSE_OPEN_KILL_SUIDGID (O_TRUNC by an unprivileged caller) is ignored here: vfs.create makes a new file,
      // and Linux does not truncate, so keeps the bits of, a file the same open created.
      const made = await vfs.create(r.h.nodeid, text(c.name), c.mode, c.flags, r.who);
      r.refs = [made.attr.ino];
      return C.createReply(r.h.unique, entry(made.attr), openOut(r, made.opened));
    },
    [C.FUSE_READ]: async (r) => {
      const a = C.decodeReadIn(r.b, ARG);
      return C.dataReply(r.h.unique, await vfs.read(r.h.nodeid, a.fh, Number(a.offset), a.size));
    },
    [C.FUSE_WRITE]: async (r) => {
      const w = C.decodeWriteIn(r.b, ARG);
      // A view of the request, not a copy: the vfs copies what it keeps.
      const data = r.b.subarray(w.data_offset, w.data_offset + w.size);
      if (w.write_flags & C.FUSE_WRITE_KILL_SUIDGID) await vfs.setattr(r.h.nodeid, { killSuidGid: true }, r.who);
      return C.writeReply(r.h.unique, await vfs.write(r.h.nodeid, w.fh, Number(w.offset), data, r.who));
    },
    [C.FUSE_STATFS]: async (r) => {
      const s = await vfs.statfs();
      const st = { blocks: BigInt(s.blocks), bfree: BigInt(s.bfree), bavail: BigInt(s.bavail), files: BigInt(s.files), ffree: BigInt(s.ffree), bsize: s.bsize, namelen: s.namelen, frsize: s.frsize };
      return C.statfsReply(r.h.unique, st);
    },
    [C.FUSE_FLUSH]: async (r) => {
      await vfs.flush(r.h.nodeid, C.decodeFlushIn(r.b, ARG).fh, r.who);
      return C.okReply(r.h.unique);
    },
    [C.FUSE_RELEASE]: async (r) => {
      const fh = C.decodeReleaseIn(r.b, ARG).fh;
      try {
        await vfs.release(r.h.nodeid, fh);
      } finally {
        releaseBacking(fh);
      }
      return C.okReply(r.h.unique);
    },
    [C.FUSE_FSYNC]: async (r) => {
      const f = C.decodeFsyncIn(r.b, ARG);
      await vfs.fsync(r.h.nodeid, f.fh, (f.fsync_flags & C.FUSE_FSYNC_FDATASYNC) !== 0);
      return C.okReply(r.h.unique);
    },
    [C.FUSE_SETXATTR]: async (r) => {
      const x = C.decodeSetxattr(r.b, ARG, r.end, false);
      await vfs.setxattr(r.h.nodeid, text(x.name), x.value, x.flags, r.who);
      return C.okReply(r.h.unique);
    },
    [C.FUSE_GETXATTR]: async (r) => {
      const x = C.decodeGetxattr(r.b, ARG, r.end);
      return ofXattr(r, x.size, await vfs.getxattr(r.h.nodeid, text(x.name)));
    },
    [C.FUSE_LISTXATTR]: async (r) => {
      const x = C.decodeGetxattrIn(r.b, ARG);
      const names = await vfs.listxattr(r.h.nodeid);
      return ofXattr(r, x.size, Buffer.from(names.map((n) => n + "\0").join("")));
    },
    [C.FUSE_REMOVEXATTR]: async (r) => {
      await vfs.removexattr(r.h.nodeid, text(C.decodeLookup(r.b, ARG, r.end)), r.who);
      return C.okReply(r.h.unique);
    },
    [C.FUSE_OPENDIR]: async (r) => C.openReply(r.h.unique, { fh: await vfs.opendir(r.h.nodeid, r.who), open_flags: 0, backing_id: 0 }),
    [C.FUSE_READDIR]: (r) => readdir(r, false),
    [C.FUSE_READDIRPLUS]: (r) => readdir(r, true),
    [C.FUSE_RELEASEDIR]: async (r) => {
      await vfs.releasedir(r.h.nodeid, C.decodeReleaseIn(r.b, ARG).fh);
      return C.okReply(r.h.unique);
    },
    [C.FUSE_FSYNCDIR]: async (r) => {
      await vfs.fsyncdir(r.h.nodeid, C.decodeFsyncIn(r.b, ARG).fh);
      return C.okReply(r.h.unique);
    },
    [C.FUSE_ACCESS]: async (r) => {
      await vfs.access(r.h.nodeid, C.decodeAccessIn(r.b, ARG).mask, r.who);
      return C.okReply(r.h.unique);
    },
    // ENOSYS makes the kernel stop asking and do it itself: generic lseek (SEEK_DATA/HOLE treat the file as
    // data), a read+write copy for copy_file_range, local POSIX locks, getattr instead of statx.
    [C.FUSE_LSEEK]: unsupported(ENOSYS),
    [C.FUSE_COPY_FILE_RANGE]: unsupported(ENOSYS),
    [C.FUSE_GETLK]: unsupported(ENOSYS),
    [C.FUSE_SETLK]: unsupported(ENOSYS),
    [C.FUSE_SETLKW]: unsupported(ENOSYS),
    [C.FUSE_IOCTL]: unsupported(ENOSYS),
    [C.FUSE_POLL]: unsupported(ENOSYS),
    [C.FUSE_BMAP]: unsupported(ENOSYS),
    // fallocate has no ENOSYS fallback in the kernel; EOPNOTSUPP is what callers (posix_fallocate) expect.
    [C.FUSE_FALLOCATE]: unsupported(EOPNOTSUPP),
  };

  function errnoOf(e: unknown, r: Req): number {
    if (e instanceof VfsError) return e.errno;
    const name = C.opcodeName(r.h.opcode);
    if (e instanceof PgfilesError) {
      // Lower layers' errors carry an errno name; they are expected (offline, rejected), not bugs.
      log?.warn({ op: name, nodeid: String(r.h.nodeid), err: e.message }, `fuse: ${name} failed: ${e.message}`);
      return errnoByName[e.errno] ?? EIO;
    }
    const msg = e instanceof Error ? e.message : String(e);
    log?.error({ op: name, nodeid: String(r.h.nodeid), err: e }, `fuse: ${name} failed: ${msg}`);
    return EIO;
  }

  /** errnoOf, but whatever happens while classifying (or logging) the error, the kernel gets an answer. */
  function safeErrno(e: unknown, r: Req): number {
    try {
      return errnoOf(e, r);
    } catch {
      return EIO;
    }
  }

  function send(fd: number, r: Req, reply: Buffer) {
    inflight.delete(r.h.unique);
    if (closed) {
      r.after?.();
      return;
    }
    let result: WriteResult;
    try {
      result = writeMessage(fd, reply);
    } catch (e) {
      log?.error({ op: C.opcodeName(r.h.opcode), err: e }, `fuse: reply to ${C.opcodeName(r.h.opcode)} could not be written`);
      result = "gone";
    }
    r.after?.();
    // An interrupted request's reply is thrown away by the kernel: give back the references it carried.
    if (result !== "ok" && r.refs) forget(r.refs.map((ino) => ({ nodeid: ino, nlookup: 1 })));
  }

  /** FORGET and BATCH_FORGET: no reply, ever; a failing vfs.forget is only logged. */
  function forget(list: readonly C.FuseForgetOne[]) {
    for (const f of list) {
      try {
        vfs.forget(f.nodeid, f.nlookup);
      } catch (e) {
        log?.error({ op: "FORGET", nodeid: String(f.nodeid), err: e }, `fuse: FORGET failed: ${(e as Error).message}`);
      }
    }
  }

  function dispatch(b: Buffer, fd: number) {
    let h: C.FuseInHeader;
    try {
      h = C.decodeInHeader(b);
    } catch (e) {
      log?.error({ err: e, len: b.length }, "fuse: undecodable request");
      return;
    }
    switch (h.opcode) {
      case C.FUSE_FORGET:
        forget([{ nodeid: h.nodeid, nlookup: C.decodeForgetIn(b, ARG).nlookup }]);
        return;
      case C.FUSE_BATCH_FORGET:
        forget(C.decodeBatchForgetIn(b, ARG, h.len).forgets);
        return;
      case C.FUSE_INTERRUPT: {
        // We cannot cancel a vfs call; the reply, when it comes, is dropped by the kernel (ENOENT on write).
        const target = C.decodeInterruptIn(b, ARG).unique;
        log?.debug({ unique: String(target), inflight: inflight.has(target) }, "fuse: INTERRUPT");
        return;
      }
      case C.FUSE_NOTIFY_REPLY:
        return;
      case C.FUSE_DESTROY:
        // Only fuseblk and virtiofs send it (and it waits for its reply); nothing comes after it.
        send(fd, { h, b, end: 0, who: { uid: 0, gid: 0, pid: 0 }, fd }, C.okReply(h.unique));
        end();
        return;
    }
    counters.requests++;
    const r: Req = { h, b, end: C.argsEnd(h), who: { uid: h.uid, gid: h.gid, pid: h.pid }, fd };
    const handler = ops[h.opcode];
    if (!handler) {
      log?.debug({ op: C.opcodeName(h.opcode) }, "fuse: unsupported opcode");
      send(fd, r, C.errorReply(h.unique, ENOSYS));
      return;
    }
    inflight.add(h.unique);
    let p: Promise<Buffer>;
    try {
      p = handler(r);
    } catch (e) {
      send(fd, r, C.errorReply(h.unique, safeErrno(e, r)));
      return;
    }
    p.then(
      (reply) => send(fd, r, reply),
      (e) => {
        // Whatever happens while classifying the error, the kernel gets an answer.
        send(fd, r, C.errorReply(h.unique, safeErrno(e, r)));
      },
    );
  }

  function end() {
    if (closed) return;
    closed = true;
    for (const rd of readers) rd.stop();
    notifier?.stop();
    for (const rd of readers) if (rd.fd !== sessionFd) closeDevice(rd.fd);
    closeDevice(sessionFd);
    resolveDone();
  }

  const count = Math.max(1, opts.readers ?? 2);
  const fds = [sessionFd];
  for (let i = 1; i < count; i++) {
    try {
      fds.push(cloneDevice(sessionFd));
    } catch (e) {
      // A user mount through fusermount3 may not open /dev/fuse itself (often 0600): one reader it is.
      log?.debug({ err: (e as Error).message }, "fuse: could not clone the session fd; fewer readers");
      break;
    }
  }
  for (const fd of fds) {
    live++;
    readers.push(
      startReader(fd, dispatch, (why) => {
        if (why.code !== "ENODEV" && why.code !== "stopped") log?.warn({ code: why.code }, `fuse: reader ended: ${why.code}`);
        if (--live === 0 || why.code === "ENODEV") end();
      }),
    );
  }

  async function notify(message: Buffer): Promise<void> {
    if (closed) return;
    notifier ??= startNotifier(sessionFd);
    // "interrupted" (ENOENT) here means the kernel had nothing cached under that name or inode: done as well.
    await notifier.write(message);
  }

  return {
    done,
    async stop() {
      end();
      await done;
    },
    invalidateEntry: (parent, name) => notify(C.notifyInvalEntry(parent, name)),
    invalidateInode: (ino) => notify(C.notifyInvalInode(ino, 0n, 0n)),
    stats: () => ({ ...counters }),
  };
}

const ZERO_ATTR: C.FuseAttr = { ino: 0n, size: 0n, blocks: 0n, atime: 0, mtime: 0, ctime: 0, atimensec: 0, mtimensec: 0, ctimensec: 0, mode: 0, nlink: 0, uid: 0, gid: 0, rdev: 0, blksize: 0, flags: 0 };
