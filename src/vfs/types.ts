// The frontend-agnostic filesystem interface. fuse/ and nfs/ translate kernel
// requests into these calls and nothing else; every filesystem meaning lives
// behind this interface (like mountpoint-s3's fs.rs, JuiceFS's pkg/vfs).

/** Errno values as positive Linux numbers (frontends negate or map them). */
export const Errno = {
  EPERM: 1, ENOENT: 2, EIO: 5, EBADF: 9, EAGAIN: 11, ENOMEM: 12, EACCES: 13, EEXIST: 17, EXDEV: 18,
  ENOTDIR: 20, EISDIR: 21, EINVAL: 22, EFBIG: 27, ENOSPC: 28, ESPIPE: 29, EROFS: 30, EMLINK: 31, ERANGE: 34,
  ENAMETOOLONG: 36, ENOSYS: 38, ENOTEMPTY: 39, ENODATA: 61, ENOTSUP: 95, EOPNOTSUPP: 95,
} as const;

export class VfsError extends Error {
  constructor(readonly errno: number, message: string) {
    super(message);
    this.name = "VfsError";
  }
}

/** Who is asking (from the kernel request header). */
export interface Caller {
  uid: number;
  gid: number;
  pid: number;
}

/** struct stat, as both frontends need it. Times in nanoseconds since the epoch. */
export interface Attr {
  ino: bigint;
  /** Full st_mode: type bits | permission bits. */
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  /** 512-byte units. */
  blocks: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  /** Bumped when an inode number is reused (never, today: numbers are not reused). */
  generation: bigint;
}

export interface DirEntry {
  name: string;
  /** Opaque cookie: passing it back to readdir resumes after this entry. */
  cookie: bigint;
  /** Present for readdirplus; for plain readdir only ino and type are needed. */
  attr: Attr;
}

export interface SetAttr {
  /** Permission bits only (no file type bits). */
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  /** "now" = UTIME_NOW; absent = UTIME_OMIT. */
  atimeNs?: bigint | "now";
  mtimeNs?: bigint | "now";
  /** The open file the change came through (ftruncate), when known. */
  fh?: bigint;
  /** Clear setuid/setgid (a write or truncate by someone the kernel says must drop them). */
  killSuidGid?: boolean;
}

export interface StatFs {
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  bsize: number;
  namelen: number;
  frsize: number;
}

export interface Opened {
  fh: bigint;
  /** The kernel may keep its page cache from an earlier open (content unchanged). */
  keepCache: boolean;
  /** A local file descriptor holding the content that reads and writes of this
   * open may go to directly (FUSE passthrough). Only offered after
   * setPassthrough(true), and then for every open of the inode until its last
   * close, always the same file: the kernel refuses to mix modes on one inode. */
  backingFd?: number;
}

export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;

/** Operations on inode numbers. The root directory is inode 1. */
export interface Vfs {
  lookup(parent: bigint, name: string, who: Caller): Promise<Attr>;
  /** The kernel dropped `count` references to ino. */
  forget(ino: bigint, count: number): void;
  getattr(ino: bigint, who: Caller): Promise<Attr>;
  setattr(ino: bigint, set: SetAttr, who: Caller): Promise<Attr>;
  readlink(ino: bigint, who: Caller): Promise<string>;
  mkdir(parent: bigint, name: string, mode: number, who: Caller): Promise<Attr>;
  symlink(parent: bigint, name: string, target: string, who: Caller): Promise<Attr>;
  unlink(parent: bigint, name: string, who: Caller): Promise<void>;
  rmdir(parent: bigint, name: string, who: Caller): Promise<void>;
  rename(parent: bigint, name: string, newParent: bigint, newName: string, flags: number, who: Caller): Promise<void>;
  /** flags are the open(2) flags (O_ACCMODE, O_TRUNC, O_APPEND, …). */
  open(ino: bigint, flags: number, who: Caller): Promise<Opened>;
  /** The frontend can pass open files' I/O straight to a local file (FUSE passthrough, negotiated at INIT). */
  setPassthrough?(on: boolean): void;
  create(parent: bigint, name: string, mode: number, flags: number, who: Caller): Promise<{ attr: Attr; opened: Opened }>;
  read(ino: bigint, fh: bigint, offset: number, size: number): Promise<Uint8Array>;
  /** Returns the number of bytes written. `data` is a view of the request buffer:
   * copy whatever must outlive the call. */
  write(ino: bigint, fh: bigint, offset: number, data: Uint8Array, who: Caller): Promise<number>;
  /** close(2) of one descriptor: a changed file becomes a version here. */
  flush(ino: bigint, fh: bigint, who: Caller): Promise<void>;
  /** The last reference to an open file is gone. */
  release(ino: bigint, fh: bigint): Promise<void>;
  fsync(ino: bigint, fh: bigint, dataOnly: boolean): Promise<void>;
  opendir(ino: bigint, who: Caller): Promise<bigint>;
  /** Entries after `cookie` (0n = from the start), at most `max`. "." and ".." included.
   * With plus=true every returned entry except "." and ".." counts one kernel lookup
   * (the session forgets the ones it could not pack into the reply). */
  readdir(ino: bigint, fh: bigint, cookie: bigint, max: number, plus: boolean): Promise<DirEntry[]>;
  releasedir(ino: bigint, fh: bigint): Promise<void>;
  fsyncdir(ino: bigint, fh: bigint): Promise<void>;
  statfs(): Promise<StatFs>;
  getxattr(ino: bigint, name: string): Promise<Uint8Array>;
  listxattr(ino: bigint): Promise<string[]>;
  setxattr(ino: bigint, name: string, value: Uint8Array, flags: number, who: Caller): Promise<void>;
  removexattr(ino: bigint, name: string, who: Caller): Promise<void>;
  access(ino: bigint, mask: number, who: Caller): Promise<void>;
  /** Where an inode is now ("" for the root), or null when it left the tree: NFS handles name files by path. */
  pathOf?(ino: bigint): string | null;
}
