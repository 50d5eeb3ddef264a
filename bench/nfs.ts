// The agent-like workload through the embedded NFS server with a user-space
// NFSv3 client (Debian's libnfs through bun:ffi: test/harness/libnfs.ts), phase
// by phase, against a throwaway PostgreSQL. The server runs in its own process
// (test/harness/nfs-daemon.ts: journal, flusher, vfs, server, as the daemon
// builds them); libnfs's calls are synchronous, one in flight at a time, so
// these numbers are per-round-trip latency, not the server's parallel capacity.
//
//   node_modules/.bin/bun bench/nfs.ts        # SMALL_DIRS=20 SMALL_FILES=100 SMALL_KIB=1 BIG_MIB=64
//
// Phases: a.create (creat + pwrite + close of small files), a.ls (READDIRPLUS of
// each directory, then stat of every file), f.write (one big file, 1 MiB
// pwrites, fsync = COMMIT), f.read (read it back). For each: wall seconds,
// NFS calls the server answered (its own counter), calls/s, and files/s or MiB/s.
//
// Then the same phases through the FUSE frontend (`pgfiles mount`, passthrough
// off so that every byte passes through the daemon as it does over NFS, and the
// page cache dropped before f.read), counting the kernel requests the daemon
// answered (`pgfiles status --json`): requests/s of the two frontends side by side.
// FUSE=0 skips it (it needs root for the page-cache drop and /dev/fuse).
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { NfsClient, O_RDONLY } from "../test/harness/libnfs.ts";
import { cleanEnv, ok, run } from "../test/harness/cli.ts";
import { startCluster } from "../test/harness/postgres.ts";

const DIRS = Number(process.env.SMALL_DIRS ?? 20);
const FILES = Number(process.env.SMALL_FILES ?? 100);
const KIB = Number(process.env.SMALL_KIB ?? 1);
const BIG_MIB = Number(process.env.BIG_MIB ?? 64);
const ROOT = path.resolve(import.meta.dir, "..");
const EXPORT = `/pgfiles-${randomBytes(16).toString("hex")}`;

const pg = await startCluster();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pgfiles-bench-nfs-"));
let child: ReturnType<typeof Bun.spawn> | undefined;
try {
  await ok(["init"], cleanEnv({ PGFILES_DSN: pg.dsn }));
  child = Bun.spawn({
    cmd: [path.join(ROOT, "node_modules/.bin/bun"), path.join(ROOT, "test/harness/nfs-daemon.ts")],
    env: { ...process.env, NFSD_DSN: pg.dsn, NFSD_PREFIX: "bench/", NFSD_CACHE: path.join(tmp, "cache"), NFSD_EXPORT: EXPORT, NFSD_OWNER: String(process.getuid?.() ?? 0) },
    stdout: "pipe",
    stderr: "inherit",
  });
  const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
  let buf = "";
  const line = async () => {
    while (!buf.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the NFS daemon exited");
      buf += new TextDecoder().decode(value);
    }
    const i = buf.indexOf("\n");
    const l = buf.slice(0, i);
    buf = buf.slice(i + 1);
    return JSON.parse(l);
  };
  const { port } = await line();
  const requests = async () => {
    child!.kill("SIGUSR1");
    return (await line()).requests as number;
  };
  const c = new NfsClient(`nfs://127.0.0.1${EXPORT}?version=3&nfsport=${port}&mountport=${port}`);
  const rows: string[] = [];
  const phase = makePhase(rows, requests);
  const small = randomBytes(KIB * 1024);
  await phase("a.create", () => {
    for (let d = 0; d < DIRS; d++) {
      c.mkdir(`/d${d}`);
      for (let f = 0; f < FILES; f++) {
        const fh = c.creat(`/d${d}/f${f}.txt`, 0o644);
        c.pwrite(fh, 0, small);
        c.close(fh);
      }
    }
  }, (s) => `${((DIRS * FILES) / s).toFixed(0)} files/s`);
  await phase("a.ls", () => {
    for (let d = 0; d < DIRS; d++) for (const e of c.readdir(`/d${d}`)) if (e.name !== "." && e.name !== "..") c.stat(`/d${d}/${e.name}`);
  }, (s) => `${((DIRS * FILES) / s).toFixed(0)} files/s`);
  const big = randomBytes(BIG_MIB << 20);
  await phase("f.write", () => {
    const fh = c.creat("/big.bin", 0o644);
    c.pwrite(fh, 0, big);
    c.fsync(fh);
    c.close(fh);
  }, (s) => `${(BIG_MIB / s).toFixed(0)} MiB/s`);
  await phase("f.read", () => {
    const fh = c.open("/big.bin", O_RDONLY);
    const back = c.pread(fh, 0, big.length);
    c.close(fh);
    if (!back.equals(big)) throw new Error("the big file read back differently");
  }, (s) => `${(BIG_MIB / s).toFixed(0)} MiB/s`);
  c.destroy();
  console.log(`load ${os.loadavg()[0].toFixed(1)}`);
  console.log(`NFSv3 via libnfs (one call in flight), ${DIRS}x${FILES} files of ${KIB} KiB, ${BIG_MIB} MiB file`);
  for (const r of rows) console.log(r);
  if (process.env.FUSE !== "0") await fuse(small, big);
} finally {
  if (child) {
    child.kill("SIGTERM");
    await child.exited;
  }
  await pg.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
}

function makePhase(rows: string[], requests: () => Promise<number>) {
  return async (name: string, fn: () => void, unit: (s: number) => string) => {
    const r0 = await requests();
    const t0 = performance.now();
    fn();
    const s = (performance.now() - t0) / 1000;
    const calls = (await requests()) - r0;
    rows.push(`${name.padEnd(9)} ${s.toFixed(2).padStart(7)} s  ${String(calls).padStart(7)} calls  ${(calls / s).toFixed(0).padStart(6)} calls/s  ${unit(s)}`);
  };
}

/** The same phases on a FUSE mount, with ordinary syscalls. */
async function fuse(small: Buffer, big: Buffer) {
  const dir = fs.mkdtempSync(path.join(tmp, "fuse-"));
  const env = cleanEnv({ PGFILES_DSN: pg.dsn, PGFILES_PREFIX: "bench-fuse/", PGFILES_PASSTHROUGH: "false" });
  await ok(["mount", dir], env);
  try {
    const requests = async () => {
      const r = await run(["status", "--json"], { ...env, PWD: dir }, undefined, dir);
      return JSON.parse(r.stdout).io.requests as number;
    };
    const rows: string[] = [];
    const phase = makePhase(rows, requests);
    await phase("a.create", () => {
      for (let d = 0; d < DIRS; d++) {
        fs.mkdirSync(path.join(dir, `d${d}`));
        for (let f = 0; f < FILES; f++) fs.writeFileSync(path.join(dir, `d${d}`, `f${f}.txt`), small);
      }
    }, (s) => `${((DIRS * FILES) / s).toFixed(0)} files/s`);
    await phase("a.ls", () => {
      for (let d = 0; d < DIRS; d++) for (const n of fs.readdirSync(path.join(dir, `d${d}`))) fs.statSync(path.join(dir, `d${d}`, n));
    }, (s) => `${((DIRS * FILES) / s).toFixed(0)} files/s`);
    await phase("f.write", () => {
      const fd = fs.openSync(path.join(dir, "big.bin"), "w");
      for (let o = 0; o < big.length; o += 1 << 20) fs.writeSync(fd, big, o, Math.min(1 << 20, big.length - o), o);
      fs.fsyncSync(fd);
      fs.closeSync(fd);
    }, (s) => `${(BIG_MIB / s).toFixed(0)} MiB/s`);
    Bun.spawnSync({ cmd: ["sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches"], stderr: "ignore" });
    await phase("f.read", () => {
      const back = fs.readFileSync(path.join(dir, "big.bin"));
      if (!back.equals(big)) throw new Error("the big file read back differently");
    }, (s) => `${(BIG_MIB / s).toFixed(0)} MiB/s`);
    console.log(`FUSE (kernel client, passthrough off; requests include the kernel's own LOOKUP/GETATTR/FLUSH/RELEASE)`);
    for (const r of rows) console.log(r);
  } finally {
    await run(["unmount", dir], env);
    Bun.spawnSync({ cmd: ["umount", "-l", dir], stderr: "ignore" });
  }
}
