// The XDR primitives against RFC 4506's byte layout, written out by hand, and
// against hostile input: every malformed read must throw XdrError, and a
// length on the wire must be refused before anything is allocated for it.
import { test, expect, describe } from "bun:test";
import { XdrError, XdrReader, XdrWriter, padLength } from "./xdr.ts";
import { hex, withoutAllocation } from "./test-bytes.ts";

function written(f: (w: XdrWriter) => void, initialSize?: number): Buffer {
  const w = new XdrWriter(initialSize);
  f(w);
  return w.copy();
}

describe("integers are big-endian, 4 or 8 bytes", () => {
  test("unsigned and signed 32-bit values have RFC 4506's bytes and come back unchanged", () => {
    const b = written((w) => {
      w.uint32(0);
      w.uint32(1);
      w.uint32(0xffffffff);
      w.int32(-1);
      w.int32(-2147483648);
      w.int32(2147483647);
    });
    expect(b).toEqual(hex("00000000 00000001 ffffffff ffffffff 80000000 7fffffff"));
    const r = new XdrReader(b);
    expect([r.uint32(), r.uint32(), r.uint32(), r.int32(), r.int32(), r.int32()]).toEqual([0, 1, 0xffffffff, -1, -2147483648, 2147483647]);
    expect(r.remaining).toBe(0);
  });

  test("64-bit values are bigint over the full range, high word first", () => {
    const b = written((w) => {
      w.uint64(0x0102030405060708n);
      w.uint64(0xffffffffffffffffn);
      w.int64(-2n);
      w.int64(-(2n ** 63n));
    });
    expect(b).toEqual(hex("0102030405060708 ffffffffffffffff fffffffffffffffe 8000000000000000"));
    const r = new XdrReader(b);
    expect(r.uint64()).toBe(0x0102030405060708n);
    expect(r.uint64()).toBe(2n ** 64n - 1n);
    expect(r.int64()).toBe(-2n);
    expect(r.int64()).toBe(-(2n ** 63n));
  });

  test("a value above 2^53 survives the round trip exactly (no rounding through number)", () => {
    const v = 2n ** 53n + 1n;
    expect(new XdrReader(written((w) => w.uint64(v))).uint64()).toBe(v);
  });

  test("the writer wraps out-of-range integers like a C assignment instead of throwing", () => {
    expect(written((w) => w.uint32(-1))).toEqual(hex("ffffffff"));
    expect(written((w) => w.uint32(2 ** 32 + 5))).toEqual(hex("00000005"));
    expect(written((w) => w.uint64(-1n))).toEqual(hex("ffffffffffffffff"));
    expect(written((w) => w.int64(2n ** 63n))).toEqual(hex("8000000000000000"));
  });
});

describe("bool and enum", () => {
  test("TRUE is 1 and FALSE is 0", () => {
    expect(written((w) => { w.bool(true); w.bool(false); })).toEqual(hex("00000001 00000000"));
    const r = new XdrReader(hex("00000001 00000000"));
    expect(r.bool()).toBe(true);
    expect(r.bool()).toBe(false);
  });

  test("a bool of 2 (or any other value) is garbage", () => {
    expect(() => new XdrReader(hex("00000002")).bool()).toThrow(XdrError);
    expect(() => new XdrReader(hex("ffffffff")).bool()).toThrow(XdrError);
    expect(() => new XdrReader(hex("00000100")).bool()).toThrow(XdrError);
  });

  test("an enum outside its declared values is garbage, including one that is negative as an int", () => {
    expect(new XdrReader(hex("00000002")).enumOf([0, 1, 2], "e")).toBe(2);
    expect(() => new XdrReader(hex("00000003")).enumOf([0, 1, 2], "e")).toThrow(XdrError);
    expect(() => new XdrReader(hex("ffffffff")).enumOf([0, 1, 2], "e")).toThrow(/e -1 is not one of 0, 1, 2/);
  });
});

describe("opaque data and strings are padded to 4 bytes", () => {
  test("variable opaque: length, bytes, zero padding for each length mod 4", () => {
    expect(written((w) => w.opaque(hex("")))).toEqual(hex("00000000"));
    expect(written((w) => w.opaque(hex("aa")))).toEqual(hex("00000001 aa000000"));
    expect(written((w) => w.opaque(hex("aabb")))).toEqual(hex("00000002 aabb0000"));
    expect(written((w) => w.opaque(hex("aabbcc")))).toEqual(hex("00000003 aabbcc00"));
    expect(written((w) => w.opaque(hex("aabbccdd")))).toEqual(hex("00000004 aabbccdd"));
    expect(written((w) => w.opaque(hex("aabbccddee")))).toEqual(hex("00000005 aabbccddee000000"));
  });

  test("fixed opaque has no length word, only padding", () => {
    expect(written((w) => w.opaqueFixed(hex("010203"), 3))).toEqual(hex("01020300"));
    const r = new XdrReader(hex("01020300 00000009"));
    expect(r.opaqueFixed(3)).toEqual(hex("010203"));
    expect(r.uint32()).toBe(9);
  });

  test("a fixed opaque of the wrong length is refused by the writer (it would shift every later field)", () => {
    expect(() => written((w) => w.opaqueFixed(hex("0102"), 8))).toThrow(RangeError);
  });

  test("strings are UTF-8 bytes on the wire and come back as bytes and text", () => {
    const b = written((w) => w.string("é/x"));
    expect(b).toEqual(hex("00000004 c3a92f78"));
    const s = new XdrReader(b).string(255);
    expect(s.text).toBe("é/x");
    expect(s.bytes).toEqual(hex("c3a92f78"));
    expect(s.isUtf8).toBe(true);
  });

  test("a string that is not UTF-8 decodes (names are bytes) and says so", () => {
    const s = new XdrReader(hex("00000002 c3280000")).string(255);
    expect(s.isUtf8).toBe(false);
    expect(s.bytes).toEqual(hex("c328"));
    expect(written((w) => w.string(s.bytes))).toEqual(hex("00000002 c3280000"));
  });

  test("opaque reads are views into the record, not copies", () => {
    const b = hex("00000002 aabb0000");
    const v = new XdrReader(b).opaque(10);
    b[4] = 0x11;
    expect(v[0]).toBe(0x11);
  });

  test("padding bytes need not be zero (they carry no meaning)", () => {
    expect(new XdrReader(hex("00000001 aaffffff")).opaque(10)).toEqual(hex("aa"));
  });

  test("padLength", () => {
    expect([0, 1, 2, 3, 4, 5, 8].map(padLength)).toEqual([0, 3, 2, 1, 0, 3, 0]);
  });
});

describe("hostile lengths are refused before anything is allocated", () => {
  test("an opaque claiming 0xFFFFFFF0 bytes with a generous limit throws without allocating", () => {
    const b = Buffer.concat([hex("fffffff0"), Buffer.alloc(64)]);
    withoutAllocation(() => {
      expect(() => new XdrReader(b).opaque(0xffffffff)).toThrow(XdrError);
    });
  });

  test("an opaque over its limit is refused even when the bytes are there", () => {
    const b = Buffer.concat([hex("00000041"), Buffer.alloc(68)]);
    expect(() => new XdrReader(b).opaque(64)).toThrow(/claims 65 bytes, more than its limit of 64/);
    expect(new XdrReader(b).opaque(65).length).toBe(65);
  });

  test("a string claiming more than its limit throws without decoding text", () => {
    const b = hex("00000100 41414141");
    withoutAllocation(() => {
      expect(() => new XdrReader(b).string(255)).toThrow(XdrError);
    });
  });

  test("an opaque running past the end, or missing its padding, is garbage", () => {
    expect(() => new XdrReader(hex("00000008 01020304")).opaque(100)).toThrow(XdrError);
    expect(() => new XdrReader(hex("00000003 010203")).opaque(100)).toThrow(XdrError);
    expect(() => new XdrReader(hex("010203")).opaqueFixed(3)).toThrow(XdrError);
  });

  test("every read at the end of the window throws XdrError, even when the buffer goes on", () => {
    const buf = hex("00000001 00000002 00000003 00000004");
    const reads: [string, (r: XdrReader) => unknown][] = [
      ["uint32", (r) => r.uint32()],
      ["int32", (r) => r.int32()],
      ["uint64", (r) => r.uint64()],
      ["int64", (r) => r.int64()],
      ["bool", (r) => r.bool()],
      ["enumOf", (r) => r.enumOf([1], "e")],
      ["opaqueFixed", (r) => r.opaqueFixed(1)],
      ["opaque", (r) => r.opaque(10)],
      ["string", (r) => r.string(10)],
      ["optional", (r) => r.optional((r) => r.uint32())],
    ];
    for (const [name, read] of reads) {
      // The window ends after 2 bytes: a 4-byte read must not see the rest of the buffer.
      expect(() => read(new XdrReader(buf, 0, 2)), name).toThrow(XdrError);
      expect(() => read(new XdrReader(buf, 16)), name).toThrow(XdrError);
    }
    // 8-byte reads with only 4 left in the window.
    expect(() => new XdrReader(buf, 0, 4).uint64()).toThrow(XdrError);
    expect(() => new XdrReader(buf, 0, 4).int64()).toThrow(XdrError);
  });

  test("a reader window outside its buffer is a programming error, not garbage", () => {
    expect(() => new XdrReader(hex("00"), 0, 2)).toThrow(RangeError);
  });
});

describe("optional values", () => {
  test("absent is FALSE, present is TRUE then the value", () => {
    const b = written((w) => {
      w.optional<number>(undefined, (w, v) => w.uint32(v));
      w.optional(7, (w, v) => w.uint32(v));
    });
    expect(b).toEqual(hex("00000000 00000001 00000007"));
    const r = new XdrReader(b);
    expect(r.optional((r) => r.uint32())).toBeUndefined();
    expect(r.optional((r) => r.uint32())).toBe(7);
  });

  test("a presence flag of 2 is garbage", () => {
    expect(() => new XdrReader(hex("00000002 00000007")).optional((r) => r.uint32())).toThrow(XdrError);
  });
});

describe("the writer reuses one buffer and grows by doubling", () => {
  test("growing past the initial size keeps every byte written before", () => {
    const w = new XdrWriter(16);
    for (let i = 0; i < 5000; i++) w.uint32(i);
    const r = new XdrReader(w.copy());
    for (let i = 0; i < 5000; i++) expect(r.uint32()).toBe(i);
    expect(w.length).toBe(20000);
    w.opaque(Buffer.alloc(100001, 7)); // one write far past double the size
    expect(w.view().subarray(20000, 20004)).toEqual(hex("000186a1"));
    expect(w.view().subarray(20004, 20004 + 100001).every((x) => x === 7)).toBe(true);
    expect(w.view().subarray(20004 + 100001)).toEqual(hex("000000"));
  });

  test("after reset, padding is written as zeros over the old bytes (no leak of an earlier reply)", () => {
    const w = new XdrWriter(16);
    w.opaqueFixed(Buffer.alloc(12, 0xff), 12);
    w.reset();
    w.opaque(hex("aa"));
    expect(w.copy()).toEqual(hex("00000001 aa000000"));
  });

  test("copy is independent of later writes; view is the live buffer", () => {
    const w = new XdrWriter();
    w.uint32(1);
    const copy = w.copy();
    const view = w.view();
    w.patchUint32(0, 2);
    expect(copy).toEqual(hex("00000001"));
    expect(view).toEqual(hex("00000002"));
  });

  test("patchUint32 rewrites a word already written and refuses one that is not", () => {
    const w = new XdrWriter();
    w.uint32(0);
    w.uint32(5);
    w.patchUint32(0, 0x80000004);
    expect(w.copy()).toEqual(hex("80000004 00000005"));
    expect(() => w.patchUint32(5, 1)).toThrow(RangeError);
  });
});
