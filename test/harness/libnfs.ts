// Debian's libnfs (libnfs13, 4.0) through bun:ffi: an NFSv3 client that is not
// ours, driven through its synchronous POSIX-like API. Its calls block this
// thread until the server answers, so the server under test must run in
// another process (test/harness/nfs-daemon.ts).
//
// Signatures are libnfs 4.0's include/nfsc/libnfs.h (pread/pwrite take
// offset, count, buf in that order; 5.x changed it).
import { CString, dlopen, FFIType, ptr, read, type Pointer } from "bun:ffi";

const LIB = "/usr/lib/x86_64-linux-gnu/libnfs.so.13";

export function haveLibnfs(): boolean {
  try {
    return require("node:fs").existsSync(LIB);
  } catch {
    return false;
  }
}

const p = FFIType.ptr;
const i32 = FFIType.i32;
const u64 = FFIType.u64;
const i64 = FFIType.i64;
const v = FFIType.void;

let lib: ReturnType<typeof load> | undefined;
function load() {
  return dlopen(LIB, {
    nfs_init_context: { args: [], returns: p },
    nfs_destroy_context: { args: [p], returns: v },
    nfs_get_error: { args: [p], returns: FFIType.cstring },
    nfs_parse_url_dir: { args: [p, p], returns: p },
    nfs_destroy_url: { args: [p], returns: v },
    nfs_mount: { args: [p, p, p], returns: i32 },
    nfs_umount: { args: [p], returns: i32 },
    nfs_open: { args: [p, p, i32, p], returns: i32 },
    nfs_creat: { args: [p, p, i32, p], returns: i32 },
    nfs_create: { args: [p, p, i32, i32, p], returns: i32 },
    nfs_close: { args: [p, p], returns: i32 },
    nfs_pread: { args: [p, p, u64, u64, p], returns: i32 },
    nfs_pwrite: { args: [p, p, u64, u64, p], returns: i32 },
    nfs_fsync: { args: [p, p], returns: i32 },
    nfs_stat64: { args: [p, p, p], returns: i32 },
    nfs_mkdir: { args: [p, p], returns: i32 },
    nfs_rmdir: { args: [p, p], returns: i32 },
    nfs_unlink: { args: [p, p], returns: i32 },
    nfs_rename: { args: [p, p, p], returns: i32 },
    nfs_symlink: { args: [p, p, p], returns: i32 },
    nfs_readlink: { args: [p, p, p, i32], returns: i32 },
    nfs_link: { args: [p, p, p], returns: i32 },
    nfs_chmod: { args: [p, p, i32], returns: i32 },
    nfs_truncate: { args: [p, p, u64], returns: i32 },
    nfs_utimes: { args: [p, p, p], returns: i32 },
    nfs_access: { args: [p, p, i32], returns: i32 },
    nfs_statvfs: { args: [p, p, p], returns: i32 },
    nfs_mknod: { args: [p, p, i32, i32], returns: i32 },
    nfs_opendir: { args: [p, p, p], returns: i32 },
    nfs_readdir: { args: [p, p], returns: p },
    nfs_closedir: { args: [p, p], returns: v },
    nfs_lseek: { args: [p, p, i64, i32, p], returns: i32 },
  });
}

function c(s: string): Buffer {
  return Buffer.from(s + "\0", "utf8");
}

/** A libnfs call failed: `errno` is the positive errno it returned. */
export class NfsClientError extends Error {
  constructor(readonly op: string, readonly errno: number, message: string) {
    super(`${op}: ${message} (errno ${errno})`);
    this.name = "NfsClientError";
  }
}

export interface Stat {
  ino: bigint;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  atime: number;
  mtime: number;
  ctime: number;
}

export interface DirEntryOut {
  name: string;
  inode: bigint;
  mode: number;
  size: bigint;
}

export class NfsClient {
  private readonly f: ReturnType<typeof load>["symbols"];
  private nfs: Pointer | null;

  /** Connects and mounts `url` (nfs://127.0.0.1/EXPORT?version=3&nfsport=P&mountport=P[&uid=U&gid=G]). */
  constructor(url: string) {
    lib ??= load();
    this.f = lib.symbols;
    this.nfs = this.f.nfs_init_context() as Pointer | null;
    if (!this.nfs) throw new Error("nfs_init_context failed");
    const u = this.f.nfs_parse_url_dir(this.nfs, c(url));
    if (!u) {
      const msg = this.error();
      this.destroy();
      throw new NfsClientError("nfs_parse_url_dir", 22, msg);
    }
    try {
      const server = read.ptr(u, 0);
      const path = read.ptr(u, 8);
      const rc = this.f.nfs_mount(this.nfs, server as unknown as Pointer, path as unknown as Pointer);
      if (rc < 0) {
        const msg = this.error();
        this.destroy();
        throw new NfsClientError("nfs_mount", -rc, msg);
      }
    } finally {
      this.f.nfs_destroy_url(u);
    }
  }

  error(): string {
    return this.nfs ? String(this.f.nfs_get_error(this.nfs)) : "no context";
  }

  private check(op: string, rc: number): number {
    if (rc < 0) throw new NfsClientError(op, -rc, this.error());
    return rc;
  }

  private ctx(): Pointer {
    if (!this.nfs) throw new Error("the libnfs context was destroyed");
    return this.nfs;
  }

  destroy() {
    if (this.nfs) this.f.nfs_destroy_context(this.nfs);
    this.nfs = null;
  }

  open(path: string, flags: number): Pointer {
    const out = new BigUint64Array(1);
    this.check(`open ${path}`, this.f.nfs_open(this.ctx(), c(path), flags, ptr(out)));
    return Number(out[0]) as unknown as Pointer;
  }

  creat(path: string, mode: number): Pointer {
    const out = new BigUint64Array(1);
    this.check(`creat ${path}`, this.f.nfs_creat(this.ctx(), c(path), mode, ptr(out)));
    return Number(out[0]) as unknown as Pointer;
  }

  /** open(2) with O_CREAT and these flags (O_EXCL makes libnfs send a guarded/exclusive CREATE). */
  create(path: string, flags: number, mode: number): Pointer {
    const out = new BigUint64Array(1);
    this.check(`create ${path}`, this.f.nfs_create(this.ctx(), c(path), flags, mode, ptr(out)));
    return Number(out[0]) as unknown as Pointer;
  }

  close(fh: Pointer) {
    this.check("close", this.f.nfs_close(this.ctx(), fh));
  }

  /** Writes all of `data` at `offset` (in pieces of at most 1 MiB, as many as it takes). */
  pwrite(fh: Pointer, offset: number, data: Uint8Array): number {
    let done = 0;
    while (done < data.length) {
      const piece = data.subarray(done, Math.min(data.length, done + (1 << 20)));
      const n = this.check("pwrite", this.f.nfs_pwrite(this.ctx(), fh, offset + done, piece.length, ptr(piece)));
      if (n === 0) throw new Error("pwrite wrote nothing");
      done += n;
    }
    return done;
  }

  /** Reads up to `count` bytes at `offset` (short only at the end of the file). */
  pread(fh: Pointer, offset: number, count: number): Buffer {
    const buf = Buffer.alloc(count);
    let done = 0;
    while (done < count) {
      const want = Math.min(count - done, 1 << 20);
      const n = this.check("pread", this.f.nfs_pread(this.ctx(), fh, offset + done, want, ptr(buf, done)));
      if (n === 0) break;
      done += n;
    }
    return buf.subarray(0, done);
  }

  fsync(fh: Pointer) {
    this.check("fsync", this.f.nfs_fsync(this.ctx(), fh));
  }

  stat(path: string): Stat {
    // struct nfs_stat_64: 13 uint64 in 4.0 (more in later versions): room for 32.
    const st = new BigUint64Array(32);
    this.check(`stat ${path}`, this.f.nfs_stat64(this.ctx(), c(path), ptr(st)));
    return {
      ino: st[1], mode: Number(st[2]), nlink: Number(st[3]), uid: Number(st[4]), gid: Number(st[5]), size: Number(st[7]),
      atime: Number(st[10]), mtime: Number(st[11]), ctime: Number(st[12]),
    };
  }

  mkdir(path: string) {
    this.check(`mkdir ${path}`, this.f.nfs_mkdir(this.ctx(), c(path)));
  }
  rmdir(path: string) {
    this.check(`rmdir ${path}`, this.f.nfs_rmdir(this.ctx(), c(path)));
  }
  unlink(path: string) {
    this.check(`unlink ${path}`, this.f.nfs_unlink(this.ctx(), c(path)));
  }
  rename(from: string, to: string) {
    this.check(`rename ${from}`, this.f.nfs_rename(this.ctx(), c(from), c(to)));
  }
  symlink(target: string, path: string) {
    this.check(`symlink ${path}`, this.f.nfs_symlink(this.ctx(), c(target), c(path)));
  }
  readlink(path: string): string {
    const buf = Buffer.alloc(4097);
    this.check(`readlink ${path}`, this.f.nfs_readlink(this.ctx(), c(path), ptr(buf), buf.length));
    return buf.subarray(0, buf.indexOf(0)).toString("utf8");
  }
  link(from: string, to: string) {
    this.check(`link ${to}`, this.f.nfs_link(this.ctx(), c(from), c(to)));
  }
  chmod(path: string, mode: number) {
    this.check(`chmod ${path}`, this.f.nfs_chmod(this.ctx(), c(path), mode));
  }
  truncate(path: string, length: number) {
    this.check(`truncate ${path}`, this.f.nfs_truncate(this.ctx(), c(path), length));
  }
  /** Seconds since the epoch (struct timeval[2]: atime, mtime). */
  utimes(path: string, atime: number, mtime: number) {
    const tv = new BigInt64Array([BigInt(atime), 0n, BigInt(mtime), 0n]);
    this.check(`utimes ${path}`, this.f.nfs_utimes(this.ctx(), c(path), ptr(tv)));
  }
  /** access(2): 0 when allowed; throws with the errno otherwise. */
  access(path: string, mode: number) {
    this.check(`access ${path}`, this.f.nfs_access(this.ctx(), c(path), mode));
  }
  statvfs(path: string): { bsize: number; frsize: number; blocks: number; bfree: number; bavail: number; files: number; ffree: number; namemax: number } {
    const s = new BigUint64Array(32);
    this.check(`statvfs ${path}`, this.f.nfs_statvfs(this.ctx(), c(path), ptr(s)));
    return { bsize: Number(s[0]), frsize: Number(s[1]), blocks: Number(s[2]), bfree: Number(s[3]), bavail: Number(s[4]), files: Number(s[5]), ffree: Number(s[6]), namemax: Number(s[10]) };
  }
  mknod(path: string, mode: number, dev: number) {
    this.check(`mknod ${path}`, this.f.nfs_mknod(this.ctx(), c(path), mode, dev));
  }

  /** Every entry libnfs's opendir collected (it pages READDIRPLUS until eof). */
  readdir(path: string): DirEntryOut[] {
    const out = new BigUint64Array(1);
    this.check(`opendir ${path}`, this.f.nfs_opendir(this.ctx(), c(path), ptr(out)));
    const dir = Number(out[0]) as unknown as Pointer;
    const entries: DirEntryOut[] = [];
    try {
      for (;;) {
        const e = this.f.nfs_readdir(this.ctx(), dir);
        if (!e) break;
        // struct nfsdirent: next*, name*, inode u64, type u32, mode u32, size u64, ...
        const name = new CString(read.ptr(e, 8) as unknown as Pointer).toString();
        entries.push({ name, inode: read.u64(e, 16), mode: read.u32(e, 28), size: read.u64(e, 32) });
      }
    } finally {
      this.f.nfs_closedir(this.ctx(), dir);
    }
    return entries;
  }
}

export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_TRUNC = 0o1000;
export const O_SYNC = 0o4010000;
