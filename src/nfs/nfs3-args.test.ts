// Every NFSv3 procedure's arguments, built field by field with the XDR
// primitives (not with the codec under test), decoded, and then cut short at
// every byte: a truncated argument must always be garbage, never a default.
import { test, expect, describe } from "bun:test";
import { XdrError, XdrReader, XdrWriter } from "./xdr.ts";
import * as args from "./nfs3-args.ts";
import {
  NF3BLK, NF3CHR, NF3DIR, NF3FIFO, NF3SOCK, NFS_PROGRAM, NFS_V3, NFSPROC3_LOOKUP,
  UNCHECKED, GUARDED, EXCLUSIVE, UNSTABLE, FILE_SYNC, ACCESS3_READ, ACCESS3_LOOKUP,
} from "./nfs3-xdr.ts";
import { decodeCall, encodeCall, AUTH_SYS, AUTH_NONE, decodeCredential, encodeAuthSys } from "./rpc.ts";
import { recordDecoder, encodeRecord } from "./record.ts";
import { hex, withoutAllocation } from "./test-bytes.ts";

const FH = hex("0001020304050607 08090a0b0c0d0e0f"); // 16 bytes: no padding
const FH2 = hex("aabbcc"); // 3 bytes: 1 byte of padding

function bytes(f: (w: XdrWriter) => void): Buffer {
  const w = new XdrWriter();
  f(w);
  return w.copy();
}

// Wire pieces, each written with primitives only.
const fh = (w: XdrWriter, h: Buffer) => w.opaque(h);
const name = (w: XdrWriter, s: string) => w.string(s);
const noAttrs = (w: XdrWriter) => { for (let i = 0; i < 6; i++) w.uint32(0); };
const modeOnly = (w: XdrWriter, mode: number) => { w.bool(true); w.uint32(mode); for (let i = 0; i < 5; i++) w.uint32(0); };
const text = (s: string) => ({ bytes: Buffer.from(s), text: s, isUtf8: true });

/** Decodes `b` with `dec`, requires every byte used, and requires every proper prefix to be garbage. */
function decodeStrict<T>(dec: (r: XdrReader) => T, b: Buffer): T {
  const r = new XdrReader(b);
  const v = dec(r);
  expect(r.remaining).toBe(0);
  for (let n = 0; n < b.length; n++) {
    expect(() => dec(new XdrReader(b.subarray(0, n))), `cut at ${n} of ${b.length}`).toThrow(XdrError);
  }
  return v;
}

describe("each procedure's arguments decode to RFC 1813's fields", () => {
  test("GETATTR, READLINK, FSSTAT, FSINFO, PATHCONF: one handle", () => {
    const b = bytes((w) => fh(w, FH));
    expect(decodeStrict(args.decodeGetattr3Args, b)).toEqual({ object: FH });
    expect(decodeStrict(args.decodeReadlink3Args, b)).toEqual({ symlink: FH });
    expect(decodeStrict(args.decodeFsstat3Args, b)).toEqual({ fsroot: FH });
    expect(decodeStrict(args.decodeFsinfo3Args, b)).toEqual({ fsroot: FH });
    expect(decodeStrict(args.decodePathconf3Args, b)).toEqual({ object: FH });
  });

  test("SETATTR without and with a ctime guard", () => {
    const noGuard = bytes((w) => { fh(w, FH); modeOnly(w, 0o600); w.bool(false); });
    expect(decodeStrict(args.decodeSetattr3Args, noGuard)).toEqual({ object: FH, newAttributes: { mode: 0o600 }, guard: undefined });
    const guarded = bytes((w) => { fh(w, FH2); noAttrs(w); w.bool(true); w.uint32(100); w.uint32(200); });
    expect(decodeStrict(args.decodeSetattr3Args, guarded)).toEqual({ object: FH2, newAttributes: {}, guard: { seconds: 100, nseconds: 200 } });
  });

  test("a sattrguard3 check of 2 is garbage", () => {
    const b = bytes((w) => { fh(w, FH); noAttrs(w); w.uint32(2); w.uint32(1); w.uint32(1); });
    expect(() => args.decodeSetattr3Args(new XdrReader(b))).toThrow(XdrError);
  });

  test("LOOKUP, REMOVE, RMDIR: a directory handle and a name", () => {
    const b = bytes((w) => { fh(w, FH2); name(w, "hello.txt"); });
    const where = { dir: FH2, name: text("hello.txt") };
    expect(decodeStrict(args.decodeLookup3Args, b)).toEqual({ what: where });
    expect(decodeStrict(args.decodeRemove3Args, b)).toEqual({ object: where });
    expect(decodeStrict(args.decodeRmdir3Args, b)).toEqual({ object: where });
  });

  test("ACCESS", () => {
    const b = bytes((w) => { fh(w, FH); w.uint32(ACCESS3_READ | ACCESS3_LOOKUP); });
    expect(decodeStrict(args.decodeAccess3Args, b)).toEqual({ object: FH, access: 3 });
  });

  test("READ and COMMIT: a 64-bit offset and a count", () => {
    const b = bytes((w) => { fh(w, FH); w.uint64(2n ** 40n + 1n); w.uint32(65536); });
    expect(decodeStrict(args.decodeRead3Args, b)).toEqual({ file: FH, offset: 2n ** 40n + 1n, count: 65536 });
    expect(decodeStrict(args.decodeCommit3Args, b)).toEqual({ file: FH, offset: 2n ** 40n + 1n, count: 65536 });
  });

  test("WRITE carries its data as a view of the record", () => {
    const data = Buffer.from("hello");
    const b = bytes((w) => { fh(w, FH); w.uint64(10n); w.uint32(5); w.uint32(FILE_SYNC); w.opaque(data); });
    const a = decodeStrict(args.decodeWrite3Args, b);
    expect(a).toEqual({ file: FH, offset: 10n, count: 5, stable: FILE_SYNC, data });
    expect(a.data.buffer).toBe(b.buffer);
  });

  test("WRITE with an unknown stable_how is garbage", () => {
    const b = bytes((w) => { fh(w, FH); w.uint64(0n); w.uint32(1); w.uint32(3); w.opaque(hex("00")); });
    expect(() => args.decodeWrite3Args(new XdrReader(b))).toThrow(/stable_how 3/);
  });

  test("WRITE whose count disagrees with its data length is garbage", () => {
    const b = bytes((w) => { fh(w, FH); w.uint64(0n); w.uint32(6); w.uint32(UNSTABLE); w.opaque(Buffer.from("hello")); });
    expect(() => args.decodeWrite3Args(new XdrReader(b))).toThrow(/count is 6 but 5 bytes/);
  });

  test("WRITE claiming 0xFFFFFFF0 bytes of data is garbage, and nothing is allocated for it", () => {
    const b = bytes((w) => { fh(w, FH); w.uint64(0n); w.uint32(0xfffffff0); w.uint32(UNSTABLE); w.uint32(0xfffffff0); w.uint32(0); });
    withoutAllocation(() => {
      expect(() => args.decodeWrite3Args(new XdrReader(b))).toThrow(XdrError);
    });
  });

  test("CREATE in each mode: UNCHECKED and GUARDED carry attributes, EXCLUSIVE a verifier", () => {
    const where = { dir: FH, name: text("new") };
    const unchecked = bytes((w) => { fh(w, FH); name(w, "new"); w.uint32(UNCHECKED); modeOnly(w, 0o644); });
    expect(decodeStrict(args.decodeCreate3Args, unchecked)).toEqual({ where, how: { mode: UNCHECKED, objAttributes: { mode: 0o644 } } });
    const guarded = bytes((w) => { fh(w, FH); name(w, "new"); w.uint32(GUARDED); noAttrs(w); });
    expect(decodeStrict(args.decodeCreate3Args, guarded)).toEqual({ where, how: { mode: GUARDED, objAttributes: {} } });
    const verf = hex("1122334455667788");
    const exclusive = bytes((w) => { fh(w, FH); name(w, "new"); w.uint32(EXCLUSIVE); w.opaqueFixed(verf, 8); });
    expect(decodeStrict(args.decodeCreate3Args, exclusive)).toEqual({ where, how: { mode: EXCLUSIVE, verf } });
  });

  test("CREATE with an unknown createmode is garbage", () => {
    for (const mode of [3, 0xffffffff]) {
      const b = bytes((w) => { fh(w, FH); name(w, "new"); w.uint32(mode); noAttrs(w); });
      expect(() => args.decodeCreate3Args(new XdrReader(b)), `mode ${mode}`).toThrow(XdrError);
    }
  });

  test("MKDIR", () => {
    const b = bytes((w) => { fh(w, FH); name(w, "d"); modeOnly(w, 0o755); });
    expect(decodeStrict(args.decodeMkdir3Args, b)).toEqual({ where: { dir: FH, name: text("d") }, attributes: { mode: 0o755 } });
  });

  test("SYMLINK: attributes then the target", () => {
    const b = bytes((w) => { fh(w, FH); name(w, "ln"); noAttrs(w); w.string("../target/ä"); });
    expect(decodeStrict(args.decodeSymlink3Args, b)).toEqual({
      where: { dir: FH, name: text("ln") },
      symlink: { symlinkAttributes: {}, symlinkData: text("../target/ä") },
    });
  });

  test("MKNOD: devices carry numbers, sockets and FIFOs attributes, other types nothing", () => {
    const where = { dir: FH, name: text("n") };
    for (const type of [NF3CHR, NF3BLK] as const) {
      const b = bytes((w) => { fh(w, FH); name(w, "n"); w.uint32(type); modeOnly(w, 0o600); w.uint32(8); w.uint32(1); });
      expect(decodeStrict(args.decodeMknod3Args, b)).toEqual({
        where, what: { type, device: { devAttributes: { mode: 0o600 }, spec: { specdata1: 8, specdata2: 1 } } },
      });
    }
    for (const type of [NF3SOCK, NF3FIFO] as const) {
      const b = bytes((w) => { fh(w, FH); name(w, "n"); w.uint32(type); modeOnly(w, 0o666); });
      expect(decodeStrict(args.decodeMknod3Args, b)).toEqual({ where, what: { type, pipeAttributes: { mode: 0o666 } } });
    }
    const dir = bytes((w) => { fh(w, FH); name(w, "n"); w.uint32(NF3DIR); });
    expect(decodeStrict(args.decodeMknod3Args, dir)).toEqual({ where, what: { type: NF3DIR } });
  });

  test("MKNOD with a type that is not an ftype3 is garbage", () => {
    for (const type of [0, 8, 99]) {
      const b = bytes((w) => { fh(w, FH); name(w, "n"); w.uint32(type); });
      expect(() => args.decodeMknod3Args(new XdrReader(b)), `type ${type}`).toThrow(XdrError);
    }
  });

  test("RENAME: two directory-name pairs", () => {
    const b = bytes((w) => { fh(w, FH); name(w, "a"); fh(w, FH2); name(w, "bb"); });
    expect(decodeStrict(args.decodeRename3Args, b)).toEqual({ from: { dir: FH, name: text("a") }, to: { dir: FH2, name: text("bb") } });
  });

  test("LINK: the file, then where the new name goes", () => {
    const b = bytes((w) => { fh(w, FH); fh(w, FH2); name(w, "hard"); });
    expect(decodeStrict(args.decodeLink3Args, b)).toEqual({ file: FH, link: { dir: FH2, name: text("hard") } });
  });

  test("READDIR and READDIRPLUS: cookie, verifier, and byte budgets", () => {
    const verf = hex("0000000000000007");
    const rd = bytes((w) => { fh(w, FH); w.uint64(2n ** 64n - 1n); w.opaqueFixed(verf, 8); w.uint32(4096); });
    expect(decodeStrict(args.decodeReaddir3Args, rd)).toEqual({ dir: FH, cookie: 2n ** 64n - 1n, cookieverf: verf, count: 4096 });
    const rdp = bytes((w) => { fh(w, FH); w.uint64(3n); w.opaqueFixed(verf, 8); w.uint32(1024); w.uint32(32768); });
    expect(decodeStrict(args.decodeReaddirplus3Args, rdp)).toEqual({ dir: FH, cookie: 3n, cookieverf: verf, dircount: 1024, maxcount: 32768 });
  });

  test("a handle over 64 bytes is garbage in any procedure", () => {
    const b = bytes((w) => { w.opaque(Buffer.alloc(65)); w.uint32(0); });
    expect(() => args.decodeGetattr3Args(new XdrReader(b))).toThrow(XdrError);
    expect(() => args.decodeLookup3Args(new XdrReader(b))).toThrow(XdrError);
  });
});

test("a LOOKUP arrives byte by byte over TCP and comes out as a call, a credential and its arguments", () => {
  const w = new XdrWriter();
  const cred = bytes((c) => encodeAuthSys(c, { stamp: 1, machinename: "mac", uid: 501, gid: 20, gids: [20] }));
  encodeCall(w, { xid: 77, prog: NFS_PROGRAM, vers: NFS_V3, proc: NFSPROC3_LOOKUP, cred: { flavor: AUTH_SYS, body: cred }, verf: { flavor: AUTH_NONE, body: Buffer.alloc(0) } });
  fh(w, FH);
  name(w, "Documents");
  const stream = encodeRecord(w.view());
  const dec = recordDecoder();
  const records: Buffer[] = [];
  for (let i = 0; i < stream.length; i++) records.push(...dec.push(stream.subarray(i, i + 1)));
  expect(records.length).toBe(1);
  const d = decodeCall(records[0]);
  if (d.kind !== "call") throw new Error(d.kind);
  expect(d.call.proc).toBe(NFSPROC3_LOOKUP);
  expect(decodeCredential(d.call)).toMatchObject({ uid: 501, gid: 20, gids: [20] });
  expect(args.decodeLookup3Args(d.args)).toEqual({ what: { dir: FH, name: text("Documents") } });
  expect(d.args.remaining).toBe(0);
});
