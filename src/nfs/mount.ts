// Mounting our NFS server with the operating system's own client: mount_nfs on
// macOS (no kernel extension, no macFUSE), mount.nfs on Linux where the kernel
// has an NFS client (not every one does; this project's CI machine has none).
// Our mounts are recognised by their source, 127.0.0.1:/pgfiles-<hex>.
import fs from "node:fs";
import { PgfilesError } from "../errors.ts";
import { mountsAt } from "../fuse/mount.ts";

/** Export paths start with this; the rest is random (see exportPathFor). */
export const EXPORT_PREFIX = "/pgfiles-";

export interface NfsMountSpec {
  host: string;
  port: number;
  exportPath: string;
  mountpoint: string;
  /** PGFILES_CACHE_METADATA_TTL: how long the client may trust attributes it has. */
  metadataTtlMs: number;
  readOnly: boolean;
  /** The server's FSINFO rtmax/wtmax: ask for transfers that large. */
  transferBytes: number;
}

/** A fresh unguessable export path: 128 random bits. Only the mount command learns it. */
export function newExportPath(): string {
  return EXPORT_PREFIX + Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("hex");
}

/** mount_nfs / mount.nfs options, each for a reason an agent's sandbox cares about. */
export function mountOptions(platform: NodeJS.Platform, s: NfsMountSpec): string[] {
  // Attribute cache in whole seconds; 0 would send a GETATTR before every use.
  const actimeo = Math.max(1, Math.ceil(s.metadataTtlMs / 1000));
  const common = [
    // Every macOS mounts v3 (4.1 only from macOS 26), and we serve only v3.
    "vers=3",
    // We serve TCP only: one connection, record marking, no UDP retransmit storms.
    "tcp",
    // No portmapper: the client is told where NFS and MOUNT listen (the same port).
    `port=${s.port}`,
    `mountport=${s.port}`,
    // soft + bounded timeo/retrans: if the daemon dies, a call fails with
    // ETIMEDOUT after about timeo*(retrans+1) instead of hanging the agent
    // forever. Not shorter: a healthy daemon can take seconds to answer the
    // first READ of a large file it must fetch from Postgres, and a soft mount
    // turns a slow answer into an error.
    "soft",
    "intr", // and Ctrl-C interrupts a waiting call
    "timeo=30", // tenths of a second: 3 s per try
    "retrans=4",
    // Match the daemon's metadata TTL: what the client caches it trusts as long as we do.
    `actimeo=${actimeo}`,
    // Ask for the server's full transfer size (FSINFO says the same).
    `rsize=${s.transferBytes}`,
    `wsize=${s.transferBytes}`,
    // Files here are data, never devices or setuid programs.
    "nosuid",
    "nodev",
    ...(s.readOnly ? ["ro"] : []),
  ];
  if (platform === "darwin") {
    return [
      ...common,
      // We do not serve NLM (lockd): fcntl/flock locks are kept by the local kernel,
      // which is right for one machine's processes sharing a mount.
      "locallocks",
      // After 30 s without an answer the mount is declared dead and unmounted,
      // instead of macOS's "Server connections interrupted" dialog waiting on a user.
      "deadtimeout=30",
      // Our server does not require a privileged source port, and a non-root
      // mount cannot bind one.
      "noresvport",
      // A name another mount creates must show up without waiting out a cached "no such file".
      "nonegnamecache",
      // Keys are stored in the form they were written; NFC is what Linux tools produce.
      "nfc",
      // Keep agent scratch space out of Finder's sidebar.
      "nobrowse",
    ];
  }
  return [
    ...common,
    // No lockd: locks are local to this machine's kernel.
    "nolock",
    "local_lock=all",
    "mountproto=tcp",
    // A create by another mount must not hide behind a cached negative lookup.
    "lookupcache=positive",
  ];
}

/** The command that mounts the server at the mount point. */
export function mountCommand(platform: NodeJS.Platform, s: NfsMountSpec): string[] {
  const source = `${s.host}:${s.exportPath}`;
  const o = mountOptions(platform, s).join(",");
  if (platform === "darwin") return ["/sbin/mount_nfs", "-o", o, source, s.mountpoint];
  return ["mount", "-t", "nfs", "-o", o, source, s.mountpoint];
}

export interface NfsMountEntry {
  source: string;
  mountpoint: string;
}

/** pgfiles NFS mounts at `mountpoint` (normally none or one). */
export async function nfsMountsAt(mountpoint: string): Promise<NfsMountEntry[]> {
  if (process.platform === "linux") {
    return mountsAt(mountpoint)
      .filter((m) => m.fstype.startsWith("nfs") && isOurSource(m.source))
      .map((m) => ({ source: m.source, mountpoint: m.mountpoint }));
  }
  // macOS: `mount` prints "SOURCE on MOUNTPOINT (nfs, nodev, nosuid, mounted by USER)".
  const out: NfsMountEntry[] = [];
  const r = await run(["/sbin/mount", "-t", "nfs"]);
  for (const line of r.stdout.split("\n")) {
    const m = /^(\S+) on (.+) \(nfs[,)]/.exec(line);
    if (m && m[2] === mountpoint && isOurSource(m[1])) out.push({ source: m[1], mountpoint: m[2] });
  }
  return out;
}

function isOurSource(source: string): boolean {
  const i = source.indexOf(":");
  return i > 0 && source.slice(i + 1).startsWith(EXPORT_PREFIX);
}

/**
 * Mounts the server at the mount point with the system's NFS client. A pgfiles
 * NFS mount already there (its daemon was killed) is force-unmounted first.
 */
export async function mountNfs(s: NfsMountSpec): Promise<{ reclaimed: boolean }> {
  let reclaimed = false;
  if ((await nfsMountsAt(s.mountpoint)).length > 0) {
    await unmountNfs(s.mountpoint, { force: true });
    reclaimed = true;
  }
  const cmd = mountCommand(process.platform, s);
  if (process.platform !== "darwin" && !fs.existsSync("/proc/fs/nfs") && !hasNfsFilesystem()) {
    throw new PgfilesError(
      `This Linux kernel has no NFS client (no "nfs" in /proc/filesystems; try modprobe nfs), so --backend nfs cannot mount here. Use --backend fuse, or \`pgfiles serve-nfs\` to serve without mounting.`,
    );
  }
  const r = await run(cmd);
  if (r.code !== 0) {
    throw new PgfilesError(`${cmd[0]} could not mount ${s.mountpoint}: ${r.stderr.trim() || `exit ${r.code}`}`);
  }
  return { reclaimed };
}

function hasNfsFilesystem(): boolean {
  try {
    return /\tnfs$/m.test(fs.readFileSync("/proc/filesystems", "utf8"));
  } catch {
    return false;
  }
}

/**
 * Unmounts the pgfiles NFS mount at `mountpoint`: a normal unmount first; if it
 * is busy or the server is gone, a forced one (macOS: umount -f, then diskutil
 * unmount force; Linux: umount -f, then -l).
 */
export async function unmountNfs(mountpoint: string, opts: { force?: boolean } = {}): Promise<"unmounted" | "forced" | "not-mounted"> {
  if ((await nfsMountsAt(mountpoint)).length === 0) return "not-mounted";
  if (!opts.force && (await run(["umount", mountpoint])).code === 0) return "unmounted";
  const attempts = process.platform === "darwin"
    ? [["umount", "-f", mountpoint], ["/usr/sbin/diskutil", "unmount", "force", mountpoint]]
    : [["umount", "-f", mountpoint], ["umount", "-l", mountpoint]];
  let last = "";
  for (const cmd of attempts) {
    const r = await run(cmd);
    if (r.code === 0 || (await nfsMountsAt(mountpoint)).length === 0) return "forced";
    last = r.stderr.trim();
  }
  throw new PgfilesError(`Could not unmount ${mountpoint}: ${last}`);
}

async function run(cmd: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const p = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    // A dead server can make umount wait: never longer than this.
    const timer = setTimeout(() => p.kill("SIGKILL"), 30_000);
    const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    clearTimeout(timer);
    return { code, stdout, stderr };
  } catch (e) {
    return { code: 127, stdout: "", stderr: (e as Error).message };
  }
}
