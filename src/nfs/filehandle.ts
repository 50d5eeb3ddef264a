// The bytes of our NFS file handles. A handle is opaque to the client and ours
// to check: it names a row of the journal's handle table (src/journal/handles.ts),
// so it is the same after a restart of the daemon (same journal), and it says
// STALE, never "some other file", once that file is gone.
//
//   0      1..3      4..11       12..19        20..23
//   ver=1  zero      export id   fileid (u64)  generation (u32)
//
// 24 bytes, well under NFS3_FHSIZE (64). The export id is random per journal:
// a handle minted by another pgfiles (another prefix, another cache) is STALE
// here, and together with the random generation a handle cannot be guessed
// from a fileid (which GETATTR shows). That is defence in depth, not the
// barrier: see server.ts for what protects a mount.

export const FH_VERSION = 1;
export const FH_SIZE = 24;

export interface FileHandle {
  exportId: Buffer;
  fileid: bigint;
  generation: number;
}

export function encodeFileHandle(h: FileHandle): Buffer {
  if (h.exportId.length !== 8) throw new RangeError("an export id is 8 bytes");
  const b = Buffer.alloc(FH_SIZE);
  b[0] = FH_VERSION;
  h.exportId.copy(b, 4);
  b.writeBigUInt64BE(h.fileid, 12);
  b.writeUInt32BE(h.generation >>> 0, 20);
  return b;
}

/** The handle's parts, or null when it is not one of ours at all (wrong size or version: NFS3ERR_BADHANDLE). */
export function decodeFileHandle(b: Uint8Array): FileHandle | null {
  if (b.length !== FH_SIZE || b[0] !== FH_VERSION || b[1] !== 0 || b[2] !== 0 || b[3] !== 0) return null;
  const buf = Buffer.from(b.buffer, b.byteOffset, b.length);
  return { exportId: Buffer.from(buf.subarray(4, 12)), fileid: buf.readBigUInt64BE(12), generation: buf.readUInt32BE(20) };
}
