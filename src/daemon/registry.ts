// Where a running mount can be found: one small JSON file per mount point in a
// private runtime directory (mode 0700), next to the daemon's control socket.
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

import { PgfilesError } from "../errors.ts";
import { processAlive } from "../pid.ts";

export { processAlive as alive };

export interface MountRecord {
  pid: number;
  mountpoint: string;
  socket: string;
  prefix: string;
  journal: string;
  backend: "fuse" | "nfs";
  startedAt: number;
  state: "starting" | "ready" | "failed" | "stopped";
  error?: string;
  warnings?: string[];
}

/** The private runtime directory: created 0700, and refused when something
 * else stands there (a symlink, a file, a directory of another user or with
 * looser permissions): another local user could have planted it to read our
 * records, redirect our writes or feed us a record that is not ours. */
export function runtimeDir(): string {
  const base = process.env.XDG_RUNTIME_DIR && path.isAbsolute(process.env.XDG_RUNTIME_DIR) ? process.env.XDG_RUNTIME_DIR : os.tmpdir();
  const uid = process.getuid?.() ?? 0;
  const dir = path.join(base, `pgfiles-${uid}`);
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
    fs.chmodSync(dir, 0o700); // the umask may have taken bits away; ours now, nobody else can swap it in a sticky /tmp
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      fs.mkdirSync(base, { recursive: true, mode: 0o700 });
      return runtimeDir();
    }
    if (code !== "EEXIST") throw new PgfilesError(`Cannot create the runtime directory ${dir}: ${(e as Error).message}.`, { cause: e });
  }
  const st = fs.lstatSync(dir); // never follow a symlink here
  const wrong = st.isSymbolicLink()
    ? "a symbolic link"
    : !st.isDirectory()
      ? "not a directory"
      : st.uid !== uid
        ? `owned by uid ${st.uid}, not by uid ${uid}`
        : (st.mode & 0o7777) !== 0o700
          ? `mode ${(st.mode & 0o7777).toString(8).padStart(4, "0")}, not 0700`
          : null;
  if (wrong) {
    throw new PgfilesError(
      `The pgfiles runtime directory ${dir} is ${wrong}, so another user may control it; remove it (rm -r ${JSON.stringify(dir)}) and run the command again.`,
      { exitCode: 2, errno: "EACCES" },
    );
  }
  return dir;
}

function id(mountpoint: string): string {
  return createHash("sha256").update(mountpoint).digest("hex").slice(0, 16);
}

export function recordPath(mountpoint: string): string {
  return path.join(runtimeDir(), `${id(mountpoint)}.json`);
}

export function socketPath(mountpoint: string): string {
  return path.join(runtimeDir(), `${id(mountpoint)}.sock`);
}

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;

export function writeRecord(r: MountRecord) {
  const p = recordPath(r.mountpoint);
  const tmp = `${p}.${process.pid}.tmp`;
  fs.rmSync(tmp, { force: true }); // a leftover of a crashed writer with our pid
  const fd = fs.openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  try {
    fs.writeSync(fd, JSON.stringify(r));
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, p);
}

/** A record file, read without following a symlink; null when it is not ours. */
function readRecordFile(p: string): MountRecord | null {
  let fd: number;
  try {
    fd = fs.openSync(p, O_RDONLY | O_NOFOLLOW);
  } catch {
    return null;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.uid !== (process.getuid?.() ?? 0)) return null;
    return JSON.parse(fs.readFileSync(fd, "utf8")) as MountRecord;
  } catch {
    return null; // being rewritten
  } finally {
    fs.closeSync(fd);
  }
}

export function readRecord(mountpoint: string): MountRecord | null {
  return readRecordFile(recordPath(mountpoint));
}

export function removeRecord(mountpoint: string) {
  fs.rmSync(recordPath(mountpoint), { force: true });
  fs.rmSync(socketPath(mountpoint), { force: true });
}

/** How long the record of a daemon that failed to start is kept for the `mount` waiting to report it. */
const FAILED_RECORD_KEEP_MS = 60_000;

/** Every mount record of this user; records of daemons that are gone (killed with -9, crashed) are removed
 * on the way, with their sockets. */
export function allRecords(): MountRecord[] {
  const out: MountRecord[] = [];
  const dir = runtimeDir();
  for (const f of fs.readdirSync(dir)) {
    if (!f.endsWith(".json")) continue;
    const r = readRecordFile(path.join(dir, f));
    if (!r) continue; // being rewritten, or not ours
    if (!processAlive(r.pid) && (r.state !== "failed" || Date.now() - r.startedAt > FAILED_RECORD_KEEP_MS)) {
      fs.rmSync(path.join(dir, f), { force: true });
      fs.rmSync(path.join(dir, f.replace(/\.json$/, ".sock")), { force: true });
      continue;
    }
    out.push(r);
  }
  return out;
}

/** The live mount whose mount point contains `dir` (the deepest one), and whether
 * `dir` is really inside it or in the directory underneath (a shell whose cwd
 * was the mount point before the mount keeps pointing underneath). */
export function findMount(dir: string): { record: MountRecord; relation: "inside" | "beneath"; rel: string } | null {
  let best: MountRecord | null = null;
  for (const r of allRecords()) {
    if (r.state !== "ready" || !processAlive(r.pid)) continue;
    const rel = path.relative(r.mountpoint, dir);
    if (rel.startsWith("..") || path.isAbsolute(rel)) continue;
    if (!best || r.mountpoint.length > best.mountpoint.length) best = r;
  }
  if (!best) return null;
  const rel = path.relative(best.mountpoint, dir);
  let relation: "inside" | "beneath" = "inside";
  try {
    // The mount root and the cwd are on the same filesystem only if cwd is inside.
    const here = fs.statSync(process.cwd());
    const root = fs.statSync(best.mountpoint);
    if (here.dev !== root.dev) relation = "beneath";
  } catch {
    relation = "beneath";
  }
  return { record: best, relation, rel };
}
