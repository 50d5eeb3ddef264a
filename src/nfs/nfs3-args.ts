// The arguments of each NFSv3 procedure (RFC 1813 §3.3), decoded from the
// reader that decodeCall left at the start of the arguments. Every decoder
// throws XdrError on anything malformed (the server answers GARBAGE_ARGS)
// and checks only the wire: whether a handle is ours, a name legal or a
// count sensible is the procedure's to decide.
//
// NULL has no arguments. Names follow nfs3-xdr.ts: GETATTR3args →
// Getattr3Args, obj_attributes → objAttributes.

import { XdrError, type XdrReader, type XdrString } from "./xdr.ts";
import {
  decodeCookieverf3, decodeCreateverf3, decodeDiropargs3, decodeFtype3, decodeNfsFh3, decodeNfspath3,
  decodeNfstime3, decodeSattr3, decodeSpecdata3,
  EXCLUSIVE, GUARDED, NF3BLK, NF3CHR, NF3DIR, NF3FIFO, NF3LNK, NF3REG, NF3SOCK, STABLE_HOW, UNCHECKED,
  type Diropargs3, type Nfstime3, type Sattr3, type Specdata3,
} from "./nfs3-xdr.ts";

export interface Getattr3Args {
  object: Buffer;
}
export function decodeGetattr3Args(r: XdrReader): Getattr3Args {
  return { object: decodeNfsFh3(r) };
}

export interface Setattr3Args {
  object: Buffer;
  newAttributes: Sattr3;
  /** sattrguard3: when present (check TRUE), apply only if the object's ctime still equals it (else NFS3ERR_NOT_SYNC). */
  guard: Nfstime3 | undefined;
}
export function decodeSetattr3Args(r: XdrReader): Setattr3Args {
  return {
    object: decodeNfsFh3(r),
    newAttributes: decodeSattr3(r),
    guard: r.optional(decodeNfstime3, "sattrguard3"),
  };
}

export interface Lookup3Args {
  what: Diropargs3;
}
export function decodeLookup3Args(r: XdrReader): Lookup3Args {
  return { what: decodeDiropargs3(r) };
}

export interface Access3Args {
  object: Buffer;
  /** ACCESS3_* bits the client asks about. */
  access: number;
}
export function decodeAccess3Args(r: XdrReader): Access3Args {
  return { object: decodeNfsFh3(r), access: r.uint32("ACCESS3args.access") };
}

export interface Readlink3Args {
  symlink: Buffer;
}
export function decodeReadlink3Args(r: XdrReader): Readlink3Args {
  return { symlink: decodeNfsFh3(r) };
}

export interface Read3Args {
  file: Buffer;
  offset: bigint;
  count: number;
}
export function decodeRead3Args(r: XdrReader): Read3Args {
  return { file: decodeNfsFh3(r), offset: r.uint64("READ3args.offset"), count: r.uint32("READ3args.count") };
}

export interface Write3Args {
  file: Buffer;
  offset: bigint;
  count: number;
  /** stable_how: UNSTABLE, DATA_SYNC or FILE_SYNC. */
  stable: number;
  /** A view into the record, `count` bytes long. */
  data: Buffer;
}
export function decodeWrite3Args(r: XdrReader): Write3Args {
  const file = decodeNfsFh3(r);
  const offset = r.uint64("WRITE3args.offset");
  const count = r.uint32("WRITE3args.count");
  const stable = r.enumOf(STABLE_HOW, "stable_how");
  // opaque data<> has no bound of its own: the record limit is its bound.
  const data = r.opaque(0xffffffff, "WRITE3args.data");
  // count and the opaque length describe the same bytes; a client that sends
  // two different numbers has lost track of its message (Linux's nfsd calls
  // this garbage too).
  if (data.length !== count) throw new XdrError(`WRITE3args.count is ${count} but ${data.length} bytes of data follow`);
  return { file, offset, count, stable, data };
}

/** createhow3: UNCHECKED and GUARDED carry initial attributes, EXCLUSIVE a verifier to make retries idempotent. */
export type Createhow3 =
  | { mode: typeof UNCHECKED | typeof GUARDED; objAttributes: Sattr3 }
  | { mode: typeof EXCLUSIVE; verf: Buffer };
export function decodeCreatehow3(r: XdrReader): Createhow3 {
  const mode = r.enumOf([UNCHECKED, GUARDED, EXCLUSIVE], "createmode3");
  if (mode === EXCLUSIVE) return { mode, verf: decodeCreateverf3(r) };
  return { mode: mode === GUARDED ? GUARDED : UNCHECKED, objAttributes: decodeSattr3(r) };
}

export interface Create3Args {
  where: Diropargs3;
  how: Createhow3;
}
export function decodeCreate3Args(r: XdrReader): Create3Args {
  return { where: decodeDiropargs3(r), how: decodeCreatehow3(r) };
}

export interface Mkdir3Args {
  where: Diropargs3;
  attributes: Sattr3;
}
export function decodeMkdir3Args(r: XdrReader): Mkdir3Args {
  return { where: decodeDiropargs3(r), attributes: decodeSattr3(r) };
}

export interface Symlinkdata3 {
  symlinkAttributes: Sattr3;
  /** The target, as the client gave it: bytes, not a path we resolve. */
  symlinkData: XdrString;
}
export interface Symlink3Args {
  where: Diropargs3;
  symlink: Symlinkdata3;
}
export function decodeSymlink3Args(r: XdrReader): Symlink3Args {
  const where = decodeDiropargs3(r);
  const symlinkAttributes = decodeSattr3(r);
  return { where, symlink: { symlinkAttributes, symlinkData: decodeNfspath3(r) } };
}

export interface Devicedata3 {
  devAttributes: Sattr3;
  spec: Specdata3;
}
/**
 * mknoddata3. Devices carry attributes and numbers, sockets and FIFOs
 * attributes; the other file types carry nothing (the union's default arm),
 * and the procedure answers them NFS3ERR_BADTYPE.
 */
export type Mknoddata3 =
  | { type: typeof NF3CHR | typeof NF3BLK; device: Devicedata3 }
  | { type: typeof NF3SOCK | typeof NF3FIFO; pipeAttributes: Sattr3 }
  | { type: typeof NF3REG | typeof NF3DIR | typeof NF3LNK };
export function decodeMknoddata3(r: XdrReader): Mknoddata3 {
  const type = decodeFtype3(r);
  switch (type) {
    case NF3CHR:
    case NF3BLK: {
      const devAttributes = decodeSattr3(r);
      return { type, device: { devAttributes, spec: decodeSpecdata3(r) } };
    }
    case NF3SOCK:
    case NF3FIFO:
      return { type, pipeAttributes: decodeSattr3(r) };
    case NF3REG:
    case NF3DIR:
    case NF3LNK:
      return { type };
    default:
      throw new XdrError(`ftype3 ${type} is not a file type`); // decodeFtype3 already refused it
  }
}

export interface Mknod3Args {
  where: Diropargs3;
  what: Mknoddata3;
}
export function decodeMknod3Args(r: XdrReader): Mknod3Args {
  return { where: decodeDiropargs3(r), what: decodeMknoddata3(r) };
}

export interface Remove3Args {
  object: Diropargs3;
}
export function decodeRemove3Args(r: XdrReader): Remove3Args {
  return { object: decodeDiropargs3(r) };
}

export interface Rmdir3Args {
  object: Diropargs3;
}
export function decodeRmdir3Args(r: XdrReader): Rmdir3Args {
  return { object: decodeDiropargs3(r) };
}

export interface Rename3Args {
  from: Diropargs3;
  to: Diropargs3;
}
export function decodeRename3Args(r: XdrReader): Rename3Args {
  const from = decodeDiropargs3(r);
  return { from, to: decodeDiropargs3(r) };
}

export interface Link3Args {
  file: Buffer;
  link: Diropargs3;
}
export function decodeLink3Args(r: XdrReader): Link3Args {
  const file = decodeNfsFh3(r);
  return { file, link: decodeDiropargs3(r) };
}

export interface Readdir3Args {
  dir: Buffer;
  /** 0 to start, else a cookie from an earlier reply. */
  cookie: bigint;
  cookieverf: Buffer;
  /** The largest READDIR3resok the client will take, in bytes. */
  count: number;
}
export function decodeReaddir3Args(r: XdrReader): Readdir3Args {
  return {
    dir: decodeNfsFh3(r),
    cookie: r.uint64("READDIR3args.cookie"),
    cookieverf: decodeCookieverf3(r),
    count: r.uint32("READDIR3args.count"),
  };
}

export interface Readdirplus3Args {
  dir: Buffer;
  cookie: bigint;
  cookieverf: Buffer;
  /** Bytes of directory information (file ids, names, cookies) the client wants. */
  dircount: number;
  /** The largest READDIRPLUS3resok the client will take, in bytes. */
  maxcount: number;
}
export function decodeReaddirplus3Args(r: XdrReader): Readdirplus3Args {
  return {
    dir: decodeNfsFh3(r),
    cookie: r.uint64("READDIRPLUS3args.cookie"),
    cookieverf: decodeCookieverf3(r),
    dircount: r.uint32("READDIRPLUS3args.dircount"),
    maxcount: r.uint32("READDIRPLUS3args.maxcount"),
  };
}

export interface Fsstat3Args {
  fsroot: Buffer;
}
export function decodeFsstat3Args(r: XdrReader): Fsstat3Args {
  return { fsroot: decodeNfsFh3(r) };
}

export interface Fsinfo3Args {
  fsroot: Buffer;
}
export function decodeFsinfo3Args(r: XdrReader): Fsinfo3Args {
  return { fsroot: decodeNfsFh3(r) };
}

export interface Pathconf3Args {
  object: Buffer;
}
export function decodePathconf3Args(r: XdrReader): Pathconf3Args {
  return { object: decodeNfsFh3(r) };
}

export interface Commit3Args {
  file: Buffer;
  offset: bigint;
  /** 0 means "to the end of the file". */
  count: number;
}
export function decodeCommit3Args(r: XdrReader): Commit3Args {
  return { file: decodeNfsFh3(r), offset: r.uint64("COMMIT3args.offset"), count: r.uint32("COMMIT3args.count") };
}
