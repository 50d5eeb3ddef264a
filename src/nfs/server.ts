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
// Memory per connection is bounded, whatever the peer does: a call counts as
// in flight until its reply has been handed to the kernel (the write's
// callback), and the socket is not read while MAX_IN_FLIGHT calls are in
// flight or more than MAX_QUEUED_REPLY_BYTES of replies wait to be sent. A
// peer that sends calls and never reads the replies stops being read; its
// calls then wait in the kernel's socket buffers, not in ours. What is queued
// at most: MAX_QUEUED_REPLY_BYTES, plus the replies of the calls in flight
// when it was reached (each at most one record), plus the records of one read
// chunk not yet started.
//
// Who may use it, and what that protects:
// - Only loopback addresses are served (refused at start otherwise): nothing
//   off this machine can connect.
// - MNT answers the root handle only for the export path, a random path the
//   mount command makes and passes on (`/pgfiles-<32 hex>`); it is not listed
//   by EXPORT or DUMP (both answer an empty list). But it is not a secret from
//   local users: once mounted, it is in the mount table (mount, df) and was
//   on the mount command's command line (ps) for anyone to read.
// - mountOnce (the daemon that mounts its own server): the first successful
//   MNT is the daemon's own mount, and every later MNT is refused
//   (MNT3ERR_ACCES, logged with the caller's uid), whatever path and uid it
//   brings. NFSv3 clients call MNT only at mount time and keep using the root
//   handle across reconnects and daemon restarts, so the own mount never
//   needs a second one. After it, nothing public lets a stranger in: what a
//   call needs is a file handle, and handles (a random per-journal export id
//   and a random per-file generation, filehandle.ts) appear nowhere public:
//   not in the mount table, not on a command line, only in the kernel's NFS
//   client and this process. Without mountOnce (serve-nfs, where whoever
//   mounts is not known in advance) MNT keeps answering the export path, and
//   knowing that path is enough to mount.
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
//   process can open a socket to this port and claim the owner's or root's
//   uid, so the uid check alone stops only honest clients (the kernel's). What
//   stops a forger is that it needs a file handle first: from MNT (which
//   needs the export path, and with mountOnce is closed after the first
//   mount) or a handle learnt some other way. A process that can read the
//   owner's files or memory, or the kernel's (same user, root, a debugger),
//   can learn a handle: against those there is no protection, as with any
//   local file system. Without mountOnce, any local user who reads the export
//   path from the mount table or ps can MNT with a forged uid. The traffic is
//   not encrypted (it never leaves the machine).
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
  /**
   * Answer MNT once: after the first successful MNT every later one gets
   * MNT3ERR_ACCES (logged, with the caller's uid). For a daemon that mounts
   * its own server: its own mount is the only MNT it will ever need (NFSv3
   * clients call MNT only at mount time and keep using the handle across
   * reconnects and daemon restarts), and the export path, which the mount
   * table and ps show to every local user, then lets nobody else in.
   * serve-nfs (someone else mounts, perhaps more than once) leaves it off.
   */
  mountOnce?: boolean;
  /** How long close() waits for calls still running before it goes on (default 10 s); for tests. */
  closeTimeoutMs?: number;
}

export interface NfsServer {
  port: number;
  /**
   * The write verifier WRITE and COMMIT answer now: new at each server start,
   * and changed whenever UNSTABLE data may have been lost (an idle close that
   * failed), so that clients resend what they have not seen COMMITted.
   */
  readonly verifier: Buffer;
  /**
   * Stops listening, closes every connection, waits for the calls still
   * running (at most closeTimeoutMs, 10 s: a call stuck on Postgres must not
   * hang shutdown), and closes every open file (its version fsynced).
   */
  close(): Promise<void>;
  /**
   * Calls answered since start; connections open now; reply bytes waiting in
   * the connections' send queues now, and the most ever seen on one connection.
   */
  stats(): { requests: number; connections: number; queuedReplyBytes: number; maxQueuedReplyBytes: number };
}

/** rtmax and wtmax (FSINFO): the rsize/wsize a mount should ask for. One record (record.ts) holds it plus headers. */
export const NFS_TRANSFER_BYTES = RTMAX;

/** Calls one connection may have in flight (running, or their reply not yet written); past this the socket is not read. */
export const MAX_IN_FLIGHT = 64;
/** Open connections at most. A client uses one or two; at the cap, a new connection closes the one idle
 * longest (with no call in flight), so a local process that opens connections in a loop cannot lock the
 * owner's client out or grow the daemon without bound. */
export const MAX_CONNECTIONS = 64;
/** A connection without a call for this long is closed (clients reconnect on their own). */
export const IDLE_CONNECTION_MS = 5 * 60_000;
/** A connection that has not sent one complete call within this time is closed. */
export const FIRST_CALL_MS = 10_000;

/** Test knobs: PGFILES_NFS_MAX_CONNECTIONS, PGFILES_NFS_IDLE_MS (documented in docs/macos.md). */
function envNumber(name: string, fallback: number): number {
  const v = Number(process.env[name]);
  return Number.isInteger(v) && v > 0 ? v : fallback;
}
/** Reply bytes one connection's send queue may hold before its socket is no longer read (a peer that does not read). */
export const MAX_QUEUED_REPLY_BYTES = 8 * 1024 * 1024;
/** Replies up to this size are copied out of their writer, so a queued small reply does not pin a larger buffer. */
const COPY_REPLY_BYTES = 64 * 1024;
/** close(): how long to wait for running calls before closing the open files anyway. */
const CLOSE_TIMEOUT_MS = 10_000;

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
  const handles = new HandleTable(o.journal);
  const nfs = new Nfs3({ vfs: o.vfs, handles, verifier: randomBytes(8), log, idleCloseMs: o.idleCloseMs });
  const counters = { requests: 0, maxQueuedReplyBytes: 0 };
  /** mountOnce: the first MNT was answered; every later one is refused. */
  let mounted = false;
  const sockets = new Set<net.Socket>();
  const running = new Set<Promise<unknown>>();
  const maxConnections = envNumber("PGFILES_NFS_MAX_CONNECTIONS", MAX_CONNECTIONS);
  const idleMs = envNumber("PGFILES_NFS_IDLE_MS", IDLE_CONNECTION_MS);
  const firstCallMs = Math.min(FIRST_CALL_MS, idleMs);
  /** Per connection: when it last did something, whether a call ever came, calls in flight. */
  const activity = new Map<net.Socket, { last: number; called: boolean; inFlight: () => number }>();
  const reaper = setInterval(() => {
    const now = Date.now();
    for (const [sock, a] of activity) {
      if (a.inFlight() > 0) continue;
      if (now - a.last > (a.called ? idleMs : firstCallMs)) {
        log.debug({ called: a.called }, "nfs: closing an idle connection");
        sock.destroy();
      }
    }
  }, Math.max(50, Math.min(idleMs, firstCallMs) / 4));
  reaper.unref?.();
  /** At the cap: the connection idle longest (never-called ones first) makes room, if one has nothing in flight. */
  function makeRoom(): boolean {
    let victim: net.Socket | null = null;
    let score = Infinity;
    for (const [sock, a] of activity) {
      if (a.inFlight() > 0) continue;
      const s = a.called ? a.last : a.last - 1e12;
      if (s < score) {
        score = s;
        victim = sock;
      }
    }
    if (!victim) return false;
    victim.destroy();
    activity.delete(victim);
    sockets.delete(victim);
    return true;
  }

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
        if (o.mountOnce && mounted) {
          // The daemon's own mount happened: whoever asks now is someone else (or a forged uid), right path or not.
          log.warn({ uid: auth.who.uid }, "nfs: MNT refused: this server was mounted already and allows no second mount");
          return M.encodeMountres3Fail(w, M.MNT3ERR_ACCES);
        }
        if (!auth.allowed || !path.isUtf8 || path.text.replace(/\/+$/, "") !== o.exportPath.replace(/\/+$/, "")) {
          log.warn({ uid: auth.who.uid }, "nfs: MNT refused (wrong export path or uid)");
          return M.encodeMountres3Fail(w, M.MNT3ERR_ACCES);
        }
        mounted = true;
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
          return again.copy();
        }
        break;
      }
    }
    endRecord(w, mark);
    // A NULL reply is 28 bytes in a writer of 1 KiB or more: queued by the thousand (a peer that does not read),
    // views would pin the whole buffers. A large reply (READ) fills most of its writer: sent as it is.
    return w.length <= COPY_REPLY_BYTES ? w.copy() : w.view();
  }

  function serveConnection(socket: net.Socket) {
    if (sockets.size >= maxConnections && !makeRoom()) {
      log.warn({ connections: sockets.size }, "nfs: too many connections, all busy; refusing one");
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.setNoDelay(true);
    const decoder = recordDecoder(DEFAULT_MAX_RECORD);
    /** Records read and not yet started (at most one read chunk's worth: reading stops while any wait). */
    const waiting: Buffer[] = [];
    /** Calls started whose reply is not yet written to the kernel (or dropped). */
    let inFlight = 0;
    let paused = false;
    const full = () => inFlight >= MAX_IN_FLIGHT || socket.writableLength > MAX_QUEUED_REPLY_BYTES;
    const act = { last: Date.now(), called: false, inFlight: () => inFlight };
    activity.set(socket, act);
    /** Starts what may start, and reads the socket only while nothing waits and nothing is full. */
    const pump = () => {
      if (socket.destroyed) return;
      while (waiting.length > 0 && !full()) start(waiting.shift()!);
      const stop = waiting.length > 0 || full();
      if (stop && !paused) {
        paused = true;
        socket.pause();
      } else if (!stop && paused) {
        paused = false;
        socket.resume();
      }
    };
    const finish = () => {
      inFlight--;
      act.last = Date.now();
      pump();
    };
    const start = (record: Buffer) => {
      inFlight++;
      act.called = true;
      act.last = Date.now();
      const p = answer(record).then(
        (reply) => {
          if (!reply || socket.destroyed) return finish();
          // In flight until the kernel has it: a peer that does not read keeps its calls counted.
          socket.write(reply, () => finish());
          if (socket.writableLength > counters.maxQueuedReplyBytes) counters.maxQueuedReplyBytes = socket.writableLength;
        },
        (e) => {
          // Not even an xid (XdrError), or worse: nobody to answer, and the stream cannot be trusted.
          if (!(e instanceof XdrError)) log.error({ err: e }, "nfs: a record could not be answered");
          socket.destroy();
          finish();
        },
      );
      running.add(p);
      void p.finally(() => running.delete(p));
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
      for (const record of records) waiting.push(record);
      pump();
    });
    socket.on("drain", pump);
    socket.on("error", (e) => log.debug({ err: e.message }, "nfs: connection error"));
    socket.on("close", () => {
      sockets.delete(socket);
      activity.delete(socket);
      waiting.length = 0;
    });
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
    get verifier() {
      return nfs.verifier;
    },
    stats: () => {
      let queued = 0;
      for (const s of sockets) queued += s.writableLength;
      return { requests: counters.requests, connections: sockets.size, queuedReplyBytes: queued, maxQueuedReplyBytes: counters.maxQueuedReplyBytes };
    },
    close() {
      closing ??= (async () => {
        clearInterval(reaper);
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          for (const s of sockets) s.destroy();
        });
        // Calls still running (their connections are gone) may be waiting on Postgres, which may never answer:
        // wait a while for them, then go on. The open files are closed (and fsynced) either way; one a stuck
        // call still holds is closed when that call lets go, or by the vfs at unmount (commitAll).
        const timeoutMs = o.closeTimeoutMs ?? CLOSE_TIMEOUT_MS;
        if (!(await within(Promise.allSettled([...running]), timeoutMs))) {
          log.warn({ running: running.size, timeoutMs }, "nfs: closing with calls still running");
        }
        if (!(await within(nfs.files.closeAll(), timeoutMs))) {
          log.warn({ timeoutMs }, "nfs: closing the open files is taking too long; going on");
        }
      })();
      return closing;
    },
  };
}

/** Whether `p` settled within `ms` (false: it is still running, and nobody waits for it any more). */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([p.then(() => true, () => true), late]);
  } finally {
    clearTimeout(timer);
  }
}
