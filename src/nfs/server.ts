// The embedded NFSv3 server: ONC RPC over TCP on a loopback address, NFS
// (100003 v3) and MOUNT (100005 v3) on one port, so no portmapper is needed
// (the client is told port and mountport).
//
// Per connection: records are read with record marking (record.ts), every
// call runs as soon as it arrives (several in flight), and each reply goes
// out when it is ready, in whatever order. A connection that breaks the
// framing (a fragment over the record limit, a record too short to hold an
// xid) is closed; a call whose header or arguments do not decode is answered
// GARBAGE_ARGS. Nothing a peer sends can throw out of this module.
//
// Who may use it, and what that protects:
// - Only loopback addresses are served (refused at start otherwise): nothing
//   off this machine can connect.
// - MNT answers the root handle only for the export path, a random path the
//   mount command makes and passes on (`/pgfiles-<32 hex>`); it is not listed
//   by EXPORT or DUMP (both answer an empty list). Another local user who
//   does not know it cannot mount.
// - Every NFS call (and MNT) must carry AUTH_SYS; AUTH_NONE is refused with
//   AUTH_ERROR AUTH_TOOWEAK, other flavors with AUTH_BADCRED. The AUTH_SYS uid
//   must be the mount owner's or root's; any other uid gets NFS3ERR_ACCES in
//   the procedure's own result (MNT3ERR_ACCES for MNT). ACCES rather than
//   AUTH_ERROR on purpose: the Mac's NFS client shows an RPC auth error as a
//   failure of the whole mount, while ACCES is an ordinary "Permission denied"
//   for that one user's call. This is what stops another user's processes from
//   reading through the owner's mount point: the kernel's NFS client sends
//   their uid.
// - What it does NOT protect: AUTH_SYS is a claim, not a proof. Any local
//   process can open a socket to this port and claim the owner's uid. What
//   stops it is that it needs a file handle first: the export path (for MNT)
//   or a handle, which carries a random per-journal export id and a random
//   per-file generation (filehandle.ts). A process that can read the owner's
//   files or memory (same user, root, a debugger) can learn both: against
//   those there is no protection, as with any local file system. The traffic
//   is not encrypted (it never leaves the machine).
import net from "node:net";
import { randomBytes } from "node:crypto";
import type { Journal } from "../journal/journal.ts";
import { HandleTable } from "../journal/handles.ts";
import type { Logger } from "../log.ts";
import type { Caller } from "../vfs/types.ts";
import type { PgVfs } from "../vfs/vfs.ts";
import * as M from "./mount-xdr.ts";
import { Nfs3, RTMAX } from "./nfs3.ts";
import { NFS_PROGRAM, NFS_V3 } from "./nfs3-xdr.ts";
import { beginRecord, DEFAULT_MAX_RECORD, endRecord, RecordError, recordDecoder } from "./record.ts";
import * as Rpc from "./rpc.ts";
import { XdrError, XdrWriter, type XdrReader } from "./xdr.ts";

export interface NfsServerOptions {
  /** Already loaded (loadRoot done). */
  vfs: PgVfs;
  /** Where persistent handles live (the vfs's journal). */
  journal: Journal;
  /** Default "127.0.0.1"; anything that is not a loopback address is refused. */
  host?: string;
  /** 0 = any free port; NFS and MOUNT are served on this one port. */
  port?: number;
  /** The unguessable export path the mount command passes to MNT, e.g. "/pgfiles-<32 hex>". */
  exportPath: string;
  /** The AUTH_SYS uid allowed (root, 0, is allowed too). */
  ownerUid: number;
  log: Logger;
  /** How long an unused open file stays open (open-files.ts); for tests. */
  idleCloseMs?: number;
}

export interface NfsServer {
  port: number;
  /** The write verifier of this server start (WRITE and COMMIT answer it). */
  verifier: Buffer;
  /** Stops listening, closes every connection, and closes every open file (its version fsynced). */
  close(): Promise<void>;
  /** Calls answered since start; connections open now. */
  stats(): { requests: number; connections: number };
}

/** rtmax and wtmax (FSINFO): the rsize/wsize a mount should ask for. One record (record.ts) holds it plus headers. */
export const NFS_TRANSFER_BYTES = RTMAX;

/** Calls one connection may have running at once; past this the socket is not read until some finish. */
const MAX_IN_FLIGHT = 64;

export function isLoopback(host: string): boolean {
  if (net.isIPv4(host)) return host.startsWith("127.");
  if (net.isIPv6(host)) return host === "::1" || host === "0:0:0:0:0:0:0:1" || /^::ffff:127\./i.test(host);
  return false;
}

export async function startNfsServer(o: NfsServerOptions): Promise<NfsServer> {
  const host = o.host ?? "127.0.0.1";
  if (!isLoopback(host)) throw new Error(`The NFS server listens on loopback addresses only, not ${host}.`);
  if (!o.exportPath.startsWith("/")) throw new Error("The export path must start with '/'.");
  const { log } = o;
  const verifier = randomBytes(8);
  const handles = new HandleTable(o.journal);
  const nfs = new Nfs3({ vfs: o.vfs, handles, verifier, log, idleCloseMs: o.idleCloseMs });
  const counters = { requests: 0 };
  const sockets = new Set<net.Socket>();
  const running = new Set<Promise<unknown>>();

  /** Who is calling, or the reply that refuses the call. */
  function authenticate(call: Rpc.RpcCall): { who: Caller & { gids: number[] }; allowed: boolean } | { deny: number } {
    let cred: Rpc.Credential;
    try {
      cred = Rpc.decodeCredential(call);
    } catch (e) {
      if (e instanceof Rpc.RpcAuthError) return { deny: e.stat };
      throw e;
    }
    if (cred.flavor !== Rpc.AUTH_SYS) return { deny: Rpc.AUTH_TOOWEAK };
    const who = { uid: cred.uid, gid: cred.gid, pid: 0, gids: cred.gids };
    return { who, allowed: cred.uid === o.ownerUid || cred.uid === 0 };
  }

  async function nfsCall(call: Rpc.RpcCall, args: XdrReader, w: XdrWriter): Promise<void> {
    if (call.vers !== NFS_V3) return Rpc.encodeProgMismatch(w, call.xid, NFS_V3, NFS_V3);
    const proc = nfs.procs[call.proc];
    if (!proc) return Rpc.encodeProcUnavail(w, call.xid);
    let decoded: unknown;
    try {
      decoded = proc.decode(args);
    } catch (e) {
      if (e instanceof XdrError) return Rpc.encodeGarbageArgs(w, call.xid);
      throw e;
    }
    // NULL is a ping: it reveals nothing, and clients send it before they have credentials sorted out.
    if (call.proc === 0) return Rpc.beginSuccessReply(w, call.xid);
    const auth = authenticate(call);
    if ("deny" in auth) return Rpc.encodeAuthError(w, call.xid, auth.deny);
    Rpc.beginSuccessReply(w, call.xid);
    if (!auth.allowed) return proc.fail(w, 13 /* NFS3ERR_ACCES */);
    let encode;
    try {
      encode = await proc.run(decoded, auth.who);
    } catch (e) {
      const { status, expected } = Nfs3.statusOf(e);
      if (expected) log.debug({ op: proc.name, status, err: (e as Error).message }, `nfs: ${proc.name} failed`);
      else log.error({ op: proc.name, err: e }, `nfs: ${proc.name} failed: ${(e as Error)?.message}`);
      return proc.fail(w, status);
    }
    encode(w);
  }

  function mountCall(call: Rpc.RpcCall, args: XdrReader, w: XdrWriter): void {
    if (call.vers !== M.MOUNT_V3) return Rpc.encodeProgMismatch(w, call.xid, M.MOUNT_V3, M.MOUNT_V3);
    switch (call.proc) {
      case M.MOUNTPROC3_NULL:
        return Rpc.beginSuccessReply(w, call.xid);
      case M.MOUNTPROC3_MNT: {
        let path;
        try {
          path = M.decodeDirpath(args);
        } catch (e) {
          if (e instanceof XdrError) return Rpc.encodeGarbageArgs(w, call.xid);
          throw e;
        }
        const auth = authenticate(call);
        if ("deny" in auth) return Rpc.encodeAuthError(w, call.xid, auth.deny);
        Rpc.beginSuccessReply(w, call.xid);
        // Any other path, or a stranger's uid: the same ACCES, so a wrong guess learns nothing about the right one.
        if (!auth.allowed || !path.isUtf8 || path.text.replace(/\/+$/, "") !== o.exportPath.replace(/\/+$/, "")) {
          log.warn({ uid: auth.who.uid }, "nfs: MNT refused (wrong export path or uid)");
          return M.encodeMountres3Fail(w, M.MNT3ERR_ACCES);
        }
        return M.encodeMountres3Ok(w, nfs.rootHandle(), [Rpc.AUTH_SYS]);
      }
      case M.MOUNTPROC3_DUMP:
        // The mount list would show the export path to anyone who asks: it is the secret, so the list is empty.
        Rpc.beginSuccessReply(w, call.xid);
        return M.encodeMountlist(w, []);
      case M.MOUNTPROC3_UMNT:
        try {
          M.decodeDirpath(args);
        } catch (e) {
          if (e instanceof XdrError) return Rpc.encodeGarbageArgs(w, call.xid);
          throw e;
        }
        // Nothing is kept per mount: UMNT (and UMNTALL) only acknowledge.
        return Rpc.beginSuccessReply(w, call.xid);
      case M.MOUNTPROC3_UMNTALL:
        return Rpc.beginSuccessReply(w, call.xid);
      case M.MOUNTPROC3_EXPORT:
        // Not listed, for the same reason as DUMP: a client must be told the path by whoever mounts.
        Rpc.beginSuccessReply(w, call.xid);
        return M.encodeExports(w, []);
      default:
        return Rpc.encodeProcUnavail(w, call.xid);
    }
  }

  /** The reply to one record (a whole record-marked message), or null when none is owed. */
  async function answer(record: Buffer): Promise<Buffer | null> {
    const d = Rpc.decodeCall(record); // XdrError when there is not even an xid: the caller closes the connection
    const w = new XdrWriter(1024);
    const mark = beginRecord(w);
    switch (d.kind) {
      case "not-a-call":
        return null; // RFC 5531 has no answer for a REPLY sent to a server
      case "rpc-mismatch":
        Rpc.encodeRpcMismatch(w, d.xid);
        break;
      case "garbage":
        Rpc.encodeGarbageArgs(w, d.xid);
        break;
      case "call": {
        counters.requests++;
        const mid = w.length;
        try {
          if (d.call.prog === NFS_PROGRAM) await nfsCall(d.call, d.args, w);
          else if (d.call.prog === M.MOUNT_PROGRAM) mountCall(d.call, d.args, w);
          else Rpc.encodeProgUnavail(w, d.call.xid);
        } catch (e) {
          // A bug of ours (an encoder, the auth decoding): the client gets SYSTEM_ERR, never silence.
          log.error({ err: e, prog: d.call.prog, proc: d.call.proc }, `nfs: call failed: ${(e as Error)?.message}`);
          const again = new XdrWriter(64);
          const m2 = beginRecord(again);
          Rpc.encodeSystemErr(again, d.call.xid);
          endRecord(again, m2);
          void mid;
          return again.view();
        }
        break;
      }
    }
    endRecord(w, mark);
    return w.view();
  }

  function serveConnection(socket: net.Socket) {
    sockets.add(socket);
    socket.setNoDelay(true);
    const decoder = recordDecoder(DEFAULT_MAX_RECORD);
    let inFlight = 0;
    let paused = false;
    const finish = () => {
      inFlight--;
      if (paused && inFlight < MAX_IN_FLIGHT / 2 && !socket.destroyed) {
        paused = false;
        socket.resume();
      }
    };
    socket.on("data", (chunk: Buffer) => {
      let records: Buffer[];
      try {
        records = decoder.push(chunk);
      } catch (e) {
        if (e instanceof RecordError) log.warn({ err: e.message }, "nfs: closing a connection that broke record marking");
        socket.destroy();
        return;
      }
      for (const record of records) {
        inFlight++;
        const p = answer(record).then(
          (reply) => {
            if (reply && !socket.destroyed) socket.write(reply);
          },
          (e) => {
            // Not even an xid (XdrError), or worse: nobody to answer, and the stream cannot be trusted.
            if (!(e instanceof XdrError)) log.error({ err: e }, "nfs: a record could not be answered");
            socket.destroy();
          },
        );
        running.add(p);
        void p.finally(() => {
          running.delete(p);
          finish();
        });
      }
      if (inFlight >= MAX_IN_FLIGHT && !paused) {
        paused = true;
        socket.pause();
      }
    });
    socket.on("error", (e) => log.debug({ err: e.message }, "nfs: connection error"));
    socket.on("close", () => sockets.delete(socket));
  }

  const server = net.createServer({ allowHalfOpen: false }, serveConnection);
  server.on("error", (e) => log.error({ err: e }, "nfs: server error"));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;
  log.info({ host, port }, "nfs: serving");

  let closing: Promise<void> | null = null;
  return {
    port,
    verifier,
    stats: () => ({ requests: counters.requests, connections: sockets.size }),
    close() {
      closing ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          for (const s of sockets) s.destroy();
        });
        await Promise.allSettled([...running]);
        await nfs.files.closeAll();
      })();
      return closing;
    },
  };
}
