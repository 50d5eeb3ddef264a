// The structs of linux/fuse.h, and nothing else: constants, decoders for what
// the kernel sends, encoders for what we send back. No I/O, no session state.
//
// Conventions (so a reader can hold this file next to fuse.h):
// - Objects use the header's field names verbatim (snake_case), struct type
//   names are the header's in PascalCase (fuse_entry_out → FuseEntryOut).
// - Numbers are little-endian (FUSE is host-endian; we only run on LE hosts).
// - bigint only where 64 bits are real: node ids, file handles, unique ids,
//   offsets, sizes, block and inode counts, lock owners. 64-bit fields that are
//   seconds (times, TTLs) or small counts (nlookup) are numbers: they fit in
//   2^53 and the caller does arithmetic on them.
// - The 64-bit INIT flag space is one bigint (the header's `1ULL << n`); the
//   wire splits it into `flags` and `flags2`, which decodeInitIn / encodeInitOut
//   do, exactly like libfuse's `flags | (uint64_t)flags2 << 32`.
// - encodeX(buf, off, value) writes every byte of the struct, padding included
//   (reply buffers come from allocUnsafe and must not leak old memory to the
//   kernel), and returns the offset just past it.
// - *Reply / notify* helpers return ONE right-sized Buffer holding the whole
//   message: the kernel takes a reply only as a single write(2).
// - LAYOUT is the single source of offsets; codec.test.ts compiles a C program
//   against <linux/fuse.h> and checks every entry.

import { isUtf8 } from "node:buffer";

// ---------------------------------------------------------------------------
// Versions and sizes

export const FUSE_KERNEL_VERSION = 7;
/** The newest protocol minor whose structs this codec encodes (backing_id, max_stack_depth are 7.40). */
export const CODEC_MINOR_VERSION = 40;
export const FUSE_ROOT_ID = 1n;
/** The kernel refuses a read(2) on /dev/fuse with a smaller buffer. */
export const FUSE_MIN_READ_BUFFER = 8192;
/** fuse_setxattr_in before FUSE_SETXATTR_EXT: only size and flags. */
export const FUSE_COMPAT_SETXATTR_IN_SIZE = 8;
/** fuse_init_in before 7.36 had no flags2 and no reserved words. */
export const INIT_IN_COMPAT_SIZE = 16;

// ---------------------------------------------------------------------------
// Opcodes (enum fuse_opcode)

export const FUSE_LOOKUP = 1;
export const FUSE_FORGET = 2; // no reply
export const FUSE_GETATTR = 3;
export const FUSE_SETATTR = 4;
export const FUSE_READLINK = 5;
export const FUSE_SYMLINK = 6;
export const FUSE_MKNOD = 8;
export const FUSE_MKDIR = 9;
export const FUSE_UNLINK = 10;
export const FUSE_RMDIR = 11;
export const FUSE_RENAME = 12;
export const FUSE_LINK = 13;
export const FUSE_OPEN = 14;
export const FUSE_READ = 15;
export const FUSE_WRITE = 16;
export const FUSE_STATFS = 17;
export const FUSE_RELEASE = 18;
export const FUSE_FSYNC = 20;
export const FUSE_SETXATTR = 21;
export const FUSE_GETXATTR = 22;
export const FUSE_LISTXATTR = 23;
export const FUSE_REMOVEXATTR = 24;
export const FUSE_FLUSH = 25;
export const FUSE_INIT = 26;
export const FUSE_OPENDIR = 27;
export const FUSE_READDIR = 28;
export const FUSE_RELEASEDIR = 29;
export const FUSE_FSYNCDIR = 30;
export const FUSE_GETLK = 31;
export const FUSE_SETLK = 32;
export const FUSE_SETLKW = 33;
export const FUSE_ACCESS = 34;
export const FUSE_CREATE = 35;
export const FUSE_INTERRUPT = 36; // no reply
export const FUSE_BMAP = 37;
export const FUSE_DESTROY = 38;
export const FUSE_IOCTL = 39;
export const FUSE_POLL = 40;
export const FUSE_NOTIFY_REPLY = 41; // answers our FUSE_NOTIFY_RETRIEVE; no reply
export const FUSE_BATCH_FORGET = 42; // no reply
export const FUSE_FALLOCATE = 43;
export const FUSE_READDIRPLUS = 44;
export const FUSE_RENAME2 = 45;
export const FUSE_LSEEK = 46;
export const FUSE_COPY_FILE_RANGE = 47;
export const FUSE_SETUPMAPPING = 48;
export const FUSE_REMOVEMAPPING = 49;
export const FUSE_SYNCFS = 50;
export const FUSE_TMPFILE = 51;
/** 7.39. We do not encode fuse_statx_out: answer ENOSYS and the kernel falls back to GETATTR for good. */
export const FUSE_STATX = 52;
export const CUSE_INIT = 4096;

export const Opcode = {
  FUSE_LOOKUP, FUSE_FORGET, FUSE_GETATTR, FUSE_SETATTR, FUSE_READLINK, FUSE_SYMLINK, FUSE_MKNOD,
  FUSE_MKDIR, FUSE_UNLINK, FUSE_RMDIR, FUSE_RENAME, FUSE_LINK, FUSE_OPEN, FUSE_READ, FUSE_WRITE,
  FUSE_STATFS, FUSE_RELEASE, FUSE_FSYNC, FUSE_SETXATTR, FUSE_GETXATTR, FUSE_LISTXATTR,
  FUSE_REMOVEXATTR, FUSE_FLUSH, FUSE_INIT, FUSE_OPENDIR, FUSE_READDIR, FUSE_RELEASEDIR,
  FUSE_FSYNCDIR, FUSE_GETLK, FUSE_SETLK, FUSE_SETLKW, FUSE_ACCESS, FUSE_CREATE, FUSE_INTERRUPT,
  FUSE_BMAP, FUSE_DESTROY, FUSE_IOCTL, FUSE_POLL, FUSE_NOTIFY_REPLY, FUSE_BATCH_FORGET,
  FUSE_FALLOCATE, FUSE_READDIRPLUS, FUSE_RENAME2, FUSE_LSEEK, FUSE_COPY_FILE_RANGE,
  FUSE_SETUPMAPPING, FUSE_REMOVEMAPPING, FUSE_SYNCFS, FUSE_TMPFILE, FUSE_STATX, CUSE_INIT,
} as const;

/** Opcode → short name for logs ("LOOKUP"). */
export const OPCODE_NAME: Readonly<Record<number, string>> = Object.freeze(
  Object.fromEntries(Object.entries(Opcode).map(([k, v]) => [v, k.replace(/^FUSE_/, "")])),
);

export function opcodeName(opcode: number): string {
  return OPCODE_NAME[opcode] ?? `OP${opcode}`;
}

// ---------------------------------------------------------------------------
// INIT flags: one 64-bit space (bits 32..63 travel in flags2 and need FUSE_INIT_EXT)

export const FUSE_ASYNC_READ = 1n << 0n;
export const FUSE_POSIX_LOCKS = 1n << 1n;
export const FUSE_FILE_OPS = 1n << 2n;
export const FUSE_ATOMIC_O_TRUNC = 1n << 3n;
export const FUSE_EXPORT_SUPPORT = 1n << 4n;
export const FUSE_BIG_WRITES = 1n << 5n;
export const FUSE_DONT_MASK = 1n << 6n;
export const FUSE_SPLICE_WRITE = 1n << 7n;
export const FUSE_SPLICE_MOVE = 1n << 8n;
export const FUSE_SPLICE_READ = 1n << 9n;
export const FUSE_FLOCK_LOCKS = 1n << 10n;
export const FUSE_HAS_IOCTL_DIR = 1n << 11n;
export const FUSE_AUTO_INVAL_DATA = 1n << 12n;
export const FUSE_DO_READDIRPLUS = 1n << 13n;
export const FUSE_READDIRPLUS_AUTO = 1n << 14n;
export const FUSE_ASYNC_DIO = 1n << 15n;
export const FUSE_WRITEBACK_CACHE = 1n << 16n;
export const FUSE_NO_OPEN_SUPPORT = 1n << 17n;
export const FUSE_PARALLEL_DIROPS = 1n << 18n;
export const FUSE_HANDLE_KILLPRIV = 1n << 19n;
export const FUSE_POSIX_ACL = 1n << 20n;
export const FUSE_ABORT_ERROR = 1n << 21n;
export const FUSE_MAX_PAGES = 1n << 22n;
export const FUSE_CACHE_SYMLINKS = 1n << 23n;
export const FUSE_NO_OPENDIR_SUPPORT = 1n << 24n;
export const FUSE_EXPLICIT_INVAL_DATA = 1n << 25n;
export const FUSE_MAP_ALIGNMENT = 1n << 26n;
export const FUSE_SUBMOUNTS = 1n << 27n;
export const FUSE_HANDLE_KILLPRIV_V2 = 1n << 28n;
export const FUSE_SETXATTR_EXT = 1n << 29n;
export const FUSE_INIT_EXT = 1n << 30n;
export const FUSE_INIT_RESERVED = 1n << 31n;
export const FUSE_SECURITY_CTX = 1n << 32n;
export const FUSE_HAS_INODE_DAX = 1n << 33n;
// Bits 34 and 36.. are newer than the 7.38 header Debian ships; values from the kernel's current uapi header.
export const FUSE_CREATE_SUPP_GROUP = 1n << 34n;
export const FUSE_HAS_EXPIRE_ONLY = 1n << 35n;
export const FUSE_DIRECT_IO_ALLOW_MMAP = 1n << 36n; // 7.39
export const FUSE_DIRECT_IO_RELAX = FUSE_DIRECT_IO_ALLOW_MMAP; // obsolete alias
export const FUSE_PASSTHROUGH = 1n << 37n; // 7.40
export const FUSE_NO_EXPORT_SUPPORT = 1n << 38n; // 7.40
export const FUSE_HAS_RESEND = 1n << 39n; // 7.40
export const FUSE_ALLOW_IDMAP = 1n << 40n; // 7.41
export const FUSE_OVER_IO_URING = 1n << 41n; // 7.42
export const FUSE_REQUEST_TIMEOUT = 1n << 42n; // 7.43

const INIT_FLAG_NAMES: readonly [bigint, string][] = Object.entries({
  FUSE_ASYNC_READ, FUSE_POSIX_LOCKS, FUSE_FILE_OPS, FUSE_ATOMIC_O_TRUNC, FUSE_EXPORT_SUPPORT,
  FUSE_BIG_WRITES, FUSE_DONT_MASK, FUSE_SPLICE_WRITE, FUSE_SPLICE_MOVE, FUSE_SPLICE_READ,
  FUSE_FLOCK_LOCKS, FUSE_HAS_IOCTL_DIR, FUSE_AUTO_INVAL_DATA, FUSE_DO_READDIRPLUS,
  FUSE_READDIRPLUS_AUTO, FUSE_ASYNC_DIO, FUSE_WRITEBACK_CACHE, FUSE_NO_OPEN_SUPPORT,
  FUSE_PARALLEL_DIROPS, FUSE_HANDLE_KILLPRIV, FUSE_POSIX_ACL, FUSE_ABORT_ERROR, FUSE_MAX_PAGES,
  FUSE_CACHE_SYMLINKS, FUSE_NO_OPENDIR_SUPPORT, FUSE_EXPLICIT_INVAL_DATA, FUSE_MAP_ALIGNMENT,
  FUSE_SUBMOUNTS, FUSE_HANDLE_KILLPRIV_V2, FUSE_SETXATTR_EXT, FUSE_INIT_EXT, FUSE_INIT_RESERVED,
  FUSE_SECURITY_CTX, FUSE_HAS_INODE_DAX, FUSE_CREATE_SUPP_GROUP, FUSE_HAS_EXPIRE_ONLY,
  FUSE_DIRECT_IO_ALLOW_MMAP, FUSE_PASSTHROUGH, FUSE_NO_EXPORT_SUPPORT, FUSE_HAS_RESEND,
  FUSE_ALLOW_IDMAP, FUSE_OVER_IO_URING, FUSE_REQUEST_TIMEOUT,
}).map(([k, v]) => [v, k.replace(/^FUSE_/, "")]);

/** Names of the set INIT flags, for logging what was offered and agreed ("bit45" for unknown bits). */
export function initFlagNames(flags: bigint): string[] {
  const out: string[] = [];
  let known = 0n;
  for (const [bit, name] of INIT_FLAG_NAMES) {
    known |= bit;
    if (flags & bit) out.push(name);
  }
  for (let i = 0n; i < 64n; i++) if (flags & ~known & (1n << i)) out.push(`bit${i}`);
  return out;
}

// ---------------------------------------------------------------------------
// Other flag words (all 32-bit: plain numbers)

// fuse_open_out.open_flags
export const FOPEN_DIRECT_IO = 1 << 0;
export const FOPEN_KEEP_CACHE = 1 << 1;
export const FOPEN_NONSEEKABLE = 1 << 2;
export const FOPEN_CACHE_DIR = 1 << 3;
export const FOPEN_STREAM = 1 << 4;
export const FOPEN_NOFLUSH = 1 << 5;
export const FOPEN_PARALLEL_DIRECT_WRITES = 1 << 6;
/** 7.40: reads and writes go straight to the backing file named by backing_id. */
export const FOPEN_PASSTHROUGH = 1 << 7;

// fuse_setattr_in.valid
export const FATTR_MODE = 1 << 0;
export const FATTR_UID = 1 << 1;
export const FATTR_GID = 1 << 2;
export const FATTR_SIZE = 1 << 3;
export const FATTR_ATIME = 1 << 4;
export const FATTR_MTIME = 1 << 5;
export const FATTR_FH = 1 << 6;
export const FATTR_ATIME_NOW = 1 << 7;
export const FATTR_MTIME_NOW = 1 << 8;
export const FATTR_LOCKOWNER = 1 << 9;
export const FATTR_CTIME = 1 << 10;
export const FATTR_KILL_SUIDGID = 1 << 11;

// fuse_rename2_in.flags (these live in linux/fs.h, not fuse.h)
export const RENAME_NOREPLACE = 1 << 0;
export const RENAME_EXCHANGE = 1 << 1;
export const RENAME_WHITEOUT = 1 << 2;

export const FUSE_GETATTR_FH = 1 << 0; // fuse_getattr_in.getattr_flags: fh is valid
export const FUSE_RELEASE_FLUSH = 1 << 0; // fuse_release_in.release_flags
export const FUSE_RELEASE_FLOCK_UNLOCK = 1 << 1;
export const FUSE_LK_FLOCK = 1 << 0; // fuse_lk_in.lk_flags: flock(2), not fcntl locks
export const FUSE_WRITE_CACHE = 1 << 0; // fuse_write_in.write_flags: delayed write from the page cache
export const FUSE_WRITE_LOCKOWNER = 1 << 1;
export const FUSE_WRITE_KILL_SUIDGID = 1 << 2;
export const FUSE_WRITE_KILL_PRIV = FUSE_WRITE_KILL_SUIDGID; // obsolete alias
export const FUSE_READ_LOCKOWNER = 1 << 1; // fuse_read_in.read_flags
export const FUSE_FSYNC_FDATASYNC = 1 << 0; // fuse_fsync_in.fsync_flags
export const FUSE_POLL_SCHEDULE_NOTIFY = 1 << 0; // fuse_poll_in.flags
export const FUSE_ATTR_SUBMOUNT = 1 << 0; // fuse_attr.flags
export const FUSE_ATTR_DAX = 1 << 1;
export const FUSE_OPEN_KILL_SUIDGID = 1 << 0; // fuse_open_in / fuse_create_in .open_flags
export const FUSE_SETXATTR_ACL_KILL_SGID = 1 << 0; // fuse_setxattr_in.setxattr_flags
/** fuse_notify_inval_entry_out.flags: expire the dentry, keep it for lookups in progress. */
export const FUSE_EXPIRE_ONLY = 1 << 0;

// enum fuse_ext_type (request extensions after the op's arguments, counted by total_extlen)
export const FUSE_MAX_NR_SECCTX = 31;
export const FUSE_EXT_GROUPS = 32; // newer than the 7.38 header

// enum fuse_notify_code: travels in fuse_out_header.error with unique = 0
export const FUSE_NOTIFY_POLL = 1;
export const FUSE_NOTIFY_INVAL_INODE = 2;
export const FUSE_NOTIFY_INVAL_ENTRY = 3;
export const FUSE_NOTIFY_STORE = 4;
export const FUSE_NOTIFY_RETRIEVE = 5;
export const FUSE_NOTIFY_DELETE = 6;
/** 7.40: ask the kernel to resend every request still waiting for a reply. */
export const FUSE_NOTIFY_RESEND = 7;

// Device ioctls. _IOC(dir, 229, nr, size) = dir<<30 | size<<16 | 229<<8 | nr
export const FUSE_DEV_IOC_MAGIC = 229;
/** _IOR(229, 0, uint32_t): attach a fresh /dev/fuse fd to the session whose fd the argument points at. */
export const FUSE_DEV_IOC_CLONE = 0x8004e500;
/** _IOW(229, 1, struct fuse_backing_map) → backing id (> 0). Needs CAP_SYS_ADMIN. */
export const FUSE_DEV_IOC_BACKING_OPEN = 0x4010e501;
/** _IOW(229, 2, uint32_t): forget a backing id (files already opened with it keep working). */
export const FUSE_DEV_IOC_BACKING_CLOSE = 0x4004e502;

// ---------------------------------------------------------------------------
// Layout: every struct this module reads or writes, with the header's field
// names and byte offsets. Padding and reserved words are not listed (encoders
// zero them; decoders skip them). `nested` names the struct type of a member.

export interface StructLayout {
  readonly size: number;
  readonly fields: Readonly<Record<string, number>>;
  readonly nested?: Readonly<Record<string, string>>;
}

export const LAYOUT = {
  fuse_in_header: { size: 40, fields: { len: 0, opcode: 4, unique: 8, nodeid: 16, uid: 24, gid: 28, pid: 32, total_extlen: 36 } },
  fuse_out_header: { size: 16, fields: { len: 0, error: 4, unique: 8 } },
  fuse_attr: {
    size: 88,
    fields: {
      ino: 0, size: 8, blocks: 16, atime: 24, mtime: 32, ctime: 40, atimensec: 48, mtimensec: 52, ctimensec: 56,
      mode: 60, nlink: 64, uid: 68, gid: 72, rdev: 76, blksize: 80, flags: 84,
    },
  },
  fuse_kstatfs: { size: 80, fields: { blocks: 0, bfree: 8, bavail: 16, files: 24, ffree: 32, bsize: 40, namelen: 44, frsize: 48 } },
  fuse_file_lock: { size: 24, fields: { start: 0, end: 8, type: 16, pid: 20 } },
  fuse_entry_out: {
    size: 128,
    fields: { nodeid: 0, generation: 8, entry_valid: 16, attr_valid: 24, entry_valid_nsec: 32, attr_valid_nsec: 36, attr: 40 },
    nested: { attr: "fuse_attr" },
  },
  fuse_attr_out: { size: 104, fields: { attr_valid: 0, attr_valid_nsec: 8, attr: 16 }, nested: { attr: "fuse_attr" } },
  fuse_forget_in: { size: 8, fields: { nlookup: 0 } },
  fuse_forget_one: { size: 16, fields: { nodeid: 0, nlookup: 8 } },
  fuse_batch_forget_in: { size: 8, fields: { count: 0 } },
  fuse_getattr_in: { size: 16, fields: { getattr_flags: 0, fh: 8 } },
  fuse_setattr_in: {
    size: 88,
    fields: {
      valid: 0, fh: 8, size: 16, lock_owner: 24, atime: 32, mtime: 40, ctime: 48, atimensec: 56, mtimensec: 60,
      ctimensec: 64, mode: 68, uid: 76, gid: 80,
    },
  },
  fuse_mknod_in: { size: 16, fields: { mode: 0, rdev: 4, umask: 8 } },
  fuse_mkdir_in: { size: 8, fields: { mode: 0, umask: 4 } },
  fuse_rename_in: { size: 8, fields: { newdir: 0 } },
  fuse_rename2_in: { size: 16, fields: { newdir: 0, flags: 8 } },
  fuse_link_in: { size: 8, fields: { oldnodeid: 0 } },
  fuse_open_in: { size: 8, fields: { flags: 0, open_flags: 4 } },
  fuse_create_in: { size: 16, fields: { flags: 0, mode: 4, umask: 8, open_flags: 12 } },
  fuse_open_out: { size: 16, fields: { fh: 0, open_flags: 8, backing_id: 12 } },
  fuse_release_in: { size: 24, fields: { fh: 0, flags: 8, release_flags: 12, lock_owner: 16 } },
  fuse_flush_in: { size: 24, fields: { fh: 0, lock_owner: 16 } },
  fuse_read_in: { size: 40, fields: { fh: 0, offset: 8, size: 16, read_flags: 20, lock_owner: 24, flags: 32 } },
  fuse_write_in: { size: 40, fields: { fh: 0, offset: 8, size: 16, write_flags: 20, lock_owner: 24, flags: 32 } },
  fuse_write_out: { size: 8, fields: { size: 0 } },
  fuse_statfs_out: { size: 80, fields: { st: 0 }, nested: { st: "fuse_kstatfs" } },
  fuse_fsync_in: { size: 16, fields: { fh: 0, fsync_flags: 8 } },
  fuse_setxattr_in: { size: 16, fields: { size: 0, flags: 4, setxattr_flags: 8 } },
  fuse_getxattr_in: { size: 8, fields: { size: 0 } },
  fuse_getxattr_out: { size: 8, fields: { size: 0 } },
  fuse_lk_in: { size: 48, fields: { fh: 0, owner: 8, lk: 16, lk_flags: 40 }, nested: { lk: "fuse_file_lock" } },
  fuse_lk_out: { size: 24, fields: { lk: 0 }, nested: { lk: "fuse_file_lock" } },
  fuse_access_in: { size: 8, fields: { mask: 0 } },
  fuse_init_in: { size: 64, fields: { major: 0, minor: 4, max_readahead: 8, flags: 12, flags2: 16 } },
  fuse_init_out: {
    size: 64,
    fields: {
      major: 0, minor: 4, max_readahead: 8, flags: 12, max_background: 16, congestion_threshold: 18, max_write: 20,
      time_gran: 24, max_pages: 28, map_alignment: 30, flags2: 32, max_stack_depth: 36,
    },
  },
  fuse_interrupt_in: { size: 8, fields: { unique: 0 } },
  fuse_bmap_in: { size: 16, fields: { block: 0, blocksize: 8 } },
  fuse_bmap_out: { size: 8, fields: { block: 0 } },
  fuse_poll_in: { size: 24, fields: { fh: 0, kh: 8, flags: 16, events: 20 } },
  fuse_poll_out: { size: 8, fields: { revents: 0 } },
  fuse_notify_poll_wakeup_out: { size: 8, fields: { kh: 0 } },
  fuse_fallocate_in: { size: 32, fields: { fh: 0, offset: 8, length: 16, mode: 24 } },
  fuse_dirent: { size: 24, fields: { ino: 0, off: 8, namelen: 16, type: 20, name: 24 } },
  fuse_direntplus: { size: 152, fields: { entry_out: 0, dirent: 128 }, nested: { entry_out: "fuse_entry_out", dirent: "fuse_dirent" } },
  fuse_notify_inval_inode_out: { size: 24, fields: { ino: 0, off: 8, len: 16 } },
  fuse_notify_inval_entry_out: { size: 16, fields: { parent: 0, namelen: 8, flags: 12 } },
  fuse_notify_delete_out: { size: 24, fields: { parent: 0, child: 8, namelen: 16 } },
  fuse_notify_store_out: { size: 24, fields: { nodeid: 0, offset: 8, size: 16 } },
  fuse_lseek_in: { size: 24, fields: { fh: 0, offset: 8, whence: 16 } },
  fuse_lseek_out: { size: 8, fields: { offset: 0 } },
  fuse_copy_file_range_in: {
    size: 56,
    fields: { fh_in: 0, off_in: 8, nodeid_out: 16, fh_out: 24, off_out: 32, len: 40, flags: 48 },
  },
  fuse_backing_map: { size: 16, fields: { fd: 0, flags: 4 } },
} as const satisfies Record<string, StructLayout>;

export const IN_HEADER_SIZE = LAYOUT.fuse_in_header.size;
export const OUT_HEADER_SIZE = LAYOUT.fuse_out_header.size;
export const FUSE_NAME_OFFSET = LAYOUT.fuse_dirent.fields.name;
export const FUSE_NAME_OFFSET_DIRENTPLUS = LAYOUT.fuse_direntplus.fields.dirent + FUSE_NAME_OFFSET;

/** FUSE_DIRENT_ALIGN / FUSE_REC_ALIGN: records are padded to 8 bytes. */
export function direntAlign(x: number): number {
  return (x + 7) & ~7;
}
/** FUSE_DIRENT_SIZE for a name of `namelen` bytes. */
export function direntSize(namelen: number): number {
  return direntAlign(FUSE_NAME_OFFSET + namelen);
}
/** FUSE_DIRENTPLUS_SIZE for a name of `namelen` bytes. */
export function direntplusSize(namelen: number): number {
  return direntAlign(FUSE_NAME_OFFSET_DIRENTPLUS + namelen);
}
/** fuse_dirent.type is the file type from st_mode as a DT_* value, i.e. (mode & S_IFMT) >> 12. */
export function direntType(mode: number): number {
  return (mode >>> 12) & 0xf;
}

// ---------------------------------------------------------------------------
// Errors

/** The kernel sent something this codec cannot parse. Reply with `errno` (EIO). */
export class CodecError extends Error {
  readonly errno = 5; // EIO
  constructor(message: string) {
    super(message);
    this.name = "CodecError";
  }
}

// ---------------------------------------------------------------------------
// Primitive helpers. Writes wrap like C assignment does (>>> 0) instead of
// throwing: an encoder that throws half way leaves a request without a reply.

function u32(b: Buffer, o: number, v: number): void {
  b.writeUInt32LE(v >>> 0, o);
}
function u16(b: Buffer, o: number, v: number): void {
  b.writeUInt16LE(v & 0xffff, o);
}
/** A 64-bit field held as a JS number (seconds, TTLs, counts); negative values become two's complement. */
function n64(b: Buffer, o: number, v: number): void {
  b.writeUInt32LE(v >>> 0, o);
  b.writeUInt32LE(Math.floor(v / 4294967296) >>> 0, o + 4);
}
/** Reads a 64-bit field as a signed JS number: exact while |v| < 2^53 (times are signed in the kernel). */
function readN64(b: Buffer, o: number): number {
  return b.readInt32LE(o + 4) * 4294967296 + b.readUInt32LE(o);
}
function zero(b: Buffer, from: number, to: number): void {
  b.fill(0, from, to);
}

// ---------------------------------------------------------------------------
// Decoders: what the kernel sends. `off` is where the struct starts (for an
// op's argument that is IN_HEADER_SIZE into the request).

export interface FuseInHeader {
  len: number;
  opcode: number;
  unique: bigint;
  nodeid: bigint;
  uid: number;
  gid: number;
  pid: number;
  /** Length of the request extensions at the end of the message, in 8-byte units. */
  total_extlen: number;
}

const IH = LAYOUT.fuse_in_header.fields;
export function decodeInHeader(b: Buffer, off = 0): FuseInHeader {
  return {
    len: b.readUInt32LE(off + IH.len),
    opcode: b.readUInt32LE(off + IH.opcode),
    unique: b.readBigUInt64LE(off + IH.unique),
    nodeid: b.readBigUInt64LE(off + IH.nodeid),
    uid: b.readUInt32LE(off + IH.uid),
    gid: b.readUInt32LE(off + IH.gid),
    pid: b.readUInt32LE(off + IH.pid),
    total_extlen: b.readUInt16LE(off + IH.total_extlen),
  };
}

/** Offset (from the message start) where the op's arguments end and extensions begin. */
export function argsEnd(h: FuseInHeader): number {
  return h.len - h.total_extlen * 8;
}

export interface FuseInitIn {
  major: number;
  minor: number;
  max_readahead: number;
  /** 64-bit: flags | flags2 << 32 when the kernel set FUSE_INIT_EXT, else flags alone. */
  flags: bigint;
}

const II = LAYOUT.fuse_init_in.fields;
/** `len` is the argument's length (header.len - IN_HEADER_SIZE): kernels before 7.36 send the 16-byte form. */
export function decodeInitIn(b: Buffer, off: number, len: number): FuseInitIn {
  if (len < INIT_IN_COMPAT_SIZE) throw new CodecError(`fuse_init_in of ${len} bytes is shorter than the oldest form (16)`);
  let flags = BigInt(b.readUInt32LE(off + II.flags));
  if (len >= II.flags2 + 4 && flags & FUSE_INIT_EXT) flags |= BigInt(b.readUInt32LE(off + II.flags2)) << 32n;
  return {
    major: b.readUInt32LE(off + II.major),
    minor: b.readUInt32LE(off + II.minor),
    max_readahead: b.readUInt32LE(off + II.max_readahead),
    flags,
  };
}

export interface FuseForgetIn { nlookup: number }
export function decodeForgetIn(b: Buffer, off: number): FuseForgetIn {
  return { nlookup: readN64(b, off + LAYOUT.fuse_forget_in.fields.nlookup) };
}

export interface FuseForgetOne { nodeid: bigint; nlookup: number }
export interface FuseBatchForgetIn { count: number; forgets: FuseForgetOne[] }
const FO = LAYOUT.fuse_forget_one;
/** BATCH_FORGET: the header then `count` fuse_forget_one records. `end` bounds the message. */
export function decodeBatchForgetIn(b: Buffer, off: number, end: number): FuseBatchForgetIn {
  const count = b.readUInt32LE(off + LAYOUT.fuse_batch_forget_in.fields.count);
  const first = off + LAYOUT.fuse_batch_forget_in.size;
  if (first + count * FO.size > end) throw new CodecError(`BATCH_FORGET claims ${count} entries but the message is too short`);
  const forgets = new Array<FuseForgetOne>(count);
  for (let i = 0, o = first; i < count; i++, o += FO.size) {
    forgets[i] = { nodeid: b.readBigUInt64LE(o + FO.fields.nodeid), nlookup: readN64(b, o + FO.fields.nlookup) };
  }
  return { count, forgets };
}

export interface FuseGetattrIn { getattr_flags: number; fh: bigint }
const GA = LAYOUT.fuse_getattr_in.fields;
export function decodeGetattrIn(b: Buffer, off: number): FuseGetattrIn {
  return { getattr_flags: b.readUInt32LE(off + GA.getattr_flags), fh: b.readBigUInt64LE(off + GA.fh) };
}

export interface FuseSetattrIn {
  /** FATTR_* bits saying which of the fields below mean anything. */
  valid: number;
  fh: bigint;
  size: bigint;
  lock_owner: bigint;
  atime: number;
  mtime: number;
  ctime: number;
  atimensec: number;
  mtimensec: number;
  ctimensec: number;
  mode: number;
  uid: number;
  gid: number;
}
const SA = LAYOUT.fuse_setattr_in.fields;
export function decodeSetattrIn(b: Buffer, off: number): FuseSetattrIn {
  return {
    valid: b.readUInt32LE(off + SA.valid),
    fh: b.readBigUInt64LE(off + SA.fh),
    size: b.readBigUInt64LE(off + SA.size),
    lock_owner: b.readBigUInt64LE(off + SA.lock_owner),
    atime: readN64(b, off + SA.atime),
    mtime: readN64(b, off + SA.mtime),
    ctime: readN64(b, off + SA.ctime),
    atimensec: b.readUInt32LE(off + SA.atimensec),
    mtimensec: b.readUInt32LE(off + SA.mtimensec),
    ctimensec: b.readUInt32LE(off + SA.ctimensec),
    mode: b.readUInt32LE(off + SA.mode),
    uid: b.readUInt32LE(off + SA.uid),
    gid: b.readUInt32LE(off + SA.gid),
  };
}

export interface FuseMknodIn { mode: number; rdev: number; umask: number }
const MN = LAYOUT.fuse_mknod_in.fields;
/** Assumes protocol >= 7.12 (the 8-byte compat form never reaches a server that negotiates 7.40). */
export function decodeMknodIn(b: Buffer, off: number): FuseMknodIn {
  return { mode: b.readUInt32LE(off + MN.mode), rdev: b.readUInt32LE(off + MN.rdev), umask: b.readUInt32LE(off + MN.umask) };
}

export interface FuseMkdirIn { mode: number; umask: number }
const MD = LAYOUT.fuse_mkdir_in.fields;
export function decodeMkdirIn(b: Buffer, off: number): FuseMkdirIn {
  return { mode: b.readUInt32LE(off + MD.mode), umask: b.readUInt32LE(off + MD.umask) };
}

export interface FuseRenameIn { newdir: bigint }
export function decodeRenameIn(b: Buffer, off: number): FuseRenameIn {
  return { newdir: b.readBigUInt64LE(off + LAYOUT.fuse_rename_in.fields.newdir) };
}

export interface FuseRename2In { newdir: bigint; /** RENAME_* */ flags: number }
const R2 = LAYOUT.fuse_rename2_in.fields;
export function decodeRename2In(b: Buffer, off: number): FuseRename2In {
  return { newdir: b.readBigUInt64LE(off + R2.newdir), flags: b.readUInt32LE(off + R2.flags) };
}

export interface FuseLinkIn { oldnodeid: bigint }
export function decodeLinkIn(b: Buffer, off: number): FuseLinkIn {
  return { oldnodeid: b.readBigUInt64LE(off + LAYOUT.fuse_link_in.fields.oldnodeid) };
}

export interface FuseOpenIn { /** open(2) flags */ flags: number; /** FUSE_OPEN_* */ open_flags: number }
const OI = LAYOUT.fuse_open_in.fields;
export function decodeOpenIn(b: Buffer, off: number): FuseOpenIn {
  return { flags: b.readUInt32LE(off + OI.flags), open_flags: b.readUInt32LE(off + OI.open_flags) };
}

export interface FuseCreateIn { flags: number; mode: number; umask: number; open_flags: number }
const CI = LAYOUT.fuse_create_in.fields;
export function decodeCreateIn(b: Buffer, off: number): FuseCreateIn {
  return {
    flags: b.readUInt32LE(off + CI.flags),
    mode: b.readUInt32LE(off + CI.mode),
    umask: b.readUInt32LE(off + CI.umask),
    open_flags: b.readUInt32LE(off + CI.open_flags),
  };
}

export interface FuseReleaseIn { fh: bigint; flags: number; release_flags: number; lock_owner: bigint }
const RL = LAYOUT.fuse_release_in.fields;
export function decodeReleaseIn(b: Buffer, off: number): FuseReleaseIn {
  return {
    fh: b.readBigUInt64LE(off + RL.fh),
    flags: b.readUInt32LE(off + RL.flags),
    release_flags: b.readUInt32LE(off + RL.release_flags),
    lock_owner: b.readBigUInt64LE(off + RL.lock_owner),
  };
}

export interface FuseFlushIn { fh: bigint; lock_owner: bigint }
const FL = LAYOUT.fuse_flush_in.fields;
export function decodeFlushIn(b: Buffer, off: number): FuseFlushIn {
  return { fh: b.readBigUInt64LE(off + FL.fh), lock_owner: b.readBigUInt64LE(off + FL.lock_owner) };
}

export interface FuseReadIn { fh: bigint; offset: bigint; size: number; read_flags: number; lock_owner: bigint; flags: number }
const RD = LAYOUT.fuse_read_in.fields;
/** Also the argument of READDIR and READDIRPLUS (offset = cookie, size = reply limit). */
export function decodeReadIn(b: Buffer, off: number): FuseReadIn {
  return {
    fh: b.readBigUInt64LE(off + RD.fh),
    offset: b.readBigUInt64LE(off + RD.offset),
    size: b.readUInt32LE(off + RD.size),
    read_flags: b.readUInt32LE(off + RD.read_flags),
    lock_owner: b.readBigUInt64LE(off + RD.lock_owner),
    flags: b.readUInt32LE(off + RD.flags),
  };
}

export interface FuseWriteIn {
  fh: bigint;
  offset: bigint;
  size: number;
  write_flags: number;
  lock_owner: bigint;
  flags: number;
  /** Where the `size` bytes of data start in the same buffer (no copy is made). */
  data_offset: number;
}
const WR = LAYOUT.fuse_write_in.fields;
export function decodeWriteIn(b: Buffer, off: number): FuseWriteIn {
  return {
    fh: b.readBigUInt64LE(off + WR.fh),
    offset: b.readBigUInt64LE(off + WR.offset),
    size: b.readUInt32LE(off + WR.size),
    write_flags: b.readUInt32LE(off + WR.write_flags),
    lock_owner: b.readBigUInt64LE(off + WR.lock_owner),
    flags: b.readUInt32LE(off + WR.flags),
    data_offset: off + LAYOUT.fuse_write_in.size,
  };
}

export interface FuseFsyncIn { fh: bigint; fsync_flags: number }
const FS = LAYOUT.fuse_fsync_in.fields;
/** Also FSYNCDIR. */
export function decodeFsyncIn(b: Buffer, off: number): FuseFsyncIn {
  return { fh: b.readBigUInt64LE(off + FS.fh), fsync_flags: b.readUInt32LE(off + FS.fsync_flags) };
}

export interface FuseSetxattrIn { size: number; flags: number; setxattr_flags: number }
const SX = LAYOUT.fuse_setxattr_in.fields;
/** `ext`: whether FUSE_SETXATTR_EXT was agreed at INIT; only then is the struct 16 bytes long. */
export function decodeSetxattrIn(b: Buffer, off: number, ext: boolean): FuseSetxattrIn {
  return {
    size: b.readUInt32LE(off + SX.size),
    flags: b.readUInt32LE(off + SX.flags),
    setxattr_flags: ext ? b.readUInt32LE(off + SX.setxattr_flags) : 0,
  };
}
export function setxattrInSize(ext: boolean): number {
  return ext ? LAYOUT.fuse_setxattr_in.size : FUSE_COMPAT_SETXATTR_IN_SIZE;
}

export interface FuseGetxattrIn { /** 0 = "how big is it?" (answer with getxattr_out) */ size: number }
export function decodeGetxattrIn(b: Buffer, off: number): FuseGetxattrIn {
  return { size: b.readUInt32LE(off + LAYOUT.fuse_getxattr_in.fields.size) };
}

export interface FuseAccessIn { mask: number }
export function decodeAccessIn(b: Buffer, off: number): FuseAccessIn {
  return { mask: b.readUInt32LE(off + LAYOUT.fuse_access_in.fields.mask) };
}

export interface FuseInterruptIn { unique: bigint }
export function decodeInterruptIn(b: Buffer, off: number): FuseInterruptIn {
  return { unique: b.readBigUInt64LE(off + LAYOUT.fuse_interrupt_in.fields.unique) };
}

export interface FuseLseekIn { fh: bigint; offset: bigint; whence: number }
const LS = LAYOUT.fuse_lseek_in.fields;
export function decodeLseekIn(b: Buffer, off: number): FuseLseekIn {
  return { fh: b.readBigUInt64LE(off + LS.fh), offset: b.readBigUInt64LE(off + LS.offset), whence: b.readUInt32LE(off + LS.whence) };
}

export interface FuseFallocateIn { fh: bigint; offset: bigint; length: bigint; mode: number }
const FA = LAYOUT.fuse_fallocate_in.fields;
export function decodeFallocateIn(b: Buffer, off: number): FuseFallocateIn {
  return {
    fh: b.readBigUInt64LE(off + FA.fh),
    offset: b.readBigUInt64LE(off + FA.offset),
    length: b.readBigUInt64LE(off + FA.length),
    mode: b.readUInt32LE(off + FA.mode),
  };
}

export interface FuseCopyFileRangeIn {
  fh_in: bigint;
  off_in: bigint;
  nodeid_out: bigint;
  fh_out: bigint;
  off_out: bigint;
  len: bigint;
  flags: number;
}
const CF = LAYOUT.fuse_copy_file_range_in.fields;
export function decodeCopyFileRangeIn(b: Buffer, off: number): FuseCopyFileRangeIn {
  return {
    fh_in: b.readBigUInt64LE(off + CF.fh_in),
    off_in: b.readBigUInt64LE(off + CF.off_in),
    nodeid_out: b.readBigUInt64LE(off + CF.nodeid_out),
    fh_out: b.readBigUInt64LE(off + CF.fh_out),
    off_out: b.readBigUInt64LE(off + CF.off_out),
    len: b.readBigUInt64LE(off + CF.len),
    flags: readN64(b, off + CF.flags),
  };
}

export interface FusePollIn { fh: bigint; kh: bigint; flags: number; events: number }
const PI = LAYOUT.fuse_poll_in.fields;
export function decodePollIn(b: Buffer, off: number): FusePollIn {
  return {
    fh: b.readBigUInt64LE(off + PI.fh),
    kh: b.readBigUInt64LE(off + PI.kh),
    flags: b.readUInt32LE(off + PI.flags),
    events: b.readUInt32LE(off + PI.events),
  };
}

export interface FuseFileLock { start: bigint; end: bigint; type: number; pid: number }
const LK = LAYOUT.fuse_file_lock.fields;
function decodeFileLock(b: Buffer, off: number): FuseFileLock {
  return {
    start: b.readBigUInt64LE(off + LK.start),
    end: b.readBigUInt64LE(off + LK.end),
    type: b.readUInt32LE(off + LK.type),
    pid: b.readUInt32LE(off + LK.pid),
  };
}

export interface FuseLkIn { fh: bigint; owner: bigint; lk: FuseFileLock; lk_flags: number }
const LI = LAYOUT.fuse_lk_in.fields;
/** GETLK, SETLK, SETLKW. */
export function decodeLkIn(b: Buffer, off: number): FuseLkIn {
  return {
    fh: b.readBigUInt64LE(off + LI.fh),
    owner: b.readBigUInt64LE(off + LI.owner),
    lk: decodeFileLock(b, off + LI.lk),
    lk_flags: b.readUInt32LE(off + LI.lk_flags),
  };
}

export interface FuseBmapIn { block: bigint; blocksize: number }
const BI = LAYOUT.fuse_bmap_in.fields;
export function decodeBmapIn(b: Buffer, off: number): FuseBmapIn {
  return { block: b.readBigUInt64LE(off + BI.block), blocksize: b.readUInt32LE(off + BI.blocksize) };
}

// ---------------------------------------------------------------------------
// Names after the struct. Linux names are bytes, not text: `bytes` is the
// truth (use it as a key when exactness matters), `text` is a lossy UTF-8
// rendering (U+FFFD for bad sequences), `isUtf8` says whether it was lossless.
// `bytes` is a view into the request buffer: copy it to keep it past the
// request if that buffer is reused.

export interface FuseName {
  bytes: Buffer;
  text: string;
  isUtf8: boolean;
}

function nameOf(b: Buffer, start: number, end: number): FuseName {
  const bytes = b.subarray(start, end);
  return { bytes, text: bytes.toString("utf8"), isUtf8: isUtf8(bytes) };
}

/** A NUL-terminated name at `off` that must end before `end`; `next` is just past the NUL. */
export function decodeName(b: Buffer, off: number, end: number): { name: FuseName; next: number } {
  const nul = b.indexOf(0, off);
  if (nul < 0 || nul >= end) throw new CodecError("a name in the request is not NUL-terminated");
  return { name: nameOf(b, off, nul), next: nul + 1 };
}

// Requests that carry names. `off` is the argument start (IN_HEADER_SIZE),
// `end` is argsEnd(header): extensions after it are not names.

/** LOOKUP, UNLINK, RMDIR, REMOVEXATTR: just the name. */
export function decodeLookup(b: Buffer, off: number, end: number): FuseName {
  return decodeName(b, off, end).name;
}

/** SYMLINK: the new entry's name, then the link target. */
export function decodeSymlink(b: Buffer, off: number, end: number): { name: FuseName; target: FuseName } {
  const n = decodeName(b, off, end);
  return { name: n.name, target: decodeName(b, n.next, end).name };
}

export function decodeMknod(b: Buffer, off: number, end: number): FuseMknodIn & { name: FuseName } {
  const s = decodeMknodIn(b, off);
  return { ...s, name: decodeName(b, off + LAYOUT.fuse_mknod_in.size, end).name };
}

export function decodeMkdir(b: Buffer, off: number, end: number): FuseMkdirIn & { name: FuseName } {
  const s = decodeMkdirIn(b, off);
  return { ...s, name: decodeName(b, off + LAYOUT.fuse_mkdir_in.size, end).name };
}

/** CREATE and TMPFILE. */
export function decodeCreate(b: Buffer, off: number, end: number): FuseCreateIn & { name: FuseName } {
  const s = decodeCreateIn(b, off);
  return { ...s, name: decodeName(b, off + LAYOUT.fuse_create_in.size, end).name };
}

export function decodeRename(b: Buffer, off: number, end: number): FuseRename2In & { oldname: FuseName; newname: FuseName } {
  const o = decodeName(b, off + LAYOUT.fuse_rename_in.size, end);
  return { ...decodeRenameIn(b, off), flags: 0, oldname: o.name, newname: decodeName(b, o.next, end).name };
}

export function decodeRename2(b: Buffer, off: number, end: number): FuseRename2In & { oldname: FuseName; newname: FuseName } {
  const o = decodeName(b, off + LAYOUT.fuse_rename2_in.size, end);
  return { ...decodeRename2In(b, off), oldname: o.name, newname: decodeName(b, o.next, end).name };
}

export function decodeLink(b: Buffer, off: number, end: number): FuseLinkIn & { newname: FuseName } {
  return { ...decodeLinkIn(b, off), newname: decodeName(b, off + LAYOUT.fuse_link_in.size, end).name };
}

/** SETXATTR: struct, name, then `size` bytes of value (a view, like name bytes). */
export function decodeSetxattr(b: Buffer, off: number, end: number, ext: boolean): FuseSetxattrIn & { name: FuseName; value: Buffer } {
  const s = decodeSetxattrIn(b, off, ext);
  const n = decodeName(b, off + setxattrInSize(ext), end);
  if (n.next + s.size > end) throw new CodecError(`SETXATTR value of ${s.size} bytes runs past the request`);
  return { ...s, name: n.name, value: b.subarray(n.next, n.next + s.size) };
}

/** GETXATTR: struct then name. (LISTXATTR has only the struct.) */
export function decodeGetxattr(b: Buffer, off: number, end: number): FuseGetxattrIn & { name: FuseName } {
  return { ...decodeGetxattrIn(b, off), name: decodeName(b, off + LAYOUT.fuse_getxattr_in.size, end).name };
}

// ---------------------------------------------------------------------------
// Encoders: what we send. Each writes the whole struct at `off` and returns
// the offset after it.

export interface FuseOutHeader { len: number; /** 0, -errno, or a notify code */ error: number; unique: bigint }
const OH = LAYOUT.fuse_out_header.fields;
export function encodeOutHeader(b: Buffer, off: number, h: FuseOutHeader): number {
  u32(b, off + OH.len, h.len);
  b.writeInt32LE(h.error | 0, off + OH.error);
  b.writeBigUInt64LE(h.unique, off + OH.unique);
  return off + OUT_HEADER_SIZE;
}

export interface FuseAttr {
  ino: bigint;
  size: bigint;
  /** 512-byte units */
  blocks: bigint;
  /** seconds since the epoch (may be negative) */
  atime: number;
  mtime: number;
  ctime: number;
  atimensec: number;
  mtimensec: number;
  ctimensec: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  blksize: number;
  /** FUSE_ATTR_* */
  flags: number;
}
const AT = LAYOUT.fuse_attr.fields;
export function encodeAttr(b: Buffer, off: number, a: FuseAttr): number {
  b.writeBigUInt64LE(a.ino, off + AT.ino);
  b.writeBigUInt64LE(a.size, off + AT.size);
  b.writeBigUInt64LE(a.blocks, off + AT.blocks);
  n64(b, off + AT.atime, a.atime);
  n64(b, off + AT.mtime, a.mtime);
  n64(b, off + AT.ctime, a.ctime);
  u32(b, off + AT.atimensec, a.atimensec);
  u32(b, off + AT.mtimensec, a.mtimensec);
  u32(b, off + AT.ctimensec, a.ctimensec);
  u32(b, off + AT.mode, a.mode);
  u32(b, off + AT.nlink, a.nlink);
  u32(b, off + AT.uid, a.uid);
  u32(b, off + AT.gid, a.gid);
  u32(b, off + AT.rdev, a.rdev);
  u32(b, off + AT.blksize, a.blksize);
  u32(b, off + AT.flags, a.flags);
  return off + LAYOUT.fuse_attr.size;
}

export interface FuseEntryOut {
  /** 0 with entry_valid > 0 is a cached negative entry: the kernel remembers "no such name" that long. */
  nodeid: bigint;
  generation: bigint;
  /** seconds the kernel may trust the name → nodeid mapping */
  entry_valid: number;
  /** seconds the kernel may trust attr */
  attr_valid: number;
  entry_valid_nsec: number;
  attr_valid_nsec: number;
  attr: FuseAttr;
}
const EO = LAYOUT.fuse_entry_out.fields;
export function encodeEntryOut(b: Buffer, off: number, e: FuseEntryOut): number {
  b.writeBigUInt64LE(e.nodeid, off + EO.nodeid);
  b.writeBigUInt64LE(e.generation, off + EO.generation);
  n64(b, off + EO.entry_valid, e.entry_valid);
  n64(b, off + EO.attr_valid, e.attr_valid);
  u32(b, off + EO.entry_valid_nsec, e.entry_valid_nsec);
  u32(b, off + EO.attr_valid_nsec, e.attr_valid_nsec);
  encodeAttr(b, off + EO.attr, e.attr);
  return off + LAYOUT.fuse_entry_out.size;
}

export interface FuseAttrOut { attr_valid: number; attr_valid_nsec: number; attr: FuseAttr }
const AO = LAYOUT.fuse_attr_out.fields;
export function encodeAttrOut(b: Buffer, off: number, a: FuseAttrOut): number {
  n64(b, off + AO.attr_valid, a.attr_valid);
  u32(b, off + AO.attr_valid_nsec, a.attr_valid_nsec);
  u32(b, off + AO.attr_valid_nsec + 4, 0); // dummy
  encodeAttr(b, off + AO.attr, a.attr);
  return off + LAYOUT.fuse_attr_out.size;
}

export interface FuseOpenOut {
  fh: bigint;
  /** FOPEN_* */
  open_flags: number;
  /** 7.40: id from FUSE_DEV_IOC_BACKING_OPEN when open_flags has FOPEN_PASSTHROUGH, else 0. */
  backing_id: number;
}
const OO = LAYOUT.fuse_open_out.fields;
/** Also OPENDIR. */
export function encodeOpenOut(b: Buffer, off: number, o: FuseOpenOut): number {
  b.writeBigUInt64LE(o.fh, off + OO.fh);
  u32(b, off + OO.open_flags, o.open_flags);
  b.writeInt32LE(o.backing_id | 0, off + OO.backing_id);
  return off + LAYOUT.fuse_open_out.size;
}

export interface FuseInitOut {
  major: number;
  minor: number;
  max_readahead: number;
  /** 64-bit agreed flags; the encoder splits them into flags and flags2. */
  flags: bigint;
  max_background: number;
  congestion_threshold: number;
  max_write: number;
  /** timestamp granularity in ns (1 = full precision) */
  time_gran: number;
  /** with FUSE_MAX_PAGES: the largest request in pages (max_write / 4096) */
  max_pages: number;
  map_alignment: number;
  /** 7.40, with FUSE_PASSTHROUGH: how many stacked filesystems the backing files may sit on (1 is normal). */
  max_stack_depth: number;
}
const IO = LAYOUT.fuse_init_out.fields;
export function encodeInitOut(b: Buffer, off: number, i: FuseInitOut): number {
  const hi = Number((i.flags >> 32n) & 0xffffffffn);
  // The kernel reads flags2 only when FUSE_INIT_EXT is in flags; a high bit
  // without it (FUSE_PASSTHROUGH, say) would be dropped without a word.
  if (hi !== 0 && !(i.flags & FUSE_INIT_EXT)) throw new CodecError("INIT flags above bit 31 need FUSE_INIT_EXT");
  u32(b, off + IO.major, i.major);
  u32(b, off + IO.minor, i.minor);
  u32(b, off + IO.max_readahead, i.max_readahead);
  u32(b, off + IO.flags, Number(i.flags & 0xffffffffn));
  u16(b, off + IO.max_background, i.max_background);
  u16(b, off + IO.congestion_threshold, i.congestion_threshold);
  u32(b, off + IO.max_write, i.max_write);
  u32(b, off + IO.time_gran, i.time_gran);
  u16(b, off + IO.max_pages, i.max_pages);
  u16(b, off + IO.map_alignment, i.map_alignment);
  u32(b, off + IO.flags2, hi);
  u32(b, off + IO.max_stack_depth, i.max_stack_depth);
  zero(b, off + IO.max_stack_depth + 4, off + LAYOUT.fuse_init_out.size);
  return off + LAYOUT.fuse_init_out.size;
}

export interface FuseWriteOut { size: number }
export function encodeWriteOut(b: Buffer, off: number, w: FuseWriteOut): number {
  u32(b, off, w.size);
  u32(b, off + 4, 0);
  return off + LAYOUT.fuse_write_out.size;
}

export interface FuseKstatfs {
  blocks: bigint;
  bfree: bigint;
  bavail: bigint;
  files: bigint;
  ffree: bigint;
  bsize: number;
  namelen: number;
  frsize: number;
}
const KS = LAYOUT.fuse_kstatfs.fields;
function encodeKstatfs(b: Buffer, off: number, s: FuseKstatfs): number {
  b.writeBigUInt64LE(s.blocks, off + KS.blocks);
  b.writeBigUInt64LE(s.bfree, off + KS.bfree);
  b.writeBigUInt64LE(s.bavail, off + KS.bavail);
  b.writeBigUInt64LE(s.files, off + KS.files);
  b.writeBigUInt64LE(s.ffree, off + KS.ffree);
  u32(b, off + KS.bsize, s.bsize);
  u32(b, off + KS.namelen, s.namelen);
  u32(b, off + KS.frsize, s.frsize);
  zero(b, off + KS.frsize + 4, off + LAYOUT.fuse_kstatfs.size); // padding, spare[6]
  return off + LAYOUT.fuse_kstatfs.size;
}

export interface FuseStatfsOut { st: FuseKstatfs }
export function encodeStatfsOut(b: Buffer, off: number, s: FuseStatfsOut): number {
  return encodeKstatfs(b, off + LAYOUT.fuse_statfs_out.fields.st, s.st);
}

export interface FuseGetxattrOut { size: number }
export function encodeGetxattrOut(b: Buffer, off: number, g: FuseGetxattrOut): number {
  u32(b, off, g.size);
  u32(b, off + 4, 0);
  return off + LAYOUT.fuse_getxattr_out.size;
}

export interface FuseLseekOut { offset: bigint }
export function encodeLseekOut(b: Buffer, off: number, l: FuseLseekOut): number {
  b.writeBigUInt64LE(l.offset, off);
  return off + LAYOUT.fuse_lseek_out.size;
}

function encodeFileLock(b: Buffer, off: number, l: FuseFileLock): number {
  b.writeBigUInt64LE(l.start, off + LK.start);
  b.writeBigUInt64LE(l.end, off + LK.end);
  u32(b, off + LK.type, l.type);
  u32(b, off + LK.pid, l.pid);
  return off + LAYOUT.fuse_file_lock.size;
}

export interface FuseLkOut { lk: FuseFileLock }
export function encodeLkOut(b: Buffer, off: number, l: FuseLkOut): number {
  return encodeFileLock(b, off + LAYOUT.fuse_lk_out.fields.lk, l.lk);
}

export interface FusePollOut { revents: number }
export function encodePollOut(b: Buffer, off: number, p: FusePollOut): number {
  u32(b, off, p.revents);
  u32(b, off + 4, 0);
  return off + LAYOUT.fuse_poll_out.size;
}

export interface FuseBmapOut { block: bigint }
export function encodeBmapOut(b: Buffer, off: number, m: FuseBmapOut): number {
  b.writeBigUInt64LE(m.block, off);
  return off + LAYOUT.fuse_bmap_out.size;
}

export interface FuseNotifyPollWakeupOut { kh: bigint }
export function encodeNotifyPollWakeupOut(b: Buffer, off: number, p: FuseNotifyPollWakeupOut): number {
  b.writeBigUInt64LE(p.kh, off);
  return off + LAYOUT.fuse_notify_poll_wakeup_out.size;
}

export interface FuseNotifyInvalInodeOut {
  ino: bigint;
  /** byte range of cached data to drop; off < 0 drops only the attributes */
  off: bigint;
  /** <= 0 means to the end of the file */
  len: bigint;
}
const NI = LAYOUT.fuse_notify_inval_inode_out.fields;
export function encodeNotifyInvalInodeOut(b: Buffer, off: number, n: FuseNotifyInvalInodeOut): number {
  b.writeBigUInt64LE(n.ino, off + NI.ino);
  b.writeBigInt64LE(n.off, off + NI.off);
  b.writeBigInt64LE(n.len, off + NI.len);
  return off + LAYOUT.fuse_notify_inval_inode_out.size;
}

export interface FuseNotifyInvalEntryOut { parent: bigint; namelen: number; /** FUSE_EXPIRE_ONLY */ flags: number }
const NE = LAYOUT.fuse_notify_inval_entry_out.fields;
export function encodeNotifyInvalEntryOut(b: Buffer, off: number, n: FuseNotifyInvalEntryOut): number {
  b.writeBigUInt64LE(n.parent, off + NE.parent);
  u32(b, off + NE.namelen, n.namelen);
  u32(b, off + NE.flags, n.flags);
  return off + LAYOUT.fuse_notify_inval_entry_out.size;
}

export interface FuseNotifyDeleteOut { parent: bigint; child: bigint; namelen: number }
const ND = LAYOUT.fuse_notify_delete_out.fields;
export function encodeNotifyDeleteOut(b: Buffer, off: number, n: FuseNotifyDeleteOut): number {
  b.writeBigUInt64LE(n.parent, off + ND.parent);
  b.writeBigUInt64LE(n.child, off + ND.child);
  u32(b, off + ND.namelen, n.namelen);
  u32(b, off + ND.namelen + 4, 0);
  return off + LAYOUT.fuse_notify_delete_out.size;
}

export interface FuseNotifyStoreOut { nodeid: bigint; offset: bigint; size: number }
const NS = LAYOUT.fuse_notify_store_out.fields;
export function encodeNotifyStoreOut(b: Buffer, off: number, n: FuseNotifyStoreOut): number {
  b.writeBigUInt64LE(n.nodeid, off + NS.nodeid);
  b.writeBigUInt64LE(n.offset, off + NS.offset);
  u32(b, off + NS.size, n.size);
  u32(b, off + NS.size + 4, 0);
  return off + LAYOUT.fuse_notify_store_out.size;
}

export interface FuseBackingMap { fd: number; flags: number }
const BM = LAYOUT.fuse_backing_map.fields;
/** 7.40, the argument of FUSE_DEV_IOC_BACKING_OPEN. */
export function encodeBackingMap(b: Buffer, off: number, m: FuseBackingMap): number {
  b.writeInt32LE(m.fd | 0, off + BM.fd);
  u32(b, off + BM.flags, m.flags);
  zero(b, off + BM.flags + 4, off + LAYOUT.fuse_backing_map.size);
  return off + LAYOUT.fuse_backing_map.size;
}
/** A fresh fuse_backing_map for the ioctl (pass it with bun:ffi's ptr()). */
export function backingMap(fd: number, flags = 0): Buffer {
  const b = Buffer.allocUnsafe(LAYOUT.fuse_backing_map.size);
  encodeBackingMap(b, 0, { fd, flags });
  return b;
}

// ---------------------------------------------------------------------------
// Directory entries

/** Names as bytes (exact) or strings (written as UTF-8). */
export type NameInput = Uint8Array | string;

export interface FuseDirent {
  ino: bigint;
  /** cookie of the NEXT entry: READDIR with this offset resumes after this one */
  off: bigint;
  /** DT_* (see direntType) */
  type: number;
  name: NameInput;
}

/** READDIRPLUS record. The kernel takes a lookup reference for every entry
 * it receives with a non-zero entry_out.nodeid, except "." and "..": count
 * those in your nlookup table, and only for entries that were packed. */
export interface FuseDirentplus {
  entry_out: FuseEntryOut;
  dirent: FuseDirent;
}

function nameLength(name: NameInput): number {
  return typeof name === "string" ? Buffer.byteLength(name, "utf8") : name.length;
}

// The kernel fails the whole READDIR with EIO on an empty name or one
// containing '/'; NUL would silently cut the name short. Refuse them here.
function checkName(name: NameInput, len: number): void {
  if (len === 0) throw new CodecError("a directory entry needs a name");
  const bad = typeof name === "string" ? name.includes("/") || name.includes("\0") : name.includes(0x2f) || name.includes(0);
  if (bad) throw new CodecError(`directory entry name contains '/' or NUL`);
}

function writeName(b: Buffer, off: number, name: NameInput, len: number): void {
  if (typeof name === "string") b.write(name, off, len, "utf8");
  else b.set(name, off);
}

const DE = LAYOUT.fuse_dirent.fields;
function encodeDirentSized(b: Buffer, off: number, d: FuseDirent, namelen: number): number {
  b.writeBigUInt64LE(d.ino, off + DE.ino);
  b.writeBigUInt64LE(d.off, off + DE.off);
  u32(b, off + DE.namelen, namelen);
  u32(b, off + DE.type, d.type);
  writeName(b, off + DE.name, d.name, namelen);
  const end = direntAlign(off + DE.name + namelen - off) + off;
  zero(b, off + DE.name + namelen, end);
  return end;
}

/** One fuse_dirent with its name and zeroed padding to the next 8-byte boundary. */
export function encodeDirent(b: Buffer, off: number, d: FuseDirent): number {
  const len = nameLength(d.name);
  checkName(d.name, len);
  return encodeDirentSized(b, off, d, len);
}

export function encodeDirentplus(b: Buffer, off: number, d: FuseDirentplus): number {
  const len = nameLength(d.dirent.name);
  checkName(d.dirent.name, len);
  encodeEntryOut(b, off + LAYOUT.fuse_direntplus.fields.entry_out, d.entry_out);
  return encodeDirentSized(b, off + LAYOUT.fuse_direntplus.fields.dirent, d.dirent, len);
}

export interface DirentPacker<T> {
  /** Appends the entry if it fits in the request's size; false (and nothing written) when it does not. */
  add(entry: T): boolean;
  /** How many entries were added. */
  readonly count: number;
  /** The complete reply message (header included). No entries = end of directory. */
  finish(): Buffer;
}

function packer<T>(unique: bigint, size: number, sizeOf: (e: T) => number, encode: (b: Buffer, off: number, e: T) => number): DirentPacker<T> {
  const buf = Buffer.allocUnsafe(OUT_HEADER_SIZE + size);
  const limit = OUT_HEADER_SIZE + size;
  let pos: number = OUT_HEADER_SIZE;
  let count = 0;
  return {
    add(e: T): boolean {
      if (pos + sizeOf(e) > limit) return false;
      pos = encode(buf, pos, e);
      count++;
      return true;
    },
    get count() {
      return count;
    },
    finish(): Buffer {
      return finishReply(buf, unique, pos - OUT_HEADER_SIZE);
    },
  };
}

/** Builds a READDIR reply no longer than `size` (fuse_read_in.size). */
export function readdirPacker(unique: bigint, size: number): DirentPacker<FuseDirent> {
  return packer(unique, size, (d) => direntSize(nameLength(d.name)), encodeDirent);
}

/** Builds a READDIRPLUS reply no longer than `size` (fuse_read_in.size). */
export function readdirplusPacker(unique: bigint, size: number): DirentPacker<FuseDirentplus> {
  return packer(unique, size, (d) => direntplusSize(nameLength(d.dirent.name)), encodeDirentplus);
}

/** Packs entries[start..] until one does not fit; `count` says how many went in. */
export function packReaddir(unique: bigint, size: number, entries: readonly FuseDirent[], start = 0): { reply: Buffer; count: number } {
  const p = readdirPacker(unique, size);
  for (let i = start; i < entries.length && p.add(entries[i]); i++);
  return { reply: p.finish(), count: p.count };
}

export function packReaddirplus(unique: bigint, size: number, entries: readonly FuseDirentplus[], start = 0): { reply: Buffer; count: number } {
  const p = readdirplusPacker(unique, size);
  for (let i = start; i < entries.length && p.add(entries[i]); i++);
  return { reply: p.finish(), count: p.count };
}

// ---------------------------------------------------------------------------
// Whole reply messages: one Buffer each, ready for a single write(2).

/** Fills the out header in front of `bodyLen` bytes already written at OUT_HEADER_SIZE;
 * returns the exact message. Use it to pread file data straight into a reply buffer. */
export function finishReply(b: Buffer, unique: bigint, bodyLen: number): Buffer {
  const len = OUT_HEADER_SIZE + bodyLen;
  b.writeUInt32LE(len, OH.len);
  b.writeInt32LE(0, OH.error);
  b.writeBigUInt64LE(unique, OH.unique);
  return len === b.length ? b : b.subarray(0, len);
}

function message(unique: bigint, bodyLen: number): Buffer {
  const b = Buffer.allocUnsafe(OUT_HEADER_SIZE + bodyLen);
  b.writeUInt32LE(OUT_HEADER_SIZE + bodyLen, OH.len);
  b.writeInt32LE(0, OH.error);
  b.writeBigUInt64LE(unique, OH.unique);
  return b;
}

/** `errno` is positive (ENOENT = 2). The kernel rejects values outside 1..511 and
 * the caller would then hang, so those become EIO instead. */
export function errorReply(unique: bigint, errno: number): Buffer {
  const e = Number.isInteger(errno) && errno > 0 && errno < 512 ? errno : 5;
  const b = message(unique, 0);
  b.writeInt32LE(-e, OH.error);
  return b;
}

/** Success with no body: RELEASE, FLUSH, FSYNC, UNLINK, RMDIR, SETXATTR, ACCESS, ... */
export function okReply(unique: bigint): Buffer {
  return message(unique, 0);
}

/** READ, READLINK, LISTXATTR, GETXATTR (with size > 0): the bytes themselves. */
export function dataReply(unique: bigint, data: Uint8Array): Buffer {
  const b = message(unique, data.length);
  b.set(data, OUT_HEADER_SIZE);
  return b;
}

export function entryReply(unique: bigint, e: FuseEntryOut): Buffer {
  const b = message(unique, LAYOUT.fuse_entry_out.size);
  encodeEntryOut(b, OUT_HEADER_SIZE, e);
  return b;
}

/** GETATTR and SETATTR. */
export function attrReply(unique: bigint, a: FuseAttrOut): Buffer {
  const b = message(unique, LAYOUT.fuse_attr_out.size);
  encodeAttrOut(b, OUT_HEADER_SIZE, a);
  return b;
}

/** OPEN and OPENDIR. */
export function openReply(unique: bigint, o: FuseOpenOut): Buffer {
  const b = message(unique, LAYOUT.fuse_open_out.size);
  encodeOpenOut(b, OUT_HEADER_SIZE, o);
  return b;
}

/** CREATE (and TMPFILE): entry_out followed by open_out. */
export function createReply(unique: bigint, e: FuseEntryOut, o: FuseOpenOut): Buffer {
  const b = message(unique, LAYOUT.fuse_entry_out.size + LAYOUT.fuse_open_out.size);
  encodeOpenOut(b, encodeEntryOut(b, OUT_HEADER_SIZE, e), o);
  return b;
}

export function initReply(unique: bigint, i: FuseInitOut): Buffer {
  const b = message(unique, LAYOUT.fuse_init_out.size);
  encodeInitOut(b, OUT_HEADER_SIZE, i);
  return b;
}

export function writeReply(unique: bigint, size: number): Buffer {
  const b = message(unique, LAYOUT.fuse_write_out.size);
  encodeWriteOut(b, OUT_HEADER_SIZE, { size });
  return b;
}

export function statfsReply(unique: bigint, st: FuseKstatfs): Buffer {
  const b = message(unique, LAYOUT.fuse_statfs_out.size);
  encodeStatfsOut(b, OUT_HEADER_SIZE, { st });
  return b;
}

/** GETXATTR / LISTXATTR asked with size 0: only the length the value would need. */
export function xattrSizeReply(unique: bigint, size: number): Buffer {
  const b = message(unique, LAYOUT.fuse_getxattr_out.size);
  encodeGetxattrOut(b, OUT_HEADER_SIZE, { size });
  return b;
}

export function lseekReply(unique: bigint, offset: bigint): Buffer {
  const b = message(unique, LAYOUT.fuse_lseek_out.size);
  encodeLseekOut(b, OUT_HEADER_SIZE, { offset });
  return b;
}

/** GETLK. */
export function lkReply(unique: bigint, lk: FuseFileLock): Buffer {
  const b = message(unique, LAYOUT.fuse_lk_out.size);
  encodeLkOut(b, OUT_HEADER_SIZE, { lk });
  return b;
}

export function pollReply(unique: bigint, revents: number): Buffer {
  const b = message(unique, LAYOUT.fuse_poll_out.size);
  encodePollOut(b, OUT_HEADER_SIZE, { revents });
  return b;
}

export function bmapReply(unique: bigint, block: bigint): Buffer {
  const b = message(unique, LAYOUT.fuse_bmap_out.size);
  encodeBmapOut(b, OUT_HEADER_SIZE, { block });
  return b;
}

// ---------------------------------------------------------------------------
// Notifications: unsolicited messages to the kernel, unique = 0 and the code
// in the error field. Written to the session fd like replies (one write each).

function notification(code: number, bodyLen: number): Buffer {
  const b = Buffer.allocUnsafe(OUT_HEADER_SIZE + bodyLen);
  b.writeUInt32LE(OUT_HEADER_SIZE + bodyLen, OH.len);
  b.writeInt32LE(code, OH.error);
  b.writeBigUInt64LE(0n, OH.unique);
  return b;
}

/** Drop cached attributes (and data in [off, off+len) unless off < 0) of an inode. */
export function notifyInvalInode(ino: bigint, off: bigint, len: bigint): Buffer {
  const b = notification(FUSE_NOTIFY_INVAL_INODE, LAYOUT.fuse_notify_inval_inode_out.size);
  encodeNotifyInvalInodeOut(b, OUT_HEADER_SIZE, { ino, off, len });
  return b;
}

// The kernel insists on exactly struct + name + one NUL for these two.
function withName(code: number, structSize: number, name: NameInput): { b: Buffer; namelen: number; nameAt: number } {
  const namelen = nameLength(name);
  const b = notification(code, structSize + namelen + 1);
  const nameAt = OUT_HEADER_SIZE + structSize;
  writeName(b, nameAt, name, namelen);
  b[nameAt + namelen] = 0;
  return { b, namelen, nameAt };
}

/** Forget the dentry `name` in `parent` (FUSE_EXPIRE_ONLY in flags: only mark it stale). */
export function notifyInvalEntry(parent: bigint, name: NameInput, flags = 0): Buffer {
  const { b, namelen } = withName(FUSE_NOTIFY_INVAL_ENTRY, LAYOUT.fuse_notify_inval_entry_out.size, name);
  encodeNotifyInvalEntryOut(b, OUT_HEADER_SIZE, { parent, namelen, flags });
  return b;
}

/** `name` in `parent` (which was `child`) is gone: unlike INVAL_ENTRY this also tells inotify. */
export function notifyDelete(parent: bigint, child: bigint, name: NameInput): Buffer {
  const { b, namelen } = withName(FUSE_NOTIFY_DELETE, LAYOUT.fuse_notify_delete_out.size, name);
  encodeNotifyDeleteOut(b, OUT_HEADER_SIZE, { parent, child, namelen });
  return b;
}

/** Push `data` into the kernel's page cache of `nodeid` at `offset`. */
export function notifyStore(nodeid: bigint, offset: bigint, data: Uint8Array): Buffer {
  const b = notification(FUSE_NOTIFY_STORE, LAYOUT.fuse_notify_store_out.size + data.length);
  const at = encodeNotifyStoreOut(b, OUT_HEADER_SIZE, { nodeid, offset, size: data.length });
  b.set(data, at);
  return b;
}

/** Wake pollers waiting on kernel handle `kh` (from fuse_poll_in.kh). */
export function notifyPollWakeup(kh: bigint): Buffer {
  const b = notification(FUSE_NOTIFY_POLL, LAYOUT.fuse_notify_poll_wakeup_out.size);
  encodeNotifyPollWakeupOut(b, OUT_HEADER_SIZE, { kh });
  return b;
}

/** 7.40 (needs FUSE_HAS_RESEND): the kernel resends every request still waiting for a reply. */
export function notifyResend(): Buffer {
  return notification(FUSE_NOTIFY_RESEND, 0);
}
