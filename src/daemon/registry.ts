// Where a running mount can be found: one small JSON file per mount point in a
// private runtime directory (mode 0700), next to the daemon's control socket.
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

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

export function runtimeDir(): string {
  const base = process.env.XDG_RUNTIME_DIR && path.isAbsolute(process.env.XDG_RUNTIME_DIR) ? process.env.XDG_RUNTIME_DIR : os.tmpdir();
  const dir = path.join(base, `pgfiles-${process.getuid?.() ?? 0}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Only the owner may reach the control sockets inside.
  fs.chmodSync(dir, 0o700);
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

export function writeRecord(r: MountRecord) {
  const p = recordPath(r.mountpoint);
  fs.writeFileSync(`${p}.tmp`, JSON.stringify(r), { mode: 0o600 });
  fs.renameSync(`${p}.tmp`, p);
}

export function readRecord(mountpoint: string): MountRecord | null {
  try {
    return JSON.parse(fs.readFileSync(recordPath(mountpoint), "utf8")) as MountRecord;
  } catch {
    return null;
  }
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
    let r: MountRecord;
    try {
      r = JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")) as MountRecord;
    } catch {
      continue; // being rewritten
    }
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
