// The daemon's control socket: newline-delimited JSON over a unix socket in the
// owner's private runtime directory. A request is one line; the daemon answers
// with zero or more {"progress": …} lines and one final {"ok": …} or {"error": …}.
import fs from "node:fs";
import net from "node:net";

export type Request =
  | { cmd: "status" }
  | { cmd: "unmount"; wait: boolean }
  | { cmd: "cache-stats" }
  | { cmd: "cache-clear" }
  /** A CLI command changed these keys in Postgres (or the journal): take them in before answering. A key ending
   * in "/" stands for everything below it (purge-prefix). */
  | { cmd: "changed"; keys: string[] };

export type Handler = (req: Request, progress: (p: unknown) => void) => Promise<unknown>;

export function serve(socket: string, handler: Handler): net.Server {
  fs.rmSync(socket, { force: true });
  const server = net.createServer((conn) => {
    let buf = "";
    conn.on("data", async (chunk) => {
      buf += chunk.toString();
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const send = (o: unknown) => {
        if (!conn.destroyed) conn.write(`${JSON.stringify(o)}\n`);
      };
      try {
        const result = await handler(JSON.parse(line) as Request, (p) => send({ progress: p }));
        send({ ok: result });
      } catch (e) {
        send({ error: (e as Error).message });
      }
      conn.end();
    });
    conn.on("error", () => {});
  });
  server.listen(socket);
  server.on("listening", () => fs.chmodSync(socket, 0o600));
  return server;
}

/** Sends one request; calls onProgress for progress lines; resolves with the final answer. */
export async function request(socket: string, req: Request, onProgress?: (p: unknown) => void, timeoutMs = 0): Promise<unknown> {
  return await new Promise((resolve, reject) => {
    const conn = net.createConnection(socket);
    let buf = "";
    let done = false;
    const timer = timeoutMs ? setTimeout(() => fail(new Error("the mount's daemon did not answer in time")), timeoutMs) : null;
    const fail = (e: Error) => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      conn.destroy();
      reject(e);
    };
    conn.on("connect", () => conn.write(`${JSON.stringify(req)}\n`));
    conn.on("data", (chunk) => {
      buf += chunk.toString();
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const msg = JSON.parse(buf.slice(0, nl)) as { progress?: unknown; ok?: unknown; error?: string };
        buf = buf.slice(nl + 1);
        if ("progress" in msg) onProgress?.(msg.progress);
        else if (!done) {
          done = true;
          if (timer) clearTimeout(timer);
          if (msg.error !== undefined) reject(new Error(msg.error));
          else resolve(msg.ok);
        }
      }
    });
    conn.on("error", (e) => fail(e));
    conn.on("close", () => fail(new Error("the mount's daemon closed the connection")));
  });
}
