// The one table from the vfs's errno to NFSv3's nfsstat3 (RFC 1813 §2.6).
// Every procedure's failure goes through nfsStatusOf.
import os from "node:os";
import { PgfilesError } from "../errors.ts";
import { Errno, VfsError } from "../vfs/types.ts";
import * as X from "./nfs3-xdr.ts";

const BY_ERRNO = new Map<number, number>([
  [Errno.EPERM, X.NFS3ERR_PERM],
  [Errno.ENOENT, X.NFS3ERR_NOENT],
  [Errno.EIO, X.NFS3ERR_IO],
  // An fh the vfs no longer knows: for NFS that is the file having gone away under us.
  [Errno.EBADF, X.NFS3ERR_STALE],
  // The vfs is waiting for something (a lock, Postgres): "try again later" is JUKEBOX in NFSv3.
  [Errno.EAGAIN, X.NFS3ERR_JUKEBOX],
  [Errno.ENOMEM, X.NFS3ERR_SERVERFAULT],
  [Errno.EACCES, X.NFS3ERR_ACCES],
  [Errno.EEXIST, X.NFS3ERR_EXIST],
  [Errno.EXDEV, X.NFS3ERR_XDEV],
  [Errno.ENOTDIR, X.NFS3ERR_NOTDIR],
  [Errno.EISDIR, X.NFS3ERR_ISDIR],
  [Errno.EINVAL, X.NFS3ERR_INVAL],
  [Errno.EFBIG, X.NFS3ERR_FBIG],
  [Errno.ENOSPC, X.NFS3ERR_NOSPC],
  [Errno.ESPIPE, X.NFS3ERR_INVAL],
  [Errno.EROFS, X.NFS3ERR_ROFS],
  [Errno.EMLINK, X.NFS3ERR_MLINK],
  [Errno.ERANGE, X.NFS3ERR_INVAL],
  [Errno.ENAMETOOLONG, X.NFS3ERR_NAMETOOLONG],
  [Errno.ENOSYS, X.NFS3ERR_NOTSUPP],
  [Errno.ENOTEMPTY, X.NFS3ERR_NOTEMPTY],
  // No such extended attribute: NFSv3 has no xattrs, so this only comes from a vfs bug.
  [Errno.ENODATA, X.NFS3ERR_IO],
  [Errno.ENOTSUP, X.NFS3ERR_NOTSUPP],
]);

const errnoByName = os.constants.errno as Record<string, number>;

/** The nfsstat3 for `errno`; anything not in the table is an I/O error to the client. */
export function nfsStatusOfErrno(errno: number): number {
  return BY_ERRNO.get(errno) ?? X.NFS3ERR_IO;
}

/**
 * The nfsstat3 for whatever a vfs call threw, and whether it is expected (a
 * VfsError or PgfilesError: the client's or the world's doing) or a bug in
 * pgfiles (SERVERFAULT, logged as an error by the caller).
 */
export function nfsStatusOf(e: unknown): { status: number; expected: boolean } {
  if (e instanceof VfsError) return { status: nfsStatusOfErrno(e.errno), expected: true };
  if (e instanceof PgfilesError) return { status: nfsStatusOfErrno(errnoByName[e.errno] ?? Errno.EIO), expected: true };
  return { status: X.NFS3ERR_SERVERFAULT, expected: false };
}
