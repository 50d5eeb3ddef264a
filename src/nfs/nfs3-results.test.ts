// Every NFSv3 result encoder, read back field by field in RFC 1813's order
// with the plain reader, some against bytes written out by hand; and the
// READDIR size arithmetic against real encodings.
import { test, expect, describe } from "bun:test";
import { XdrReader, XdrWriter } from "./xdr.ts";
import * as res from "./nfs3-results.ts";
import {
  decodeNfsFh3, decodePostOpAttr, decodePostOpFh3, decodeWccData, decodeNfstime3, encodeFattr3,
  NFS3_OK, NFS3ERR_STALE, NFS3ERR_NOENT, NFS3ERR_NOTEMPTY, NFS3ERR_EXIST, NFS3ERR_ACCES, NFS3ERR_BAD_COOKIE,
  NF3DIR, FILE_SYNC, FSF3_LINK, FSF3_SYMLINK, FSF3_HOMOGENEOUS, FSF3_CANSETTIME,
  type Fattr3, type WccData,
} from "./nfs3-xdr.ts";
import { hex } from "./test-bytes.ts";

const ATTR: Fattr3 = {
  type: NF3DIR, mode: 0o755, nlink: 3, uid: 501, gid: 20, size: 4096n, used: 4096n,
  rdev: { specdata1: 0, specdata2: 0 }, fsid: 1n, fileid: 42n,
  atime: { seconds: 10, nseconds: 11 }, mtime: { seconds: 12, nseconds: 13 }, ctime: { seconds: 14, nseconds: 15 },
};
const ATTR_BYTES = (() => {
  const w = new XdrWriter();
  encodeFattr3(w, ATTR);
  return w.copy();
})();
const WCC: WccData = { before: { size: 1n, mtime: { seconds: 2, nseconds: 3 }, ctime: { seconds: 4, nseconds: 5 } }, after: ATTR };
const FH = hex("0102030405");
const VERF = hex("0807060504030201");

function reader(f: (w: XdrWriter) => void): XdrReader {
  const w = new XdrWriter();
  f(w);
  return new XdrReader(w.copy());
}
function bytes(f: (w: XdrWriter) => void): Buffer {
  const w = new XdrWriter();
  f(w);
  return w.copy();
}
function done(r: XdrReader): void {
  expect(r.remaining).toBe(0);
}

describe("failures, by layout", () => {
  test("GETATTR failure is the status alone", () => {
    expect(bytes((w) => res.encodeFail3(w, NFS3ERR_STALE))).toEqual(hex("00000046"));
  });

  test("a post_op_attr failure: status, then FALSE or TRUE + fattr3", () => {
    expect(bytes((w) => res.encodeAttrFail3(w, NFS3ERR_NOENT, undefined))).toEqual(hex("00000002 00000000"));
    expect(bytes((w) => res.encodeAttrFail3(w, NFS3ERR_NOENT, ATTR))).toEqual(Buffer.concat([hex("00000002 00000001"), ATTR_BYTES]));
  });

  test("a wcc_data failure: status, pre_op_attr, post_op_attr", () => {
    expect(bytes((w) => res.encodeWccFail3(w, NFS3ERR_EXIST, {}))).toEqual(hex("00000011 00000000 00000000"));
    const r = reader((w) => res.encodeWccFail3(w, NFS3ERR_EXIST, WCC));
    expect(r.uint32()).toBe(NFS3ERR_EXIST);
    expect(decodeWccData(r)).toEqual(WCC);
    done(r);
  });

  test("a failure encoder handed NFS3_OK refuses (the client would read a resok that is not there)", () => {
    expect(() => bytes((w) => res.encodeFail3(w, NFS3_OK))).toThrow(RangeError);
    expect(() => bytes((w) => res.encodeAttrFail3(w, NFS3_OK, undefined))).toThrow(RangeError);
    expect(() => bytes((w) => res.encodeWccFail3(w, NFS3_OK, {}))).toThrow(RangeError);
  });
});

describe("successes", () => {
  test("GETATTR: NFS3_OK then a bare fattr3", () => {
    expect(bytes((w) => res.encodeGetattr3Ok(w, { objAttributes: ATTR }))).toEqual(Buffer.concat([hex("00000000"), ATTR_BYTES]));
  });

  test("SETATTR, REMOVE, RMDIR: the status, then wcc_data, whatever the status", () => {
    for (const status of [NFS3_OK, NFS3ERR_NOTEMPTY]) {
      const r = reader((w) => res.encodeWcc3Res(w, status, WCC));
      expect(r.uint32()).toBe(status);
      expect(decodeWccData(r)).toEqual(WCC);
      done(r);
    }
  });

  test("LOOKUP: handle, object attributes, directory attributes", () => {
    const r = reader((w) => res.encodeLookup3Ok(w, { object: FH, objAttributes: ATTR }));
    expect(r.uint32()).toBe(NFS3_OK);
    expect(decodeNfsFh3(r)).toEqual(FH);
    expect(decodePostOpAttr(r)).toEqual(ATTR);
    expect(decodePostOpAttr(r)).toBeUndefined();
    done(r);
  });

  test("ACCESS: attributes then the granted bits, by hand", () => {
    expect(bytes((w) => res.encodeAccess3Ok(w, { access: 0x1f }))).toEqual(hex("00000000 00000000 0000001f"));
  });

  test("READLINK: attributes then the target", () => {
    expect(bytes((w) => res.encodeReadlink3Ok(w, { data: "../a" }))).toEqual(hex("00000000 00000000 00000004 2e2e2f61"));
    expect(bytes((w) => res.encodeReadlink3Ok(w, { data: hex("ff") }))).toEqual(hex("00000000 00000000 00000001 ff000000"));
  });

  test("READ: attributes, count (from the data), eof, data, by hand", () => {
    expect(bytes((w) => res.encodeRead3Ok(w, { eof: true, data: Buffer.from("hello") }))).toEqual(
      hex("00000000 00000000 00000005 00000001 00000005 68656c6c6f000000"),
    );
    const r = reader((w) => res.encodeRead3Ok(w, { fileAttributes: ATTR, eof: false, data: Buffer.alloc(0) }));
    expect([r.uint32(), decodePostOpAttr(r), r.uint32(), r.bool(), r.opaque(10)]).toEqual([NFS3_OK, ATTR, 0, false, Buffer.alloc(0)]);
    done(r);
  });

  test("WRITE: wcc_data, count, committed, verifier", () => {
    const r = reader((w) => res.encodeWrite3Ok(w, { fileWcc: WCC, count: 4096, committed: FILE_SYNC, verf: VERF }));
    expect([r.uint32(), decodeWccData(r), r.uint32(), r.uint32(), r.opaqueFixed(8)]).toEqual([NFS3_OK, WCC, 4096, FILE_SYNC, VERF]);
    done(r);
  });

  test("CREATE, MKDIR, SYMLINK, MKNOD: post_op_fh3, post_op_attr, wcc_data", () => {
    const r = reader((w) => res.encodeNewObject3Ok(w, { obj: FH, objAttributes: ATTR, dirWcc: WCC }));
    expect([r.uint32(), decodePostOpFh3(r), decodePostOpAttr(r), decodeWccData(r)]).toEqual([NFS3_OK, FH, ATTR, WCC]);
    done(r);
    expect(bytes((w) => res.encodeNewObject3Ok(w, { dirWcc: {} }))).toEqual(hex("00000000 00000000 00000000 00000000 00000000"));
  });

  test("RENAME: two wcc_data, whatever the status", () => {
    const r = reader((w) => res.encodeRename3Res(w, NFS3ERR_ACCES, { fromdirWcc: WCC, todirWcc: {} }));
    expect([r.uint32(), decodeWccData(r), decodeWccData(r)]).toEqual([NFS3ERR_ACCES, WCC, { before: undefined, after: undefined }]);
    done(r);
  });

  test("LINK: file attributes, then the directory's wcc_data", () => {
    const r = reader((w) => res.encodeLink3Res(w, NFS3_OK, { fileAttributes: ATTR, linkdirWcc: WCC }));
    expect([r.uint32(), decodePostOpAttr(r), decodeWccData(r)]).toEqual([NFS3_OK, ATTR, WCC]);
    done(r);
  });

  test("FSSTAT: six sizes and invarsec", () => {
    const r = reader((w) => res.encodeFsstat3Ok(w, { tbytes: 1n << 40n, fbytes: 2n, abytes: 3n, tfiles: 4n, ffiles: 5n, afiles: 6n, invarsec: 0 }));
    expect([r.uint32(), decodePostOpAttr(r), r.uint64(), r.uint64(), r.uint64(), r.uint64(), r.uint64(), r.uint64(), r.uint32()])
      .toEqual([NFS3_OK, undefined, 1n << 40n, 2n, 3n, 4n, 5n, 6n, 0]);
    done(r);
  });

  test("FSINFO: transfer sizes, maxfilesize, time_delta, properties", () => {
    const props = FSF3_LINK | FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME;
    const r = reader((w) => res.encodeFsinfo3Ok(w, {
      objAttributes: ATTR, rtmax: 1048576, rtpref: 131072, rtmult: 4096, wtmax: 1048576, wtpref: 131072, wtmult: 4096,
      dtpref: 8192, maxfilesize: 2n ** 63n - 1n, timeDelta: { seconds: 0, nseconds: 1 }, properties: props,
    }));
    expect(r.uint32()).toBe(NFS3_OK);
    expect(decodePostOpAttr(r)).toEqual(ATTR);
    expect([r.uint32(), r.uint32(), r.uint32(), r.uint32(), r.uint32(), r.uint32(), r.uint32()]).toEqual([1048576, 131072, 4096, 1048576, 131072, 4096, 8192]);
    expect(r.uint64()).toBe(2n ** 63n - 1n);
    expect(decodeNfstime3(r)).toEqual({ seconds: 0, nseconds: 1 });
    expect(r.uint32()).toBe(0x1b);
    done(r);
  });

  test("PATHCONF: two counts and four bools, by hand", () => {
    expect(bytes((w) => res.encodePathconf3Ok(w, {
      linkmax: 32767, nameMax: 255, noTrunc: true, chownRestricted: true, caseInsensitive: false, casePreserving: true,
    }))).toEqual(hex("00000000 00000000 00007fff 000000ff 00000001 00000001 00000000 00000001"));
  });

  test("COMMIT: wcc_data and the write verifier", () => {
    const r = reader((w) => res.encodeCommit3Ok(w, { fileWcc: {}, verf: VERF }));
    expect([r.uint32(), decodeWccData(r), r.opaqueFixed(8)]).toEqual([NFS3_OK, { before: undefined, after: undefined }, VERF]);
    done(r);
  });
});

describe("READDIR and READDIRPLUS", () => {
  const entries = [
    { fileid: 2n, name: ".", cookie: 1n },
    { fileid: 1n, name: "..", cookie: 2n },
    { fileid: 2n ** 63n, name: "résumé.txt", cookie: 2n ** 64n - 1n },
  ];

  test("READDIR: the entries are a linked list (TRUE before each, FALSE at the end), then eof", () => {
    const r = reader((w) => res.encodeReaddir3Ok(w, { dirAttributes: ATTR, cookieverf: VERF, entries, eof: true }));
    expect(r.uint32()).toBe(NFS3_OK);
    expect(decodePostOpAttr(r)).toEqual(ATTR);
    expect(r.opaqueFixed(8)).toEqual(VERF);
    const got = [];
    while (r.bool()) got.push({ fileid: r.uint64(), name: r.string(255).text, cookie: r.uint64() });
    expect(got).toEqual(entries);
    expect(r.bool()).toBe(true);
    done(r);
  });

  test("an empty READDIR, by hand", () => {
    expect(bytes((w) => res.encodeReaddir3Ok(w, { cookieverf: VERF, entries: [], eof: true }))).toEqual(
      hex("00000000 00000000 0807060504030201 00000000 00000001"),
    );
  });

  test("READDIRPLUS: each entry also carries attributes and a handle", () => {
    const plus = [{ ...entries[0], nameAttributes: ATTR, nameHandle: FH }, { ...entries[2] }];
    const r = reader((w) => res.encodeReaddirplus3Ok(w, { cookieverf: VERF, entries: plus, eof: false }));
    expect([r.uint32(), decodePostOpAttr(r), r.opaqueFixed(8)]).toEqual([NFS3_OK, undefined, VERF]);
    const got = [];
    while (r.bool()) {
      got.push({ fileid: r.uint64(), name: r.string(255).text, cookie: r.uint64(), nameAttributes: decodePostOpAttr(r), nameHandle: decodePostOpFh3(r) });
    }
    expect(got).toEqual([
      { ...entries[0], nameAttributes: ATTR, nameHandle: FH },
      { ...entries[2], nameAttributes: undefined, nameHandle: undefined },
    ]);
    expect(r.bool()).toBe(false);
    done(r);
  });

  test("the size functions match what the encoders write, byte for byte", () => {
    for (const hasDir of [false, true]) {
      const dirAttributes = hasDir ? ATTR : undefined;
      const empty = bytes((w) => res.encodeReaddir3Ok(w, { dirAttributes, cookieverf: VERF, entries: [], eof: true }));
      expect(empty.length - 4, `dir attributes ${hasDir}`).toBe(res.readdirResokBaseSize(hasDir)); // - 4: the status is not part of resok
      const emptyPlus = bytes((w) => res.encodeReaddirplus3Ok(w, { dirAttributes, cookieverf: VERF, entries: [], eof: true }));
      expect(emptyPlus.length - 4).toBe(res.readdirResokBaseSize(hasDir));
    }
    for (const name of ["", "a", "ab", "abc", "abcd", "résumé.txt"]) {
      const n = Buffer.byteLength(name);
      const one = bytes((w) => res.encodeReaddir3Ok(w, { cookieverf: VERF, entries: [{ fileid: 1n, name, cookie: 1n }], eof: true }));
      expect(one.length - 4 - res.readdirResokBaseSize(false), name).toBe(res.entry3Size(n));
      for (const attrs of [undefined, ATTR]) {
        for (const handle of [undefined, hex(""), FH, Buffer.alloc(64)]) {
          const e = { fileid: 1n, name, cookie: 1n, nameAttributes: attrs, nameHandle: handle };
          const plus = bytes((w) => res.encodeReaddirplus3Ok(w, { cookieverf: VERF, entries: [e], eof: true }));
          expect(plus.length - 4 - res.readdirResokBaseSize(false)).toBe(res.entryplus3Size(n, attrs !== undefined, handle?.length));
        }
      }
    }
  });

  test("a READDIR failure carries the directory's attributes", () => {
    const r = reader((w) => res.encodeAttrFail3(w, NFS3ERR_BAD_COOKIE, ATTR));
    expect(r.uint32()).toBe(NFS3ERR_BAD_COOKIE);
    expect(decodePostOpAttr(r)).toEqual(ATTR);
    done(r);
  });
});
