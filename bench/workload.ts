// Agent workload through the mount: the same agent-like sequence of ordinary
// tools, timed phase by phase (wall clock), on
//   local    a directory on the local disk (ext4 under $BENCH_DIR, default /tmp),
//   bindfs   Debian's bindfs (a C FUSE passthrough) over such a directory,
//   pgfiles  `pgfiles mount` on a fresh prefix against a throwaway PostgreSQL.
//
//   node_modules/.bin/bun bench/workload.ts          # as root; ~2.5 minutes per run on 2 cores
//
// Phases (each one a child process, timed from spawn to exit, no sync(1) inside a timing):
//   a.create   10,000 files of 1 KiB (100 dirs x 100 files) written by one Bun process
//              (Bun's writeFileSync = open/write/ftruncate/close; timed inside that process, without Bun's start-up)
//   a.ls       ls -laR of those 100 directories
//   b.tar-x    tar x of a source tree (this repo's node_modules without the bun binary, src/, test/,
//              docs/, ...: ~2,500 files, ~230 dirs, a few symlinks, ~34 MiB), tarball made once per invocation
//   b.tar-c    tar c of it back, piped through cat to /dev/null (GNU tar does not read file
//              contents when the archive itself is /dev/null)
//   c.git-add  git init + git add -A of the tree        c.git-commit  the first commit
//   c.git-status  git status                            c.git-branch  checkout -b, modify 50 files, commit -a
//   c.git-checkout  checkout back to main
//   d.cp-out   cp -r of the tree (with .git) to a local directory
//   e.rm       rm -rf of everything
//   f.write    dd of a pre-generated local 256 MiB random file, bs=1M conv=fsync
//   f.read     cat of it to /dev/null after sync + echo 3 > /proc/sys/vm/drop_caches (untimed; note it
//              drops every filesystem's page cache on the machine, not only ours)
// Then, for pgfiles, `pgfiles unmount` (the final flush to Postgres) is timed separately.
// For every phase the bench also records CPU seconds: of the tools (rusage of the child),
// of the FUSE daemon (bindfs / pgfiles, /proc/<pid>/stat) and of PostgreSQL (postmaster + children).
//
// Environment:
//   RUNS=1              full runs in this invocation (each with its own cluster, mounts and temp dirs)
//   TARGETS=local,bindfs,pgfiles
//   SMALL_DIRS=100 SMALL_FILES=100 SMALL_KIB=1 BIG_MIB=256
//   PHASE_TIMEOUT_S=180 per phase (timeout(1) kills the phase's process group; the bench then gives up on
//                       that target, detaches its mount and goes on)
//   BENCH_DIR           where temp dirs go (default os.tmpdir()); everything under it is removed at the end
//   RESULT_JSON=path    also write every measurement as JSON
//   PROFILE=1           pgfiles only: the bench starts the daemon itself as
//                         bun --cpu-prof bench/workload.ts --daemon DIR   (= pgfiles mount --foreground DIR,
//                       with counters wrapped around it: FUSE requests per opcode and their service time on the
//                       daemon's main thread, journal commits, staging, directory reloads, flusher, event-loop
//                       stalls), collects the counters per phase (SIGUSR2) and slices the CPU profile by phase.
//                       Profiles are kept in PROF_DIR (default $TMPDIR/pgfiles-workload-prof); not removed.
//   PERF=1              records the kernel's fuse:fuse_request_send/end tracepoints (perf, system-wide,
//                       filtered to our connection) per phase for bindfs and pgfiles: requests per opcode and
//                       kernel-side round trip (send → reply). Adds perf start-up between phases, not inside them.
//   FLUSHER=off|interval:N  experiment, pgfiles only (instrumented daemon as for PROFILE, without the profiler):
//                       "off" = no background flushing (all of it happens in `pgfiles unmount`), "interval:N" =
//                       the background flusher runs every N ms instead of right after every recorded version.
//   WIRE=a,b,...        experiment, pgfiles only (instrumented daemon): rewrites the protocol at the daemon's edge.
//                       ttl:<s> = entry/attr timeouts of every reply set to <s> s (product: 1 s); xattr-enotsup =
//                       GETXATTR of non-user.* names answered EOPNOTSUPP without the vfs (product: ENODATA);
//                       writeback = FUSE_WRITEBACK_CACHE switched on in the INIT reply (product: off).
//   Profiling runs perturb the timings; use plain runs for the table.
//
// Needs root (mount, drop_caches), /dev/fuse, bindfs, git, tar, PostgreSQL server binaries.
// Every mount is unmounted (pgfiles unmount → umount → fusectl abort + umount -l), every process the
// bench started is ended by PID, the cluster destroyed and the temp dirs removed, also on failure and ^C.
// Results are written up in docs/benchmarks.md ("Agent workload (mount)").
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const ROOT = path.resolve(import.meta.dir, "..");
const BUN = path.join(ROOT, "node_modules/.bin/bun");
const CLI = [BUN, path.join(ROOT, "src/cli/main.ts")];

const OPCODES: Record<number, string> = {
  1: "LOOKUP", 2: "FORGET", 3: "GETATTR", 4: "SETATTR", 5: "READLINK", 6: "SYMLINK", 8: "MKNOD", 9: "MKDIR", 10: "UNLINK",
  11: "RMDIR", 12: "RENAME", 13: "LINK", 14: "OPEN", 15: "READ", 16: "WRITE", 17: "STATFS", 18: "RELEASE", 20: "FSYNC",
  21: "SETXATTR", 22: "GETXATTR", 23: "LISTXATTR", 24: "REMOVEXATTR", 25: "FLUSH", 26: "INIT", 27: "OPENDIR", 28: "READDIR",
  29: "RELEASEDIR", 30: "FSYNCDIR", 31: "GETLK", 32: "SETLK", 33: "SETLKW", 34: "ACCESS", 35: "CREATE", 36: "INTERRUPT",
  37: "BMAP", 38: "DESTROY", 39: "IOCTL", 40: "POLL", 41: "NOTIFY_REPLY", 42: "BATCH_FORGET", 43: "FALLOCATE",
  44: "READDIRPLUS", 45: "RENAME2", 46: "LSEEK", 47: "COPY_FILE_RANGE", 50: "SYNCFS", 51: "TMPFILE", 52: "STATX",
};
const opName = (n: number) => OPCODES[n] ?? `OP${n}`;

// ====================================================================== the instrumented daemon (PROFILE=1)

/**
 * `pgfiles mount --foreground DIR`, with counters wrapped around the product from the outside:
 * nothing in src/ changes. The reader Workers post each raw request to the main thread (we see
 * the opcode and unique there); replies leave through fs.writeSync (we see the unique again), so
 * arrival → reply is the request's service time on the daemon's side, queueing on the main thread
 * included. Prototype methods of Journal, PgVfs and Flusher are wrapped with timers.
 * SIGUSR2: write the counters to $WL_STATS_DIR/<name>.json (name read from $WL_STATS_DIR/request), reset.
 */
async function daemonMain(mountpoint: string) {
  const statsDir = process.env.WL_STATS_DIR!;
  type OpStat = { n: number; ms: number; max: number; err: number; replied: number };
  let ops = new Map<number, OpStat>();
  const inflight = new Map<bigint, { op: number; t: number }>();
  let fns = new Map<string, { n: number; ms: number; max: number }>();
  let lag = { ms: 0, max: 0, over10: 0 };
  let bytesIn = 0;
  let xattrNames = new Map<string, number>();

  const opStat = (op: number) => {
    let s = ops.get(op);
    if (!s) ops.set(op, (s = { n: 0, ms: 0, max: 0, err: 0, replied: 0 }));
    return s;
  };
  const addFn = (label: string, ms: number) => {
    let s = fns.get(label);
    if (!s) fns.set(label, (s = { n: 0, ms: 0, max: 0 }));
    s.n++;
    s.ms += ms;
    if (ms > s.max) s.max = ms;
  };

  const OrigWorker = globalThis.Worker;
  // WIRE experiments (not product behaviour), rewriting the protocol at the daemon's edge:
  //   ttl:<s>        entry and attribute timeouts of every reply become <s> seconds (product: 1 s)
  //   xattr-enotsup  GETXATTR of a name outside user.* is answered EOPNOTSUPP at once, without the vfs
  //                  (product: the vfs answers ENODATA); ls caches "not supported" per device, the kernel does not
  //   writeback      FUSE_WRITEBACK_CACHE is switched on in the INIT reply (product: off)
  const wire = new Set((process.env.WL_WIRE ?? "").split(",").filter(Boolean));
  const ttlS = Number([...wire].find((w) => w.startsWith("ttl:"))?.slice(4) ?? NaN);
  const EOPNOTSUPP = 95;
  const FUSE_WRITEBACK_CACHE = 1 << 16;

  class CountingWorker extends OrigWorker {
    fuseFd = -1;
    override postMessage(message: unknown, transfer?: unknown) {
      const m = message as { fd?: number; size?: number } | null;
      if (m && typeof m.fd === "number" && typeof m.size === "number") this.fuseFd = m.fd;
      return (super.postMessage as (m: unknown, t?: unknown) => void)(message, transfer);
    }
    override set onmessage(f: ((ev: MessageEvent) => void) | null) {
      const self = this;
      super.onmessage = (ev: MessageEvent) => {
        const d = ev.data;
        if (d instanceof ArrayBuffer && d.byteLength >= 40) {
          const v = new DataView(d);
          const op = v.getUint32(4, true);
          const unique = v.getBigUint64(8, true);
          opStat(op).n++;
          bytesIn += d.byteLength;
          if (op === 22 && d.byteLength > 48) {
            // fuse_getxattr_in (size, padding) then the NUL-terminated name: which attribute the kernel asks for.
            const b = new Uint8Array(d, 48);
            const end = b.indexOf(0);
            const name = new TextDecoder().decode(b.subarray(0, end < 0 ? b.length : end));
            xattrNames.set(name, (xattrNames.get(name) ?? 0) + 1);
            if (wire.has("xattr-enotsup") && !name.startsWith("user.") && self.fuseFd >= 0) {
              const reply = Buffer.alloc(16);
              reply.writeUInt32LE(16, 0);
              reply.writeInt32LE(-EOPNOTSUPP, 4);
              reply.writeBigUInt64LE(unique, 8);
              const s = opStat(op);
              s.replied++;
              s.err++;
              try {
                (origWriteSync as (...a: unknown[]) => number).call(fs, self.fuseFd, reply);
              } catch {}
              return;
            }
          }
          // FORGET, BATCH_FORGET, INTERRUPT, NOTIFY_REPLY never get a reply.
          if (op !== 2 && op !== 42 && op !== 36 && op !== 41) inflight.set(unique, { op, t: performance.now() });
        }
        f?.(ev);
      };
    }
    override get onmessage() {
      return super.onmessage;
    }
  }
  (globalThis as { Worker: typeof Worker }).Worker = CountingWorker as typeof Worker;

  /** WIRE ttl:<s>: rewrites the entry/attr timeouts of a successful reply to `op`, in place. */
  function rewriteTtl(op: number, buf: Uint8Array) {
    const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const sec = BigInt(Math.floor(ttlS));
    const entryAt = (at: number) => {
      if (at + 40 > buf.byteLength) return;
      v.setBigUint64(at + 16, sec, true); // entry_valid (negative entries too)
      v.setBigUint64(at + 24, sec, true); // attr_valid
      v.setUint32(at + 32, 0, true);
      v.setUint32(at + 36, 0, true);
    };
    if (op === 1 || op === 6 || op === 8 || op === 9 || op === 13 || op === 35) entryAt(16);
    else if (op === 3 || op === 4) {
      v.setBigUint64(16, sec, true);
      v.setUint32(24, 0, true);
    } else if (op === 44) {
      // fuse_direntplus: fuse_entry_out (128 bytes) + fuse_dirent (24 bytes + name, padded to 8).
      for (let at = 16; at + 152 <= buf.byteLength; ) {
        entryAt(at);
        const namelen = v.getUint32(at + 128 + 16, true);
        at += 152 + ((namelen + 7) & ~7);
      }
    }
  }

  const origWriteSync = fs.writeSync;
  (fs as { writeSync: unknown }).writeSync = function (fd: number, buf: unknown, ...rest: unknown[]) {
    if (buf instanceof Uint8Array && buf.byteLength >= 16 && rest.length === 0) {
      const v = new DataView(buf.buffer, buf.byteOffset, 16);
      if (v.getUint32(0, true) === buf.byteLength) {
        const unique = v.getBigUint64(8, true);
        const e = inflight.get(unique);
        if (e) {
          inflight.delete(unique);
          const ok = v.getInt32(4, true) === 0;
          if (ok && Number.isFinite(ttlS)) rewriteTtl(e.op, buf);
          if (ok && e.op === 26 && wire.has("writeback") && buf.byteLength >= 32) {
            const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
            dv.setUint32(28, dv.getUint32(28, true) | FUSE_WRITEBACK_CACHE, true);
          }
          const r = (origWriteSync as (...a: unknown[]) => number).call(fs, fd, buf, ...rest);
          const s = opStat(e.op);
          const ms = performance.now() - e.t;
          s.ms += ms;
          s.replied++;
          if (ms > s.max) s.max = ms;
          if (!ok) s.err++;
          return r;
        }
      }
    }
    return (origWriteSync as (...a: unknown[]) => number).call(fs, fd, buf, ...rest);
  };

  const { Journal } = await import("../src/journal/journal.ts");
  const { PgVfs } = await import("../src/vfs/vfs.ts");
  const { Flusher } = await import("../src/sync/flusher.ts");
  type Proto = Record<string, unknown>;
  const wrap = (proto: Proto, name: string, label: (self: Proto, args: unknown[]) => string) => {
    const orig = proto[name];
    if (typeof orig !== "function") return;
    proto[name] = function (this: Proto, ...args: unknown[]) {
      const lab = label(this, args);
      const t = performance.now();
      let r: unknown;
      try {
        r = (orig as (...a: unknown[]) => unknown).apply(this, args);
      } catch (e) {
        addFn(lab, performance.now() - t);
        throw e;
      }
      if (r && typeof (r as Promise<unknown>).then === "function") {
        return (r as Promise<unknown>).finally(() => addFn(lab, performance.now() - t));
      }
      addFn(lab, performance.now() - t);
      return r;
    };
  };
  const J = Journal.prototype as unknown as Proto;
  const V = PgVfs.prototype as unknown as Proto;
  const F = Flusher.prototype as unknown as Proto;
  wrap(J, "record", (_s, a) => (a[1] ? "journal.record (durable)" : "journal.record"));
  for (const m of ["nextBatch", "markFlushed", "pendingUnder", "pendingById", "cached", "cachePut"]) wrap(J, m, () => `journal.${m}`);
  wrap(V, "commit", (_s, a) => (a[1] ? "vfs.commit (durable: fsync)" : "vfs.commit (close)"));
  wrap(V, "openState", (_s, a) => {
    const n = a[0] as { id: unknown; open: unknown };
    if (n.open) return "vfs.openState (already open)";
    return n.id === null || a[1] ? "vfs.openState (new empty staging file)" : "vfs.openState (existing body: find it, stage or share it)";
  });
  wrap(V, "closeState", () => "vfs.closeState (rm staging file)");
  wrap(V, "children", (self, a) => {
    const dir = a[0] as { children: unknown; loadedAt: number };
    const ttl = (self.o as { metadataTtlMs: number }).metadataTtlMs;
    return dir.children && Date.now() - dir.loadedAt < ttl ? "vfs.children (cached)" : "vfs.children (reload: Postgres + journal)";
  });
  wrap(F, "flushAll", () => "flusher.flushAll");
  // FLUSHER experiments (not product behaviour): "off" = no background flushing, everything flushes at
  // unmount; "interval:N" = flush every N ms and ignore the poke each recorded version gives.
  const mode = process.env.WL_FLUSHER ?? "";
  if (mode) {
    const origRun = F.run as (o?: object) => { poke(): void; stop(): Promise<void> };
    F.run = function (this: unknown, o: object = {}) {
      if (mode === "off") return { poke() {}, stop: async () => {} };
      const m = /^interval:(\d+)$/.exec(mode);
      if (!m) throw new Error(`WL_FLUSHER: off or interval:<ms>, not ${mode}`);
      const bg = origRun.call(this, { ...o, intervalMs: Number(m[1]) });
      return { poke() {}, stop: () => bg.stop() };
    };
  }

  let last = performance.now();
  setInterval(() => {
    const now = performance.now();
    const l = now - last - 10;
    if (l > 1) {
      lag.ms += l;
      if (l > lag.max) lag.max = l;
      if (l > 10) lag.over10++;
    }
    last = now;
  }, 10).unref();

  process.on("SIGUSR2", () => {
    let name = "unnamed";
    try {
      name = fs.readFileSync(path.join(statsDir, "request"), "utf8").trim();
    } catch {}
    const dump = {
      name,
      at: Date.now(),
      bytesIn,
      ops: Object.fromEntries([...ops].map(([k, v]) => [opName(k), v])),
      fns: Object.fromEntries(fns),
      lag,
      inflight: inflight.size,
      getxattrNames: Object.fromEntries(xattrNames),
    };
    const file = path.join(statsDir, `${name}.json`);
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(dump));
    fs.renameSync(`${file}.tmp`, file);
    ops = new Map();
    fns = new Map();
    lag = { ms: 0, max: 0, over10: 0 };
    bytesIn = 0;
    xattrNames = new Map();
  });

  const { main } = await import("../src/cli/main.ts");
  const code = await main(["mount", "--foreground", mountpoint]);
  process.exit(code);
}

// ====================================================================== the bench

type Target = "local" | "bindfs" | "pgfiles";

interface PhaseResult {
  phase: string;
  seconds: number | null;
  toolCpu: number;
  daemonCpu: number | null;
  pgCpu: number | null;
  error?: string;
  /** PROFILE=1: the daemon's counters for this phase. */
  daemon?: DaemonStats;
  /** PERF=1: the kernel's view of the FUSE requests of this phase. */
  kernel?: KernelStats;
  /** PROFILE=1: the CPU profile's samples in this phase's window. */
  profile?: ProfileSlice;
  window?: [number, number];
}

interface TargetResult {
  target: Target;
  phases: PhaseResult[];
  unmountSeconds?: number;
  unmountOutput?: string;
  pendingBeforeUnmount?: { versions: number; bytes: number };
  rowsInPostgres?: { versions: number; live: number };
  load: string;
  error?: string;
  profilePath?: string;
}

interface RunResult {
  run: number;
  started: string;
  targets: TargetResult[];
}

interface DaemonStats {
  ops: Record<string, { n: number; ms: number; max: number; err: number; replied: number }>;
  fns: Record<string, { n: number; ms: number; max: number }>;
  lag: { ms: number; max: number; over10: number };
  bytesIn: number;
  inflight: number;
  getxattrNames?: Record<string, number>;
}

interface KernelStats {
  ops: Record<string, { n: number; us: number; err: number }>;
  total: number;
}

interface ProfileSlice {
  samples: number;
  ms: number;
  self: { fn: string; ms: number }[];
  inclusive: { fn: string; ms: number }[];
}

const env = process.env;
const RUNS = Number(env.RUNS ?? 1);
const TARGETS = (env.TARGETS ?? "local,bindfs,pgfiles").split(",").map((s) => s.trim()).filter(Boolean) as Target[];
const SMALL_DIRS = Number(env.SMALL_DIRS ?? 100);
const SMALL_FILES = Number(env.SMALL_FILES ?? 100);
const SMALL_KIB = Number(env.SMALL_KIB ?? 1);
const BIG_MIB = Number(env.BIG_MIB ?? 256);
const PHASE_TIMEOUT_S = Number(env.PHASE_TIMEOUT_S ?? 180);
const PROFILE = env.PROFILE === "1";
const PERF = env.PERF === "1";
const FLUSHER = env.FLUSHER ?? "";
const WIRE = env.WIRE ?? "";
/** The bench starts the daemon itself (instrumented) rather than through `pgfiles mount`. */
const INSTRUMENTED = PROFILE || FLUSHER !== "" || WIRE !== "";
const PROF_DIR = env.PROF_DIR ?? path.join(os.tmpdir(), "pgfiles-workload-prof");
const CLK_TCK = 100;

const log = (m: string) => process.stderr.write(`[workload] ${m}\n`);
const now = () => performance.now();

// ---------------------------------------------------------------- cleanup, whatever happens

const cleanups: { label: string; fn: () => Promise<void> }[] = [];
function onCleanup(label: string, fn: () => Promise<void>): () => Promise<void> {
  const entry = { label, fn };
  cleanups.push(entry);
  // Run it now (and only once): the returned function.
  return async () => {
    const i = cleanups.indexOf(entry);
    if (i < 0) return;
    cleanups.splice(i, 1);
    try {
      await fn();
    } catch (e) {
      log(`cleanup ${label} failed: ${(e as Error).message}`);
    }
  };
}
async function runAllCleanups() {
  while (cleanups.length) {
    const { label, fn } = cleanups.pop()!;
    try {
      await fn();
    } catch (e) {
      log(`cleanup ${label} failed: ${(e as Error).message}`);
    }
  }
}
let interrupted = false;
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = true;
    log(`${sig}: cleaning up`);
    void runAllCleanups().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------- processes

interface ShResult {
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
  cpu: number;
}

/** Runs a bash script under timeout(1) (its whole process group is killed at the deadline). */
async function sh(script: string, o: { cwd?: string; timeoutS?: number; env?: Record<string, string | undefined>; check?: boolean } = {}): Promise<ShResult> {
  const t = o.timeoutS ?? PHASE_TIMEOUT_S;
  const p = Bun.spawn({
    cmd: ["timeout", "-k", "10", String(t), "bash", "-euo", "pipefail", "-c", script],
    cwd: o.cwd ?? "/",
    env: (o.env ?? env) as Record<string, string>,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const t0 = now();
  // A process stuck in an uninterruptible FUSE wait survives even SIGKILL: do not wait for it forever.
  let watchdog: Timer | undefined;
  const stuck = new Promise<"stuck">((resolve) => (watchdog = setTimeout(() => resolve("stuck"), (t + 30) * 1000)));
  const [stdout, stderr, code] = await Promise.race([
    Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]),
    stuck.then(() => ["", "", -9] as [string, string, number]),
  ]);
  clearTimeout(watchdog);
  const seconds = (now() - t0) / 1000;
  const ru = code === -9 ? null : p.resourceUsage();
  const cpu = ru ? Number(ru.cpuTime.total) / 1e6 : NaN;
  const r = { code, stdout, stderr, seconds, cpu };
  if (o.check !== false && code !== 0) {
    throw new Error(`${code === 124 || code === 137 || code === -9 ? `timed out after ${t} s` : `exit ${code}`}: ${script.slice(0, 200)}\n${stderr.slice(-2000)}`);
  }
  return r;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Ends a process we started: SIGTERM, then SIGKILL. Only by PID, only if its command line still is ours. */
async function endProcess(pid: number, mustContain: string, graceMs = 5000) {
  if (!alive(pid)) return;
  let cmdline = "";
  try {
    cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
  } catch {
    return;
  }
  if (!cmdline.includes(mustContain)) return;
  try {
    process.kill(pid, "SIGTERM");
  } catch {}
  for (let i = 0; i < graceMs / 50 && alive(pid); i++) await Bun.sleep(50);
  if (alive(pid)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
}

function cpuOf(pid: number): number {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    // fields after ")": state(3) ppid(4) ... utime(14) stime(15) -> indexes 11, 12 here
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** CPU seconds of the postmaster and every child of it (backends, walwriter, checkpointer, ...). */
function pgCpu(postmaster: number): number {
  let total = cpuOf(postmaster);
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
      if (Number(f[1]) === postmaster) total += (Number(f[11]) + Number(f[12])) / CLK_TCK;
    } catch {}
  }
  return total;
}

// ---------------------------------------------------------------- mounts

interface MountInfo {
  fstype: string;
  dev: string;
}
function mountsAt(mp: string): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const f = line.split(" ");
    const sep = f.indexOf("-");
    if (sep < 0) continue;
    const p = f[4].replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (p === mp) out.push({ fstype: f[sep + 1], dev: f[2] });
  }
  return out;
}
function mountsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const line of fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const f = line.split(" ");
    if (f.length < 5) continue;
    const p = f[4].replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (p === dir || p.startsWith(dir + "/")) out.push(p);
  }
  return out;
}
/** The fusectl connection number (the minor of the anonymous device: major is 0). */
function connectionOf(mp: string): number | null {
  const top = mountsAt(mp).at(-1);
  if (!top?.fstype.startsWith("fuse")) return null;
  const [maj, min] = top.dev.split(":").map(Number);
  return maj * 2 ** 20 + min;
}

/** Unmounts whatever is at mp: umount, else abort the FUSE connection and detach lazily. */
async function forceUnmount(mp: string) {
  if (mountsAt(mp).length === 0) return;
  const r = await sh(`umount ${q(mp)}`, { timeoutS: 20, check: false });
  if (r.code === 0 && mountsAt(mp).length === 0) return;
  const conn = connectionOf(mp);
  if (conn !== null) {
    try {
      fs.writeFileSync(`/sys/fs/fuse/connections/${conn}/abort`, "1");
    } catch {}
  }
  while (mountsAt(mp).length > 0) {
    const l = await sh(`umount -l ${q(mp)}`, { timeoutS: 20, check: false });
    if (l.code !== 0) {
      log(`umount -l ${mp} failed: ${l.stderr.trim()}`);
      break;
    }
  }
}

const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

// ---------------------------------------------------------------- perf (PERF=1)

interface PerfHandle {
  stop(): Promise<KernelStats | undefined>;
}
async function startPerf(file: string, connection: number | null): Promise<PerfHandle | null> {
  if (!PERF || connection === null) return null;
  const p = Bun.spawn({
    cmd: ["perf", "record", "-q", "-o", file, "-e", "fuse:fuse_request_send", "-e", "fuse:fuse_request_end", "-a"],
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  const stopNow = onCleanup(`perf ${p.pid}`, async () => endProcess(p.pid, "perf", 10_000));
  await Bun.sleep(1500); // perf needs a moment to open its events on every CPU
  return {
    async stop() {
      try {
        process.kill(p.pid, "SIGINT");
      } catch {}
      await Promise.race([p.exited, Bun.sleep(30_000)]);
      await stopNow();
      try {
        return await parsePerf(file, connection);
      } finally {
        fs.rmSync(file, { force: true });
      }
    },
  };
}

async function parsePerf(file: string, connection: number): Promise<KernelStats | undefined> {
  const p = Bun.spawn({ cmd: ["perf", "script", "-i", file, "-F", "time,event,trace"], stdout: "pipe", stderr: "ignore" });
  const text = await new Response(p.stdout).text();
  await p.exited;
  const sent = new Map<string, { op: number; t: number }>();
  const ops: KernelStats["ops"] = {};
  let total = 0;
  const re = /([\d.]+):\s+fuse:fuse_request_(send|end):\s+connection (\d+) req (\d+)(?: opcode (\d+))?.*?(?:error (-?\d+))?\s*$/;
  for (const line of text.split("\n")) {
    const m = re.exec(line);
    if (!m || Number(m[3]) !== connection) continue;
    const t = Number(m[1]);
    if (m[2] === "send") {
      sent.set(m[4], { op: Number(m[5]), t });
      continue;
    }
    const s = sent.get(m[4]);
    if (!s) continue;
    sent.delete(m[4]);
    const name = opName(s.op);
    const o = (ops[name] ??= { n: 0, us: 0, err: 0 });
    o.n++;
    o.us += (t - s.t) * 1e6;
    if (m[6] && Number(m[6]) !== 0) o.err++;
    total++;
  }
  return { ops, total };
}

// ---------------------------------------------------------------- CPU profile slicing (PROFILE=1)

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

function sliceProfile(prof: CpuProfile, fromMs: number, toMs: number): ProfileSlice {
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = (id: number) => {
    const cf = byId.get(id)!.callFrame;
    const url = cf.url.replace("file://", "").replace(ROOT + "/", "");
    return `${cf.functionName || "(anonymous)"}${url ? ` ${url}:${cf.lineNumber + 1}` : ""}`;
  };
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  let t = prof.startTime; // µs since the epoch (Bun)
  let samples = 0;
  // The sampler only takes samples while the thread runs (JS or a native call made from JS): a long
  // delta is an idle gap, not work. Each sample counts for one sampling interval.
  const sorted = [...prof.timeDeltas].sort((a, b) => a - b);
  const dt = (sorted[Math.floor(sorted.length / 2)] ?? 1000) / 1000;
  for (let i = 0; i < prof.samples.length; i++) {
    t += prof.timeDeltas[i];
    const ms = t / 1000;
    if (ms < fromMs || ms > toMs) continue;
    samples++;
    const id = prof.samples[i];
    self.set(label(id), (self.get(label(id)) ?? 0) + dt);
    const seen = new Set<string>();
    for (let x: number | undefined = id; x !== undefined; x = parent.get(x)) {
      const l = label(x);
      if (seen.has(l)) continue;
      seen.add(l);
      incl.set(l, (incl.get(l) ?? 0) + dt);
    }
  }
  const top = (m: Map<string, number>, n: number, filter: (k: string) => boolean = () => true) =>
    [...m].filter(([k]) => filter(k)).sort((a, b) => b[1] - a[1]).slice(0, n).map(([fn, ms]) => ({ fn, ms }));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  return {
    samples,
    ms: total,
    self: top(self, 15),
    inclusive: top(incl, 25, (k) => / src\//.test(k) && !/^\(/.test(k)),
  };
}

// ---------------------------------------------------------------- one target

interface Ctx {
  target: Target;
  base: string;
  /** Where the workload runs (the mount, or the local dir). */
  work: string;
  input: { tar: string; big: string };
  /** A local directory (ext4) for cp -r out. */
  outDir: string;
  daemonPid: number | null;
  postmaster: number | null;
  connection: number | null;
  statsDir?: string;
  profileStart?: number;
}

interface Phase {
  name: string;
  /** Untimed preparation (drop caches, warm the input). */
  before?: (c: Ctx) => Promise<void>;
  run: (c: Ctx) => Promise<{ seconds: number; cpu: number }>;
  after?: (c: Ctx) => Promise<void>;
}

const gitEnv = {
  GIT_AUTHOR_NAME: "Bench Agent", GIT_AUTHOR_EMAIL: "agent@example.invalid", GIT_COMMITTER_NAME: "Bench Agent",
  GIT_COMMITTER_EMAIL: "agent@example.invalid", GIT_AUTHOR_DATE: "2026-01-01T00:00:00Z", GIT_COMMITTER_DATE: "2026-01-01T00:00:00Z",
  GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null",
};

const timed = (script: string, extraEnv: Record<string, string> = {}) => async (c: Ctx) => {
  const r = await sh(script, { cwd: c.work, env: { ...env, ...gitEnv, ...extraEnv } });
  return { seconds: r.seconds, cpu: r.cpu };
};

async function dropCaches() {
  await sh("sync; echo 3 > /proc/sys/vm/drop_caches", { timeoutS: 120 });
}

const createScript = `
const fs = require("node:fs"), path = require("node:path");
const dir = process.env.WL_DIR, D = Number(process.env.WL_DIRS), F = Number(process.env.WL_FILES), K = Number(process.env.WL_KIB);
const t0 = performance.now();
for (let d = 0; d < D; d++) {
  const p = path.join(dir, "small", "d" + String(d).padStart(3, "0"));
  fs.mkdirSync(p, { recursive: true });
  for (let f = 0; f < F; f++) {
    const body = Buffer.alloc(K * 1024, 0x61);
    body.write(p + "/f" + f + "\\n");
    fs.writeFileSync(path.join(p, "f" + String(f).padStart(3, "0") + ".txt"), body);
  }
}
process.stdout.write(JSON.stringify({ seconds: (performance.now() - t0) / 1000 }));
`;

const PHASES: Phase[] = [
  {
    name: "a.create",
    run: async (c) => {
      const r = await sh(`exec ${q(BUN)} -e ${q(createScript)}`, {
        cwd: c.work,
        env: { ...env, WL_DIR: c.work, WL_DIRS: String(SMALL_DIRS), WL_FILES: String(SMALL_FILES), WL_KIB: String(SMALL_KIB) },
      });
      return { seconds: JSON.parse(r.stdout).seconds as number, cpu: r.cpu };
    },
  },
  { name: "a.ls", run: timed("ls -laR small > /dev/null") },
  { name: "b.tar-x", run: (c) => timed(`mkdir tree && tar xf ${q(c.input.tar)} -C tree`)(c) },
  { name: "b.tar-c", run: timed("tar cf - -C tree . | cat > /dev/null") },
  { name: "c.git-add", run: timed("cd tree && git init -q -b main . && git add -A") },
  { name: "c.git-commit", run: timed("cd tree && git commit -q -m 'import the tree'") },
  { name: "c.git-status", run: timed("cd tree && git status > /dev/null") },
  {
    name: "c.git-branch",
    run: timed(`cd tree && git checkout -q -b feature
      mapfile -d '' -t files < <(git ls-files -z -- '*.js' '*.ts' '*.md')
      for f in "\${files[@]:0:50}"; do printf '// agent edit\\n' >> "$f"; done
      git commit -q -a -m 'edit 50 files'`),
  },
  { name: "c.git-checkout", run: timed("cd tree && git checkout -q main") },
  {
    name: "d.cp-out",
    run: (c) => timed(`cp -r tree ${q(c.outDir)}`)(c),
    after: async (c) => void (await sh(`rm -rf ${q(c.outDir)}`)),
  },
  { name: "e.rm", run: timed("rm -rf small tree") },
  {
    name: "f.write",
    before: async (c) => void (await sh(`cat ${q(c.input.big)} > /dev/null`)),
    run: (c) => timed(`dd if=${q(c.input.big)} of=big.bin bs=1M conv=fsync status=none`)(c),
  },
  {
    name: "f.read",
    before: async () => dropCaches(),
    run: timed("cat big.bin > /dev/null"),
  },
];

async function daemonStats(c: Ctx, name: string): Promise<DaemonStats | undefined> {
  if (!c.statsDir || c.daemonPid === null || !alive(c.daemonPid)) return undefined;
  const file = path.join(c.statsDir, `${name}.json`);
  fs.rmSync(file, { force: true });
  fs.writeFileSync(path.join(c.statsDir, "request"), name);
  process.kill(c.daemonPid, "SIGUSR2");
  for (let i = 0; i < 200; i++) {
    if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, "utf8")) as DaemonStats;
    await Bun.sleep(50);
  }
  log(`no counters from the daemon for ${name}`);
  return undefined;
}

async function runPhases(c: Ctx, result: TargetResult) {
  for (const ph of PHASES) {
    if (interrupted) throw new Error("interrupted");
    await ph.before?.(c);
    const perf = await startPerf(path.join(c.base, `perf-${ph.name}.data`), c.connection);
    await daemonStats(c, `_reset`);
    const d0 = c.daemonPid !== null ? cpuOf(c.daemonPid) : null;
    const p0 = c.postmaster !== null ? pgCpu(c.postmaster) : null;
    const w0 = Date.now();
    let r: { seconds: number; cpu: number } | null = null;
    let error: string | undefined;
    try {
      r = await ph.run(c);
    } catch (e) {
      error = (e as Error).message;
    }
    const w1 = Date.now();
    const d1 = c.daemonPid !== null ? cpuOf(c.daemonPid) : null;
    const p1 = c.postmaster !== null ? pgCpu(c.postmaster) : null;
    const pr: PhaseResult = {
      phase: ph.name,
      seconds: r?.seconds ?? null,
      toolCpu: r?.cpu ?? NaN,
      daemonCpu: d0 !== null && d1 !== null ? d1 - d0 : null,
      pgCpu: p0 !== null && p1 !== null ? p1 - p0 : null,
      window: [w0, w1],
      ...(error ? { error } : {}),
    };
    pr.daemon = await daemonStats(c, ph.name);
    pr.kernel = await perf?.stop();
    result.phases.push(pr);
    log(`${c.target} ${ph.name}: ${r ? `${r.seconds.toFixed(2)} s` : `FAILED ${error}`}${pr.daemonCpu !== null ? ` (daemon CPU ${pr.daemonCpu.toFixed(2)} s${pr.pgCpu !== null ? `, postgres ${pr.pgCpu.toFixed(2)} s` : ""})` : ""}`);
    if (error) throw new Error(`${c.target} ${ph.name}: ${error}`);
    await ph.after?.(c);
  }
}

function loadNow(): string {
  const la = fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  let psi = "";
  try {
    psi = /avg10=([\d.]+)/.exec(fs.readFileSync("/proc/pressure/cpu", "utf8"))?.[1] ?? "";
  } catch {}
  return `load ${la}${psi ? `, cpu pressure avg10 ${psi}%` : ""}`;
}

async function runLocal(base: string, input: Ctx["input"]): Promise<TargetResult> {
  const result: TargetResult = { target: "local", phases: [], load: loadNow() };
  const work = path.join(base, "local");
  fs.mkdirSync(work);
  const c: Ctx = { target: "local", base, work, input, outDir: path.join(base, "out-local"), daemonPid: null, postmaster: null, connection: null };
  try {
    await runPhases(c, result);
  } catch (e) {
    result.error = (e as Error).message;
  } finally {
    await sh(`rm -rf ${q(work)} ${q(c.outDir)}`, { check: false });
  }
  return result;
}

async function runBindfs(base: string, input: Ctx["input"]): Promise<TargetResult> {
  const result: TargetResult = { target: "bindfs", phases: [], load: loadNow() };
  const src = path.join(base, "bindfs-src");
  const mnt = path.join(base, "bindfs-mnt");
  fs.mkdirSync(src);
  fs.mkdirSync(mnt);
  // -f: stay in the foreground, so that the daemon is our child and we know its PID. Defaults otherwise.
  const logFd = fs.openSync(path.join(base, "bindfs.log"), "a");
  const p = Bun.spawn({ cmd: ["bindfs", "-f", src, mnt], stdin: "ignore", stdout: logFd, stderr: logFd });
  fs.closeSync(logFd);
  const cleanup = onCleanup(`bindfs ${mnt}`, async () => {
    await forceUnmount(mnt);
    await Promise.race([p.exited, Bun.sleep(5000)]);
    await endProcess(p.pid, "bindfs");
  });
  try {
    for (let i = 0; !mountsAt(mnt).some((m) => m.fstype.startsWith("fuse")); i++) {
      if (i > 200 || p.exitCode !== null) throw new Error(`bindfs did not mount: ${fs.readFileSync(path.join(base, "bindfs.log"), "utf8")}`);
      await Bun.sleep(50);
    }
    const c: Ctx = { target: "bindfs", base, work: mnt, input, outDir: path.join(base, "out-bindfs"), daemonPid: p.pid, postmaster: null, connection: connectionOf(mnt) };
    try {
      await runPhases(c, result);
    } finally {
      await sh(`rm -rf ${q(c.outDir)}`, { check: false });
    }
  } catch (e) {
    result.error = (e as Error).message;
  } finally {
    await cleanup();
    await sh(`rm -rf ${q(src)}`, { check: false });
  }
  return result;
}

async function runPgfiles(base: string, input: Ctx["input"], run: number): Promise<TargetResult> {
  const result: TargetResult = { target: "pgfiles", phases: [], load: "" };
  const { startCluster } = await import("../test/harness/postgres.ts");
  const pg = await startCluster();
  const destroyCluster = onCleanup("cluster", async () => pg.destroy());
  const mnt = path.join(base, "pgfiles-mnt");
  const home = path.join(base, "pgfiles-home");
  fs.mkdirSync(mnt);
  fs.mkdirSync(path.join(home, "run"), { recursive: true, mode: 0o700 });
  const prefix = `bench/workload/${crypto.randomUUID()}/`;
  const penv: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env)) if (!k.startsWith("PGFILES_") && !k.startsWith("XDG_")) penv[k] = v;
  Object.assign(penv, {
    HOME: home, XDG_RUNTIME_DIR: path.join(home, "run"), PGFILES_DSN: pg.dsn, PGFILES_PREFIX: prefix,
    PGFILES_CACHE_DIR: path.join(home, "cache"), PGFILES_LOG_FILE: path.join(home, "daemon.log"),
  });
  const cli = (args: string[], o: { timeoutS?: number; check?: boolean; cwd?: string } = {}) =>
    sh(`exec ${[...CLI, ...args].map(q).join(" ")}`, { env: { ...penv, PWD: o.cwd ?? "/" }, timeoutS: o.timeoutS ?? 60, check: o.check, cwd: o.cwd });
  let daemonPid: number | null = null;
  let profDaemon: ReturnType<typeof Bun.spawn> | null = null;
  let unmounted = false;
  const cleanupMount = onCleanup(`pgfiles ${mnt}`, async () => {
    if (!unmounted && mountsAt(mnt).length > 0) {
      const r = await cli(["unmount", mnt], { timeoutS: 90, check: false });
      if (r.code !== 0) log(`pgfiles unmount failed (${r.code}): ${r.stderr.trim()}`);
    }
    await forceUnmount(mnt);
    if (daemonPid !== null) await endProcess(daemonPid, "mount");
  });
  const statsDir = INSTRUMENTED ? path.join(base, "daemon-stats") : undefined;
  const profDir = path.join(PROF_DIR, `run${run}-${new Date().toISOString().replace(/[:.]/g, "-")}`);
  try {
    await cli(["init"]);
    result.load = loadNow();
    if (INSTRUMENTED) {
      fs.mkdirSync(statsDir!, { recursive: true });
      if (PROFILE) fs.mkdirSync(profDir, { recursive: true });
      const logFd = fs.openSync(path.join(home, "daemon.out"), "a");
      profDaemon = Bun.spawn({
        cmd: [BUN, ...(PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`] : []), import.meta.path, "--daemon", mnt],
        env: { ...penv, WL_STATS_DIR: statsDir, WL_FLUSHER: FLUSHER, WL_WIRE: WIRE } as Record<string, string>,
        stdin: "ignore",
        stdout: logFd,
        stderr: logFd,
      });
      fs.closeSync(logFd);
      daemonPid = profDaemon.pid;
      const rec = path.join(home, "run", `pgfiles-${process.getuid?.() ?? 0}`, `${createHash("sha256").update(mnt).digest("hex").slice(0, 16)}.json`);
      for (let i = 0; ; i++) {
        let state = "";
        try {
          state = JSON.parse(fs.readFileSync(rec, "utf8")).state;
        } catch {}
        if (state === "ready") break;
        if (state === "failed" || profDaemon.exitCode !== null || i > 600) {
          throw new Error(`the instrumented daemon did not mount: ${fs.readFileSync(path.join(home, "daemon.out"), "utf8").slice(-2000)}`);
        }
        await Bun.sleep(50);
      }
    } else {
      const r = await cli(["mount", mnt]);
      daemonPid = Number(/\(pid (\d+)\)/.exec(r.stdout)?.[1] ?? NaN);
      if (!Number.isInteger(daemonPid)) throw new Error(`could not find the daemon's pid in: ${r.stdout}`);
    }
    const postmaster = Number(fs.readFileSync(path.join(pg.dir, "postmaster.pid"), "utf8").split("\n")[0]);
    const c: Ctx = {
      target: "pgfiles", base, work: mnt, input, outDir: path.join(base, "out-pgfiles"), daemonPid, postmaster,
      connection: connectionOf(mnt), statsDir,
    };
    try {
      await runPhases(c, result);
      // What the final flush has left to do, then the flush itself.
      const st = await cli(["status", "--json"], { cwd: mnt, check: false });
      try {
        const s = JSON.parse(st.stdout);
        result.pendingBeforeUnmount = { versions: s.pending.versions, bytes: s.pending.bytes };
      } catch {}
      const u = await cli(["unmount", mnt], { timeoutS: 300 });
      unmounted = true;
      result.unmountSeconds = u.seconds;
      result.unmountOutput = (u.stdout + u.stderr).trim().split("\n").at(-1);
      if (profDaemon) await Promise.race([profDaemon.exited, Bun.sleep(30_000)]);
      const esc = prefix.replace(/[%_\\]/g, (m) => `\\${m}`);
      const [versions, live] = pg.psql(`SELECT (SELECT count(*) FROM pgfiles WHERE key LIKE '${esc}%'), (SELECT count(*) FROM pgfiles_head WHERE key LIKE '${esc}%' AND NOT deleted)`).split("|").map(Number);
      result.rowsInPostgres = { versions, live };
    } finally {
      await sh(`rm -rf ${q(c.outDir)}`, { check: false });
    }
  } catch (e) {
    result.error = (e as Error).message;
  } finally {
    await cleanupMount();
    await destroyCluster();
  }
  if (PROFILE) {
    const file = fs.existsSync(profDir) ? fs.readdirSync(profDir).find((f) => f.endsWith(".cpuprofile")) : undefined;
    if (file) {
      result.profilePath = path.join(profDir, file);
      const prof = JSON.parse(fs.readFileSync(result.profilePath, "utf8")) as CpuProfile;
      for (const ph of result.phases) if (ph.window) ph.profile = sliceProfile(prof, ph.window[0], ph.window[1]);
    } else {
      log(`no CPU profile in ${profDir}`);
    }
  }
  return result;
}

// ---------------------------------------------------------------- report

const f2 = (x: number | null | undefined, d = 2) => (x === null || x === undefined || !Number.isFinite(x) ? "n/a" : x.toFixed(d));
const ratio = (a: number | null | undefined, b: number | null | undefined) => (a && b ? `${(a / b).toFixed(2)}x` : "n/a");
const int = (x: number) => Math.round(x).toLocaleString("en-US");

function secondsOf(r: TargetResult | undefined, phase: string): number | null {
  return r?.phases.find((p) => p.phase === phase)?.seconds ?? null;
}
function totalOf(r: TargetResult | undefined): number | null {
  if (!r || r.phases.length !== PHASES.length || r.phases.some((p) => p.seconds === null)) return null;
  return r.phases.reduce((a, p) => a + (p.seconds ?? 0), 0);
}

function report(run: RunResult): string {
  const by = (t: Target) => run.targets.find((x) => x.target === t);
  const L = by("local");
  const B = by("bindfs");
  const P = by("pgfiles");
  const out: string[] = [];
  out.push(`Run ${run.run} (${run.started})${PROFILE ? ", PROFILE=1" : ""}${PERF ? ", PERF=1" : ""}${FLUSHER ? `, FLUSHER=${FLUSHER} (an experiment, not the product's flusher schedule)` : ""}${WIRE ? `, WIRE=${WIRE} (an experiment on the protocol, not product behaviour)` : ""}`);
  for (const t of run.targets) out.push(`- ${t.target}: ${t.load}${t.error ? ` — FAILED: ${t.error.split("\n")[0]}` : ""}`);
  out.push("");
  out.push("| phase | local s | bindfs s | pgfiles s | pgfiles/local | bindfs/local |");
  out.push("|---|---:|---:|---:|---:|---:|");
  for (const ph of PHASES) {
    const l = secondsOf(L, ph.name);
    const b = secondsOf(B, ph.name);
    const p = secondsOf(P, ph.name);
    out.push(`| ${ph.name} | ${f2(l)} | ${f2(b)} | ${f2(p)} | ${ratio(p, l)} | ${ratio(b, l)} |`);
  }
  const [tl, tb, tp] = [totalOf(L), totalOf(B), totalOf(P)];
  out.push(`| **total** | **${f2(tl)}** | **${f2(tb)}** | **${f2(tp)}** | **${ratio(tp, tl)}** | **${ratio(tb, tl)}** |`);
  if (P?.unmountSeconds !== undefined) {
    out.push(`| pgfiles unmount (final flush) | | | ${f2(P.unmountSeconds)} | | |`);
    out.push(`| total + unmount | | | ${f2(tp !== null ? tp + P.unmountSeconds : null)} | ${ratio(tp !== null ? tp + P.unmountSeconds : null, tl)} | |`);
  }
  out.push("");
  const n = SMALL_DIRS * SMALL_FILES;
  const rate = (r: TargetResult | undefined, ph: string, amount: number) => {
    const s = secondsOf(r, ph);
    return s ? int(amount / s) : "n/a";
  };
  out.push("| rate | local | bindfs | pgfiles |");
  out.push("|---|---:|---:|---:|");
  out.push(`| creates/s (${int(n)} x ${SMALL_KIB} KiB) | ${rate(L, "a.create", n)} | ${rate(B, "a.create", n)} | ${rate(P, "a.create", n)} |`);
  out.push(`| write MiB/s (${BIG_MIB} MiB, conv=fsync) | ${rate(L, "f.write", BIG_MIB)} | ${rate(B, "f.write", BIG_MIB)} | ${rate(P, "f.write", BIG_MIB)} |`);
  out.push(`| cold read MiB/s | ${rate(L, "f.read", BIG_MIB)} | ${rate(B, "f.read", BIG_MIB)} | ${rate(P, "f.read", BIG_MIB)} |`);
  out.push("");
  out.push("CPU seconds per phase (tools = the workload's processes; daemon = bindfs / pgfiles daemon; pg = PostgreSQL):");
  out.push("");
  out.push("| phase | local tools | bindfs tools | bindfs daemon | pgfiles tools | pgfiles daemon | pg |");
  out.push("|---|---:|---:|---:|---:|---:|---:|");
  for (const ph of PHASES) {
    const g = (r: TargetResult | undefined) => r?.phases.find((p) => p.phase === ph.name);
    out.push(`| ${ph.name} | ${f2(g(L)?.toolCpu)} | ${f2(g(B)?.toolCpu)} | ${f2(g(B)?.daemonCpu)} | ${f2(g(P)?.toolCpu)} | ${f2(g(P)?.daemonCpu)} | ${f2(g(P)?.pgCpu)} |`);
  }
  if (P) {
    out.push("");
    if (P.pendingBeforeUnmount) out.push(`pgfiles before unmount: ${int(P.pendingBeforeUnmount.versions)} versions (${f2(P.pendingBeforeUnmount.bytes / 1048576, 1)} MiB) still pending in the journal.`);
    if (P.unmountOutput) out.push(`pgfiles unmount said: ${P.unmountOutput}`);
    if (P.rowsInPostgres) out.push(`In Postgres after unmount: ${int(P.rowsInPostgres.versions)} versions under the prefix, ${P.rowsInPostgres.live} live key(s).`);
  }
  for (const t of [B, P]) {
    if (!t?.phases.some((p) => p.kernel)) continue;
    out.push("");
    out.push(`Kernel FUSE requests per phase, ${t.target} (perf fuse:fuse_request_send → fuse_request_end; round trip as the kernel sees it):`);
    out.push("");
    out.push("| phase | requests | top opcodes (count, mean round trip µs) | sum of round trips s |");
    out.push("|---|---:|---|---:|");
    for (const p of t.phases) {
      if (!p.kernel) continue;
      const ops = Object.entries(p.kernel.ops).sort((a, b) => b[1].n - a[1].n);
      const sum = ops.reduce((a, [, o]) => a + o.us, 0) / 1e6;
      out.push(`| ${p.phase} | ${int(p.kernel.total)} | ${ops.slice(0, 7).map(([k, o]) => `${k} ${int(o.n)} (${int(o.us / o.n)})`).join(", ")} | ${f2(sum)} |`);
    }
  }
  if (P?.phases.some((p) => p.daemon)) {
    out.push("");
    out.push("pgfiles daemon, per phase (PROFILE=1): requests seen by the main thread, service time (arrival on the main thread → reply written), wrapped functions, event-loop stalls, CPU-profile samples:");
    for (const p of P.phases) {
      if (!p.daemon) continue;
      const d = p.daemon;
      const ops = Object.entries(d.ops).sort((a, b) => b[1].ms - a[1].ms);
      const n = ops.reduce((a, [, o]) => a + o.n, 0);
      const ms = ops.reduce((a, [, o]) => a + o.ms, 0);
      out.push("");
      out.push(`**${p.phase}** — ${f2(p.seconds)} s wall, daemon CPU ${f2(p.daemonCpu)} s, postgres CPU ${f2(p.pgCpu)} s; ${int(n)} requests, service time sum ${f2(ms / 1000)} s; event loop stalled ${f2(d.lag.ms / 1000)} s (max ${int(d.lag.max)} ms)`);
      out.push("");
      out.push(`- requests: ${ops.slice(0, 10).map(([k, o]) => `${k} ${int(o.n)} × ${int((o.ms / Math.max(1, o.replied)) * 1000)} µs${o.err ? ` (${int(o.err)} errors)` : ""}`).join(", ")}`);
      const fns = Object.entries(d.fns).sort((a, b) => b[1].ms - a[1].ms).slice(0, 10);
      const xn = Object.entries(d.getxattrNames ?? {}).sort((a, b) => b[1] - a[1]);
      if (xn.length) out.push(`- GETXATTR names: ${xn.slice(0, 4).map(([k, v]) => `${k} ${int(v)}`).join(", ")}`);
      out.push(`- functions: ${fns.map(([k, o]) => `${k} ${int(o.n)} × ${f2((o.ms / o.n) * 1000, 0)} µs = ${f2(o.ms / 1000)} s`).join("; ")}`);
      if (p.profile) {
        out.push(`- CPU profile (main thread): ${f2(p.profile.ms / 1000)} s sampled; self: ${p.profile.self.slice(0, 8).map((s) => `${s.fn} ${int(s.ms)} ms`).join("; ")}`);
        out.push(`- inclusive (src/): ${p.profile.inclusive.slice(0, 10).map((s) => `${s.fn} ${int(s.ms)} ms`).join("; ")}`);
      }
    }
    if (P.profilePath) out.push(`\nCPU profile: ${P.profilePath}`);
  }
  return out.join("\n");
}

// ---------------------------------------------------------------- main

async function benchMain() {
  if (process.getuid?.() !== 0) throw new Error("run as root: the bench mounts and drops the page cache");
  for (const tool of ["bindfs", "git", "tar", "dd", ...(PERF ? ["perf"] : [])]) {
    if (Bun.spawnSync({ cmd: ["sh", "-c", `command -v ${tool}`] }).exitCode !== 0) throw new Error(`${tool} is not installed`);
  }
  if (!fs.existsSync("/dev/fuse")) throw new Error("/dev/fuse is missing");
  const base = fs.realpathSync(fs.mkdtempSync(path.join(env.BENCH_DIR ?? os.tmpdir(), "pgfiles-workload-")));
  const removeBase = onCleanup("temp dir", async () => {
    const left = mountsUnder(base);
    for (const m of left.reverse()) await forceUnmount(m);
    if (mountsUnder(base).length > 0) {
      log(`not removing ${base}: still mounted: ${mountsUnder(base).join(", ")}`);
      return;
    }
    fs.rmSync(base, { recursive: true, force: true });
  });
  const runs: RunResult[] = [];
  try {
    const fsType = (await sh(`findmnt -n -o FSTYPE -T ${q(base)}`)).stdout.trim();
    log(`temp dir ${base} (${fsType}); preparing the inputs`);
    const inputDir = path.join(base, "input");
    fs.mkdirSync(inputDir);
    const input = { tar: path.join(inputDir, "tree.tar"), big: path.join(inputDir, "big.bin") };
    // Other people edit the tree while we read it: a file changed under tar is not a failure.
    const t = await sh(
      `tar cf ${q(input.tar)} --warning=no-file-changed --exclude=node_modules/bun --exclude=node_modules/@oven --exclude='*.tmp' node_modules src test docs journal bench build package.json tsconfig.json README.md`,
      { cwd: ROOT, check: false },
    );
    if (t.code !== 0 && t.code !== 1) throw new Error(`tar of the source tree failed: ${t.stderr}`);
    const members = (await sh(`tar tvf ${q(input.tar)} | awk '{n[substr($1,1,1)]++; s+=$3} END {printf "%d files, %d dirs, %d symlinks, %.1f MiB", n["-"], n["d"], n["l"], s/1048576}'`)).stdout;
    await sh(`head -c ${BIG_MIB * 1048576} /dev/urandom > ${q(input.big)}`);
    log(`tree: ${members}; big file: ${BIG_MIB} MiB`);
    const machine = `${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? "?"}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Linux ${os.release()}, temp dir on ${fsType}, Bun ${Bun.version}, ${(await sh("git --version; tar --version | head -1; bindfs --version | head -1")).stdout.trim().split("\n").join(", ")}`;
    for (let run = 1; run <= RUNS; run++) {
      const rr: RunResult = { run, started: new Date().toISOString(), targets: [] };
      runs.push(rr);
      const runBase = path.join(base, `run${run}`);
      fs.mkdirSync(runBase);
      for (const target of TARGETS) {
        if (interrupted) break;
        log(`run ${run}: ${target}`);
        if (target === "local") rr.targets.push(await runLocal(runBase, input));
        else if (target === "bindfs") rr.targets.push(await runBindfs(runBase, input));
        else if (target === "pgfiles") rr.targets.push(await runPgfiles(runBase, input, run));
      }
      if (mountsUnder(runBase).length === 0) fs.rmSync(runBase, { recursive: true, force: true });
      process.stdout.write(`\n${report(rr)}\n`);
    }
    process.stdout.write(`\nMachine: ${machine}\nTree: ${members}\n`);
    if (env.RESULT_JSON) fs.writeFileSync(env.RESULT_JSON, JSON.stringify({ machine, tree: members, runs }, null, 2));
  } finally {
    await runAllCleanups();
    await removeBase();
  }
}

// Last, so that every top-level constant above is initialised.
if (process.argv[2] === "--daemon") {
  await daemonMain(process.argv[3]);
} else {
  await benchMain();
}
