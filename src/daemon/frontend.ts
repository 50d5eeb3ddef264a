// The two ways a daemon hands its vfs to the operating system: a FUSE session
// on a kernel mount (Linux), or an NFSv3 server on 127.0.0.1 that the system's
// own NFS client mounts (macOS; Linux kernels with an NFS client; or nobody:
// `pgfiles serve-nfs`). The daemon drives either through this one shape.
import type { Config } from "../config/index.ts";
import { mount as fuseMount, unmount as fuseUnmount } from "../fuse/mount.ts";
import { startSession } from "../fuse/session.ts";
import type { Journal } from "../journal/journal.ts";
import type { Logger } from "../log.ts";
import { mountNfs, newExportPath, nfsMountsAt, unmountNfs } from "../nfs/mount.ts";
import { NFS_TRANSFER_BYTES, startNfsServer } from "../nfs/server.ts";
import type { Invalidation, PgVfs } from "../vfs/vfs.ts";

export type Backend = "fuse" | "nfs";

export interface Frontend {
  readonly backend: Backend;
  /** Things the person mounting should hear (a hidden non-empty directory, a reclaimed stale mount). */
  readonly warnings: string[];
  /** Where the NFS server listens (nfs only). */
  readonly nfs?: { host: string; port: number; exportPath: string };
  /** Drop what the kernel cached of a name or an inode that changed elsewhere. */
  invalidate(i: Invalidation): Promise<void>;
  /** Requests served, for status. */
  io(): { requests: number; passthrough: boolean; passthroughOpens: number };
  /** Takes the mount away: after this no new writes arrive. */
  unmount(): Promise<void>;
  /** Stops serving; call after unmount. */
  stop(): Promise<void>;
  /** Resolves when the mount went away without us (someone ran umount). */
  readonly ended: Promise<void>;
}

export interface FrontendOptions {
  vfs: PgVfs;
  journal: Journal;
  config: Config;
  log: Logger;
  /** null: serve NFS without mounting it anywhere (`pgfiles serve-nfs`). */
  mountpoint: string | null;
  /** NFS: the port to listen on (0 = any free one). */
  port?: number;
  /** FUSE: mount without nosuid / nodev (root asked for it; see fuse/mount.ts). */
  suid?: boolean;
  dev?: boolean;
}

export async function startFrontend(backend: Backend, o: FrontendOptions): Promise<Frontend> {
  return backend === "fuse" ? startFuse(o) : startNfs(o);
}

async function startFuse(o: FrontendOptions): Promise<Frontend> {
  if (!o.mountpoint) throw new Error("a FUSE frontend needs a mount point");
  const mounted = await fuseMount(o.mountpoint, { readOnly: o.config.readOnly, suid: o.suid, dev: o.dev });
  const warnings: string[] = [];
  if (mounted.nonEmpty) warnings.push(`${o.mountpoint} was not empty: its files are hidden while pgfiles is mounted there.`);
  if (mounted.reclaimed) warnings.push(`A stale pgfiles mount at ${o.mountpoint} was cleaned up first.`);
  const ttl = Math.min(o.config.metadataTtlMs, 1000);
  // Passthrough needs CAP_SYS_ADMIN (FUSE_DEV_IOC_BACKING_OPEN): as root, unless switched off.
  const passthrough = o.config.passthrough && process.getuid?.() === 0;
  const session = startSession({ fd: mounted.fd, vfs: o.vfs, readers: 2, entryTtlMs: ttl, attrTtlMs: ttl, log: o.log, passthrough });
  return {
    backend: "fuse",
    warnings,
    invalidate: (i) => ("ino" in i ? session.invalidateInode(i.ino) : session.invalidateEntry(i.parent, i.name)),
    io: () => {
      const s = session.stats();
      return { requests: s.requests, passthrough: s.passthrough, passthroughOpens: s.passthroughOpens };
    },
    unmount: async () => {
      await fuseUnmount(mounted.mountpoint).catch((e) => o.log.warn({ err: (e as Error).message }, "unmount failed"));
    },
    stop: () => session.stop().catch(() => {}),
    ended: session.done,
  };
}

/** How often the daemon checks that its NFS mount is still there. */
const NFS_MOUNT_CHECK_MS = 2000;

async function startNfs(o: FrontendOptions): Promise<Frontend> {
  const host = "127.0.0.1";
  const exportPath = newExportPath();
  const server = await startNfsServer({
    vfs: o.vfs,
    journal: o.journal,
    host,
    port: o.port ?? 0,
    exportPath,
    ownerUid: process.getuid?.() ?? 0,
    log: o.log,
    // Mounting our own server: that MNT is the only one it will need (serve-nfs, no mount point, allows more).
    mountOnce: o.mountpoint !== null,
  });
  const warnings: string[] = [];
  let ended!: () => void;
  const endedP = new Promise<void>((resolve) => (ended = resolve));
  let watch: Timer | undefined;
  const mountpoint = o.mountpoint;
  if (mountpoint) {
    try {
      const r = await mountNfs({
        host, port: server.port, exportPath, mountpoint,
        metadataTtlMs: o.config.metadataTtlMs, readOnly: o.config.readOnly, transferBytes: NFS_TRANSFER_BYTES,
      });
      if (r.reclaimed) warnings.push(`A stale pgfiles mount at ${mountpoint} was cleaned up first.`);
    } catch (e) {
      await server.close();
      throw e;
    }
    // umount(8) by someone else, or macOS's dead timeout: the mount is gone, so is our job.
    watch = setInterval(async () => {
      if ((await nfsMountsAt(mountpoint)).length === 0) {
        clearInterval(watch);
        ended();
      }
    }, NFS_MOUNT_CHECK_MS);
  }
  return {
    backend: "nfs",
    warnings,
    nfs: { host, port: server.port, exportPath },
    // The NFS client revalidates by its attribute timeout (actimeo): nothing to push.
    invalidate: async () => {},
    io: () => ({ requests: server.stats().requests, passthrough: false, passthroughOpens: 0 }),
    unmount: async () => {
      clearInterval(watch);
      if (mountpoint) await unmountNfs(mountpoint).catch((e) => o.log.warn({ err: (e as Error).message }, "unmount failed"));
    },
    stop: async () => {
      clearInterval(watch);
      await server.close();
      ended();
    },
    ended: endedP,
  };
}
