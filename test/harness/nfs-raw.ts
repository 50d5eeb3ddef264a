// A minimal ONC RPC client over TCP built on our own codec (src/nfs/): for what
// libnfs's high-level API cannot send (PATHCONF, plain READDIR, COMMIT with
// its verifier, MOUNT DUMP/EXPORT/UMNT, AUTH_NONE, forged handles) and for
// hostile bytes (short records, huge fragment lengths, garbage). The libnfs
// tests (test/nfs.test.ts) are the independent client; this one only reaches
// where libnfs does not.
import net from "node:net";
import { encodeRecord, recordDecoder } from "../../src/nfs/record.ts";
import { AUTH_NONE, AUTH_SYS, decodeReply, encodeAuthSys, encodeCall, type RpcReply } from "../../src/nfs/rpc.ts";
import { XdrWriter } from "../../src/nfs/xdr.ts";

export interface RawClient {
  /** One call; resolves with the decoded reply. `args` writes the procedure's arguments. */
  call(prog: number, vers: number, proc: number, args?: (w: XdrWriter) => void, cred?: Cred): Promise<RpcReply>;
  /** Raw bytes on the socket, as they are. */
  send(bytes: Uint8Array): void;
  /** The next reply with this xid (or any, when xid is undefined). */
  reply(xid?: number, timeoutMs?: number): Promise<RpcReply>;
  /** Resolves when the server closed the connection. */
  closed: Promise<void>;
  isClosed(): boolean;
  close(): void;
  nextXid(): number;
}

export type Cred = { flavor: "none" } | { flavor: "sys"; uid: number; gid: number } | { flavor: number; body: Buffer };

export function credBytes(c: Cred): { flavor: number; body: Buffer } {
  if (c.flavor === "none") return { flavor: AUTH_NONE, body: Buffer.alloc(0) };
  if (c.flavor === "sys") {
    const w = new XdrWriter();
    encodeAuthSys(w, { stamp: 1, machinename: "test", uid: c.uid, gid: c.gid, gids: [c.gid] });
    return { flavor: AUTH_SYS, body: w.copy() };
  }
  return { flavor: c.flavor, body: c.body };
}

export async function connectRaw(port: number, defaultCred: Cred): Promise<RawClient> {
  const socket = net.connect({ host: "127.0.0.1", port });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("error", reject);
  });
  const decoder = recordDecoder(16 * 1024 * 1024);
  const replies: RpcReply[] = [];
  const waiters: { xid?: number; resolve: (r: RpcReply) => void }[] = [];
  let isClosed = false;
  let closedResolve!: () => void;
  const closed = new Promise<void>((r) => (closedResolve = r));
  const deliver = () => {
    for (let i = 0; i < waiters.length; i++) {
      const w = waiters[i];
      const k = replies.findIndex((r) => w.xid === undefined || r.xid === w.xid);
      if (k >= 0) {
        waiters.splice(i--, 1);
        w.resolve(replies.splice(k, 1)[0]);
      }
    }
  };
  socket.on("data", (chunk: Buffer) => {
    for (const rec of decoder.push(chunk)) replies.push(decodeReply(Buffer.from(rec)));
    deliver();
  });
  socket.on("error", () => {});
  socket.on("close", () => {
    isClosed = true;
    closedResolve();
  });
  let xid = 0x1000;
  const client: RawClient = {
    nextXid: () => ++xid,
    send: (b) => void socket.write(b),
    reply(want, timeoutMs = 10_000) {
      return new Promise<RpcReply>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no reply to xid ${want} within ${timeoutMs} ms`)), timeoutMs);
        waiters.push({ xid: want, resolve: (r) => (clearTimeout(t), resolve(r)) });
        deliver();
        void closed.then(() => setTimeout(() => reject(new Error("connection closed before the reply")), 50));
      });
    },
    async call(prog, vers, proc, args, cred = defaultCred) {
      const id = ++xid;
      const w = new XdrWriter();
      encodeCall(w, { xid: id, prog, vers, proc, cred: credBytes(cred), verf: { flavor: AUTH_NONE, body: Buffer.alloc(0) } });
      args?.(w);
      socket.write(encodeRecord(w.view()));
      return client.reply(id);
    },
    closed,
    isClosed: () => isClosed,
    close: () => socket.destroy(),
  };
  return client;
}
