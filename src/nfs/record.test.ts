// Record marking over TCP: the socket splits and joins records however it
// likes, and a hostile peer may claim any length. The decoder must hand back
// exactly the records sent, and refuse an oversized one as soon as its mark
// arrives, without reserving what was claimed.
import { test, expect, describe } from "bun:test";
import { recordDecoder, encodeRecord, beginRecord, endRecord, RecordError, DEFAULT_MAX_RECORD, LAST_FRAGMENT } from "./record.ts";
import { XdrWriter } from "./xdr.ts";
import { hex, withoutAllocation } from "./test-bytes.ts";

/** A record as fragments: each [bytes, last?] behind its own mark. */
function fragments(...parts: [Buffer, boolean][]): Buffer {
  return Buffer.concat(parts.flatMap(([b, last]) => {
    const mark = Buffer.alloc(4);
    mark.writeUInt32BE(((last ? LAST_FRAGMENT : 0) | b.length) >>> 0);
    return [mark, b];
  }));
}

function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

function feed(chunks: Buffer[], max?: number): Buffer[] {
  const d = recordDecoder(max);
  return chunks.flatMap((c) => d.push(c));
}

describe("encoding", () => {
  test("a reply is one last fragment: the high bit and the length, then the bytes", () => {
    expect(encodeRecord(hex("010203"))).toEqual(hex("80000003 010203"));
    expect(encodeRecord(hex(""))).toEqual(hex("80000000"));
  });

  test("beginRecord/endRecord frame in place exactly as encodeRecord does", () => {
    const w = new XdrWriter();
    const mark = beginRecord(w);
    w.uint32(0xdeadbeef);
    w.string("x");
    endRecord(w, mark);
    expect(w.copy()).toEqual(encodeRecord(hex("deadbeef 00000001 78000000")));
  });
});

describe("decoding", () => {
  const a = bytes(40, 1);
  const b = bytes(1000, 2);
  const c = bytes(3, 3);

  test("one record in one chunk", () => {
    expect(feed([encodeRecord(a)])).toEqual([a]);
  });

  test("several records in one chunk come out in order", () => {
    expect(feed([Buffer.concat([encodeRecord(a), encodeRecord(b), encodeRecord(c)])])).toEqual([a, b, c]);
  });

  test("a record of several fragments is joined; only the last-fragment bit ends it", () => {
    const stream = Buffer.concat([
      fragments([b.subarray(0, 100), false], [b.subarray(100, 101), false], [Buffer.alloc(0), false], [b.subarray(101), true]),
      encodeRecord(a),
    ]);
    expect(feed([stream])).toEqual([b, a]);
  });

  test("fed one byte at a time, multi-fragment records still come out whole and in order", () => {
    const stream = Buffer.concat([fragments([a.subarray(0, 7), false], [a.subarray(7), true]), encodeRecord(c), encodeRecord(b)]);
    const d = recordDecoder();
    const out: Buffer[] = [];
    for (let i = 0; i < stream.length; i++) out.push(...d.push(stream.subarray(i, i + 1)));
    expect(out).toEqual([a, c, b]);
    expect(d.buffered).toBe(0);
  });

  test("split into two chunks at every possible point, the same records come out", () => {
    const stream = Buffer.concat([fragments([c, false], [a, true]), encodeRecord(c), encodeRecord(Buffer.alloc(0))]);
    for (let cut = 0; cut <= stream.length; cut++) {
      expect(feed([stream.subarray(0, cut), stream.subarray(cut)]), `cut at ${cut}`).toEqual([Buffer.concat([c, a]), c, Buffer.alloc(0)]);
    }
  });

  test("a record owns its bytes: the socket may reuse the chunk afterwards", () => {
    const chunk = encodeRecord(a);
    const d = recordDecoder();
    const [rec] = d.push(chunk);
    chunk.fill(0);
    expect(rec).toEqual(a);
    // The same holds for a record assembled across chunks.
    const split = encodeRecord(b);
    const first = Buffer.from(split.subarray(0, 500));
    expect(d.push(first)).toEqual([]);
    first.fill(0);
    expect(d.push(split.subarray(500))).toEqual([b]);
  });

  test("buffered counts what is held for an unfinished record", () => {
    const d = recordDecoder();
    const stream = encodeRecord(b);
    d.push(stream.subarray(0, 2));
    expect(d.buffered).toBe(2);
    d.push(stream.subarray(2, 300));
    expect(d.buffered).toBe(296);
    d.push(stream.subarray(300));
    expect(d.buffered).toBe(0);
  });
});

describe("the size limit", () => {
  test("the default limit holds a 1 MiB WRITE and its headers", () => {
    expect(DEFAULT_MAX_RECORD).toBe(1024 * 1024 + 64 * 1024);
  });

  test("a record of exactly the limit is accepted, one byte more is refused", () => {
    const max = 4096;
    expect(feed([encodeRecord(bytes(max, 4))], max)).toEqual([bytes(max, 4)]);
    expect(() => feed([encodeRecord(bytes(max + 1, 4))], max)).toThrow(RecordError);
  });

  test("a mark claiming 2 GiB is refused as soon as its 4 bytes arrive, without allocating", () => {
    const d = recordDecoder();
    const mark = hex("ffffffff");
    withoutAllocation(() => {
      expect(() => d.push(mark)).toThrow(RecordError);
    });
    expect(d.buffered).toBe(0);
  });

  test("fragments that are each small but together exceed the limit are refused at the mark that crosses it", () => {
    const d = recordDecoder(1000);
    expect(d.push(fragments([bytes(600, 5), false]))).toEqual([]);
    const second = fragments([bytes(401, 6), true]);
    expect(() => d.push(second.subarray(0, 4))).toThrow(/a record of 1001 bytes, over the limit of 1000/);
  });

  test("after a refusal the decoder stays dead: the stream has lost its framing", () => {
    const d = recordDecoder(10);
    expect(() => d.push(encodeRecord(bytes(11, 7)))).toThrow(RecordError);
    expect(() => d.push(encodeRecord(bytes(1, 7)))).toThrow(RecordError);
  });

  test("memory follows the bytes that arrived, not the length claimed", () => {
    // A mark claiming the whole 1 MiB + 64 KiB, then a trickle: what is held is only what came.
    const d = recordDecoder();
    const mark = Buffer.alloc(4);
    mark.writeUInt32BE((LAST_FRAGMENT | DEFAULT_MAX_RECORD) >>> 0);
    const trickle = bytes(10, 8);
    const sizes: number[] = [];
    const { allocUnsafe, alloc } = Buffer;
    Buffer.allocUnsafe = ((n: number) => (sizes.push(n), allocUnsafe(n))) as typeof Buffer.allocUnsafe;
    Buffer.alloc = ((n: number, ...rest: never[]) => (sizes.push(n), alloc(n, ...rest))) as typeof Buffer.alloc;
    try {
      d.push(mark);
      for (let i = 0; i < 10; i++) d.push(trickle.subarray(i, i + 1));
    } finally {
      Object.assign(Buffer, { allocUnsafe, alloc });
    }
    expect(d.buffered).toBe(10);
    expect(Math.max(0, ...sizes)).toBeLessThanOrEqual(16);
  });

  test("a record trickling in never holds more than it was told to expect", () => {
    // 600,000 bytes in 64 KiB chunks: doubling alone would reach 1 MiB; the fragment's end caps it.
    const payload = bytes(600_000, 9);
    const stream = encodeRecord(payload);
    const sizes: number[] = [];
    const { allocUnsafe } = Buffer;
    Buffer.allocUnsafe = ((n: number) => (sizes.push(n), allocUnsafe(n))) as typeof Buffer.allocUnsafe;
    const out: Buffer[] = [];
    try {
      const d = recordDecoder();
      for (let i = 0; i < stream.length; i += 65536) out.push(...d.push(stream.subarray(i, i + 65536)));
    } finally {
      Buffer.allocUnsafe = allocUnsafe;
    }
    expect(out).toEqual([payload]);
    expect(Math.max(...sizes)).toBe(600_000);
  });

  test("a limit outside 1..2^31-1 is a programming error", () => {
    expect(() => recordDecoder(0)).toThrow(RangeError);
    expect(() => recordDecoder(2 ** 31)).toThrow(RangeError);
  });
});
