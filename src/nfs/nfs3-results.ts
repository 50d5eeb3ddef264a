// The results of each NFSv3 procedure (RFC 1813 §3.3), written after
// beginSuccessReply. Every result is `union switch (nfsstat3 status)`: the
// *Ok encoders write NFS3_OK and the resok arm, the fail encoders a status
// and the resfail arm.
//
// Many procedures share a resfail layout, so failures have one encoder per
// layout rather than per procedure:
//   encodeFail3       void          GETATTR
//   encodeAttrFail3   post_op_attr  LOOKUP (dir_attributes), ACCESS, READLINK,
//                                   READ, READDIR, READDIRPLUS, FSSTAT,
//                                   FSINFO, PATHCONF
//   encodeWccFail3    wcc_data      SETATTR, WRITE, CREATE, MKDIR, SYMLINK,
//                                   MKNOD, REMOVE, RMDIR, COMMIT
// and where resok and resfail are the same struct (SETATTR, REMOVE, RMDIR,
// RENAME, LINK) one encoder takes the status.

import type { XdrWriter } from "./xdr.ts";
import {
  encodeFattr3, encodeNfsFh3, encodeNfstime3, encodePostOpAttr, encodePostOpFh3, encodeVerf8, encodeWccData,
  FATTR3_SIZE, NFS3_OK,
  type Fattr3, type Nfstime3, type PostOpAttr, type WccData,
} from "./nfs3-xdr.ts";
import { padLength } from "./xdr.ts";

/** A failure encoder handed NFS3_OK would make the client read a resok that is not there: our bug. */
function failureStatus(w: XdrWriter, status: number): void {
  if (status === NFS3_OK) throw new RangeError("a failure result needs a status other than NFS3_OK");
  w.uint32(status);
}

// ---------------------------------------------------------------------------
// Failures, by layout

/** GETATTR3res failure: the status alone. */
export function encodeFail3(w: XdrWriter, status: number): void {
  failureStatus(w, status);
}

/** A failure whose resfail is one post_op_attr (see the table above). */
export function encodeAttrFail3(w: XdrWriter, status: number, attributes: PostOpAttr): void {
  failureStatus(w, status);
  encodePostOpAttr(w, attributes);
}

/** A failure whose resfail is one wcc_data (see the table above). */
export function encodeWccFail3(w: XdrWriter, status: number, wcc: WccData): void {
  failureStatus(w, status);
  encodeWccData(w, wcc);
}

// ---------------------------------------------------------------------------
// Successes, per procedure

export function encodeGetattr3Ok(w: XdrWriter, r: { objAttributes: Fattr3 }): void {
  w.uint32(NFS3_OK);
  encodeFattr3(w, r.objAttributes);
}

/** SETATTR3res, REMOVE3res and RMDIR3res: resok and resfail are both one wcc_data, so any status goes. */
export function encodeWcc3Res(w: XdrWriter, status: number, wcc: WccData): void {
  w.uint32(status);
  encodeWccData(w, wcc);
}

export interface Lookup3Resok {
  object: Uint8Array;
  objAttributes?: Fattr3;
  dirAttributes?: Fattr3;
}
export function encodeLookup3Ok(w: XdrWriter, r: Lookup3Resok): void {
  w.uint32(NFS3_OK);
  encodeNfsFh3(w, r.object);
  encodePostOpAttr(w, r.objAttributes);
  encodePostOpAttr(w, r.dirAttributes);
}

export interface Access3Resok {
  objAttributes?: Fattr3;
  /** The ACCESS3_* bits granted, a subset of those asked. */
  access: number;
}
export function encodeAccess3Ok(w: XdrWriter, r: Access3Resok): void {
  w.uint32(NFS3_OK);
  encodePostOpAttr(w, r.objAttributes);
  w.uint32(r.access);
}

export interface Readlink3Resok {
  symlinkAttributes?: Fattr3;
  /** The target: text, or the bytes stored. */
  data: string | Uint8Array;
}
export function encodeReadlink3Ok(w: XdrWriter, r: Readlink3Resok): void {
  w.uint32(NFS3_OK);
  encodePostOpAttr(w, r.symlinkAttributes);
  w.string(r.data);
}

/** READ3resok's count is written from data.length, so the two cannot disagree. */
export interface Read3Resok {
  fileAttributes?: Fattr3;
  eof: boolean;
  data: Uint8Array;
}
export function encodeRead3Ok(w: XdrWriter, r: Read3Resok): void {
  w.uint32(NFS3_OK);
  encodePostOpAttr(w, r.fileAttributes);
  w.uint32(r.data.length);
  w.bool(r.eof);
  w.opaque(r.data);
}

export interface Write3Resok {
  fileWcc: WccData;
  count: number;
  /** stable_how actually achieved: at least what was asked. */
  committed: number;
  /** writeverf3: changes when the server restarts, so a client knows to resend UNSTABLE writes. */
  verf: Uint8Array;
}
export function encodeWrite3Ok(w: XdrWriter, r: Write3Resok): void {
  w.uint32(NFS3_OK);
  encodeWccData(w, r.fileWcc);
  w.uint32(r.count);
  w.uint32(r.committed);
  encodeVerf8(w, r.verf);
}

/** CREATE3resok, MKDIR3resok, SYMLINK3resok and MKNOD3resok: one layout. */
export interface NewObject3Resok {
  obj?: Uint8Array;
  objAttributes?: Fattr3;
  dirWcc: WccData;
}
/** CREATE, MKDIR, SYMLINK and MKNOD success (their failures are encodeWccFail3). */
export function encodeNewObject3Ok(w: XdrWriter, r: NewObject3Resok): void {
  w.uint32(NFS3_OK);
  encodePostOpFh3(w, r.obj);
  encodePostOpAttr(w, r.objAttributes);
  encodeWccData(w, r.dirWcc);
}

export interface Rename3Res {
  fromdirWcc: WccData;
  todirWcc: WccData;
}
/** RENAME3res: resok and resfail are the same struct, so any status goes. */
export function encodeRename3Res(w: XdrWriter, status: number, r: Rename3Res): void {
  w.uint32(status);
  encodeWccData(w, r.fromdirWcc);
  encodeWccData(w, r.todirWcc);
}

export interface Link3Res {
  fileAttributes?: Fattr3;
  linkdirWcc: WccData;
}
/** LINK3res: resok and resfail are the same struct, so any status goes. */
export function encodeLink3Res(w: XdrWriter, status: number, r: Link3Res): void {
  w.uint32(status);
  encodePostOpAttr(w, r.fileAttributes);
  encodeWccData(w, r.linkdirWcc);
}

// ---------------------------------------------------------------------------
// READDIR and READDIRPLUS. The client bounds a reply by bytes (count,
// maxcount, dircount), so the sizes of the pieces are here beside their
// encoders; nfs3-results.test.ts checks each against a real encoding.

export interface Entry3 {
  fileid: bigint;
  /** Text, or the bytes stored. */
  name: string | Uint8Array;
  cookie: bigint;
}
export interface Entryplus3 extends Entry3 {
  nameAttributes?: Fattr3;
  nameHandle?: Uint8Array;
}

export interface Readdir3Resok {
  dirAttributes?: Fattr3;
  cookieverf: Uint8Array;
  entries: Entry3[];
  eof: boolean;
}
export interface Readdirplus3Resok {
  dirAttributes?: Fattr3;
  cookieverf: Uint8Array;
  entries: Entryplus3[];
  eof: boolean;
}

/** Bytes of an encoded post_op_attr. */
export function postOpAttrSize(present: boolean): number {
  return 4 + (present ? FATTR3_SIZE : 0);
}

/** Bytes of a READDIR3resok or READDIRPLUS3resok without entries: dir_attributes, cookieverf, the list's end and eof. */
export function readdirResokBaseSize(hasDirAttributes: boolean): number {
  return postOpAttrSize(hasDirAttributes) + 8 + 4 + 4;
}

/** Bytes one entry3 adds to a READDIR reply (its value_follows flag included), for a name of `nameBytes` UTF-8 bytes. */
export function entry3Size(nameBytes: number): number {
  return 4 + 8 + 4 + nameBytes + padLength(nameBytes) + 8;
}

/** Bytes one entryplus3 adds to a READDIRPLUS reply; `handleBytes` undefined means no handle. */
export function entryplus3Size(nameBytes: number, hasAttributes: boolean, handleBytes: number | undefined): number {
  const handle = 4 + (handleBytes === undefined ? 0 : 4 + handleBytes + padLength(handleBytes));
  return entry3Size(nameBytes) + postOpAttrSize(hasAttributes) + handle;
}

function encodeEntryHead(w: XdrWriter, e: Entry3): void {
  w.bool(true); // value_follows: the list's `entry3 *` pointer
  w.uint64(e.fileid);
  w.string(e.name);
  w.uint64(e.cookie);
}

export function encodeReaddir3Ok(w: XdrWriter, r: Readdir3Resok): void {
  w.uint32(NFS3_OK);
  encodePostOpAttr(w, r.dirAttributes);
  encodeVerf8(w, r.cookieverf);
  for (const e of r.entries) encodeEntryHead(w, e);
  w.bool(false);
  w.bool(r.eof);
}

export function encodeReaddirplus3Ok(w: XdrWriter, r: Readdirplus3Resok): void {
  w.uint32(NFS3_OK);
  encodePostOpAttr(w, r.dirAttributes);
  encodeVerf8(w, r.cookieverf);
  for (const e of r.entries) {
    encodeEntryHead(w, e);
    encodePostOpAttr(w, e.nameAttributes);
    encodePostOpFh3(w, e.nameHandle);
  }
  w.bool(false);
  w.bool(r.eof);
}

// ---------------------------------------------------------------------------
// File system information

export interface Fsstat3Resok {
  objAttributes?: Fattr3;
  /** Total, free, and free-to-this-user bytes. */
  tbytes: bigint;
  fbytes: bigint;
  abytes: bigint;
  /** Total, free, and free-to-this-user file slots. */
  tfiles: bigint;
  ffiles: bigint;
  afiles: bigint;
  /** Seconds the numbers above will not change; 0 for "they may change any time". */
  invarsec: number;
}
export function encodeFsstat3Ok(w: XdrWriter, r: Fsstat3Resok): void {
  w.uint32(NFS3_OK);
  encodePostOpAttr(w, r.objAttributes);
  w.uint64(r.tbytes);
  w.uint64(r.fbytes);
  w.uint64(r.abytes);
  w.uint64(r.tfiles);
  w.uint64(r.ffiles);
  w.uint64(r.afiles);
  w.uint32(r.invarsec);
}

export interface Fsinfo3Resok {
  objAttributes?: Fattr3;
  rtmax: number;
  rtpref: number;
  rtmult: number;
  wtmax: number;
  wtpref: number;
  wtmult: number;
  dtpref: number;
  maxfilesize: bigint;
  timeDelta: Nfstime3;
  /** FSF3_* bits. */
  properties: number;
}
export function encodeFsinfo3Ok(w: XdrWriter, r: Fsinfo3Resok): void {
  w.uint32(NFS3_OK);
  encodePostOpAttr(w, r.objAttributes);
  w.uint32(r.rtmax);
  w.uint32(r.rtpref);
  w.uint32(r.rtmult);
  w.uint32(r.wtmax);
  w.uint32(r.wtpref);
  w.uint32(r.wtmult);
  w.uint32(r.dtpref);
  w.uint64(r.maxfilesize);
  encodeNfstime3(w, r.timeDelta);
  w.uint32(r.properties);
}

export interface Pathconf3Resok {
  objAttributes?: Fattr3;
  linkmax: number;
  nameMax: number;
  noTrunc: boolean;
  chownRestricted: boolean;
  caseInsensitive: boolean;
  casePreserving: boolean;
}
export function encodePathconf3Ok(w: XdrWriter, r: Pathconf3Resok): void {
  w.uint32(NFS3_OK);
  encodePostOpAttr(w, r.objAttributes);
  w.uint32(r.linkmax);
  w.uint32(r.nameMax);
  w.bool(r.noTrunc);
  w.bool(r.chownRestricted);
  w.bool(r.caseInsensitive);
  w.bool(r.casePreserving);
}

export interface Commit3Resok {
  fileWcc: WccData;
  /** The same writeverf3 WRITE returns. */
  verf: Uint8Array;
}
export function encodeCommit3Ok(w: XdrWriter, r: Commit3Resok): void {
  w.uint32(NFS3_OK);
  encodeWccData(w, r.fileWcc);
  encodeVerf8(w, r.verf);
}
