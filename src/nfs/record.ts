// Record marking for RPC over TCP (RFC 5531 §11): a record is one or more
// fragments, each behind a 4-byte big-endian mark whose high bit says "last
// fragment" and whose low 31 bits are the fragment's length.
//
// The decoder is fed whatever chunks the socket delivers (split anywhere,
// several records at once) and hands back whole records. A peer's claimed
// length is only ever compared with the limit: memory grows with bytes that
// actually arrived, so a mark claiming 2 GiB is refused at once and a slow
// peer cannot make us reserve what it never sends.

import type { XdrWriter } from "./xdr.ts";

export const LAST_FRAGMENT = 0x80000000;
const LENGTH_MASK = 0x7fffffff;

/**
 * The default largest record: a 1 MiB WRITE (our advertised wtmax) plus room
 * for its RPC header, credential and NFS arguments.
 */
export const DEFAULT_MAX_RECORD = 1024 * 1024 + 64 * 1024;

/** The peer broke the framing or sent more than we accept. The connection cannot continue: close it. */
export class RecordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RecordError";
  }
}

export interface RecordDecoder {
  /**
   * Takes the next chunk from the socket and returns the records it
   * completed, in order (often none, sometimes several). Each record is a
   * fresh Buffer the caller owns; `chunk` is not kept, so the socket may reuse
   * it. Throws RecordError when a fragment would make the record larger than
   * the limit; the decoder is then dead and every later push throws too.
   */
  push(chunk: Uint8Array): Buffer[];
  /** Bytes held for a record not yet complete (mark bytes included). */
  readonly buffered: number;
}

export function recordDecoder(maxRecord = DEFAULT_MAX_RECORD): RecordDecoder {
  if (!(maxRecord > 0 && maxRecord <= LENGTH_MASK)) throw new RangeError(`record limit ${maxRecord} is not in 1..2^31-1`);
  const mark = Buffer.alloc(4);
  let markHave = 0; // bytes of the next mark received so far
  let fragLeft = 0; // bytes of the current fragment still to come
  let inFragment = false;
  let last = false; // the current fragment ends the record
  // The record so far lives in acc[0..recordLen). acc grows by doubling with
  // what arrives, capped by the end of the fragment being read: it never
  // holds more than twice what came, nor more than was claimed. It is handed
  // out whole when the record ends, so a record that arrives in one chunk is
  // copied once, into a buffer of exactly its size.
  let acc = Buffer.alloc(0);
  let recordLen = 0;
  let failure: RecordError | undefined;

  function fail(message: string): never {
    failure = new RecordError(message);
    throw failure;
  }

  // Copies rather than keeps `bytes`: the chunk may be the socket's own
  // buffer, and the record must outlive this call.
  function append(bytes: Uint8Array, fragmentEnd: number): void {
    const need = recordLen + bytes.length;
    if (need > acc.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, Math.min(acc.length * 2, fragmentEnd)));
      acc.copy(grown, 0, 0, recordLen);
      acc = grown;
    }
    acc.set(bytes, recordLen);
    recordLen = need;
  }

  function finishRecord(out: Buffer[]): void {
    out.push(acc.subarray(0, recordLen));
    acc = Buffer.alloc(0);
    recordLen = 0;
  }

  return {
    push(chunk: Uint8Array): Buffer[] {
      if (failure) throw failure;
      const out: Buffer[] = [];
      let at = 0;
      while (at < chunk.length) {
        if (!inFragment) {
          const take = Math.min(4 - markHave, chunk.length - at);
          mark.set(chunk.subarray(at, at + take), markHave);
          markHave += take;
          at += take;
          if (markHave < 4) break;
          markHave = 0;
          const word = mark.readUInt32BE(0);
          last = (word & LAST_FRAGMENT) !== 0;
          fragLeft = word & LENGTH_MASK;
          if (recordLen + fragLeft > maxRecord) {
            fail(`a fragment of ${fragLeft} bytes would make a record of ${recordLen + fragLeft} bytes, over the limit of ${maxRecord}`);
          }
          inFragment = true;
        }
        const take = Math.min(fragLeft, chunk.length - at);
        if (take > 0) {
          append(chunk.subarray(at, at + take), recordLen + fragLeft);
          fragLeft -= take;
          at += take;
        }
        if (fragLeft === 0) {
          inFragment = false;
          if (last) finishRecord(out);
        }
      }
      return out;
    },
    get buffered(): number {
      return recordLen + markHave;
    },
  };
}

// ---------------------------------------------------------------------------
// Encoding: every reply we send is one record of one (last) fragment.

/** Frames `payload` as a single-fragment record (a copy). */
export function encodeRecord(payload: Uint8Array): Buffer {
  if (payload.length > LENGTH_MASK) throw new RangeError(`a record of ${payload.length} bytes does not fit one fragment`);
  const out = Buffer.allocUnsafe(4 + payload.length);
  out.writeUInt32BE((LAST_FRAGMENT | payload.length) >>> 0, 0);
  out.set(payload, 4);
  return out;
}

/**
 * Reserves the record mark at the writer's end, so a reply is encoded in
 * place with no second copy. Returns where the mark is, for endRecord.
 */
export function beginRecord(w: XdrWriter): number {
  const at = w.length;
  w.uint32(0);
  return at;
}

/** Fills in the mark reserved by beginRecord: one last fragment holding everything written since. */
export function endRecord(w: XdrWriter, markAt: number): void {
  const len = w.length - markAt - 4;
  if (len > LENGTH_MASK) throw new RangeError(`a record of ${len} bytes does not fit one fragment`);
  w.patchUint32(markAt, (LAST_FRAGMENT | len) >>> 0);
}
