// XDR (RFC 4506): the big-endian, 4-byte-aligned encoding under ONC RPC, NFS
// and MOUNT. A reader that trusts nothing it is given and a writer that reuses
// one buffer. No RPC or NFS meaning here.
//
// Conventions:
// - Every read checks its bounds first and throws XdrError, the one error the
//   server maps to GARBAGE_ARGS. A length on the wire is compared with its
//   limit and with the bytes that remain BEFORE anything is sliced or decoded,
//   so a peer claiming 4 GiB costs us nothing.
// - 64-bit integers (hyper) are always bigint. NFS uses them for offsets,
//   sizes, file ids and cookies, all of which may use the full 64 bits (a
//   cookie is the server's own opaque value); a number would round above 2^53
//   without a word.
// - Opaque data and the bytes of strings are views into the reader's buffer,
//   not copies: a 1 MiB WRITE is not copied twice. Copy them to keep them
//   past the buffer's life.
// - Padding bytes are skipped, not checked for zero: RFC 4506 says a sender
//   writes zeros, but they carry no meaning and rejecting a peer for them
//   gains nothing (Linux and ntirpc do not check either).
// - The writer wraps integers like a C assignment (>>> 0, BigInt.asUintN)
//   instead of throwing, as the FUSE codec does: an encoder that throws half
//   way leaves a call without a reply. It throws only on a programming error
//   that would put a malformed message on the wire (a fixed opaque of the
//   wrong length).

import { isUtf8 } from "node:buffer";

/** The peer sent bytes that are not the XDR it claims to be. The server answers GARBAGE_ARGS. */
export class XdrError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "XdrError";
  }
}

/** Bytes of padding that follow `len` bytes of opaque data to reach a multiple of 4. */
export function padLength(len: number): number {
  return (4 - (len & 3)) & 3;
}

/**
 * An XDR string. Names on the wire are bytes, not text (like FuseName):
 * `bytes` is the truth, `text` a lossy UTF-8 rendering (U+FFFD for bad
 * sequences), `isUtf8` says whether it was lossless. Whether a non-UTF-8 name
 * is an error is the caller's decision, not a decoding one.
 */
export interface XdrString {
  bytes: Buffer;
  text: string;
  isUtf8: boolean;
}

// ---------------------------------------------------------------------------
// Reader

export class XdrReader {
  private pos: number;
  private readonly end: number;

  /** Reads `buf` from `start` to `end` (default: all of it). */
  constructor(readonly buf: Buffer, start = 0, end = buf.length) {
    if (start < 0 || end > buf.length || start > end) throw new RangeError(`bad XDR window ${start}..${end} of ${buf.length}`);
    this.pos = start;
    this.end = end;
  }

  /** Offset of the next unread byte in `buf`. */
  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number, what: string): void {
    if (n > this.end - this.pos) throw new XdrError(`${what} needs ${n} bytes but only ${this.end - this.pos} remain`);
  }

  uint32(what = "an unsigned int"): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  int32(what = "an int"): number {
    this.need(4, what);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  uint64(what = "an unsigned hyper"): bigint {
    this.need(8, what);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  int64(what = "a hyper"): bigint {
    this.need(8, what);
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  /** Only 0 and 1 are booleans: anything else means the stream is out of step. */
  bool(what = "a bool"): boolean {
    const v = this.uint32(what);
    if (v === 0) return false;
    if (v === 1) return true;
    throw new XdrError(`${what} is ${v}, not 0 or 1`);
  }

  /** An enum (or union discriminant) that must be one of `valid`. */
  enumOf(valid: readonly number[], what: string): number {
    const v = this.int32(what);
    if (!valid.includes(v)) throw new XdrError(`${what} ${v} is not one of ${valid.join(", ")}`);
    return v;
  }

  /** opaque[n]: exactly n bytes plus padding. A view, not a copy. */
  opaqueFixed(n: number, what = "fixed opaque data"): Buffer {
    this.need(n + padLength(n), what);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n + padLength(n);
    return v;
  }

  /** opaque<max>: a length, at most `max`, then that many bytes plus padding. A view, not a copy. */
  opaque(max: number, what = "opaque data"): Buffer {
    const len = this.uint32(`the length of ${what}`);
    if (len > max) throw new XdrError(`${what} claims ${len} bytes, more than its limit of ${max}`);
    return this.opaqueFixed(len, what);
  }

  /** string<max>: like opaque<max>, rendered as text too. */
  string(max: number, what = "a string"): XdrString {
    const bytes = this.opaque(max, what);
    return { bytes, text: bytes.toString("utf8"), isUtf8: isUtf8(bytes) };
  }

  /** `T *x`: a bool saying whether a value follows, then the value. */
  optional<T>(read: (r: XdrReader) => T, what = "an optional value"): T | undefined {
    return this.bool(`the presence flag of ${what}`) ? read(this) : undefined;
  }
}

// ---------------------------------------------------------------------------
// Writer

/**
 * A growable output buffer. One writer is meant to be reused for every reply
 * on a connection: reset() keeps the memory, and growth doubles, so a busy
 * connection stops allocating once it has seen its largest reply.
 */
export class XdrWriter {
  private buf: Buffer;
  private len = 0;

  constructor(initialSize = 4096) {
    this.buf = Buffer.allocUnsafe(Math.max(16, initialSize));
  }

  /** Bytes written since the last reset. */
  get length(): number {
    return this.len;
  }

  reset(): void {
    this.len = 0;
  }

  // Returns the offset to write at. Callers must take it BEFORE touching
  // this.buf: growing replaces the buffer.
  private reserve(n: number): number {
    const at = this.len;
    const need = at + n;
    if (need > this.buf.length) {
      let size = this.buf.length * 2;
      while (size < need) size *= 2;
      const grown = Buffer.allocUnsafe(size);
      this.buf.copy(grown, 0, 0, at);
      this.buf = grown;
    }
    this.len = need;
    return at;
  }

  uint32(v: number): void {
    const at = this.reserve(4);
    this.buf.writeUInt32BE(v >>> 0, at);
  }

  int32(v: number): void {
    const at = this.reserve(4);
    this.buf.writeInt32BE(v | 0, at);
  }

  uint64(v: bigint): void {
    const at = this.reserve(8);
    this.buf.writeBigUInt64BE(BigInt.asUintN(64, v), at);
  }

  int64(v: bigint): void {
    const at = this.reserve(8);
    this.buf.writeBigInt64BE(BigInt.asIntN(64, v), at);
  }

  bool(v: boolean): void {
    this.uint32(v ? 1 : 0);
  }

  /** opaque[n]. `data` must be exactly n bytes: anything else would shift every later field. */
  opaqueFixed(data: Uint8Array, n: number): void {
    if (data.length !== n) throw new RangeError(`fixed opaque of ${n} bytes given ${data.length}`);
    this.bytes(data);
  }

  /** opaque<>: length, bytes, zero padding. */
  opaque(data: Uint8Array): void {
    this.uint32(data.length);
    this.bytes(data);
  }

  /** string<>: UTF-8 text, or bytes as they are (a name read from the wire). */
  string(s: string | Uint8Array): void {
    this.opaque(typeof s === "string" ? Buffer.from(s, "utf8") : s);
  }

  /** `T *x`: FALSE, or TRUE and the value. */
  optional<T>(v: T | undefined, write: (w: XdrWriter, v: T) => void): void {
    if (v === undefined) this.bool(false);
    else {
      this.bool(true);
      write(this, v);
    }
  }

  /** Raw bytes plus zero padding to a multiple of 4 (the buffer is reused, so padding is written, never assumed). */
  private bytes(data: Uint8Array): void {
    const pad = padLength(data.length);
    const at = this.reserve(data.length + pad);
    this.buf.set(data, at);
    this.buf.fill(0, at + data.length, at + data.length + pad);
  }

  /** Overwrites 4 bytes already written at `at` (a length or record mark known only at the end). */
  patchUint32(at: number, v: number): void {
    if (at < 0 || at + 4 > this.len) throw new RangeError(`patch at ${at} is outside the ${this.len} bytes written`);
    this.buf.writeUInt32BE(v >>> 0, at);
  }

  /** The bytes written, as a view: valid only until the next write or reset. */
  view(): Buffer {
    return this.buf.subarray(0, this.len);
  }

  /** A copy of the bytes written, safe to hand to an asynchronous socket write. */
  copy(): Buffer {
    return Buffer.from(this.view());
  }
}
