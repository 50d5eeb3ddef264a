// NFS version 3 (RFC 1813): the program's constants and the structures its
// procedures share (file handles, attributes, times, sattr3, wcc_data, ...),
// each with one decoder and one encoder. Each procedure's arguments are in
// nfs3-args.ts, its results in nfs3-results.ts; nothing here knows what a
// procedure means.
//
// Conventions:
// - Names are RFC 1813's: constants verbatim (NFS3ERR_NOENT, NF3DIR), types
//   in PascalCase (fattr3 → Fattr3), fields in camelCase (obj_attributes →
//   objAttributes).
// - uint64 fields (sizes, offsets, file ids, fsid, cookies) are bigint; all
//   32-bit fields are numbers (see xdr.ts).
// - A union on a bool whose FALSE arm is void (post_op_attr, pre_op_attr,
//   post_op_fh3, set_mode3, ...) is the value or undefined.
// - File handles and verifiers are views into the record (see xdr.ts).

import type { XdrReader, XdrString, XdrWriter } from "./xdr.ts";

export const NFS_PROGRAM = 100003;
export const NFS_V3 = 3;

// ---------------------------------------------------------------------------
// Procedures

export const NFSPROC3_NULL = 0;
export const NFSPROC3_GETATTR = 1;
export const NFSPROC3_SETATTR = 2;
export const NFSPROC3_LOOKUP = 3;
export const NFSPROC3_ACCESS = 4;
export const NFSPROC3_READLINK = 5;
export const NFSPROC3_READ = 6;
export const NFSPROC3_WRITE = 7;
export const NFSPROC3_CREATE = 8;
export const NFSPROC3_MKDIR = 9;
export const NFSPROC3_SYMLINK = 10;
export const NFSPROC3_MKNOD = 11;
export const NFSPROC3_REMOVE = 12;
export const NFSPROC3_RMDIR = 13;
export const NFSPROC3_RENAME = 14;
export const NFSPROC3_LINK = 15;
export const NFSPROC3_READDIR = 16;
export const NFSPROC3_READDIRPLUS = 17;
export const NFSPROC3_FSSTAT = 18;
export const NFSPROC3_FSINFO = 19;
export const NFSPROC3_PATHCONF = 20;
export const NFSPROC3_COMMIT = 21;

const PROC_NAMES = [
  "NULL", "GETATTR", "SETATTR", "LOOKUP", "ACCESS", "READLINK", "READ", "WRITE", "CREATE", "MKDIR", "SYMLINK",
  "MKNOD", "REMOVE", "RMDIR", "RENAME", "LINK", "READDIR", "READDIRPLUS", "FSSTAT", "FSINFO", "PATHCONF", "COMMIT",
] as const;

/** Procedure number → name for logs ("LOOKUP"; "PROC99" for one NFSv3 does not have). */
export function nfs3ProcName(proc: number): string {
  return PROC_NAMES[proc] ?? `PROC${proc}`;
}

// ---------------------------------------------------------------------------
// Sizes and limits

export const NFS3_FHSIZE = 64;
export const NFS3_COOKIEVERFSIZE = 8;
export const NFS3_CREATEVERFSIZE = 8;
export const NFS3_WRITEVERFSIZE = 8;

/**
 * The longest name the server accepts (what PATHCONF's name_max reports).
 * Not a wire limit: RFC 1813's filename3 is unbounded, and a longer name must
 * be answered NFS3ERR_NAMETOOLONG by the procedure, not GARBAGE_ARGS.
 */
export const NFS3_MAXNAMLEN = 255;
/** filename3 longer than this is garbage: far past any name a client may send, it only bounds the work. */
export const FILENAME3_WIRE_MAX = 4096;
/** nfspath3 (a symlink's target) longer than this is garbage; PATH_MAX-sized targets stay the procedure's to refuse. */
export const NFSPATH3_WIRE_MAX = 65536;

// ---------------------------------------------------------------------------
// nfsstat3

export const NFS3_OK = 0;
export const NFS3ERR_PERM = 1;
export const NFS3ERR_NOENT = 2;
export const NFS3ERR_IO = 5;
export const NFS3ERR_NXIO = 6;
export const NFS3ERR_ACCES = 13;
export const NFS3ERR_EXIST = 17;
export const NFS3ERR_XDEV = 18;
export const NFS3ERR_NODEV = 19;
export const NFS3ERR_NOTDIR = 20;
export const NFS3ERR_ISDIR = 21;
export const NFS3ERR_INVAL = 22;
export const NFS3ERR_FBIG = 27;
export const NFS3ERR_NOSPC = 28;
export const NFS3ERR_ROFS = 30;
export const NFS3ERR_MLINK = 31;
export const NFS3ERR_NAMETOOLONG = 63;
export const NFS3ERR_NOTEMPTY = 66;
export const NFS3ERR_DQUOT = 69;
export const NFS3ERR_STALE = 70;
export const NFS3ERR_REMOTE = 71;
export const NFS3ERR_BADHANDLE = 10001;
export const NFS3ERR_NOT_SYNC = 10002;
export const NFS3ERR_BAD_COOKIE = 10003;
export const NFS3ERR_NOTSUPP = 10004;
export const NFS3ERR_TOOSMALL = 10005;
export const NFS3ERR_SERVERFAULT = 10006;
export const NFS3ERR_BADTYPE = 10007;
export const NFS3ERR_JUKEBOX = 10008;

// ---------------------------------------------------------------------------
// Enums and bit sets

// ftype3
export const NF3REG = 1;
export const NF3DIR = 2;
export const NF3BLK = 3;
export const NF3CHR = 4;
export const NF3LNK = 5;
export const NF3SOCK = 6;
export const NF3FIFO = 7;
export const FTYPE3 = [NF3REG, NF3DIR, NF3BLK, NF3CHR, NF3LNK, NF3SOCK, NF3FIFO] as const;

// time_how
export const DONT_CHANGE = 0;
export const SET_TO_SERVER_TIME = 1;
export const SET_TO_CLIENT_TIME = 2;

// stable_how
export const UNSTABLE = 0;
export const DATA_SYNC = 1;
export const FILE_SYNC = 2;
export const STABLE_HOW = [UNSTABLE, DATA_SYNC, FILE_SYNC] as const;

// createmode3
export const UNCHECKED = 0;
export const GUARDED = 1;
export const EXCLUSIVE = 2;

// ACCESS3 bits
export const ACCESS3_READ = 0x0001;
export const ACCESS3_LOOKUP = 0x0002;
export const ACCESS3_MODIFY = 0x0004;
export const ACCESS3_EXTEND = 0x0008;
export const ACCESS3_DELETE = 0x0010;
export const ACCESS3_EXECUTE = 0x0020;

// FSINFO3 properties
export const FSF3_LINK = 0x0001;
export const FSF3_SYMLINK = 0x0002;
export const FSF3_HOMOGENEOUS = 0x0008;
export const FSF3_CANSETTIME = 0x0010;

// ---------------------------------------------------------------------------
// Scalars with a name

/** nfs_fh3: opaque data<NFS3_FHSIZE>. Its content is ours to choose and to check. */
export function decodeNfsFh3(r: XdrReader): Buffer {
  return r.opaque(NFS3_FHSIZE, "a file handle");
}
export function encodeNfsFh3(w: XdrWriter, fh: Uint8Array): void {
  // A longer handle would be garbage to every client: our bug, not theirs.
  if (fh.length > NFS3_FHSIZE) throw new RangeError(`a file handle of ${fh.length} bytes is over ${NFS3_FHSIZE}`);
  w.opaque(fh);
}

export function decodeFilename3(r: XdrReader): XdrString {
  return r.string(FILENAME3_WIRE_MAX, "a file name");
}
export function decodeNfspath3(r: XdrReader): XdrString {
  return r.string(NFSPATH3_WIRE_MAX, "a path");
}

export function decodeCookieverf3(r: XdrReader): Buffer {
  return r.opaqueFixed(NFS3_COOKIEVERFSIZE, "a cookie verifier");
}
export function decodeCreateverf3(r: XdrReader): Buffer {
  return r.opaqueFixed(NFS3_CREATEVERFSIZE, "a create verifier");
}
export function decodeWriteverf3(r: XdrReader): Buffer {
  return r.opaqueFixed(NFS3_WRITEVERFSIZE, "a write verifier");
}
/** cookieverf3, createverf3 and writeverf3 are all opaque[8]. */
export function encodeVerf8(w: XdrWriter, verf: Uint8Array): void {
  w.opaqueFixed(verf, 8);
}

export function decodeFtype3(r: XdrReader): number {
  return r.enumOf(FTYPE3, "ftype3");
}

// ---------------------------------------------------------------------------
// Small structures

export interface Nfstime3 {
  seconds: number;
  nseconds: number;
}
export function decodeNfstime3(r: XdrReader): Nfstime3 {
  return { seconds: r.uint32("nfstime3.seconds"), nseconds: r.uint32("nfstime3.nseconds") };
}
export function encodeNfstime3(w: XdrWriter, t: Nfstime3): void {
  w.uint32(t.seconds);
  w.uint32(t.nseconds);
}

/** Major and minor device numbers of a block or character device; zeros otherwise. */
export interface Specdata3 {
  specdata1: number;
  specdata2: number;
}
export function decodeSpecdata3(r: XdrReader): Specdata3 {
  return { specdata1: r.uint32("specdata1"), specdata2: r.uint32("specdata2") };
}
export function encodeSpecdata3(w: XdrWriter, s: Specdata3): void {
  w.uint32(s.specdata1);
  w.uint32(s.specdata2);
}

// ---------------------------------------------------------------------------
// Attributes

export interface Fattr3 {
  /** ftype3 */
  type: number;
  /** Permission bits and setuid/setgid/sticky only: the file type travels in `type`. */
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: bigint;
  /** Bytes of storage the file uses. */
  used: bigint;
  rdev: Specdata3;
  fsid: bigint;
  fileid: bigint;
  atime: Nfstime3;
  mtime: Nfstime3;
  ctime: Nfstime3;
}

/** Bytes of an encoded fattr3: 5 uint32, 2 uint64, specdata3, 2 uint64, 3 nfstime3. */
export const FATTR3_SIZE = 84;

export function decodeFattr3(r: XdrReader): Fattr3 {
  return {
    type: decodeFtype3(r),
    mode: r.uint32("fattr3.mode"),
    nlink: r.uint32("fattr3.nlink"),
    uid: r.uint32("fattr3.uid"),
    gid: r.uint32("fattr3.gid"),
    size: r.uint64("fattr3.size"),
    used: r.uint64("fattr3.used"),
    rdev: decodeSpecdata3(r),
    fsid: r.uint64("fattr3.fsid"),
    fileid: r.uint64("fattr3.fileid"),
    atime: decodeNfstime3(r),
    mtime: decodeNfstime3(r),
    ctime: decodeNfstime3(r),
  };
}
export function encodeFattr3(w: XdrWriter, a: Fattr3): void {
  w.uint32(a.type);
  w.uint32(a.mode);
  w.uint32(a.nlink);
  w.uint32(a.uid);
  w.uint32(a.gid);
  w.uint64(a.size);
  w.uint64(a.used);
  encodeSpecdata3(w, a.rdev);
  w.uint64(a.fsid);
  w.uint64(a.fileid);
  encodeNfstime3(w, a.atime);
  encodeNfstime3(w, a.mtime);
  encodeNfstime3(w, a.ctime);
}

/** post_op_attr: the attributes after the operation, or undefined when the server has none to give. */
export type PostOpAttr = Fattr3 | undefined;
export function decodePostOpAttr(r: XdrReader): PostOpAttr {
  return r.optional(decodeFattr3, "post_op_attr");
}
export function encodePostOpAttr(w: XdrWriter, a: PostOpAttr): void {
  w.optional(a, encodeFattr3);
}

/** The attributes a client uses to tell whether its cache is still good. */
export interface WccAttr {
  size: bigint;
  mtime: Nfstime3;
  ctime: Nfstime3;
}
export function decodeWccAttr(r: XdrReader): WccAttr {
  return { size: r.uint64("wcc_attr.size"), mtime: decodeNfstime3(r), ctime: decodeNfstime3(r) };
}
export function encodeWccAttr(w: XdrWriter, a: WccAttr): void {
  w.uint64(a.size);
  encodeNfstime3(w, a.mtime);
  encodeNfstime3(w, a.ctime);
}

/** pre_op_attr: what the object looked like just before the operation, or undefined. */
export type PreOpAttr = WccAttr | undefined;
export function decodePreOpAttr(r: XdrReader): PreOpAttr {
  return r.optional(decodeWccAttr, "pre_op_attr");
}
export function encodePreOpAttr(w: XdrWriter, a: PreOpAttr): void {
  w.optional(a, encodeWccAttr);
}

/** wcc_data: before and after, so a client can tell whether only its own change happened in between. */
export interface WccData {
  before?: WccAttr;
  after?: Fattr3;
}
export function decodeWccData(r: XdrReader): WccData {
  return { before: decodePreOpAttr(r), after: decodePostOpAttr(r) };
}
export function encodeWccData(w: XdrWriter, d: WccData): void {
  encodePreOpAttr(w, d.before);
  encodePostOpAttr(w, d.after);
}

/** post_op_fh3: the new object's handle, or undefined (the client then LOOKUPs it). */
export type PostOpFh3 = Buffer | undefined;
export function decodePostOpFh3(r: XdrReader): PostOpFh3 {
  return r.optional(decodeNfsFh3, "post_op_fh3");
}
export function encodePostOpFh3(w: XdrWriter, fh: Uint8Array | undefined): void {
  w.optional(fh, encodeNfsFh3);
}

// ---------------------------------------------------------------------------
// sattr3: the attributes a client asks to set

/**
 * set_atime / set_mtime: undefined is DONT_CHANGE, "server" is
 * SET_TO_SERVER_TIME (the server's clock, now), a time is SET_TO_CLIENT_TIME.
 */
export type SetTime = Nfstime3 | "server" | undefined;

/** Each field undefined means "leave it" (set_it FALSE, or DONT_CHANGE for times). */
export interface Sattr3 {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: bigint;
  atime?: SetTime;
  mtime?: SetTime;
}

function decodeSetTime(r: XdrReader, what: string): SetTime {
  const how = r.enumOf([DONT_CHANGE, SET_TO_SERVER_TIME, SET_TO_CLIENT_TIME], `${what} time_how`);
  if (how === SET_TO_CLIENT_TIME) return decodeNfstime3(r);
  return how === SET_TO_SERVER_TIME ? "server" : undefined;
}
function encodeSetTime(w: XdrWriter, t: SetTime): void {
  if (t === undefined) w.uint32(DONT_CHANGE);
  else if (t === "server") w.uint32(SET_TO_SERVER_TIME);
  else {
    w.uint32(SET_TO_CLIENT_TIME);
    encodeNfstime3(w, t);
  }
}

export function decodeSattr3(r: XdrReader): Sattr3 {
  const s: Sattr3 = {};
  if (r.bool("set_mode3.set_it")) s.mode = r.uint32("sattr3.mode");
  if (r.bool("set_uid3.set_it")) s.uid = r.uint32("sattr3.uid");
  if (r.bool("set_gid3.set_it")) s.gid = r.uint32("sattr3.gid");
  if (r.bool("set_size3.set_it")) s.size = r.uint64("sattr3.size");
  const atime = decodeSetTime(r, "set_atime");
  if (atime !== undefined) s.atime = atime;
  const mtime = decodeSetTime(r, "set_mtime");
  if (mtime !== undefined) s.mtime = mtime;
  return s;
}
export function encodeSattr3(w: XdrWriter, s: Sattr3): void {
  w.optional(s.mode, (w, v) => w.uint32(v));
  w.optional(s.uid, (w, v) => w.uint32(v));
  w.optional(s.gid, (w, v) => w.uint32(v));
  w.optional(s.size, (w, v) => w.uint64(v));
  encodeSetTime(w, s.atime);
  encodeSetTime(w, s.mtime);
}

// ---------------------------------------------------------------------------
// diropargs3: a name in a directory

export interface Diropargs3 {
  dir: Buffer;
  name: XdrString;
}
export function decodeDiropargs3(r: XdrReader): Diropargs3 {
  return { dir: decodeNfsFh3(r), name: decodeFilename3(r) };
}
export function encodeDiropargs3(w: XdrWriter, d: { dir: Uint8Array; name: string | Uint8Array }): void {
  encodeNfsFh3(w, d.dir);
  w.string(d.name);
}
