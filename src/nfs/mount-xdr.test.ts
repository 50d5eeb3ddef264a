// MOUNT v3 against RFC 1813 Appendix I's layout written out by hand: what a
// Mac sends to MNT, and the handle, flavor list, export list and mount list
// it gets back.
import { test, expect, describe } from "bun:test";
import { XdrError, XdrReader, XdrWriter } from "./xdr.ts";
import {
  decodeDirpath, encodeMountres3Ok, encodeMountres3Fail, decodeMountres3, encodeExports, encodeMountlist, mount3ProcName,
  MNT3_OK, MNT3ERR_NOENT, MNT3ERR_ACCES, MNTPATHLEN, MOUNT_PROGRAM, MOUNT_V3, MOUNTPROC3_MNT, MOUNTPROC3_EXPORT,
} from "./mount-xdr.ts";
import { AUTH_NONE, AUTH_SYS } from "./rpc.ts";
import { hex, withoutAllocation } from "./test-bytes.ts";

function bytes(f: (w: XdrWriter) => void): Buffer {
  const w = new XdrWriter();
  f(w);
  return w.copy();
}

describe("MNT", () => {
  test("the argument is a dirpath", () => {
    const d = decodeDirpath(new XdrReader(hex("00000005 2f64617461000000")));
    expect(d.text).toBe("/data");
  });

  test("a dirpath of 1024 bytes is accepted and of 1025 is garbage; a huge claim allocates nothing", () => {
    const path = (n: number) => new XdrReader(bytes((w) => w.string("/".repeat(n))));
    expect(decodeDirpath(path(MNTPATHLEN)).bytes.length).toBe(1024);
    expect(() => decodeDirpath(path(MNTPATHLEN + 1))).toThrow(XdrError);
    const huge = hex("fffffff0 2f000000");
    withoutAllocation(() => {
      expect(() => decodeDirpath(new XdrReader(huge))).toThrow(XdrError);
    });
  });

  test("success: MNT3_OK, the root handle, the flavors, by hand", () => {
    expect(bytes((w) => encodeMountres3Ok(w, hex("0102030405"), [AUTH_SYS]))).toEqual(
      hex("00000000 00000005 0102030405000000 00000001 00000001"),
    );
  });

  test("success round trips through decodeMountres3", () => {
    const b = bytes((w) => encodeMountres3Ok(w, Buffer.alloc(64, 9), [AUTH_SYS, AUTH_NONE]));
    const r = new XdrReader(b);
    expect(decodeMountres3(r)).toEqual({ status: MNT3_OK, fhandle: Buffer.alloc(64, 9), authFlavors: [AUTH_SYS, AUTH_NONE] });
    expect(r.remaining).toBe(0);
  });

  test("failure is the status alone, and MNT3_OK is refused as a failure", () => {
    expect(bytes((w) => encodeMountres3Fail(w, MNT3ERR_NOENT))).toEqual(hex("00000002"));
    expect(decodeMountres3(new XdrReader(hex("0000000d")))).toEqual({ status: MNT3ERR_ACCES });
    expect(() => bytes((w) => encodeMountres3Fail(w, MNT3_OK))).toThrow(RangeError);
  });

  test("a reply listing more flavors than the reader allows is garbage", () => {
    expect(() => decodeMountres3(new XdrReader(hex("00000000 00000000 ffffffff")))).toThrow(XdrError);
  });

  test("a handle over 64 bytes is refused by the encoder", () => {
    expect(() => bytes((w) => encodeMountres3Ok(w, Buffer.alloc(65), [AUTH_SYS]))).toThrow(RangeError);
  });
});

describe("EXPORT and DUMP", () => {
  test("exports: a list of paths, each with a list of groups, by hand", () => {
    const b = bytes((w) => encodeExports(w, [{ dir: "/", groups: [] }, { dir: "/x", groups: ["lo"] }]));
    expect(b).toEqual(hex(`
      00000001 00000001 2f000000 00000000
      00000001 00000002 2f780000 00000001 00000002 6c6f0000 00000000
      00000000`));
  });

  test("no exports is a single FALSE", () => {
    expect(bytes((w) => encodeExports(w, []))).toEqual(hex("00000000"));
  });

  test("mountlist: host, directory, next", () => {
    expect(bytes((w) => encodeMountlist(w, [{ hostname: "mac", directory: "/" }]))).toEqual(
      hex("00000001 00000003 6d616300 00000001 2f000000 00000000"),
    );
    expect(bytes((w) => encodeMountlist(w, []))).toEqual(hex("00000000"));
  });
});

test("program, version and procedure numbers", () => {
  expect([MOUNT_PROGRAM, MOUNT_V3, MOUNTPROC3_MNT, MOUNTPROC3_EXPORT]).toEqual([100005, 3, 1, 5]);
  expect(mount3ProcName(MOUNTPROC3_MNT)).toBe("MNT");
  expect(mount3ProcName(6)).toBe("PROC6");
});
