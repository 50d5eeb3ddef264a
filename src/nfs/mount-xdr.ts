// The MOUNT protocol version 3 (RFC 1813 Appendix I): how a client turns an
// export's path into the root file handle it then uses with NFS. Constants,
// the one argument type (dirpath) and the results. No export policy here.

import { XdrError, type XdrReader, type XdrString, type XdrWriter } from "./xdr.ts";
import { encodeNfsFh3 } from "./nfs3-xdr.ts";

export const MOUNT_PROGRAM = 100005;
export const MOUNT_V3 = 3;

export const MOUNTPROC3_NULL = 0;
export const MOUNTPROC3_MNT = 1;
export const MOUNTPROC3_DUMP = 2;
export const MOUNTPROC3_UMNT = 3;
export const MOUNTPROC3_UMNTALL = 4;
export const MOUNTPROC3_EXPORT = 5;

const PROC_NAMES = ["NULL", "MNT", "DUMP", "UMNT", "UMNTALL", "EXPORT"] as const;

/** Procedure number → name for logs ("MNT"; "PROC9" for one MOUNT v3 does not have). */
export function mount3ProcName(proc: number): string {
  return PROC_NAMES[proc] ?? `PROC${proc}`;
}

/** dirpath<MNTPATHLEN> */
export const MNTPATHLEN = 1024;
/** name<MNTNAMLEN>: host and group names. */
export const MNTNAMLEN = 255;
/** fhandle3<FHSIZE3>: the same bound as nfs_fh3. */
export const FHSIZE3 = 64;

// mountstat3
export const MNT3_OK = 0;
export const MNT3ERR_PERM = 1;
export const MNT3ERR_NOENT = 2;
export const MNT3ERR_IO = 5;
export const MNT3ERR_ACCES = 13;
export const MNT3ERR_NOTDIR = 20;
export const MNT3ERR_INVAL = 22;
export const MNT3ERR_NAMETOOLONG = 63;
export const MNT3ERR_NOTSUPP = 10004;
export const MNT3ERR_SERVERFAULT = 10006;

/** The argument of MNT and UMNT: the export's path on the server, as bytes and text. */
export function decodeDirpath(r: XdrReader): XdrString {
  return r.string(MNTPATHLEN, "dirpath");
}

/** MNT success: the export's root handle and the auth flavors the client may use with it (AUTH_SYS, say). */
export function encodeMountres3Ok(w: XdrWriter, fhandle: Uint8Array, authFlavors: readonly number[]): void {
  w.uint32(MNT3_OK);
  encodeNfsFh3(w, fhandle);
  w.uint32(authFlavors.length);
  for (const f of authFlavors) w.int32(f);
}

/** MNT failure: the status alone. */
export function encodeMountres3Fail(w: XdrWriter, status: number): void {
  if (status === MNT3_OK) throw new RangeError("a MNT failure needs a status other than MNT3_OK");
  w.uint32(status);
}

export type Mountres3 = { status: typeof MNT3_OK; fhandle: Buffer; authFlavors: number[] } | { status: number };

/**
 * Decodes a MNT result (the client's side, for tests and tools). At most
 * `maxFlavors` flavors are accepted: the list is unbounded on the wire.
 */
export function decodeMountres3(r: XdrReader, maxFlavors = 64): Mountres3 {
  const status = r.uint32("mountstat3");
  if (status !== MNT3_OK) return { status };
  const fhandle = r.opaque(FHSIZE3, "fhandle3");
  const n = r.uint32("the number of auth flavors");
  if (n > maxFlavors) throw new XdrError(`MNT reply lists ${n} auth flavors, more than ${maxFlavors}`);
  const authFlavors: number[] = [];
  for (let i = 0; i < n; i++) authFlavors.push(r.int32("an auth flavor"));
  return { status: MNT3_OK, fhandle, authFlavors };
}

/** One entry of DUMP's mountlist: who has what mounted (as far as the server remembers). */
export interface Mountbody {
  hostname: string;
  directory: string;
}

/** DUMP's result: the mountlist as XDR's linked list (TRUE + entry per item, then FALSE). */
export function encodeMountlist(w: XdrWriter, mounts: readonly Mountbody[]): void {
  for (const m of mounts) {
    w.bool(true);
    w.string(m.hostname);
    w.string(m.directory);
  }
  w.bool(false);
}

/** One entry of EXPORT's result: a path and the groups (host names) allowed to mount it; none means everyone. */
export interface Exportnode {
  dir: string;
  groups: readonly string[];
}

/** EXPORT's result: a linked list of exports, each with a linked list of groups. */
export function encodeExports(w: XdrWriter, exports: readonly Exportnode[]): void {
  for (const e of exports) {
    w.bool(true);
    w.string(e.dir);
    for (const g of e.groups) {
      w.bool(true);
      w.string(g);
    }
    w.bool(false);
  }
  w.bool(false);
}
