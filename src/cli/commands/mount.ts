import type { Command } from "commander";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { request } from "../../daemon/control.ts";
import { runDaemon, type UnmountResult } from "../../daemon/daemon.ts";
import { alive, readRecord, removeRecord } from "../../daemon/registry.ts";
import { maskDsn } from "../../config/index.ts";
import { PgfilesError } from "../../errors.ts";
import { canonicalMountpoint, mountState, unmount as fuseUnmount } from "../../fuse/mount.ts";
import { mountCommand, nfsMountsAt, unmountNfs } from "../../nfs/mount.ts";
import { NFS_TRANSFER_BYTES } from "../../nfs/server.ts";
import type { Backend } from "../../daemon/frontend.ts";
import { Context, shellCwd } from "../context.ts";
import { dropDsnFromArgv, selfCommand } from "../reexec.ts";
import { out, warn } from "../run.ts";


function checkDir(p: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOTCONN") return path.resolve(p); // a stale mount: mount() reclaims it
    throw new PgfilesError(`Cannot mount on ${p}: no such directory.`, { errno: "ENOENT" });
  }
  if (!st.isDirectory()) throw new PgfilesError(`Cannot mount on ${p}: it is not a directory.`, { errno: "ENOTDIR" });
  return canonicalMountpoint(p);
}

/** The shell's cwd names the directory underneath a fresh mount until it re-enters it. */
function cwdHint(mountpoint: string): string | null {
  const cwd = shellCwd();
  const rel = path.relative(mountpoint, cwd);
  if (rel.startsWith("..") || path.isAbsolute(rel)) return null;
  return `Your shell is still in the directory underneath the mount: run \`cd .\` to enter the mount${rel ? ` (or \`cd ${JSON.stringify(cwd)}\`)` : ""}.`;
}

export function registerMount(program: Command) {
  program
    .command("mount")
    .argument("<dsn-or-path>", "[dsn] <path>: the connection string (else PGFILES_DSN; PGFILES_DSN or the config file keeps the password out of shell history and ps), then the directory (may be .)")
    .argument("[path]")
    .description("mount the prefix on a directory; returns once the mount is live (a daemon keeps serving)")
    .option("-f, --foreground", "stay attached: serve in this process until unmounted")
    .option("--backend <backend>", "fuse (Linux) or nfs (macOS)", process.platform === "darwin" ? "nfs" : "fuse")
    .option("--suid", "root, FUSE only: honour setuid/setgid bits (default nosuid: any row's meta could claim them)")
    .option("--dev", "root, FUSE only: honour device files (default nodev)")
    .action(async (first: string, second: string | undefined, opts: { foreground?: boolean; backend: string; suid?: boolean; dev?: boolean }) => {
      const [dsnArg, target] = second === undefined ? [undefined, first] : [first, second];
      if (second === undefined && looksLikeDsn(first)) {
        throw new PgfilesError(
          `pgfiles mount got the connection string ${maskDsn(first)} but no directory; give the directory after it (pgfiles mount DSN DIR), or set PGFILES_DSN and run pgfiles mount DIR.`,
          { exitCode: 2, errno: "EINVAL" },
        );
      }
      const backend = checkBackend(opts.backend);
      const privileged = checkPrivilegeFlags(opts, backend);
      const ctx = new Context(program, dsnArg ? { dsn: dsnArg } : {}, { mountAware: false });
      // A foreground mount runs for long: keep a DSN given in argv out of ps.
      if (opts.foreground && ctx.config.dsn) dropDsnFromArgv(ctx.config.dsn, dsnArg);
      // stat(2) of an NFS mount whose daemon is dead waits out the soft timeout
      // and fails with ETIMEDOUT or EIO, not ENOTCONN: recognise our NFS mounts
      // by the mount table first, so that a stale one is reclaimed, not refused.
      const nfsHere = (await nfsMountsAt(canonicalMountpointOf(target))).length > 0;
      const mountpoint = nfsHere ? canonicalMountpointOf(target) : checkDir(target);
      const state = nfsHere ? "none" : await mountState(mountpoint);
      const rec = readRecord(mountpoint);
      // The kernel is the judge: a stale mount (its daemon died) is reclaimed by mount().
      // An NFS mount is alive while its daemon is; a dead one's is reclaimed the same way.
      const nfsAlive = rec?.backend === "nfs" && alive(rec.pid) && rec.pid !== process.pid && (await nfsMountsAt(mountpoint)).length > 0;
      const busy = state === "alive" || nfsAlive || (state === "none" && rec?.state === "starting" && alive(rec.pid) && rec.pid !== process.pid);
      if (busy) {
        throw new PgfilesError(`${mountpoint} is already mounted${rec ? ` (pgfiles pid ${rec.pid}, prefix ${JSON.stringify(rec.prefix)})` : ""}; unmount it first.`);
      }
      if (opts.foreground) {
        const r = await runDaemon({ config: ctx.config, dsn: ctx.dsn, mountpoint, backend, log: ctx.log, ...privileged });
        report(mountpoint, r);
        return;
      }
      const dsn = ctx.dsn;
      removeRecord(mountpoint);
      const logFile = path.join(ctx.config.cacheDir, "daemon.log");
      fs.mkdirSync(ctx.config.cacheDir, { recursive: true, mode: 0o700 });
      const logFd = openPrivateLog(logFile);
      const args = [...selfCommand(), "mount", "--foreground", "--backend", backend, ...privilegeArgs(privileged), mountpoint];
      const child = spawn(args[0], args.slice(1), {
        detached: true,
        stdio: ["ignore", logFd, logFd],
        env: { ...process.env, PGFILES_DSN: dsn, ...flagsAsEnv(ctx) },
      });
      child.unref();
      fs.closeSync(logFd);
      let exited: number | null = null;
      child.on("exit", (code) => (exited = code ?? 1));
      const deadline = Date.now() + 30_000;
      for (;;) {
        const r = readRecord(mountpoint);
        if (r?.state === "ready" && r.pid === child.pid) {
          out(`Mounted ${JSON.stringify(ctx.config.prefix)} at ${mountpoint} (pid ${r.pid}).`);
          for (const w of r.warnings ?? []) warn(w);
          const hint = cwdHint(mountpoint);
          if (hint) warn(hint);
          return;
        }
        if (r?.state === "failed") throw new PgfilesError(r.error ?? "The mount failed.");
        if (exited !== null) {
          const tail = fs.readFileSync(logFile, "utf8").trim().split("\n").slice(-3).join("\n");
          throw new PgfilesError(`The mount daemon exited (code ${exited}) before the mount was live.${tail ? `\n${tail}` : ""}`);
        }
        if (Date.now() > deadline) throw new PgfilesError(`The mount did not become live within 30 s; see ${logFile}.`);
        await Bun.sleep(25);
      }
    });

  program
    .command("unmount <path>")
    .description("flush the journal to Postgres (showing progress), unmount, and stop the daemon")
    .option("--wait", "if Postgres is away, wait until everything is flushed instead of leaving it queued")
    .action(async (target: string, opts: { wait?: boolean }) => {
      const mountpoint = canonicalMountpointOf(target);
      const rec = readRecord(mountpoint);
      if (!rec || !alive(rec.pid)) {
        if ((await nfsMountsAt(mountpoint)).length > 0) {
          await unmountNfs(mountpoint, { force: true });
          removeRecord(mountpoint);
          out(`Cleaned up a stale mount at ${mountpoint} (its daemon was gone); pending versions stay in the journal for the next mount or command.`);
          return;
        }
        const state = await mountState(mountpoint);
        if (state === "none") {
          removeRecord(mountpoint);
          throw new PgfilesError(`${mountpoint} is not a pgfiles mount.`, { errno: "EINVAL" });
        }
        await fuseUnmount(mountpoint);
        removeRecord(mountpoint);
        out(`Cleaned up a stale mount at ${mountpoint} (its daemon was gone); pending versions stay in the journal for the next mount or command.`);
        return;
      }
      let last = 0;
      const r = (await request(rec.socket, { cmd: "unmount", wait: Boolean(opts.wait) }, (p) => {
        const prog = p as { versions?: number; bytes?: number; waiting?: string };
        if (Date.now() - last < 500) return;
        last = Date.now();
        if (prog.waiting) process.stderr.write(`waiting for PostgreSQL: ${prog.waiting}\n`);
        else process.stderr.write(`flushing: ${prog.versions} versions, ${((prog.bytes ?? 0) / 1048576).toFixed(1)} MiB\n`);
      })) as UnmountResult;
      for (let i = 0; i < 100 && alive(rec.pid); i++) await Bun.sleep(50);
      report(mountpoint, r);
    });

  program
    .command("serve-nfs")
    .argument("[dsn]", "the connection string (else PGFILES_DSN; PGFILES_DSN or the config file keeps the password out of shell history and ps)")
    .description("serve the prefix over NFSv3 on 127.0.0.1 without mounting it (containers, tests); runs until SIGINT/SIGTERM")
    .option("--port <port>", "the port for NFS and MOUNT (default: any free port)", "0")
    .option("--json", "print where it serves as one JSON line")
    .action(async (dsnArg: string | undefined, opts: { port: string; json?: boolean }) => {
      const port = Number(opts.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new PgfilesError(`--port must be a port number (0-65535), not ${JSON.stringify(opts.port)}.`, { exitCode: 2 });
      const ctx = new Context(program, dsnArg ? { dsn: dsnArg } : {}, { mountAware: false });
      if (ctx.config.dsn) dropDsnFromArgv(ctx.config.dsn, dsnArg); // it runs for long: keep a DSN given in argv out of ps
      const r = await runDaemon({
        config: ctx.config, dsn: ctx.dsn, mountpoint: null, backend: "nfs", port, log: ctx.log,
        onServing: (f) => {
          const nfs = f.nfs!;
          if (opts.json) {
            out(JSON.stringify({ host: nfs.host, port: nfs.port, exportPath: nfs.exportPath, pid: process.pid, prefix: ctx.config.prefix }));
            return;
          }
          const spec = { ...nfs, mountpoint: "DIR", metadataTtlMs: ctx.config.metadataTtlMs, readOnly: ctx.config.readOnly, transferBytes: NFS_TRANSFER_BYTES };
          out(`Serving ${JSON.stringify(ctx.config.prefix)} over NFSv3 on ${nfs.host} port ${nfs.port}, export ${nfs.exportPath} (pid ${process.pid}); only uid ${process.getuid?.() ?? 0} and root may use it.`);
          out(`Mount it on macOS with:  ${mountCommand("darwin", spec).join(" ")}`);
          out(`Mount it on Linux with:  ${mountCommand("linux", spec).join(" ")}`);
        },
      });
      if (!opts.json) report(null, r);
    });
}

/** A DSN in URL form, or libpq keyword form (`host=... dbname=...`). */
function looksLikeDsn(s: string): boolean {
  return /^postgres(ql)?:\/\//i.test(s) || /^\s*\w+\s*=/.test(s);
}

/** The daemon's log (it names files): created 0600, an older 0644 one is tightened, a symlink is refused. */
function openPrivateLog(file: string): number {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    throw new PgfilesError(`Cannot open the daemon log ${file}: ${(e as Error).message}.`, { cause: e });
  }
  const st = fs.fstatSync(fd);
  if (st.uid === (process.getuid?.() ?? 0) && (st.mode & 0o077) !== 0) fs.fchmodSync(fd, 0o600);
  return fd;
}

/** --suid / --dev: root's explicit choice, FUSE only; anyone else gets one sentence and exit 2. */
function checkPrivilegeFlags(opts: { suid?: boolean; dev?: boolean }, backend: Backend): { suid: boolean; dev: boolean } {
  const asked = [opts.suid && "--suid", opts.dev && "--dev"].filter(Boolean).join(" and ");
  if (!asked) return { suid: false, dev: false };
  if (process.getuid?.() !== 0) throw new PgfilesError(`${asked} may only be given by root; without it the mount is nosuid,nodev.`, { exitCode: 2 });
  if (backend !== "fuse") throw new PgfilesError(`${asked} applies to FUSE mounts only; NFS mounts are always nosuid,nodev.`, { exitCode: 2 });
  return { suid: Boolean(opts.suid), dev: Boolean(opts.dev) };
}

function privilegeArgs(p: { suid: boolean; dev: boolean }): string[] {
  return [...(p.suid ? ["--suid"] : []), ...(p.dev ? ["--dev"] : [])];
}

function checkBackend(b: string): Backend {
  if (b === "fuse" || b === "nfs") return b;
  throw new PgfilesError(`--backend must be fuse or nfs, not ${JSON.stringify(b)}.`, { exitCode: 2 });
}

function canonicalMountpointOf(p: string): string {
  try {
    return canonicalMountpoint(p);
  } catch {
    return path.resolve(p);
  }
}

/** What an unmount (or the end of serve-nfs: mountpoint null) left behind. Exits 0 only when everything
 * is in Postgres: 3 when versions stay because Postgres is unreachable, 5 when it refused some (held),
 * 4 when some stay for another reason (another process holds the flush lease). */
function report(mountpoint: string | null, r: UnmountResult) {
  const what = mountpoint ? `Unmounted ${mountpoint}` : "Stopped the NFS server";
  const n = (k: number) => `${k} version${k === 1 ? "" : "s"}`;
  if (r.pending === 0) {
    out(`${what}; everything is in PostgreSQL${r.flushed ? ` (${r.flushed} versions flushed)` : ""}.`);
    return;
  }
  const next = "the next mount or pgfiles command with this prefix delivers them";
  if (r.offline) {
    out(`${what}. ${r.offline} ${n(r.pending)} ${r.pending === 1 ? "stays" : "stay"} queued in the local journal; ${next}.`);
    process.exitCode = 3;
  } else if (r.held) {
    out(`${what}. PostgreSQL refused ${n(r.held)}: ${(r.heldReasons ?? []).join("; ")} ${n(r.pending)} ${r.pending === 1 ? "stays" : "stay"} in the local journal (\`pgfiles status\` lists them); once the cause is fixed, ${next}.`);
    process.exitCode = 5;
  } else {
    out(`${what}. ${n(r.pending)} ${r.pending === 1 ? "stays" : "stay"} queued in the local journal (another pgfiles process is flushing it); ${next}.`);
    process.exitCode = 4;
  }
}

/** The daemon gets the same settings the mount command resolved, flags included. */
function flagsAsEnv(ctx: Context): Record<string, string> {
  const c = ctx.config;
  return {
    PGFILES_PREFIX: c.prefix,
    PGFILES_POOL_SIZE: String(c.poolSize),
    PGFILES_READ_ONLY: String(c.readOnly),
    PGFILES_CACHE_DIR: c.cacheDir,
    PGFILES_CACHE_MAX_SIZE: String(c.cacheMaxSize),
    PGFILES_CACHE_METADATA_TTL: `${c.metadataTtlMs}ms`,
    PGFILES_LOG_LEVEL: c.logLevel,
    PGFILES_PREPARED_STATEMENTS: String(c.preparedStatements),
    PGFILES_STRICT: String(c.strict),
    ...(c.logFile ? { PGFILES_LOG_FILE: c.logFile } : {}),
  };
}
