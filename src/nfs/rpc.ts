// ONC RPC version 2 (RFC 5531) as the server sees it: the header of a CALL,
// the AUTH_SYS credential, and every REPLY the server can send. The program's
// own arguments and results (NFS, MOUNT) are not here.
//
// Every reply carries an AUTH_NONE verifier: AUTH_SYS has no server verifier
// and we offer no other flavor. Encoding a CALL and decoding a REPLY are here
// too, so tests (and any client) speak the same codec the server does.

import { XdrError, XdrReader, XdrWriter } from "./xdr.ts";

export const RPC_VERSION = 2;

// msg_type
export const CALL = 0;
export const REPLY = 1;

// reply_stat
export const MSG_ACCEPTED = 0;
export const MSG_DENIED = 1;

// accept_stat
export const SUCCESS = 0;
export const PROG_UNAVAIL = 1;
export const PROG_MISMATCH = 2;
export const PROC_UNAVAIL = 3;
export const GARBAGE_ARGS = 4;
export const SYSTEM_ERR = 5;

// reject_stat
export const RPC_MISMATCH = 0;
export const AUTH_ERROR = 1;

// auth_flavor
export const AUTH_NONE = 0;
export const AUTH_SYS = 1;
export const AUTH_SHORT = 2;
export const AUTH_DH = 3;
export const RPCSEC_GSS = 6;

// auth_stat
export const AUTH_OK = 0;
/** Bad credential (seal broken): also our answer to a flavor we do not know and to a malformed AUTH_SYS body. */
export const AUTH_BADCRED = 1;
export const AUTH_REJECTEDCRED = 2;
/** The verifier of an AUTH_NONE or AUTH_SYS call is not an empty AUTH_NONE. */
export const AUTH_BADVERF = 3;
export const AUTH_REJECTEDVERF = 4;
/** A flavor we understand but will not accept (AUTH_NONE where an export wants AUTH_SYS). */
export const AUTH_TOOWEAK = 5;
export const AUTH_INVALIDRESP = 6;
export const AUTH_FAILED = 7;

/** opaque_auth.body<400>. */
export const MAX_AUTH_BYTES = 400;
/** authsys_parms.machinename<255>. */
export const MAX_MACHINENAME = 255;
/** authsys_parms.gids<16>. */
export const MAX_AUTH_SYS_GIDS = 16;

export interface OpaqueAuth {
  flavor: number;
  /** A view into the record. */
  body: Buffer;
}

export interface RpcCall {
  xid: number;
  prog: number;
  vers: number;
  proc: number;
  cred: OpaqueAuth;
  verf: OpaqueAuth;
}

/**
 * What the first bytes of a record turned out to be. Only "call" goes on to a
 * program; the others tell the server which reply (if any) to send.
 */
export type DecodedCall =
  /** A well-formed call: `args` is positioned at the procedure's arguments. */
  | { kind: "call"; call: RpcCall; args: XdrReader }
  /** rpcvers is not 2: reply MSG_DENIED RPC_MISMATCH(2, 2). */
  | { kind: "rpc-mismatch"; xid: number; rpcvers: number }
  /** A REPLY (or an unknown msg_type) sent to a server: ignore it, RFC 5531 has no answer for it. */
  | { kind: "not-a-call"; xid: number; mtype: number }
  /** The header ends early or its cred/verf is over 400 bytes: reply GARBAGE_ARGS, the xid is known. */
  | { kind: "garbage"; xid: number; reason: string };

function readOpaqueAuth(r: XdrReader, what: string): OpaqueAuth {
  const flavor = r.uint32(`the flavor of the ${what}`);
  const body = r.opaque(MAX_AUTH_BYTES, `the body of the ${what}`);
  return { flavor, body };
}

/**
 * Decodes the call header at the start of `record`. Throws XdrError only when
 * even the xid and message type are missing (fewer than 8 bytes): there is
 * nobody to answer then, and the caller drops the record.
 */
export function decodeCall(record: Buffer): DecodedCall {
  const r = new XdrReader(record);
  const xid = r.uint32("the xid");
  const mtype = r.uint32("the message type");
  if (mtype !== CALL) return { kind: "not-a-call", xid, mtype };
  try {
    const rpcvers = r.uint32("the RPC version");
    if (rpcvers !== RPC_VERSION) return { kind: "rpc-mismatch", xid, rpcvers };
    const prog = r.uint32("the program number");
    const vers = r.uint32("the program version");
    const proc = r.uint32("the procedure number");
    const cred = readOpaqueAuth(r, "credential");
    const verf = readOpaqueAuth(r, "verifier");
    return { kind: "call", call: { xid, prog, vers, proc, cred, verf }, args: r };
  } catch (e) {
    if (e instanceof XdrError) return { kind: "garbage", xid, reason: e.message };
    throw e;
  }
}

// ---------------------------------------------------------------------------
// Credentials

/** authsys_parms. */
export interface AuthSysParms {
  stamp: number;
  /** The client's name for itself: informative only, never trusted. */
  machinename: string;
  uid: number;
  gid: number;
  gids: number[];
}

export type Credential = { flavor: typeof AUTH_NONE } | ({ flavor: typeof AUTH_SYS } & AuthSysParms);

/** The call's credential cannot be accepted; reply MSG_DENIED AUTH_ERROR with `stat`. */
export class RpcAuthError extends Error {
  constructor(readonly stat: number, message: string) {
    super(message);
    this.name = "RpcAuthError";
  }
}

/** Decodes an AUTH_SYS credential body. The whole body must be used: bytes left over mean a malformed credential. */
export function decodeAuthSys(body: Buffer): AuthSysParms {
  const r = new XdrReader(body);
  const stamp = r.uint32("the AUTH_SYS stamp");
  const machinename = r.string(MAX_MACHINENAME, "the AUTH_SYS machine name").text;
  const uid = r.uint32("the AUTH_SYS uid");
  const gid = r.uint32("the AUTH_SYS gid");
  const n = r.uint32("the AUTH_SYS group count");
  if (n > MAX_AUTH_SYS_GIDS) throw new XdrError(`AUTH_SYS carries ${n} groups, more than ${MAX_AUTH_SYS_GIDS}`);
  const gids: number[] = [];
  for (let i = 0; i < n; i++) gids.push(r.uint32("an AUTH_SYS group"));
  if (r.remaining !== 0) throw new XdrError(`AUTH_SYS body has ${r.remaining} bytes after its last group`);
  return { stamp, machinename, uid, gid, gids };
}

/**
 * The caller's identity from a call's credential and verifier, as AUTH_NONE
 * or AUTH_SYS. Whether AUTH_NONE is good enough is the server's policy
 * (AUTH_TOOWEAK), not this function's. Throws RpcAuthError with the auth_stat
 * to reply: AUTH_BADCRED for an unknown flavor or a malformed AUTH_SYS body
 * (what Linux's sunrpc answers), AUTH_BADVERF for a verifier that is not an
 * empty AUTH_NONE (neither flavor has a client verifier).
 */
export function decodeCredential(call: RpcCall): Credential {
  const { cred, verf } = call;
  let out: Credential;
  if (cred.flavor === AUTH_NONE) {
    if (cred.body.length !== 0) throw new RpcAuthError(AUTH_BADCRED, `an AUTH_NONE credential carries ${cred.body.length} bytes`);
    out = { flavor: AUTH_NONE };
  } else if (cred.flavor === AUTH_SYS) {
    try {
      out = { flavor: AUTH_SYS, ...decodeAuthSys(cred.body) };
    } catch (e) {
      if (e instanceof XdrError) throw new RpcAuthError(AUTH_BADCRED, e.message);
      throw e;
    }
  } else {
    throw new RpcAuthError(AUTH_BADCRED, `credential flavor ${cred.flavor} is not AUTH_NONE or AUTH_SYS`);
  }
  if (verf.flavor !== AUTH_NONE || verf.body.length !== 0) {
    throw new RpcAuthError(AUTH_BADVERF, `the verifier is flavor ${verf.flavor} with ${verf.body.length} bytes, not an empty AUTH_NONE`);
  }
  return out;
}

export function encodeAuthSys(w: XdrWriter, p: AuthSysParms): void {
  w.uint32(p.stamp);
  w.string(p.machinename);
  w.uint32(p.uid);
  w.uint32(p.gid);
  w.uint32(p.gids.length);
  for (const g of p.gids) w.uint32(g);
}

// ---------------------------------------------------------------------------
// Replies. Each writes a whole reply header at the writer's end; after
// beginSuccessReply the caller appends the procedure's results.

function acceptedHeader(w: XdrWriter, xid: number, stat: number): void {
  w.uint32(xid);
  w.uint32(REPLY);
  w.uint32(MSG_ACCEPTED);
  w.uint32(AUTH_NONE); // verifier flavor
  w.uint32(0); // verifier body length
  w.uint32(stat);
}

/** MSG_ACCEPTED, SUCCESS: the procedure's results follow. */
export function beginSuccessReply(w: XdrWriter, xid: number): void {
  acceptedHeader(w, xid, SUCCESS);
}

/** The program is not served here. */
export function encodeProgUnavail(w: XdrWriter, xid: number): void {
  acceptedHeader(w, xid, PROG_UNAVAIL);
}

/** The program is served, but not in this version: `low`..`high` are. */
export function encodeProgMismatch(w: XdrWriter, xid: number, low: number, high: number): void {
  acceptedHeader(w, xid, PROG_MISMATCH);
  w.uint32(low);
  w.uint32(high);
}

export function encodeProcUnavail(w: XdrWriter, xid: number): void {
  acceptedHeader(w, xid, PROC_UNAVAIL);
}

/** The arguments did not decode. */
export function encodeGarbageArgs(w: XdrWriter, xid: number): void {
  acceptedHeader(w, xid, GARBAGE_ARGS);
}

/** The server failed for a reason of its own (out of memory, a bug): not the caller's fault. */
export function encodeSystemErr(w: XdrWriter, xid: number): void {
  acceptedHeader(w, xid, SYSTEM_ERR);
}

/** MSG_DENIED RPC_MISMATCH: we speak RPC version 2 only. */
export function encodeRpcMismatch(w: XdrWriter, xid: number): void {
  w.uint32(xid);
  w.uint32(REPLY);
  w.uint32(MSG_DENIED);
  w.uint32(RPC_MISMATCH);
  w.uint32(RPC_VERSION);
  w.uint32(RPC_VERSION);
}

/** MSG_DENIED AUTH_ERROR with an auth_stat (AUTH_BADCRED, AUTH_TOOWEAK, ...). */
export function encodeAuthError(w: XdrWriter, xid: number, stat: number): void {
  w.uint32(xid);
  w.uint32(REPLY);
  w.uint32(MSG_DENIED);
  w.uint32(AUTH_ERROR);
  w.uint32(stat);
}

// ---------------------------------------------------------------------------
// The client's side, for tests and tools that talk to the server.

/** A CALL header; the caller appends the procedure's arguments. */
export function encodeCall(w: XdrWriter, call: RpcCall): void {
  w.uint32(call.xid);
  w.uint32(CALL);
  w.uint32(RPC_VERSION);
  w.uint32(call.prog);
  w.uint32(call.vers);
  w.uint32(call.proc);
  w.uint32(call.cred.flavor);
  w.opaque(call.cred.body);
  w.uint32(call.verf.flavor);
  w.opaque(call.verf.body);
}

export type RpcReply =
  /** `results` is positioned at the procedure's results. */
  | { xid: number; kind: "success"; verf: OpaqueAuth; results: XdrReader }
  | { xid: number; kind: "prog-mismatch"; verf: OpaqueAuth; low: number; high: number }
  /** PROG_UNAVAIL, PROC_UNAVAIL, GARBAGE_ARGS, SYSTEM_ERR (or an accept_stat we do not know). */
  | { xid: number; kind: "accepted-error"; verf: OpaqueAuth; stat: number }
  | { xid: number; kind: "rpc-mismatch"; low: number; high: number }
  | { xid: number; kind: "auth-error"; stat: number };

/** Decodes a REPLY message. Throws XdrError on anything else or on a malformed reply. */
export function decodeReply(record: Buffer): RpcReply {
  const r = new XdrReader(record);
  const xid = r.uint32("the xid");
  const mtype = r.uint32("the message type");
  if (mtype !== REPLY) throw new XdrError(`message type ${mtype} is not REPLY`);
  const replyStat = r.enumOf([MSG_ACCEPTED, MSG_DENIED], "reply_stat");
  if (replyStat === MSG_ACCEPTED) {
    const verf = readOpaqueAuth(r, "reply verifier");
    const stat = r.uint32("accept_stat");
    if (stat === SUCCESS) return { xid, kind: "success", verf, results: r };
    if (stat === PROG_MISMATCH) return { xid, kind: "prog-mismatch", verf, low: r.uint32("low"), high: r.uint32("high") };
    return { xid, kind: "accepted-error", verf, stat };
  }
  const rejectStat = r.enumOf([RPC_MISMATCH, AUTH_ERROR], "reject_stat");
  if (rejectStat === RPC_MISMATCH) return { xid, kind: "rpc-mismatch", low: r.uint32("low"), high: r.uint32("high") };
  return { xid, kind: "auth-error", stat: r.uint32("auth_stat") };
}
