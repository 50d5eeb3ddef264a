import { describe, expect, test } from "bun:test";
import { decodeFileHandle, encodeFileHandle, FH_SIZE } from "./filehandle.ts";
import { accessBits, nameCookie } from "./nfs3.ts";
import { NFS3_FHSIZE, ACCESS3_READ, ACCESS3_MODIFY, ACCESS3_EXTEND, ACCESS3_DELETE, ACCESS3_LOOKUP, ACCESS3_EXECUTE } from "./nfs3-xdr.ts";
import type { Attr } from "../vfs/types.ts";

describe("file handles", () => {
  test("encode and decode round-trip, in 24 bytes (under NFS3_FHSIZE)", () => {
    const h = { exportId: Buffer.from("0102030405060708", "hex"), fileid: 0xfedcba9876543210n, generation: 0x7abcdef0 };
    const b = encodeFileHandle(h);
    expect(b.length).toBe(FH_SIZE);
    expect(FH_SIZE).toBeLessThanOrEqual(NFS3_FHSIZE);
    expect(decodeFileHandle(b)).toEqual(h);
  });

  test("anything else is not a handle of ours: wrong length, version, reserved bytes", () => {
    const b = encodeFileHandle({ exportId: Buffer.alloc(8, 1), fileid: 5n, generation: 9 });
    expect(decodeFileHandle(b.subarray(0, 23))).toBeNull();
    expect(decodeFileHandle(Buffer.concat([b, Buffer.alloc(4)]))).toBeNull();
    for (const i of [0, 1, 2, 3]) {
      const bad = Buffer.from(b);
      bad[i] ^= 0x40;
      expect(decodeFileHandle(bad)).toBeNull();
    }
    expect(decodeFileHandle(Buffer.alloc(0))).toBeNull();
  });
});

describe("directory cookies", () => {
  test("deterministic, at least 3, and distinct over 100,000 names", () => {
    expect(nameCookie("a.txt")).toBe(nameCookie("a.txt"));
    const seen = new Set<bigint>();
    for (let i = 0; i < 100_000; i++) {
      const c = nameCookie(`file-${i}`);
      expect(c >= 3n && c < 1n << 63n).toBe(true);
      seen.add(c);
    }
    expect(seen.size).toBe(100_000);
    expect(nameCookie("é")).not.toBe(nameCookie("e"));
  });
});

describe("ACCESS", () => {
  const attr = (mode: number, uid = 1000, gid = 1000): Attr => ({
    ino: 2n, mode, nlink: 1, uid, gid, size: 0, blocks: 0, atimeNs: 0n, mtimeNs: 0n, ctimeNs: 0n, generation: 0n,
  });
  const all = 0x3f;
  test("owner, group and others get their bits; root everything but executing a file nobody may execute", () => {
    expect(accessBits(attr(0o100640), { uid: 1000, gid: 1, pid: 0 }) & all).toBe(ACCESS3_READ | ACCESS3_MODIFY | ACCESS3_EXTEND);
    expect(accessBits(attr(0o100640), { uid: 7, gid: 1000, pid: 0 })).toBe(ACCESS3_READ);
    expect(accessBits(attr(0o100640), { uid: 7, gid: 7, pid: 0, gids: [1000] } as never)).toBe(ACCESS3_READ);
    expect(accessBits(attr(0o100640), { uid: 7, gid: 7, pid: 0 })).toBe(0);
    expect(accessBits(attr(0o100644), { uid: 0, gid: 0, pid: 0 }) & ACCESS3_EXECUTE).toBe(0);
    expect(accessBits(attr(0o100755), { uid: 0, gid: 0, pid: 0 }) & ACCESS3_EXECUTE).toBe(ACCESS3_EXECUTE);
    expect(accessBits(attr(0o040755), { uid: 1000, gid: 0, pid: 0 })).toBe(ACCESS3_READ | ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_DELETE | ACCESS3_LOOKUP);
  });
});
