// RPC headers against the byte layout of RFC 5531 §9 written out by hand
// (a NULL call as a Mac sends it, each reply the server can send), and the
// calls and credentials a hostile or confused peer can send.
import { test, expect, describe } from "bun:test";
import { XdrError, XdrReader, XdrWriter } from "./xdr.ts";
import {
  decodeCall, decodeCredential, decodeAuthSys, encodeAuthSys, decodeReply, encodeCall,
  beginSuccessReply, encodeProgUnavail, encodeProgMismatch, encodeProcUnavail, encodeGarbageArgs, encodeSystemErr,
  encodeRpcMismatch, encodeAuthError, RpcAuthError,
  AUTH_NONE, AUTH_SYS, RPCSEC_GSS, AUTH_BADCRED, AUTH_BADVERF, AUTH_TOOWEAK, PROG_UNAVAIL, PROC_UNAVAIL,
  GARBAGE_ARGS, SYSTEM_ERR, type RpcCall,
} from "./rpc.ts";
import { hex } from "./test-bytes.ts";

function written(f: (w: XdrWriter) => void): Buffer {
  const w = new XdrWriter();
  f(w);
  return w.copy();
}

// A NULL call to NFS v3 with no credential, field by field (RFC 5531 §9 call_body).
const NULL_CALL = hex(`
  12345678  00000000  00000002
  000186a3  00000003  00000000
  00000000 00000000
  00000000 00000000`); // xid, CALL, rpcvers 2 / prog 100003, vers 3, proc 0 / cred AUTH_NONE, 0 bytes / verf AUTH_NONE, 0 bytes

// An AUTH_SYS credential body: stamp, machinename "mac" (3 bytes + 1 pad), uid 501, gid 20, gids [20, 12].
const AUTH_SYS_BODY = hex(`
  5f5e1000
  00000003 6d616300
  000001f5 00000014
  00000002 00000014 0000000c`);

function callWith(cred: { flavor: number; body: Buffer }, verf = { flavor: AUTH_NONE, body: Buffer.alloc(0) }): RpcCall {
  return { xid: 1, prog: 100003, vers: 3, proc: 1, cred, verf };
}

describe("decoding a CALL header", () => {
  test("a NULL call written by hand decodes field by field, with no argument bytes left", () => {
    const d = decodeCall(NULL_CALL);
    if (d.kind !== "call") throw new Error(`decoded as ${d.kind}`);
    expect(d.call).toEqual({
      xid: 0x12345678, prog: 100003, vers: 3, proc: 0,
      cred: { flavor: AUTH_NONE, body: Buffer.alloc(0) },
      verf: { flavor: AUTH_NONE, body: Buffer.alloc(0) },
    });
    expect(d.args.remaining).toBe(0);
  });

  test("encodeCall writes exactly those bytes", () => {
    const call: RpcCall = {
      xid: 0x12345678, prog: 100003, vers: 3, proc: 0,
      cred: { flavor: AUTH_NONE, body: Buffer.alloc(0) }, verf: { flavor: AUTH_NONE, body: Buffer.alloc(0) },
    };
    expect(written((w) => encodeCall(w, call))).toEqual(NULL_CALL);
  });

  test("the argument reader starts just after the verifier", () => {
    const b = Buffer.concat([NULL_CALL, hex("0000002a")]);
    const d = decodeCall(b);
    if (d.kind !== "call") throw new Error(d.kind);
    expect(d.args.uint32()).toBe(42);
  });

  test("an AUTH_SYS credential travels as an opaque body and decodes to the caller's ids", () => {
    const call = callWith({ flavor: AUTH_SYS, body: AUTH_SYS_BODY });
    const d = decodeCall(written((w) => encodeCall(w, call)));
    if (d.kind !== "call") throw new Error(d.kind);
    expect(decodeCredential(d.call)).toEqual({
      flavor: AUTH_SYS, stamp: 0x5f5e1000, machinename: "mac", uid: 501, gid: 20, gids: [20, 12],
    });
  });

  test("RPC version 3 is answered RPC_MISMATCH, with the xid to answer it by", () => {
    const b = Buffer.from(NULL_CALL);
    b.writeUInt32BE(3, 8);
    expect(decodeCall(b)).toEqual({ kind: "rpc-mismatch", xid: 0x12345678, rpcvers: 3 });
  });

  test("a REPLY, or an unknown message type, sent to the server is not a call", () => {
    const b = Buffer.from(NULL_CALL);
    b.writeUInt32BE(1, 4);
    expect(decodeCall(b)).toEqual({ kind: "not-a-call", xid: 0x12345678, mtype: 1 });
    b.writeUInt32BE(7, 4);
    expect(decodeCall(b)).toMatchObject({ kind: "not-a-call", mtype: 7 });
  });

  test("a header cut anywhere after the message type is garbage with a known xid", () => {
    for (let len = 8; len < NULL_CALL.length; len++) {
      const d = decodeCall(NULL_CALL.subarray(0, len));
      expect(d.kind, `cut at ${len}`).toBe("garbage");
      if (d.kind === "garbage") expect(d.xid).toBe(0x12345678);
    }
  });

  test("fewer than 8 bytes cannot be answered at all: XdrError", () => {
    for (let len = 0; len < 8; len++) expect(() => decodeCall(NULL_CALL.subarray(0, len))).toThrow(XdrError);
  });

  test("a credential body over 400 bytes is garbage, and one of exactly 400 is not", () => {
    const at = (n: number) => written((w) => encodeCall(w, callWith({ flavor: AUTH_SYS, body: Buffer.alloc(n) })));
    expect(decodeCall(at(400)).kind).toBe("call");
    expect(decodeCall(at(401))).toMatchObject({ kind: "garbage", reason: expect.stringContaining("limit of 400") });
  });

  test("a credential claiming 0xFFFFFFF0 bytes is garbage", () => {
    const b = Buffer.from(NULL_CALL);
    b.writeUInt32BE(0xfffffff0, 28);
    expect(decodeCall(b).kind).toBe("garbage");
  });
});

describe("credentials", () => {
  test("AUTH_NONE with an empty body is accepted as AUTH_NONE (whether that is enough is the server's policy)", () => {
    expect(decodeCredential(callWith({ flavor: AUTH_NONE, body: Buffer.alloc(0) }))).toEqual({ flavor: AUTH_NONE });
  });

  test("AUTH_SYS round trips through encodeAuthSys", () => {
    const p = { stamp: 7, machinename: "host.local", uid: 0, gid: 0, gids: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16] };
    const body = written((w) => encodeAuthSys(w, p));
    expect(decodeAuthSys(body)).toEqual(p);
    expect(written((w) => encodeAuthSys(w, { stamp: 0x5f5e1000, machinename: "mac", uid: 501, gid: 20, gids: [20, 12] }))).toEqual(AUTH_SYS_BODY);
  });

  function rejected(call: RpcCall): number {
    try {
      decodeCredential(call);
    } catch (e) {
      if (e instanceof RpcAuthError) return e.stat;
      throw e;
    }
    throw new Error("credential was accepted");
  }

  test("an unknown flavor (RPCSEC_GSS, AUTH_DH, 99) is AUTH_BADCRED", () => {
    for (const flavor of [RPCSEC_GSS, 3, 99]) expect(rejected(callWith({ flavor, body: Buffer.alloc(8) }))).toBe(AUTH_BADCRED);
  });

  test("a malformed AUTH_SYS body is AUTH_BADCRED: short, machine name over 255, 17 groups, bytes left over", () => {
    const sys = (p: { machinename: string; gids: number[] }) =>
      written((w) => encodeAuthSys(w, { stamp: 1, uid: 2, gid: 3, ...p }));
    expect(rejected(callWith({ flavor: AUTH_SYS, body: AUTH_SYS_BODY.subarray(0, 20) }))).toBe(AUTH_BADCRED);
    expect(rejected(callWith({ flavor: AUTH_SYS, body: sys({ machinename: "m".repeat(256), gids: [] }) }))).toBe(AUTH_BADCRED);
    expect(decodeCredential(callWith({ flavor: AUTH_SYS, body: sys({ machinename: "m".repeat(255), gids: [] }) })).flavor).toBe(AUTH_SYS);
    expect(rejected(callWith({ flavor: AUTH_SYS, body: sys({ machinename: "m", gids: Array(17).fill(1) }) }))).toBe(AUTH_BADCRED);
    expect(rejected(callWith({ flavor: AUTH_SYS, body: Buffer.concat([AUTH_SYS_BODY, hex("00000000")]) }))).toBe(AUTH_BADCRED);
  });

  test("an AUTH_NONE credential with a body is AUTH_BADCRED", () => {
    expect(rejected(callWith({ flavor: AUTH_NONE, body: Buffer.alloc(4) }))).toBe(AUTH_BADCRED);
  });

  test("a verifier other than an empty AUTH_NONE is AUTH_BADVERF", () => {
    const cred = { flavor: AUTH_SYS, body: AUTH_SYS_BODY };
    expect(rejected(callWith(cred, { flavor: AUTH_SYS, body: Buffer.alloc(0) }))).toBe(AUTH_BADVERF);
    expect(rejected(callWith(cred, { flavor: AUTH_NONE, body: Buffer.alloc(4) }))).toBe(AUTH_BADVERF);
  });
});

describe("replies have RFC 5531's bytes", () => {
  // Each accepted reply: xid, REPLY(1), MSG_ACCEPTED(0), verifier AUTH_NONE with 0 bytes, accept_stat, ...
  const XID = 0xcafef00d;
  const accepted = (stat: string, rest = "") => hex(`cafef00d 00000001 00000000 00000000 00000000 ${stat} ${rest}`);

  test("SUCCESS, with the results appended by the caller", () => {
    expect(written((w) => { beginSuccessReply(w, XID); w.uint32(0x2a); })).toEqual(accepted("00000000", "0000002a"));
  });

  test("PROG_UNAVAIL, PROC_UNAVAIL, GARBAGE_ARGS, SYSTEM_ERR", () => {
    expect(written((w) => encodeProgUnavail(w, XID))).toEqual(accepted("00000001"));
    expect(written((w) => encodeProcUnavail(w, XID))).toEqual(accepted("00000003"));
    expect(written((w) => encodeGarbageArgs(w, XID))).toEqual(accepted("00000004"));
    expect(written((w) => encodeSystemErr(w, XID))).toEqual(accepted("00000005"));
  });

  test("PROG_MISMATCH carries the lowest and highest versions served", () => {
    expect(written((w) => encodeProgMismatch(w, XID, 3, 3))).toEqual(accepted("00000002", "00000003 00000003"));
  });

  test("MSG_DENIED RPC_MISMATCH says 2..2; AUTH_ERROR carries the auth_stat", () => {
    expect(written((w) => encodeRpcMismatch(w, XID))).toEqual(hex("cafef00d 00000001 00000001 00000000 00000002 00000002"));
    expect(written((w) => encodeAuthError(w, XID, AUTH_TOOWEAK))).toEqual(hex("cafef00d 00000001 00000001 00000001 00000005"));
  });

  test("decodeReply reads back every kind of reply", () => {
    const ok = decodeReply(written((w) => { beginSuccessReply(w, XID); w.uint32(9); }));
    if (ok.kind !== "success") throw new Error(ok.kind);
    expect(ok.xid).toBe(XID);
    expect(ok.verf).toEqual({ flavor: AUTH_NONE, body: Buffer.alloc(0) });
    expect(ok.results.uint32()).toBe(9);
    expect(decodeReply(written((w) => encodeProgMismatch(w, 5, 2, 3)))).toMatchObject({ xid: 5, kind: "prog-mismatch", low: 2, high: 3 });
    for (const [enc, stat] of [[encodeProgUnavail, PROG_UNAVAIL], [encodeProcUnavail, PROC_UNAVAIL], [encodeGarbageArgs, GARBAGE_ARGS], [encodeSystemErr, SYSTEM_ERR]] as const) {
      expect(decodeReply(written((w) => enc(w, 5)))).toMatchObject({ xid: 5, kind: "accepted-error", stat });
    }
    expect(decodeReply(written((w) => encodeRpcMismatch(w, 5)))).toEqual({ xid: 5, kind: "rpc-mismatch", low: 2, high: 2 });
    expect(decodeReply(written((w) => encodeAuthError(w, 5, AUTH_BADCRED)))).toEqual({ xid: 5, kind: "auth-error", stat: AUTH_BADCRED });
  });

  test("decodeReply refuses a CALL and an unknown reply_stat", () => {
    expect(() => decodeReply(NULL_CALL)).toThrow(XdrError);
    expect(() => decodeReply(hex("00000001 00000001 00000002"))).toThrow(XdrError);
  });

  test("replies and calls keep the full 32-bit xid", () => {
    const d = decodeReply(written((w) => encodeGarbageArgs(w, 0xffffffff)));
    expect(d.xid).toBe(0xffffffff);
    expect(new XdrReader(written((w) => encodeCall(w, { ...callWith({ flavor: 0, body: Buffer.alloc(0) }), xid: 0xfffffffe }))).uint32()).toBe(0xfffffffe);
  });
});
