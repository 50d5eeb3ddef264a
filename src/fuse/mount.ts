// Mount and unmount a directory for the FUSE session. As root we call
// mount(8) ourselves with a /dev/fuse fd; as anyone else the setuid
// fusermount3 opens /dev/fuse, mounts, and hands the fd back over a unix
// socket (SCM_RIGHTS), exactly as libfuse does.
import fs from "node:fs";
import path from "node:path";
import { ptr } from "bun:ffi";
import { PgfilesError, type Errno } from "../errors.ts";
import { closeDevice, errno, libc, openDevice } from "./device.ts";

/** The filesystem type the kernel shows for our mounts (`fuse.` + subtype). */
export const FSTYPE = "fuse.pgfiles";
const FSNAME = "pgfiles";

export type MountErrorCode = "ENOENT" | "ENOTDIR" | "EBUSY" | "EPERM" | "EIO";

/** One sentence for the person; `code` for the caller to switch on. */
export class MountError extends PgfilesError {
  constructor(
    readonly code: MountErrorCode,
    message: string,
    cause?: unknown,
  ) {
    // errors.ts's Errno has no EBUSY/EPERM: the nearest there is EIO; `code` is exact.
    const errno: Errno = code === "ENOENT" || code === "ENOTDIR" ? code : "EIO";
    super(message, { exitCode: 1, errno, cause });
    this.name = "MountError";
  }
}

export interface MountOptions {
  readOnly?: boolean;
  /**
   * Let users other than the one mounting use the mount. Default: on for root
   * (the agent in the sandbox is rarely root), off otherwise, because
   * fusermount3 refuses it unless /etc/fuse.conf says user_allow_other.
   */
  allowOther?: boolean;
  /** Owner of the mount in the kernel's eyes (root mounts only); default: our uid/gid. */
  uid?: number;
  gid?: number;
  /**
   * Honour set-user-ID/set-group-ID bits (`pgfiles mount --suid`, root only). Off: the mount is `nosuid`, so a
   * row whose meta says mode 04755 and uid 0 (anyone who can INSERT into the table can write one) runs with
   * the caller's own privileges.
   */
  suid?: boolean;
  /** Honour device files (`pgfiles mount --dev`, root only). Off: the mount is `nodev`. */
  dev?: boolean;
}

export interface Mounted {
  /** Absolute path, symlinks of its parent resolved, as /proc/self/mountinfo shows it. */
  mountpoint: string;
  /** The session fd: give it to startSession. */
  fd: number;
  /** How it was mounted (decides how to unmount). */
  via: "mount" | "fusermount3";
  /** The directory had entries before: they are hidden while mounted (callers warn). */
  nonEmpty: boolean;
  /** A dead pgfiles mount was found there and lazily unmounted first. */
  reclaimed: boolean;
  /** /sys/fs/fuse/connections/<n> of this mount, if known. */
  connection?: number;
}

export interface MountEntry {
  mountpoint: string;
  fstype: string;
  /** major:minor of the mounted filesystem; for FUSE this names the connection. */
  dev: string;
  /** What is mounted: "pgfiles" for ours, "127.0.0.1:/pgfiles-…" for an NFS mount. */
  source: string;
}

/** The mounts at `mountpoint`, bottom to top, from /proc/self/mountinfo. */
export function mountsAt(mountpoint: string): MountEntry[] {
  let text: string;
  try {
    text = fs.readFileSync("/proc/self/mountinfo", "utf8");
  } catch {
    return [];
  }
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
    const fields = line.split(" ");
    const sep = fields.indexOf("-");
    if (sep < 0 || fields.length < sep + 2) continue;
    const mp = unescapeMountinfo(fields[4]);
    if (mp === mountpoint) out.push({ mountpoint: mp, fstype: fields[sep + 1], dev: fields[2], source: fields[sep + 2] ?? "" });
  }
  return out;
}

function unescapeMountinfo(s: string): string {
  // The kernel escapes space, tab, newline and backslash as \ooo.
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** The fusectl connection number of a FUSE mount: its device number (major << 20 | minor). */
function connectionOf(entry: MountEntry | undefined): number | undefined {
  if (!entry?.fstype.startsWith("fuse")) return undefined;
  const [major, minor] = entry.dev.split(":").map(Number);
  if (!Number.isInteger(major) || !Number.isInteger(minor)) return undefined;
  return major * 2 ** 20 + minor;
}

/**
 * Absolute path with the parent's symlinks resolved. realpath of the path
 * itself fails on a dead mount (ENOTCONN), so only the parent is resolved.
 */
export function canonicalMountpoint(p: string): string {
  const abs = path.resolve(p);
  if (abs === "/") return abs;
  let parent = path.dirname(abs);
  try {
    parent = fs.realpathSync(parent);
  } catch {
    // A missing parent: the stat below reports the mount point as missing.
  }
  return path.join(parent, path.basename(abs));
}

type PathState = { kind: "dir" } | { kind: "missing" } | { kind: "notdir" } | { kind: "dead" } | { kind: "hung" } | { kind: "error"; code: string };

/**
 * stat(2) off the event loop, with a deadline: a mount whose daemon is stopped
 * (SIGSTOP, debugger) never answers, and we must not hang with it.
 */
async function probe(mountpoint: string, timeoutMs = 2000): Promise<PathState> {
  let timer: Timer | undefined;
  const deadline = new Promise<PathState>((resolve) => {
    timer = setTimeout(() => resolve({ kind: "hung" }), timeoutMs);
  });
  // statfs, not stat: the kernel answers stat of a dead mount's root from its
  // attribute cache for up to the attr TTL, but always sends STATFS to the daemon.
  const stat = fs.promises.stat(mountpoint).then(
    async (st): Promise<PathState> => {
      if (!st.isDirectory()) return { kind: "notdir" };
      if (mountsAt(mountpoint).at(-1)?.fstype === FSTYPE) await fs.promises.statfs(mountpoint);
      return { kind: "dir" };
    },
  ).catch(
    (e: NodeJS.ErrnoException): PathState => {
      if (e.code === "ENOENT") return { kind: "missing" };
      if (e.code === "ENOTDIR") return { kind: "missing" };
      if (e.code === "ENOTCONN" || e.code === "ECONNABORTED") return { kind: "dead" };
      return { kind: "error", code: e.code ?? "EIO" };
    },
  );
  try {
    return await Promise.race([stat, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

export type MountState = "none" | "alive" | "stale" | "unresponsive";

/** What is at `mountpoint` now, as far as pgfiles is concerned. */
export async function mountState(mountpoint: string): Promise<MountState> {
  const mp = canonicalMountpoint(mountpoint);
  const top = mountsAt(mp).at(-1);
  const st = await probe(mp);
  if (st.kind === "dead") return "stale";
  if (top?.fstype !== FSTYPE) return "none";
  return st.kind === "hung" ? "unresponsive" : "alive";
}

/**
 * Mounts a FUSE filesystem at `mountpoint` and returns the session fd.
 * Reclaims a dead mount left there by a crashed daemon; refuses a path that
 * is missing, not a directory, or already served by a live pgfiles.
 */
export async function mount(mountpoint: string, opts: MountOptions = {}): Promise<Mounted> {
  const mp = canonicalMountpoint(mountpoint);
  let reclaimed = false;
  // Mounts can be stacked: a dead one may sit on another dead one.
  for (let attempt = 0; ; attempt++) {
    const st = await probe(mp);
    if (st.kind === "dead") {
      if (attempt >= 8) throw new MountError("EBUSY", `${mp} has a dead mount that could not be removed; try: umount -l ${mp}`);
      await detach(mp);
      reclaimed = true;
      continue;
    }
    if (st.kind === "missing") throw new MountError("ENOENT", `The mount point ${mp} does not exist; create the directory first.`);
    if (st.kind === "notdir") throw new MountError("ENOTDIR", `The mount point ${mp} is not a directory.`);
    if (st.kind === "hung") throw new MountError("EBUSY", `${mp} is a mount that does not answer (its daemon may be stopped); unmount it with: umount -l ${mp}`);
    if (st.kind === "error") throw new MountError("EIO", `Cannot use ${mp} as a mount point (${st.code}).`);
    break;
  }
  if (mountsAt(mp).at(-1)?.fstype === FSTYPE) {
    throw new MountError("EBUSY", `${mp} is already mounted by pgfiles; unmount it first (pgfiles unmount ${mp}).`);
  }
  let nonEmpty = false;
  try {
    nonEmpty = (await fs.promises.readdir(mp)).length > 0;
  } catch (e) {
    throw new MountError("EPERM", `Cannot read the mount point ${mp} (${(e as NodeJS.ErrnoException).code}).`, e);
  }

  const root = process.getuid?.() === 0;
  const fd = root ? await mountAsRoot(mp, opts) : await mountWithFusermount(mp, opts);
  const top = mountsAt(mp).at(-1);
  if (root && top) raiseReadahead(top.dev);
  return { mountpoint: mp, fd, via: root ? "mount" : "fusermount3", nonEmpty, reclaimed, connection: connectionOf(top) };
}

/**
 * The kernel reads ahead at most 128 KiB on a FUSE mount by default; 1 MiB
 * matches max_write and turns sequential reads into 1 MiB requests (measured
 * in ../shared: 128 KiB → 1 MiB reads). Root only (sysfs); best effort.
 */
function raiseReadahead(dev: string): void {
  try {
    fs.writeFileSync(`/sys/class/bdi/${dev}/read_ahead_kb`, "1024");
  } catch {
    // Not root, or no sysfs: the default readahead still works, only slower.
  }
}

async function run(cmd: string[], extra: Partial<Parameters<typeof Bun.spawn>[1]> = {}): Promise<{ code: number; stderr: string }> {
  // Always asynchronous: unmount (and mount's own checks) may stat the mount,
  // whose requests this very process must be free to answer.
  const p = Bun.spawn(cmd, { stdin: "ignore", stdout: "ignore", stderr: "pipe", ...extra } as Parameters<typeof Bun.spawn>[1]);
  const stderr = p.stderr instanceof ReadableStream ? await new Response(p.stderr).text() : "";
  return { code: await p.exited, stderr: stderr.trim() };
}

function mountOptions(opts: MountOptions, root: boolean): string[] {
  // nosuid,nodev unless root asked otherwise: a row's meta is anyone's who can write the table, so its mode
  // bits must not grant privileges. (fusermount3 adds both for non-root callers anyway; say it for every path.)
  const o = ["default_permissions", ...(opts.suid ? [] : ["nosuid"]), ...(opts.dev ? [] : ["nodev"])];
  if (opts.allowOther ?? root) o.push("allow_other");
  if (opts.readOnly) o.push("ro");
  return o;
}

async function mountAsRoot(mp: string, opts: MountOptions): Promise<number> {
  const fd = openDevice();
  const uid = opts.uid ?? process.getuid?.() ?? 0;
  const gid = opts.gid ?? process.getgid?.() ?? 0;
  // The child sees our fd as its fd 3 (stdio[3]); -i: no mount.fuse helper.
  const o = [`fd=3`, `rootmode=40000`, `user_id=${uid}`, `group_id=${gid}`, ...mountOptions(opts, true)].join(",");
  const r = await run(["mount", "-i", "-t", FSTYPE, "-o", o, FSNAME, mp], { stdio: ["ignore", "ignore", "pipe", fd] } as never);
  if (r.code !== 0) {
    closeDevice(fd);
    throw new MountError("EPERM", `mount(8) could not mount ${mp}: ${r.stderr || `exit ${r.code}`}`);
  }
  return fd;
}

// socket(2) constants and struct layouts, identical on x86_64 and aarch64 (LP64):
//   struct iovec   { void *iov_base; size_t iov_len; }                        16 bytes
//   struct msghdr  { void *msg_name; socklen_t msg_namelen; /*pad 4*/
//                    struct iovec *msg_iov; size_t msg_iovlen;
//                    void *msg_control; size_t msg_controllen; int msg_flags; /*pad 4*/ }  56 bytes
//     offsets: name 0, namelen 8, iov 16, iovlen 24, control 32, controllen 40, flags 48
//   struct cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; /* data at 16 */ }
//     CMSG_SPACE(sizeof(int)) = 24, CMSG_LEN(sizeof(int)) = 20
const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_DONTWAIT = 0x40;
const MSG_CMSG_CLOEXEC = 0x40000000;

function socketpair(): [number, number] {
  const fds = new Int32Array(2);
  if (libc().socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ptr(fds)) !== 0) {
    throw new MountError("EIO", `socketpair failed (errno ${errno()}).`);
  }
  return [fds[0], fds[1]];
}

/** Receives one fd sent with SCM_RIGHTS; undefined if none is waiting. */
function receiveFd(sock: number): number | undefined {
  const data = new Uint8Array(8);
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(BigInt(ptr(data)), 0);
  iov.writeBigUInt64LE(BigInt(data.length), 8);
  const control = Buffer.alloc(24);
  const msg = Buffer.alloc(56);
  msg.writeBigUInt64LE(BigInt(ptr(iov)), 16);
  msg.writeBigUInt64LE(1n, 24);
  msg.writeBigUInt64LE(BigInt(ptr(control)), 32);
  msg.writeBigUInt64LE(BigInt(control.length), 40);
  const n = Number(libc().recvmsg(sock, ptr(msg), MSG_DONTWAIT | MSG_CMSG_CLOEXEC));
  if (n <= 0) return undefined;
  const controllen = Number(msg.readBigUInt64LE(40));
  if (controllen < 20) return undefined;
  if (control.readInt32LE(8) !== SOL_SOCKET || control.readInt32LE(12) !== SCM_RIGHTS) return undefined;
  return control.readInt32LE(16);
}

async function mountWithFusermount(mp: string, opts: MountOptions): Promise<number> {
  const [mine, theirs] = socketpair();
  try {
    const o = [`fsname=${FSNAME}`, `subtype=pgfiles`, ...mountOptions(opts, false)].join(",");
    // fusermount3 finds its end of the socket through _FUSE_COMMFD (our stdio[3]).
    const r = await run(["fusermount3", "-o", o, "--", mp], {
      stdio: ["ignore", "ignore", "pipe", theirs],
      env: { ...process.env, _FUSE_COMMFD: "3" },
    } as never);
    const fd = receiveFd(mine);
    if (r.code !== 0 || fd === undefined) {
      if (fd !== undefined) closeDevice(fd);
      throw new MountError("EPERM", `fusermount3 could not mount ${mp}: ${r.stderr || `exit ${r.code}`}`);
    }
    return fd;
  } finally {
    libc().close(mine);
    libc().close(theirs);
  }
}

/**
 * Unmounts the pgfiles mount at `mountpoint` (no-op if there is none).
 * Tries a normal unmount first; if the mount is busy (a shell inside it, an
 * open file), detaches it lazily: it disappears from the namespace now and
 * the kernel lets go when the last user does. Returns how it went.
 */
export async function unmount(mountpoint: string): Promise<"unmounted" | "lazy" | "not-mounted"> {
  const mp = canonicalMountpoint(mountpoint);
  const top = mountsAt(mp).at(-1);
  if (!top?.fstype.startsWith("fuse")) return "not-mounted";
  const root = process.getuid?.() === 0;
  const first = root ? await run(["umount", mp]) : await run(["fusermount3", "-u", "--", mp]);
  if (first.code === 0) return "unmounted";
  await detach(mp);
  return "lazy";
}

/** Lazy unmount (also reclaims a dead mount: "Transport endpoint is not connected"). */
async function detach(mp: string): Promise<void> {
  const root = process.getuid?.() === 0;
  const r = root ? await run(["umount", "-l", mp]) : await run(["fusermount3", "-u", "-z", "--", mp]);
  if (r.code !== 0) throw new MountError("EBUSY", `Could not unmount ${mp}: ${r.stderr || `exit ${r.code}`}`);
}

/**
 * Last resort for a mount whose daemon hangs: abort its FUSE connection, so
 * every waiting request fails with ENOTCONN and the mount can be detached.
 * Needs fusectl at /sys/fs/fuse/connections (root may mount it there).
 */
export function abortConnection(connection: number): boolean {
  try {
    fs.writeFileSync(`/sys/fs/fuse/connections/${connection}/abort`, "1");
    return true;
  } catch {
    return false;
  }
}

/** The FUSE connection number of the mount at `mountpoint`, if it is one. */
export function connectionAt(mountpoint: string): number | undefined {
  return connectionOf(mountsAt(canonicalMountpoint(mountpoint)).at(-1));
}
