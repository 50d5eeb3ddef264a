// The NFSv3 server (src/nfs/server.ts) driven by an independent client,
// Debian's libnfs through bun:ffi (test/harness/libnfs.ts), against a daemon
// process (journal, flusher, vfs, server: test/harness/nfs-daemon.ts) on real
// Postgres. What libnfs's high-level API cannot send (plain READDIR with a
// small count, PATHCONF, COMMIT's verifier, CREATE EXCLUSIVE retransmission,
// SETATTR guards, AUTH_NONE, forged handles, hostile bytes) goes through a
// small raw client on our own codec (test/harness/nfs-raw.ts).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Journal } from "../src/journal/journal.ts";
import { createLogger } from "../src/log.ts";
import { decodeMountres3, MNT3_OK, MNT3ERR_ACCES, MOUNT_PROGRAM, MOUNT_V3 } from "../src/nfs/mount-xdr.ts";
import * as X from "../src/nfs/nfs3-xdr.ts";
import { encodeRecord } from "../src/nfs/record.ts";
import { AUTH_BADCRED, AUTH_NONE, AUTH_TOOWEAK, encodeCall, GARBAGE_ARGS, PROC_UNAVAIL, PROG_UNAVAIL, type RpcReply } from "../src/nfs/rpc.ts";
import { SLOW_OPEN_MS } from "../src/nfs/open-files.ts";
import { MAX_QUEUED_REPLY_BYTES, type NfsServer, startNfsServer } from "../src/nfs/server.ts";
import { XdrReader, XdrWriter } from "../src/nfs/xdr.ts";
import { connect } from "../src/store/connect.ts";
import { Errno, VfsError } from "../src/vfs/types.ts";
import { PgVfs } from "../src/vfs/vfs.ts";
import { cleanEnv, ok } from "./harness/cli.ts";
import { haveLibnfs, NfsClient, NfsClientError, O_CREAT, O_EXCL, O_RDONLY, O_RDWR, O_WRONLY } from "./harness/libnfs.ts";
import { connectRaw, type Cred, type RawClient } from "./harness/nfs-raw.ts";
import { startCluster, type Cluster } from "./harness/postgres.ts";

const OWNER = 1000;
const STRANGER = 4242;
const EXPORT = `/pgfiles-${randomBytes(16).toString("hex")}`;
const PREFIX = "nfs/";
const ROOT = path.resolve(import.meta.dir, "..");
const BUN = path.join(ROOT, "node_modules/.bin/bun");

let pg: Cluster;
let tmp: string;
let cache: string;
const daemons = new Set<Daemon>();
const clients = new Set<NfsClient>();
const raws = new Set<RawClient>();

interface DaemonStats {
  requests: number;
  connections: number;
  queuedReplyBytes: number;
  maxQueuedReplyBytes: number;
}

interface Daemon {
  port: number;
  verifier: string;
  child: ReturnType<typeof Bun.spawn>;
  /** The server's counters (SIGUSR1: the daemon prints them as one JSON line). */
  stats(): Promise<DaemonStats>;
  /** The daemon process's resident memory, in MiB. */
  rssMiB(): number;
  stop(): Promise<void>;
}

async function startDaemon(o: { port?: number; idleMs?: number } = {}): Promise<Daemon> {
  const child = Bun.spawn({
    cmd: [BUN, path.join(ROOT, "test/harness/nfs-daemon.ts")],
    env: {
      ...process.env, NFSD_DSN: pg.dsn, NFSD_PREFIX: PREFIX, NFSD_CACHE: cache, NFSD_PORT: String(o.port ?? 0), NFSD_EXPORT: EXPORT,
      NFSD_OWNER: String(OWNER), ...(o.idleMs ? { NFSD_IDLE_MS: String(o.idleMs) } : {}),
    },
    stdout: "pipe",
    stderr: "inherit",
  });
  // Its stdout, line by line: the first says where it serves, each later one answers a SIGUSR1.
  const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
  const lines: string[] = [];
  const lineWaiters: ((line: string | null) => void)[] = [];
  void (async () => {
    let text = "";
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true as const }));
      if (done) break;
      text += new TextDecoder().decode(value);
      let nl;
      while ((nl = text.indexOf("\n")) >= 0) {
        const line = text.slice(0, nl);
        text = text.slice(nl + 1);
        const w = lineWaiters.shift();
        if (w) w(line);
        else lines.push(line);
      }
    }
    for (const w of lineWaiters.splice(0)) w(null);
  })();
  const nextLine = (timeoutMs: number) =>
    new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("the NFS daemon printed nothing")), timeoutMs);
      const take = (line: string | null) => {
        clearTimeout(t);
        if (line === null) reject(new Error(`the NFS daemon exited: ${child.exitCode}`));
        else resolve(line);
      };
      if (lines.length > 0) take(lines.shift()!);
      else lineWaiters.push(take);
    });
  const info = JSON.parse(await nextLine(30_000)) as { port: number; verifier: string };
  const d: Daemon = {
    ...info,
    child,
    async stats() {
      child.kill("SIGUSR1");
      return JSON.parse(await nextLine(10_000)) as DaemonStats;
    },
    rssMiB: () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${child.pid}/status`, "utf8"))![1]) / 1024,
    async stop() {
      child.kill("SIGTERM");
      const code = await Promise.race([child.exited, Bun.sleep(30_000).then(() => "timeout" as const)]);
      if (code === "timeout") child.kill("SIGKILL");
      daemons.delete(d);
      expect(code).toBe(0);
    },
  };
  daemons.add(d);
  return d;
}

function url(port: number, o: { uid?: number; exportPath?: string } = {}): string {
  const uid = o.uid ?? OWNER;
  return `nfs://127.0.0.1${o.exportPath ?? EXPORT}?version=3&nfsport=${port}&mountport=${port}&uid=${uid}&gid=${uid}`;
}

function client(port: number, o: { uid?: number; exportPath?: string } = {}): NfsClient {
  const c = new NfsClient(url(port, o));
  clients.add(c);
  return c;
}

async function raw(port: number, cred: Cred = { flavor: "sys", uid: OWNER, gid: OWNER }): Promise<RawClient> {
  const r = await connectRaw(port, cred);
  raws.add(r);
  return r;
}

const q = (s: string) => pg.psql(s);
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Waits until Postgres's latest version of `key` has this sha256 (the daemon's flusher runs every 200 ms). */
async function untilInPostgres(key: string, want: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let got = "";
  while (Date.now() < deadline) {
    got = q(`SELECT encode(sha256(data), 'hex') FROM pgfiles WHERE key = '${key}' ORDER BY (meta->>'version')::int DESC LIMIT 1`);
    if (got === want) return;
    await Bun.sleep(100);
  }
  throw new Error(`${key} in Postgres has sha256 ${got || "(nothing)"}, not ${want}`);
}

beforeAll(async () => {
  pg = await startCluster();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pgfiles-nfs-"));
  cache = path.join(tmp, "cache");
  await ok(["init"], cleanEnv({ PGFILES_DSN: pg.dsn }));
});

afterAll(async () => {
  for (const c of clients) c.destroy();
  for (const r of raws) r.close();
  for (const d of daemons) d.child.kill("SIGKILL");
  await Promise.all([...daemons].map((d) => d.child.exited));
  await pg?.destroy();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

// ---- an NFS server in this process (for what needs the vfs underneath changed: injected failures) ----

let inProcessCount = 0;

/** A server in this process on its own prefix and cache, over a vfs whose methods `over` may replace. */
async function startInProcess(o: { over?: (vfs: PgVfs) => Record<string, (...a: any[]) => any>; idleMs?: number; mountOnce?: boolean; closeTimeoutMs?: number } = {}) {
  const prefix = `inproc-${++inProcessCount}/`;
  const log = createLogger("error");
  const journal = new Journal({ cacheDir: path.join(tmp, `inproc-cache-${inProcessCount}`), dsn: pg.dsn, prefix, cacheMaxSize: 1 << 30 });
  journal.collectGarbage();
  const sql = connect({ dsn: pg.dsn, poolSize: 4, preparedStatements: true, connectTimeout: 5 });
  const vfs = new PgVfs({ journal, sql: () => sql, prefix, readOnly: false, metadataTtlMs: 1000, log });
  await vfs.loadRoot();
  const over = o.over?.(vfs) ?? {};
  // Everything else goes to the real vfs, bound to it.
  const wrapped = new Proxy(vfs, {
    get(t, k) {
      if (typeof k === "string" && k in over) return over[k];
      const v = Reflect.get(t, k, t);
      return typeof v === "function" ? v.bind(t) : v;
    },
  });
  const server: NfsServer = await startNfsServer({
    vfs: wrapped, journal, port: 0, exportPath: EXPORT, ownerUid: OWNER, log,
    ...(o.idleMs ? { idleCloseMs: o.idleMs } : {}),
    ...(o.mountOnce !== undefined ? { mountOnce: o.mountOnce } : {}),
    ...(o.closeTimeoutMs !== undefined ? { closeTimeoutMs: o.closeTimeoutMs } : {}),
  });
  return {
    server,
    vfs,
    async done() {
      await server.close();
      await sql.end({ timeout: 2 });
      journal.close();
    },
  };
}

// ---- raw NFS calls and their results ----

const OWNER_CRED: Cred = { flavor: "sys", uid: OWNER, gid: OWNER };

function success(r: RpcReply): XdrReader {
  if (r.kind !== "success") throw new Error(`RPC ${r.kind} ${JSON.stringify(r)}`);
  return r.results;
}

async function mnt(c: RawClient, dir = EXPORT, cred?: Cred) {
  return decodeMountres3(success(await c.call(MOUNT_PROGRAM, MOUNT_V3, 1, (w) => w.string(dir), cred)));
}

async function rootFh(c: RawClient): Promise<Buffer> {
  const m = await mnt(c);
  if (m.status !== MNT3_OK || !("fhandle" in m)) throw new Error(`MNT failed: ${m.status}`);
  return Buffer.from(m.fhandle);
}

async function getattr(c: RawClient, fh: Uint8Array, cred?: Cred): Promise<{ status: number; attr?: X.Fattr3 }> {
  const r = success(await c.call(X.NFS_PROGRAM, 3, X.NFSPROC3_GETATTR, (w) => X.encodeNfsFh3(w, fh), cred));
  const status = r.uint32();
  return status === X.NFS3_OK ? { status, attr: X.decodeFattr3(r) } : { status };
}

async function lookup(c: RawClient, dir: Uint8Array, name: string): Promise<{ status: number; fh?: Buffer; attr?: X.Fattr3 }> {
  const r = success(await c.call(X.NFS_PROGRAM, 3, X.NFSPROC3_LOOKUP, (w) => X.encodeDiropargs3(w, { dir, name })));
  const status = r.uint32();
  if (status !== X.NFS3_OK) return { status };
  const fh = Buffer.from(X.decodeNfsFh3(r));
  return { status, fh, attr: X.decodePostOpAttr(r) };
}

async function write(c: RawClient, fh: Uint8Array, offset: bigint, data: Uint8Array, stable: number) {
  const r = success(
    await c.call(X.NFS_PROGRAM, 3, X.NFSPROC3_WRITE, (w) => {
      X.encodeNfsFh3(w, fh);
      w.uint64(offset);
      w.uint32(data.length);
      w.uint32(stable);
      w.opaque(data);
    }),
  );
  const status = r.uint32();
  const wcc = X.decodeWccData(r);
  if (status !== X.NFS3_OK) return { status, wcc };
  return { status, wcc, count: r.uint32(), committed: r.uint32(), verf: Buffer.from(r.opaqueFixed(8)) };
}

async function commit(c: RawClient, fh: Uint8Array) {
  const r = success(
    await c.call(X.NFS_PROGRAM, 3, X.NFSPROC3_COMMIT, (w) => {
      X.encodeNfsFh3(w, fh);
      w.uint64(0n);
      w.uint32(0);
    }),
  );
  const status = r.uint32();
  const wcc = X.decodeWccData(r);
  return status === X.NFS3_OK ? { status, wcc, verf: Buffer.from(r.opaqueFixed(8)) } : { status, wcc };
}

async function readRaw(c: RawClient, fh: Uint8Array, offset: bigint, count: number) {
  const r = success(
    await c.call(X.NFS_PROGRAM, 3, X.NFSPROC3_READ, (w) => {
      X.encodeNfsFh3(w, fh);
      w.uint64(offset);
      w.uint32(count);
    }),
  );
  const status = r.uint32();
  const attr = X.decodePostOpAttr(r);
  if (status !== X.NFS3_OK) return { status, attr };
  r.uint32();
  const eof = r.bool();
  return { status, attr, eof, data: Buffer.from(r.opaque(1 << 21)) };
}

async function create(c: RawClient, dir: Uint8Array, name: string, how: { mode: 0 | 1; attrs: X.Sattr3 } | { mode: 2; verf: Buffer }) {
  const r = success(
    await c.call(X.NFS_PROGRAM, 3, X.NFSPROC3_CREATE, (w) => {
      X.encodeDiropargs3(w, { dir, name });
      w.uint32(how.mode);
      if (how.mode === 2) w.opaqueFixed(how.verf, 8);
      else X.encodeSattr3(w, how.attrs);
    }),
  );
  const status = r.uint32();
  if (status !== X.NFS3_OK) return { status };
  const fh = X.decodePostOpFh3(r);
  return { status, fh: fh && Buffer.from(fh), attr: X.decodePostOpAttr(r) };
}

/** Plain READDIR with `count`, paged to the end: names in order, fileids, and how many calls it took. */
async function readdirAll(c: RawClient, dir: Uint8Array, count: number) {
  let cookie = 0n;
  const entries: { name: string; fileid: bigint; cookie: bigint }[] = [];
  let calls = 0;
  for (;;) {
    calls++;
    const r = success(
      await c.call(X.NFS_PROGRAM, 3, X.NFSPROC3_READDIR, (w) => {
        X.encodeNfsFh3(w, dir);
        w.uint64(cookie);
        w.opaqueFixed(Buffer.alloc(8), 8);
        w.uint32(count);
      }),
    );
    const status = r.uint32();
    if (status !== X.NFS3_OK) throw new Error(`READDIR: ${status}`);
    X.decodePostOpAttr(r);
    r.opaqueFixed(8);
    let n = 0;
    while (r.bool()) {
      const fileid = r.uint64();
      const name = r.string(4096).text;
      cookie = r.uint64();
      entries.push({ name, fileid, cookie });
      n++;
    }
    const eof = r.bool();
    if (eof) break;
    if (n === 0) throw new Error("READDIR made no progress");
  }
  return { entries, calls };
}

function errnoOf(f: () => unknown): number {
  try {
    f();
  } catch (e) {
    if (e instanceof NfsClientError) return e.errno;
    throw e;
  }
  return 0;
}

describe("NFSv3 through libnfs", () => {
  let d: Daemon;
  beforeAll(async () => {
    d = await startDaemon();
  });

  test("every procedure libnfs's API reaches works: create, write, read, stat, chmod, utimes, truncate, access, symlink, rename, remove, statvfs, readdir; LINK and MKNOD of a device say NOTSUPP", () => {
    const c = client(d.port);
    c.mkdir("/p");
    const fh = c.creat("/p/a.txt", 0o640);
    const body = Buffer.from("hello from libnfs\n");
    expect(c.pwrite(fh, 0, body)).toBe(body.length);
    c.fsync(fh); // COMMIT
    c.close(fh);
    const st = c.stat("/p/a.txt");
    expect(st.size).toBe(body.length);
    expect(st.mode & 0o7777).toBe(0o640);
    expect(st.mode & 0o170000).toBe(0o100000);
    expect(st.uid).toBe(OWNER);
    const r = c.open("/p/a.txt", O_RDONLY);
    expect(c.pread(r, 0, 100).toString()).toBe(body.toString());
    expect(c.pread(r, 6, 4).toString()).toBe("from");
    c.close(r);

    c.chmod("/p/a.txt", 0o600);
    expect(c.stat("/p/a.txt").mode & 0o7777).toBe(0o600);
    c.utimes("/p/a.txt", 1_000_000_000, 1_234_567_890);
    expect(c.stat("/p/a.txt").mtime).toBe(1_234_567_890);
    c.truncate("/p/a.txt", 5);
    expect(c.stat("/p/a.txt").size).toBe(5);
    c.access("/p/a.txt", 4 | 2); // R_OK | W_OK for the owner
    expect(errnoOf(() => c.access("/p/a.txt", 1))).toBe(13); // X_OK: no x bit → EACCES

    c.symlink("a.txt", "/p/link");
    expect(c.readlink("/p/link")).toBe("a.txt");
    expect(c.stat("/p").mode & 0o170000).toBe(0o040000);

    c.rename("/p/a.txt", "/p/b.txt");
    expect(errnoOf(() => c.stat("/p/a.txt"))).toBe(2);
    expect(c.stat("/p/b.txt").size).toBe(5);

    const names = c.readdir("/p").map((e) => e.name).sort();
    expect(names).toEqual([".", "..", "b.txt", "link"]);
    // READDIRPLUS's fileids are GETATTR's fileids.
    // (libnfs's stat follows symlinks, and "link" dangles now: compare the file.)
    expect(c.readdir("/p").find((e) => e.name === "b.txt")!.inode).toBe(c.stat("/p/b.txt").ino);

    // No hard links, no devices: honest errors, nothing made.
    expect(errnoOf(() => c.link("/p/b.txt", "/p/hard"))).not.toBe(0);
    expect(errnoOf(() => c.stat("/p/hard"))).toBe(2);
    expect(errnoOf(() => c.mknod("/p/dev", 0o020644, 0x0101))).not.toBe(0);
    expect(errnoOf(() => c.stat("/p/dev"))).toBe(2);

    const vfs = c.statvfs("/");
    expect(vfs.blocks).toBeGreaterThan(0);
    expect(vfs.bfree).toBeLessThanOrEqual(vfs.blocks); // (f_namemax is libnfs's own constant: FSSTAT carries none)

    c.unlink("/p/link");
    c.unlink("/p/b.txt");
    expect(errnoOf(() => c.rmdir("/nope"))).toBe(2);
    c.rmdir("/p");
    expect(errnoOf(() => c.stat("/p"))).toBe(2);
  });

  test("8 MiB written through NFS reads back byte for byte, and is the latest version in Postgres after the flusher ran", async () => {
    const c = client(d.port);
    const data = randomBytes(8 * 1024 * 1024 + 12345);
    const fh = c.create("/big.bin", O_RDWR | O_CREAT, 0o644);
    expect(c.pwrite(fh, 0, data)).toBe(data.length);
    c.fsync(fh);
    c.close(fh);
    expect(c.stat("/big.bin").size).toBe(data.length);
    const r = c.open("/big.bin", O_RDONLY);
    const back = c.pread(r, 0, data.length + 100);
    c.close(r);
    expect(back.length).toBe(data.length);
    expect(sha(back)).toBe(sha(data));
    await untilInPostgres(`${PREFIX}big.bin`, sha(data));
    expect(q(`SELECT length(data) FROM pgfiles WHERE key = '${PREFIX}big.bin' ORDER BY (meta->>'version')::int DESC LIMIT 1`)).toBe(String(data.length));
  }, 120_000);

  test("rename over an existing file: the target has the moved content, the old name is gone, the replaced file's handle is STALE", async () => {
    const c = client(d.port);
    for (const [name, text] of [["/src.txt", "moved content"], ["/dst.txt", "replaced content"]]) {
      const fh = c.creat(name, 0o644);
      c.pwrite(fh, 0, Buffer.from(text));
      c.fsync(fh);
      c.close(fh);
    }
    const rc = await raw(d.port);
    const root = await rootFh(rc);
    const before = await lookup(rc, root, "dst.txt");
    const moved = await lookup(rc, root, "src.txt");
    expect(before.status).toBe(X.NFS3_OK);
    c.rename("/src.txt", "/dst.txt");
    const r = c.open("/dst.txt", O_RDONLY);
    expect(c.pread(r, 0, 100).toString()).toBe("moved content");
    c.close(r);
    expect(errnoOf(() => c.stat("/src.txt"))).toBe(2);
    expect((await getattr(rc, before.fh!)).status).toBe(X.NFS3ERR_STALE);
    // The moved file keeps its handle and fileid under its new name.
    const after = await getattr(rc, moved.fh!);
    expect(after.status).toBe(X.NFS3_OK);
    expect(after.attr!.fileid).toBe(moved.attr!.fileid);
    expect((await lookup(rc, root, "dst.txt")).fh).toEqual(moved.fh);
    await untilInPostgres(`${PREFIX}dst.txt`, sha(Buffer.from("moved content")));
  });

  test("READDIRPLUS pages through 10,000 names, each seen exactly once; plain READDIR with a small count too, with GETATTR's fileids", async () => {
    const c = client(d.port);
    c.mkdir("/many");
    const want = new Set<string>();
    for (let i = 0; i < 10_000; i++) {
      const name = `file-${i.toString().padStart(5, "0")}-${"x".repeat(i % 40)}`;
      want.add(name);
      c.close(c.creat(`/many/${name}`, 0o644));
    }
    const seen = c.readdir("/many").map((e) => e.name).filter((n) => n !== "." && n !== "..");
    expect(seen.length).toBe(10_000);
    expect(new Set(seen)).toEqual(want);

    const rc = await raw(d.port);
    const many = (await lookup(rc, await rootFh(rc), "many")).fh!;
    const { entries, calls } = await readdirAll(rc, many, 4096);
    const names = entries.map((e) => e.name).filter((n) => n !== "." && n !== "..");
    expect(names.length).toBe(10_000);
    expect(new Set(names)).toEqual(want);
    expect(calls).toBeGreaterThan(50); // it really paged
    for (const e of entries.filter((x) => x.name.startsWith("file-0000")).slice(0, 5)) {
      expect((await lookup(rc, many, e.name)).attr!.fileid).toBe(e.fileid);
    }
    // A listing resumed from a cookie after the directory changed skips nothing that stayed.
    const half = entries[5000];
    c.unlink(`/many/${entries[100].name}`);
    c.close(c.creat("/many/zz-new", 0o644));
    const r = success(
      await rc.call(X.NFS_PROGRAM, 3, X.NFSPROC3_READDIR, (w) => {
        X.encodeNfsFh3(w, many);
        w.uint64(half.cookie);
        w.opaqueFixed(Buffer.alloc(8), 8);
        w.uint32(65536);
      }),
    );
    expect(r.uint32()).toBe(X.NFS3_OK);
    X.decodePostOpAttr(r);
    r.opaqueFixed(8);
    expect(r.bool()).toBe(true);
    r.uint64();
    expect(r.string(4096).text).toBe(entries[5001].name);
  }, 300_000);
});

describe("NFSv3 wire: procedures libnfs cannot send, identity and security (raw client on our codec)", () => {
  let d: Daemon;
  let rc: RawClient;
  let root: Buffer;
  beforeAll(async () => {
    d = await startDaemon();
    rc = await raw(d.port);
    root = await rootFh(rc);
  });

  test("NULL, FSINFO, FSSTAT and PATHCONF answer what the server supports", async () => {
    expect((await rc.call(X.NFS_PROGRAM, 3, 0)).kind).toBe("success");
    expect((await rc.call(MOUNT_PROGRAM, 3, 0)).kind).toBe("success");
    const fi = success(await rc.call(X.NFS_PROGRAM, 3, X.NFSPROC3_FSINFO, (w) => X.encodeNfsFh3(w, root)));
    expect(fi.uint32()).toBe(X.NFS3_OK);
    X.decodePostOpAttr(fi);
    const [rtmax, , , wtmax] = [fi.uint32(), fi.uint32(), fi.uint32(), fi.uint32()];
    expect(rtmax).toBe(1 << 20);
    expect(wtmax).toBe(1 << 20);
    fi.uint32();
    fi.uint32();
    fi.uint32(); // wtmult, dtpref
    expect(fi.uint64()).toBeGreaterThan(1n << 29n);
    X.decodeNfstime3(fi);
    expect(fi.uint32()).toBe(X.FSF3_SYMLINK | X.FSF3_HOMOGENEOUS | X.FSF3_CANSETTIME);

    const pc = success(await rc.call(X.NFS_PROGRAM, 3, X.NFSPROC3_PATHCONF, (w) => X.encodeNfsFh3(w, root)));
    expect(pc.uint32()).toBe(X.NFS3_OK);
    X.decodePostOpAttr(pc);
    expect([pc.uint32(), pc.uint32(), pc.bool(), pc.bool(), pc.bool(), pc.bool()]).toEqual([1, 255, true, true, false, true]);

    const fs3 = success(await rc.call(X.NFS_PROGRAM, 3, X.NFSPROC3_FSSTAT, (w) => X.encodeNfsFh3(w, root)));
    expect(fs3.uint32()).toBe(X.NFS3_OK);
    X.decodePostOpAttr(fs3);
    expect(fs3.uint64()).toBeGreaterThan(0n);
  });

  test("MOUNT: the export path gives the root handle with AUTH_SYS; any other path is ACCES; DUMP and EXPORT disclose nothing; UMNT and UMNTALL answer", async () => {
    const m = await mnt(rc);
    expect(m.status).toBe(MNT3_OK);
    expect("authFlavors" in m && m.authFlavors).toEqual([1]);
    expect((await mnt(rc, "/")).status).toBe(MNT3ERR_ACCES);
    expect((await mnt(rc, EXPORT + "x")).status).toBe(MNT3ERR_ACCES);
    const dump = success(await rc.call(MOUNT_PROGRAM, 3, 2));
    expect(dump.bool()).toBe(false);
    const exp = success(await rc.call(MOUNT_PROGRAM, 3, 5));
    expect(exp.bool()).toBe(false);
    expect((await rc.call(MOUNT_PROGRAM, 3, 3, (w) => w.string(EXPORT))).kind).toBe("success");
    expect((await rc.call(MOUNT_PROGRAM, 3, 4)).kind).toBe("success");
    expect(errnoOf(() => client(d.port, { exportPath: "/pgfiles-guess" }))).not.toBe(0);
  });

  test("a stranger's AUTH_SYS uid cannot mount or use a handle (ACCES); root can; AUTH_NONE is AUTH_TOOWEAK; an unknown flavor AUTH_BADCRED", async () => {
    expect(errnoOf(() => client(d.port, { uid: STRANGER }))).not.toBe(0);
    expect((await mnt(rc, EXPORT, { flavor: "sys", uid: STRANGER, gid: STRANGER })).status).toBe(MNT3ERR_ACCES);
    expect((await getattr(rc, root, { flavor: "sys", uid: STRANGER, gid: STRANGER })).status).toBe(X.NFS3ERR_ACCES);
    expect((await getattr(rc, root, { flavor: "sys", uid: 0, gid: 0 })).status).toBe(X.NFS3_OK);
    const none = await rc.call(X.NFS_PROGRAM, 3, X.NFSPROC3_GETATTR, (w) => X.encodeNfsFh3(w, root), { flavor: "none" });
    expect(none).toMatchObject({ kind: "auth-error", stat: AUTH_TOOWEAK });
    const mntNone = await rc.call(MOUNT_PROGRAM, 3, 1, (w) => w.string(EXPORT), { flavor: "none" });
    expect(mntNone).toMatchObject({ kind: "auth-error", stat: AUTH_TOOWEAK });
    const odd = await rc.call(X.NFS_PROGRAM, 3, X.NFSPROC3_GETATTR, (w) => X.encodeNfsFh3(w, root), { flavor: 6, body: Buffer.alloc(8) });
    expect(odd).toMatchObject({ kind: "auth-error", stat: AUTH_BADCRED });
    // libnfs as root works.
    expect(client(d.port, { uid: 0 }).stat("/").mode & 0o170000).toBe(0o040000);
  });

  test("handles: malformed is BADHANDLE, another export's is STALE, a removed file's is STALE", async () => {
    expect((await getattr(rc, Buffer.from("nope!"))).status).toBe(X.NFS3ERR_BADHANDLE);
    const forged = Buffer.from(root);
    forged[5] ^= 0xff; // the export id
    expect((await getattr(rc, forged)).status).toBe(X.NFS3ERR_STALE);
    const wrongGen = Buffer.from(root);
    wrongGen[23] ^= 0xff;
    expect((await getattr(rc, wrongGen)).status).toBe(X.NFS3ERR_STALE);
    const made = await create(rc, root, "doomed.txt", { mode: 0, attrs: { mode: 0o644 } });
    expect(made.status).toBe(X.NFS3_OK);
    expect((await getattr(rc, made.fh!)).status).toBe(X.NFS3_OK);
    const rm = success(await rc.call(X.NFS_PROGRAM, 3, X.NFSPROC3_REMOVE, (w) => X.encodeDiropargs3(w, { dir: root, name: "doomed.txt" })));
    expect(rm.uint32()).toBe(X.NFS3_OK);
    expect((await getattr(rc, made.fh!)).status).toBe(X.NFS3ERR_STALE);
    // A new file of the same name is a new file: the old handle stays STALE.
    const again = await create(rc, root, "doomed.txt", { mode: 1, attrs: {} });
    expect(again.status).toBe(X.NFS3_OK);
    expect(again.fh).not.toEqual(made.fh);
    expect((await getattr(rc, made.fh!)).status).toBe(X.NFS3ERR_STALE);
  });

  test("CREATE: GUARDED on an existing name is EXIST; EXCLUSIVE retransmitted with the same verifier succeeds with the same handle, another verifier is EXIST", async () => {
    const verf = randomBytes(8);
    const first = await create(rc, root, "excl.txt", { mode: 2, verf });
    expect(first.status).toBe(X.NFS3_OK);
    const retry = await create(rc, root, "excl.txt", { mode: 2, verf });
    expect(retry.status).toBe(X.NFS3_OK);
    expect(retry.fh).toEqual(first.fh);
    expect((await create(rc, root, "excl.txt", { mode: 2, verf: randomBytes(8) })).status).toBe(X.NFS3ERR_EXIST);
    expect((await create(rc, root, "excl.txt", { mode: 1, attrs: {} })).status).toBe(X.NFS3ERR_EXIST);
    // UNCHECKED on an existing file with size 0 truncates it.
    await write(rc, first.fh!, 0n, Buffer.from("12345"), X.FILE_SYNC);
    const unchecked = await create(rc, root, "excl.txt", { mode: 0, attrs: { size: 0n } });
    expect(unchecked.status).toBe(X.NFS3_OK);
    expect(unchecked.attr!.size).toBe(0n);
  });

  test("two CREATEs of the same new name at once (UNCHECKED, both in flight) both succeed with one fileid, and both handles work; so does a LOOKUP racing a CREATE", async () => {
    for (let k = 0; k < 20; k++) {
      const name = `same-${k}.txt`;
      const [a, b] = await Promise.all([create(rc, root, name, { mode: 0, attrs: {} }), create(rc, root, name, { mode: 0, attrs: {} })]);
      expect([a.status, b.status]).toEqual([X.NFS3_OK, X.NFS3_OK]);
      expect(a.attr!.fileid).toBe(b.attr!.fileid);
      const [ga, gb] = await Promise.all([getattr(rc, a.fh!), getattr(rc, b.fh!)]);
      expect([ga.status, gb.status]).toEqual([X.NFS3_OK, X.NFS3_OK]);
      expect(ga.attr!.fileid).toBe(a.attr!.fileid);

      const other = `raced-${k}.txt`;
      const [c, l] = await Promise.all([create(rc, root, other, { mode: 0, attrs: {} }), lookup(rc, root, other)]);
      expect(c.status).toBe(X.NFS3_OK);
      expect((await getattr(rc, c.fh!)).status).toBe(X.NFS3_OK);
      if (l.status === X.NFS3_OK) {
        // The LOOKUP saw the new file: its handle names the same file, and is not STALE.
        expect(l.attr!.fileid).toBe(c.attr!.fileid);
        expect((await getattr(rc, l.fh!)).status).toBe(X.NFS3_OK);
      }
    }
  });

  test("SETATTR with a guard: the wrong ctime is NOT_SYNC and changes nothing; the right one applies", async () => {
    const made = await create(rc, root, "guarded.txt", { mode: 0, attrs: { mode: 0o644 } });
    const cur = (await getattr(rc, made.fh!)).attr!;
    const setattr = async (guard: X.Nfstime3) => {
      const r = success(
        await rc.call(X.NFS_PROGRAM, 3, X.NFSPROC3_SETATTR, (w) => {
          X.encodeNfsFh3(w, made.fh!);
          X.encodeSattr3(w, { mode: 0o600 });
          w.bool(true);
          X.encodeNfstime3(w, guard);
        }),
      );
      return r.uint32();
    };
    expect(await setattr({ seconds: cur.ctime.seconds - 5, nseconds: 0 })).toBe(X.NFS3ERR_NOT_SYNC);
    expect((await getattr(rc, made.fh!)).attr!.mode).toBe(0o644);
    expect(await setattr(cur.ctime)).toBe(X.NFS3_OK);
    expect((await getattr(rc, made.fh!)).attr!.mode).toBe(0o600);
  });

  test("UNSTABLE writes: GETATTR shows their size, READ returns them (read-your-writes), COMMIT answers the verifier and the version reaches Postgres", async () => {
    const made = await create(rc, root, "unstable.txt", { mode: 0, attrs: { mode: 0o644 } });
    const a = await write(rc, made.fh!, 0n, Buffer.from("hello "), X.UNSTABLE);
    const b = await write(rc, made.fh!, 6n, Buffer.from("world"), X.UNSTABLE);
    expect(a.committed).toBe(X.UNSTABLE);
    expect(b.verf).toEqual(a.verf);
    expect(a.verf!.toString("hex")).toBe(d.verifier);
    expect(b.wcc.after!.size).toBe(11n);
    expect((await getattr(rc, made.fh!)).attr!.size).toBe(11n);
    // An open file's attributes hold still between calls (a Mac drops its cached pages when mtime moves).
    const g1 = (await getattr(rc, made.fh!)).attr!;
    await Bun.sleep(20);
    expect((await getattr(rc, made.fh!)).attr!).toEqual(g1);
    const r = await readRaw(rc, made.fh!, 0n, 100);
    expect((await getattr(rc, made.fh!)).attr!).toEqual(g1);
    expect(r.data!.toString()).toBe("hello world");
    expect(r.eof).toBe(true);
    const c = await commit(rc, made.fh!);
    expect(c.status).toBe(X.NFS3_OK);
    expect(c.verf).toEqual(a.verf);
    await untilInPostgres(`${PREFIX}unstable.txt`, sha(Buffer.from("hello world")));
    // FILE_SYNC asked: answered FILE_SYNC.
    expect((await write(rc, made.fh!, 11n, Buffer.from("!"), X.FILE_SYNC)).committed).toBe(X.FILE_SYNC);
  });

  test("several calls in flight on one connection are all answered, whatever order they finish in", async () => {
    const made = await create(rc, root, "inflight.bin", { mode: 0, attrs: {} });
    const big = randomBytes(1 << 20);
    await write(rc, made.fh!, 0n, big, X.FILE_SYNC);
    const calls = [];
    for (let i = 0; i < 30; i++) calls.push(i % 3 === 0 ? readRaw(rc, made.fh!, 0n, 1 << 20).then((r) => sha(r.data!)) : rc.call(X.NFS_PROGRAM, 3, 0).then((r) => r.kind));
    const out = await Promise.all(calls);
    for (let i = 0; i < 30; i++) expect(out[i]).toBe(i % 3 === 0 ? sha(big) : "success");
  });

  test("hostile input: bad program, version, procedure and garbage args get their RPC errors; short records, huge fragments and garbage close only that connection", async () => {
    expect(await rc.call(100099, 1, 0)).toMatchObject({ kind: "accepted-error", stat: PROG_UNAVAIL });
    expect(await rc.call(X.NFS_PROGRAM, 2, 0)).toMatchObject({ kind: "prog-mismatch", low: 3, high: 3 });
    expect(await rc.call(MOUNT_PROGRAM, 1, 0)).toMatchObject({ kind: "prog-mismatch", low: 3, high: 3 });
    expect(await rc.call(X.NFS_PROGRAM, 3, 22)).toMatchObject({ kind: "accepted-error", stat: PROC_UNAVAIL });
    expect(await rc.call(MOUNT_PROGRAM, 3, 9)).toMatchObject({ kind: "accepted-error", stat: PROC_UNAVAIL });
    // A handle that claims 64 bytes and brings 3; a WRITE whose count disagrees with its data.
    expect(await rc.call(X.NFS_PROGRAM, 3, X.NFSPROC3_GETATTR, (w) => (w.uint32(64), w.uint32(0x01020300)))).toMatchObject({ kind: "accepted-error", stat: GARBAGE_ARGS });
    expect(
      await rc.call(X.NFS_PROGRAM, 3, X.NFSPROC3_WRITE, (w) => {
        X.encodeNfsFh3(w, root);
        w.uint64(0n);
        w.uint32(100);
        w.uint32(0);
        w.opaque(Buffer.alloc(4));
      }),
    ).toMatchObject({ kind: "accepted-error", stat: GARBAGE_ARGS });
    // RPC version 3: RPC_MISMATCH.
    const bad = new XdrWriter();
    const xid = rc.nextXid();
    for (const v of [xid, 0, 3, X.NFS_PROGRAM, 3, 0, 0, 0, 0, 0]) bad.uint32(v);
    rc.send(encodeRecord(bad.view()));
    expect(await rc.reply(xid)).toMatchObject({ kind: "rpc-mismatch", low: 2, high: 2 });
    expect((await rc.call(X.NFS_PROGRAM, 3, 0)).kind).toBe("success");

    for (const hostile of [
      encodeRecord(Buffer.from([1, 2, 3, 4])), // a record too short for an xid and a message type
      Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]), // a fragment of 2 GiB
      Buffer.from([0x80, 0x20, 0x00, 0x00]), // a record of 2 MiB: over the limit
      randomBytes(4096), // noise
    ]) {
      const h = await raw(d.port);
      h.send(hostile);
      // Closed, or (noise that happens to parse) still answering: never a crash.
      await Promise.race([h.closed, Bun.sleep(1000)]);
      h.close();
      const fresh = await raw(d.port);
      expect((await fresh.call(X.NFS_PROGRAM, 3, 0)).kind).toBe("success");
      fresh.close();
    }
    expect((await getattr(rc, root)).status).toBe(X.NFS3_OK);
    expect(d.child.exitCode).toBeNull();
  });
});

describe("resources, failures and mounting once", () => {
  test("a client that sends calls and never reads the replies stops being read: the daemon's reply queue and memory stay bounded, and other connections are served", async () => {
    const d = await startDaemon();
    const rss0 = d.rssMiB();
    const sock = net.connect({ host: "127.0.0.1", port: d.port });
    await new Promise<void>((resolve, reject) => {
      sock.once("connect", () => resolve());
      sock.once("error", reject);
    });
    sock.on("error", () => {});
    sock.pause(); // never reads a reply
    // 1,000,000 NULL calls (44 MB): written without waiting, they queue here once the daemon stops reading.
    const one = (xid: number) => {
      const w = new XdrWriter();
      encodeCall(w, { xid, prog: X.NFS_PROGRAM, vers: 3, proc: 0, cred: { flavor: AUTH_NONE, body: Buffer.alloc(0) }, verf: { flavor: AUTH_NONE, body: Buffer.alloc(0) } });
      return encodeRecord(w.view());
    };
    const batch = Buffer.concat(Array.from({ length: 10_000 }, (_, i) => one(i)));
    const total = 100 * 10_000;
    for (let i = 0; i < 100; i++) sock.write(batch);
    // Until the daemon answers no more (it stopped reading), or it answered everything.
    let last = -1;
    let st = await d.stats();
    for (let i = 0; i < 60 && st.requests !== last && st.requests < total; i++) {
      last = st.requests;
      await Bun.sleep(500);
      st = await d.stats();
    }
    const grown = d.rssMiB() - rss0;
    // It stopped reading (the rest of the calls wait in the kernel's buffers and this process), and grew little
    // (before: every call answered, ~1.3 KiB of memory each, over 1 GiB).
    expect(st.requests).toBeLessThan(total);
    expect(grown).toBeLessThan(200);
    // The cap, plus the replies of the calls in flight when it was reached (64 NULL replies of 28 bytes).
    expect(st.maxQueuedReplyBytes).toBeGreaterThan(0);
    expect(st.maxQueuedReplyBytes).toBeLessThanOrEqual(MAX_QUEUED_REPLY_BYTES + 64 * 1024);
    // Another connection is served meanwhile.
    const fresh = await raw(d.port);
    expect((await fresh.call(X.NFS_PROGRAM, 3, 0)).kind).toBe("success");
    expect((await getattr(fresh, await rootFh(fresh))).status).toBe(X.NFS3_OK);
    fresh.close();
    sock.destroy();
    await d.stop();
  }, 120_000);

  test("an idle close that fails (ENOSPC) changes the write verifier: the COMMIT that follows answers the new one, the client resends, and the data is there", async () => {
    // Armed for one file's inode: its next flush (or release) throws, once.
    const fail = { flush: 0, release: 0, tried: 0, ino: -1n };
    const s = await startInProcess({
      idleMs: 200,
      over: (vfs) => ({
        flush: async (ino: bigint, fh: bigint, who?: any) => {
          if (fail.flush > 0 && ino === fail.ino) {
            fail.flush--;
            fail.tried++;
            throw new VfsError(Errno.ENOSPC, "injected: the cache disk is full");
          }
          return vfs.flush(ino, fh, who);
        },
        release: async (ino: bigint, fh: bigint) => {
          await vfs.release(ino, fh);
          if (fail.release > 0 && ino === fail.ino) {
            fail.release--;
            fail.tried++;
            throw new VfsError(Errno.ENOSPC, "injected: the cache disk is full");
          }
        },
      }),
    });
    try {
      const c = await raw(s.server.port);
      const root = await rootFh(c);
      for (const which of ["flush", "release"] as const) {
        const made = await create(c, root, `lost-by-${which}.txt`, { mode: 0, attrs: {} });
        expect(made.status).toBe(X.NFS3_OK);
        const w1 = await write(c, made.fh!, 0n, Buffer.from(`hello ${which}`), X.UNSTABLE);
        expect(w1.committed).toBe(X.UNSTABLE);
        expect(w1.verf!.toString("hex")).toBe(s.server.verifier.toString("hex"));
        const tried = fail.tried;
        fail.ino = (await s.vfs.lookup(1n, `lost-by-${which}.txt`)).ino;
        fail[which] = 1;
        // The idle close runs (and fails).
        for (let i = 0; i < 100 && fail.tried === tried; i++) await Bun.sleep(50);
        expect(fail.tried).toBe(tried + 1);
        await Bun.sleep(50);
        const c1 = await commit(c, made.fh!);
        expect(c1.status).toBe(X.NFS3_OK);
        expect(c1.verf).not.toEqual(w1.verf);
        expect(c1.verf!.toString("hex")).toBe(s.server.verifier.toString("hex"));
        // What the client does then: resend, COMMIT again, and now the verifiers match.
        const w2 = await write(c, made.fh!, 0n, Buffer.from(`hello ${which}`), X.UNSTABLE);
        expect(w2.verf).toEqual(c1.verf);
        const c2 = await commit(c, made.fh!);
        expect(c2.verf).toEqual(w2.verf);
        expect((await readRaw(c, made.fh!, 0n, 100)).data!.toString()).toBe(`hello ${which}`);
      }
      c.close();
    } finally {
      await s.done();
    }
  }, 60_000);

  test("mountOnce: the first MNT answers the root handle, every later one is ACCES (the owner's uid and the right path too) and the first handle keeps working; without it MNT keeps answering", async () => {
    const once = await startInProcess({ mountOnce: true });
    const many = await startInProcess();
    try {
      const a = await raw(once.server.port);
      const first = await mnt(a);
      expect(first.status).toBe(MNT3_OK);
      const b = await raw(once.server.port);
      expect((await mnt(b)).status).toBe(MNT3ERR_ACCES);
      expect((await mnt(b, EXPORT, { flavor: "sys", uid: 0, gid: 0 })).status).toBe(MNT3ERR_ACCES);
      expect((await mnt(a)).status).toBe(MNT3ERR_ACCES);
      // The mount that happened goes on, on any connection (a client reconnecting).
      expect((await getattr(b, Buffer.from((first as { fhandle: Uint8Array }).fhandle))).status).toBe(X.NFS3_OK);
      a.close();
      b.close();

      const c = await raw(many.server.port);
      expect((await mnt(c)).status).toBe(MNT3_OK);
      const e = await raw(many.server.port);
      expect((await mnt(e)).status).toBe(MNT3_OK);
      c.close();
      e.close();
    } finally {
      await once.done();
      await many.done();
    }
  }, 60_000);

  test("a READ whose file takes longer than SLOW_OPEN_MS to open answers JUKEBOX, and the retry gets the bytes from the same open", async () => {
    let slowIno = -1n;
    let opens = 0;
    const s = await startInProcess({
      over: (vfs) => ({
        open: async (ino: bigint, flags: number, who: unknown) => {
          if (ino === slowIno) {
            opens++;
            await Bun.sleep(SLOW_OPEN_MS + 700); // a cold body on its way from Postgres
          }
          return vfs.open(ino, flags, who as never);
        },
      }),
    });
    try {
      const c = await raw(s.server.port);
      const root = await rootFh(c);
      const made = await create(c, root, "cold.bin", { mode: 0, attrs: {} });
      const body = Buffer.from(crypto.getRandomValues(new Uint8Array(200_000)));
      await write(c, made.fh!, 0n, body, X.FILE_SYNC);
      await commit(c, made.fh!);
      slowIno = (await s.vfs.lookup(1n, "cold.bin")).ino;
      const t0 = Date.now();
      const first = await readRaw(c, made.fh!, 0n, 1 << 20);
      expect(first.status).toBe(X.NFS3ERR_JUKEBOX);
      expect(Date.now() - t0).toBeLessThan(SLOW_OPEN_MS + 600);
      await Bun.sleep(1000); // the client's "later"
      const again = await readRaw(c, made.fh!, 0n, 1 << 20);
      expect(again.status).toBe(X.NFS3_OK);
      expect(again.data!.equals(body)).toBe(true);
      expect(opens).toBe(1); // the retry took the open the first READ started
      c.close();
    } finally {
      await s.done();
    }
  }, 60_000);

  test("close() does not wait forever for a call stuck in the vfs (Postgres that never answers): it goes on, and still closes the other open files", async () => {
    let hang = false;
    let reached!: () => void;
    const stuck = new Promise<void>((r) => (reached = r));
    let unstick!: () => void;
    const unstuck = new Promise<void>((r) => (unstick = r));
    const released = new Set<bigint>();
    const s = await startInProcess({
      closeTimeoutMs: 300,
      over: (vfs) => ({
        read: async (ino: bigint, fh: bigint, offset: number, size: number) => {
          if (hang) {
            reached();
            await unstuck;
          }
          return vfs.read(ino, fh, offset, size);
        },
        release: async (ino: bigint, fh: bigint) => {
          released.add(ino);
          return vfs.release(ino, fh);
        },
      }),
    });
    try {
      const c = await raw(s.server.port);
      const root = await rootFh(c);
      const slow = await create(c, root, "slow.txt", { mode: 0, attrs: {} });
      await write(c, slow.fh!, 0n, Buffer.from("slow"), X.FILE_SYNC);
      const open = await create(c, root, "open.txt", { mode: 0, attrs: {} });
      await write(c, open.fh!, 0n, Buffer.from("still open"), X.UNSTABLE);
      const openIno = (await s.vfs.lookup(1n, "open.txt")).ino;
      hang = true;
      void readRaw(c, slow.fh!, 0n, 100).catch(() => {});
      await stuck;
      const t0 = Date.now();
      const closed = await Promise.race([s.server.close().then(() => true), Bun.sleep(8000).then(() => false)]);
      expect(closed).toBe(true);
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(released.has(openIno)).toBe(true);
      c.close();
    } finally {
      unstick();
      await s.done();
    }
  }, 60_000);
});

describe("a daemon restart (same journal, new process)", () => {
  test("handles stay valid with the same fileids, a removed file stays STALE, and COMMIT answers a new verifier so the client resends", async () => {
    let d = await startDaemon();
    let rc = await raw(d.port);
    const root = await rootFh(rc);
    const made = await create(rc, root, "survivor.txt", { mode: 0, attrs: { mode: 0o644 } });
    const gone = await create(rc, root, "gone.txt", { mode: 0, attrs: {} });
    success(await rc.call(X.NFS_PROGRAM, 3, X.NFSPROC3_REMOVE, (w) => X.encodeDiropargs3(w, { dir: root, name: "gone.txt" })));
    const w1 = await write(rc, made.fh!, 0n, Buffer.from("before restart"), X.UNSTABLE);
    const fileid = (await getattr(rc, made.fh!)).attr!.fileid;
    const port = d.port;
    rc.close();
    await d.stop();

    d = await startDaemon({ port });
    expect(d.verifier).not.toBe(w1.verf!.toString("hex"));
    rc = await raw(d.port);
    // No MNT: a client that survived the restart goes on with the handles it has.
    const after = await getattr(rc, made.fh!);
    expect(after.status).toBe(X.NFS3_OK);
    expect(after.attr!.fileid).toBe(fileid);
    expect((await getattr(rc, gone.fh!)).status).toBe(X.NFS3ERR_STALE);
    expect(await rootFh(rc)).toEqual(root);
    const c = await commit(rc, made.fh!);
    expect(c.status).toBe(X.NFS3_OK);
    expect(c.verf).not.toEqual(w1.verf);
    // What the client does then: resend, and COMMIT again with a matching verifier.
    const w2 = await write(rc, made.fh!, 0n, Buffer.from("before restart"), X.UNSTABLE);
    const c2 = await commit(rc, made.fh!);
    expect(c2.verf).toEqual(w2.verf);
    expect((await readRaw(rc, made.fh!, 0n, 100)).data!.toString()).toBe("before restart");
    await untilInPostgres(`${PREFIX}survivor.txt`, sha(Buffer.from("before restart")));
    rc.close();
    await d.stop();
  }, 120_000);

  test("a file libnfs holds open is still readable through its handle after the daemon restarted on the same port", async () => {
    let d = await startDaemon();
    const c = client(d.port);
    const fh = c.creat("/held.txt", 0o644);
    c.pwrite(fh, 0, Buffer.from("held open across a restart"));
    c.fsync(fh);
    const port = d.port;
    await d.stop();
    d = await startDaemon({ port });
    expect(c.pread(fh, 0, 100).toString()).toBe("held open across a restart");
    c.close(fh);
    await d.stop();
  }, 120_000);

  test("an UNSTABLE write nobody COMMITs becomes a version once the file is idle", async () => {
    const d = await startDaemon({ idleMs: 300 });
    const rc = await raw(d.port);
    const root = await rootFh(rc);
    const made = await create(rc, root, "never-committed.txt", { mode: 0, attrs: {} });
    await write(rc, made.fh!, 0n, Buffer.from("no COMMIT came"), X.UNSTABLE);
    await untilInPostgres(`${PREFIX}never-committed.txt`, sha(Buffer.from("no COMMIT came")), 15_000);
    rc.close();
    await d.stop();
  }, 60_000);
});

void O_WRONLY;
void O_EXCL;
void haveLibnfs;
