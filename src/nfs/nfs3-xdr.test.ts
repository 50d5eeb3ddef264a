// The structures NFSv3 procedures share, checked against RFC 1813's layout
// written out by hand, round-tripped, and fed bad discriminants.
import { test, expect, describe } from "bun:test";
import { XdrError, XdrReader, XdrWriter } from "./xdr.ts";
import * as nfs from "./nfs3-xdr.ts";
import {
  decodeNfsFh3, encodeNfsFh3, decodeNfstime3, encodeNfstime3, decodeSpecdata3, encodeSpecdata3,
  decodeFattr3, encodeFattr3, decodePostOpAttr, encodePostOpAttr, decodeWccAttr, encodeWccAttr,
  decodePreOpAttr, encodePreOpAttr, decodeWccData, encodeWccData, decodePostOpFh3, encodePostOpFh3,
  decodeSattr3, encodeSattr3, decodeDiropargs3, encodeDiropargs3, decodeFilename3, decodeNfspath3,
  decodeCookieverf3, decodeCreateverf3, decodeWriteverf3, encodeVerf8, decodeFtype3, nfs3ProcName,
  FATTR3_SIZE, FILENAME3_WIRE_MAX, NFSPATH3_WIRE_MAX, NF3REG, NF3LNK, NF3FIFO,
  type Fattr3, type Sattr3,
} from "./nfs3-xdr.ts";
import { hex } from "./test-bytes.ts";

function written(f: (w: XdrWriter) => void): Buffer {
  const w = new XdrWriter();
  f(w);
  return w.copy();
}

/** Encodes, decodes, and checks the value and that every byte was consumed. */
function roundTrip<T>(v: T, enc: (w: XdrWriter, v: T) => void, dec: (r: XdrReader) => T): void {
  const b = written((w) => enc(w, v));
  const r = new XdrReader(b);
  expect(dec(r)).toEqual(v);
  expect(r.remaining).toBe(0);
}

const FATTR: Fattr3 = {
  type: NF3REG, mode: 0o4755, nlink: 2, uid: 501, gid: 20,
  size: 0x100000001n, used: 0x100001000n, rdev: { specdata1: 0, specdata2: 0 },
  fsid: 0xfedcba9876543210n, fileid: 2n ** 63n + 5n,
  atime: { seconds: 1700000000, nseconds: 1 }, mtime: { seconds: 0xffffffff, nseconds: 999999999 }, ctime: { seconds: 0, nseconds: 0 },
};

// FATTR laid out as RFC 1813 §2.6 fattr3, field by field.
const FATTR_BYTES = hex(`
  00000001 000009ed 00000002 000001f5 00000014
  0000000100000001 0000000100001000
  00000000 00000000
  fedcba9876543210 8000000000000005
  6553f100 00000001
  ffffffff 3b9ac9ff
  00000000 00000000`);

describe("fattr3 and the attribute unions", () => {
  test("fattr3 has RFC 1813's layout, 84 bytes", () => {
    const b = written((w) => encodeFattr3(w, FATTR));
    expect(b).toEqual(FATTR_BYTES);
    expect(b.length).toBe(FATTR3_SIZE);
    const r = new XdrReader(FATTR_BYTES);
    expect(decodeFattr3(r)).toEqual(FATTR);
  });

  test("post_op_attr is FALSE, or TRUE then a fattr3", () => {
    expect(written((w) => encodePostOpAttr(w, undefined))).toEqual(hex("00000000"));
    expect(written((w) => encodePostOpAttr(w, FATTR))).toEqual(Buffer.concat([hex("00000001"), FATTR_BYTES]));
    roundTrip(undefined, encodePostOpAttr, decodePostOpAttr);
    roundTrip(FATTR, encodePostOpAttr, decodePostOpAttr);
  });

  test("wcc_attr, pre_op_attr and wcc_data", () => {
    const wcc = { size: 10n, mtime: { seconds: 1, nseconds: 2 }, ctime: { seconds: 3, nseconds: 4 } };
    expect(written((w) => encodeWccAttr(w, wcc))).toEqual(hex("000000000000000a 00000001 00000002 00000003 00000004"));
    roundTrip(wcc, encodeWccAttr, decodeWccAttr);
    roundTrip(wcc, encodePreOpAttr, decodePreOpAttr);
    roundTrip(undefined, encodePreOpAttr, decodePreOpAttr);
    expect(written((w) => encodeWccData(w, {}))).toEqual(hex("00000000 00000000"));
    roundTrip({ before: wcc, after: FATTR }, encodeWccData, decodeWccData);
    roundTrip({ before: undefined, after: FATTR }, encodeWccData, decodeWccData);
    roundTrip({ before: wcc, after: undefined }, encodeWccData, decodeWccData);
  });

  test("a fattr3 whose type is not an ftype3 is garbage", () => {
    for (const t of [0, 8, 0xffffffff]) {
      const b = Buffer.from(FATTR_BYTES);
      b.writeUInt32BE(t, 0);
      expect(() => decodeFattr3(new XdrReader(b)), `type ${t}`).toThrow(XdrError);
    }
  });

  test("a post_op_attr flag of 2 is garbage", () => {
    expect(() => decodePostOpAttr(new XdrReader(Buffer.concat([hex("00000002"), FATTR_BYTES])))).toThrow(XdrError);
  });

  test("a truncated fattr3 is garbage at every length", () => {
    for (let n = 0; n < FATTR3_SIZE; n++) expect(() => decodeFattr3(new XdrReader(FATTR_BYTES.subarray(0, n)))).toThrow(XdrError);
  });
});

describe("small types", () => {
  test("nfstime3 and specdata3 are two uint32 each", () => {
    expect(written((w) => encodeNfstime3(w, { seconds: 1, nseconds: 2 }))).toEqual(hex("00000001 00000002"));
    roundTrip({ seconds: 0xffffffff, nseconds: 999999999 }, encodeNfstime3, decodeNfstime3);
    expect(written((w) => encodeSpecdata3(w, { specdata1: 8, specdata2: 1 }))).toEqual(hex("00000008 00000001"));
    roundTrip({ specdata1: 8, specdata2: 1 }, encodeSpecdata3, decodeSpecdata3);
  });

  test("a file handle is opaque<64>: 64 bytes pass, 65 are garbage, and the server refuses to send 65", () => {
    roundTrip(Buffer.alloc(64, 1), encodeNfsFh3, decodeNfsFh3);
    roundTrip(Buffer.alloc(0), encodeNfsFh3, decodeNfsFh3);
    expect(written((w) => encodeNfsFh3(w, hex("0102030405")))).toEqual(hex("00000005 0102030405000000"));
    const b65 = Buffer.concat([hex("00000041"), Buffer.alloc(68)]);
    expect(() => decodeNfsFh3(new XdrReader(b65))).toThrow(XdrError);
    expect(() => written((w) => encodeNfsFh3(w, Buffer.alloc(65)))).toThrow(RangeError);
  });

  test("post_op_fh3", () => {
    roundTrip(undefined, encodePostOpFh3, decodePostOpFh3);
    roundTrip(hex("aabbccdd"), encodePostOpFh3, decodePostOpFh3);
    expect(written((w) => encodePostOpFh3(w, hex("aa")))).toEqual(hex("00000001 00000001 aa000000"));
  });

  test("the three verifiers are opaque[8] with no length word", () => {
    const v = hex("0102030405060708");
    expect(written((w) => encodeVerf8(w, v))).toEqual(v);
    for (const dec of [decodeCookieverf3, decodeCreateverf3, decodeWriteverf3]) {
      expect(dec(new XdrReader(v))).toEqual(v);
      expect(() => dec(new XdrReader(v.subarray(0, 7)))).toThrow(XdrError);
    }
    expect(() => written((w) => encodeVerf8(w, hex("01")))).toThrow(RangeError);
  });

  test("ftype3 takes 1..7 only", () => {
    for (let t = 1; t <= 7; t++) expect(decodeFtype3(new XdrReader(written((w) => w.uint32(t))))).toBe(t);
    for (const t of [0, 8]) expect(() => decodeFtype3(new XdrReader(written((w) => w.uint32(t))))).toThrow(XdrError);
  });

  test("names over 255 bytes still decode (the procedure answers NAMETOOLONG); past the wire bound they are garbage", () => {
    const name = (n: number) => new XdrReader(written((w) => w.string("a".repeat(n))));
    expect(decodeFilename3(name(300)).text.length).toBe(300);
    expect(decodeFilename3(name(FILENAME3_WIRE_MAX)).bytes.length).toBe(FILENAME3_WIRE_MAX);
    expect(() => decodeFilename3(name(FILENAME3_WIRE_MAX + 1))).toThrow(XdrError);
    expect(decodeNfspath3(name(NFSPATH3_WIRE_MAX)).bytes.length).toBe(NFSPATH3_WIRE_MAX);
    expect(() => decodeNfspath3(name(NFSPATH3_WIRE_MAX + 1))).toThrow(XdrError);
  });

  test("diropargs3 is a handle then a name", () => {
    const b = written((w) => encodeDiropargs3(w, { dir: hex("0a0b"), name: "file.txt" }));
    expect(b).toEqual(hex("00000002 0a0b0000 00000008 66696c652e747874"));
    const d = decodeDiropargs3(new XdrReader(b));
    expect(d.dir).toEqual(hex("0a0b"));
    expect(d.name).toEqual({ bytes: Buffer.from("file.txt"), text: "file.txt", isUtf8: true });
  });
});

describe("sattr3", () => {
  test("nothing set is six FALSE/DONT_CHANGE words and decodes to an empty object", () => {
    const b = written((w) => encodeSattr3(w, {}));
    expect(b).toEqual(hex("00000000 00000000 00000000 00000000 00000000 00000000"));
    expect(decodeSattr3(new XdrReader(b))).toEqual({});
  });

  test("everything set, with a client time and the server's time, has RFC 1813's layout", () => {
    const s: Sattr3 = { mode: 0o644, uid: 501, gid: 20, size: 4096n, atime: "server", mtime: { seconds: 5, nseconds: 6 } };
    const b = written((w) => encodeSattr3(w, s));
    expect(b).toEqual(hex(`
      00000001 000001a4
      00000001 000001f5
      00000001 00000014
      00000001 0000000000001000
      00000001
      00000002 00000005 00000006`));
    expect(decodeSattr3(new XdrReader(b))).toEqual(s);
  });

  test("each field alone round trips", () => {
    const cases: Sattr3[] = [
      { mode: 0 }, { uid: 0 }, { gid: 0xffffffff }, { size: 0n }, { size: 2n ** 64n - 1n },
      { atime: { seconds: 1, nseconds: 2 } }, { mtime: "server" }, { atime: "server", mtime: "server" },
    ];
    for (const s of cases) roundTrip(s, encodeSattr3, decodeSattr3);
  });

  test("an unknown time_how is garbage", () => {
    const b = written((w) => encodeSattr3(w, {}));
    b.writeUInt32BE(3, 16); // set_atime
    expect(() => decodeSattr3(new XdrReader(b))).toThrow(/time_how 3/);
    const c = written((w) => encodeSattr3(w, {}));
    c.writeUInt32BE(0xffffffff, 20); // set_mtime
    expect(() => decodeSattr3(new XdrReader(c))).toThrow(XdrError);
  });

  test("a set_it of 2 is garbage", () => {
    for (let field = 0; field < 4; field++) {
      const b = written((w) => encodeSattr3(w, {}));
      b.writeUInt32BE(2, field * 4);
      expect(() => decodeSattr3(new XdrReader(b)), `field ${field}`).toThrow(XdrError);
    }
  });

  test("SET_TO_CLIENT_TIME without its time is garbage", () => {
    expect(() => decodeSattr3(new XdrReader(hex("00000000 00000000 00000000 00000000 00000002 00000001")))).toThrow(XdrError);
  });
});

describe("constants", () => {
  test("procedure numbers 0..21 and names for logs", () => {
    expect([nfs.NFSPROC3_NULL, nfs.NFSPROC3_GETATTR, nfs.NFSPROC3_READDIRPLUS, nfs.NFSPROC3_COMMIT]).toEqual([0, 1, 17, 21]);
    expect(nfs3ProcName(nfs.NFSPROC3_LOOKUP)).toBe("LOOKUP");
    expect(nfs3ProcName(nfs.NFSPROC3_COMMIT)).toBe("COMMIT");
    expect(nfs3ProcName(22)).toBe("PROC22");
    expect(nfs.NFS_PROGRAM).toBe(100003);
  });

  test("nfsstat3 and ftype3 values are RFC 1813's", () => {
    expect([nfs.NFS3ERR_NOENT, nfs.NFS3ERR_NAMETOOLONG, nfs.NFS3ERR_NOTEMPTY, nfs.NFS3ERR_STALE, nfs.NFS3ERR_BADHANDLE, nfs.NFS3ERR_JUKEBOX])
      .toEqual([2, 63, 66, 70, 10001, 10008]);
    expect([NF3REG, NF3LNK, NF3FIFO]).toEqual([1, 5, 7]);
  });
});
