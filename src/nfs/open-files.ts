// NFS has no open or close; the vfs does (a changed file becomes a version at
// its close, durably at fsync). This keeps one vfs open per file the NFS
// clients are using, by fileid:
//
// - WRITE opens for writing (or reuses the open) and writes into it: many
//   WRITEs make one version, as many write(2)s before one close(2) do.
// - COMMIT is fsync: the version is recorded durably in the journal, then the
//   open is closed. Its answer is what makes a client drop its copy.
// - A file nobody touched for IDLE_CLOSE_MS is closed (close(2): a version,
//   not yet fsynced) so a client that never COMMITs still makes a version.
// - READ reads through the open when there is one (read-your-writes: the
//   client's own UNSTABLE writes), else through a read-only open it keeps for
//   the same idle time, so a large file read in 1 MiB pieces is opened once.
//
// Every step on one file runs under that file's lock: an idle close never
// races a WRITE, and two WRITEs never make two opens.
//
// A write open that cannot be closed (its flush or release throws: a full
// cache disk) may have lost UNSTABLE writes that were answered with the
// server's write verifier and never COMMITted. RFC 1813 says the verifier
// must change then: `onLost` is told, the server takes a new verifier, and
// the COMMIT that follows answers it, so the client sends those writes again.
import { Errno, VfsError, type Caller } from "../vfs/types.ts";
import type { PgVfs } from "../vfs/vfs.ts";

/**
 * How long an unused open stays. Long enough that a client's burst of WRITEs
 * (a Mac sends up to 16 at once, then COMMIT) lands in one version; short
 * enough that a client that never COMMITs (or died) gets its version recorded
 * within seconds, and that another writer's change shows soon (the vfs keeps an
 * open file's attributes as this mount made them).
 */
export const IDLE_CLOSE_MS = 5_000;

/**
 * How long a READ waits for its file to open (a cold body comes from Postgres
 * first) before answering NFS3ERR_JUKEBOX, "try again later". Well under the
 * client's soft timeout (timeo=3 s, src/nfs/mount.ts): a slow fetch becomes a
 * retry, not an ETIMEDOUT. The open goes on meanwhile and the retry takes it.
 */
export const SLOW_OPEN_MS = 2_000;

const O_RDONLY = 0;
const O_RDWR = 2;

/** A read-only open still on its way (its body coming from Postgres), that a READ gave up waiting for. */
interface Opening {
  ino: bigint;
  settled: Promise<void>;
  fh?: bigint;
  error?: unknown;
  doneAt?: number;
}

interface OpenState {
  ino: bigint;
  fh: bigint;
  write: boolean;
  lastUsed: number;
}

export interface OpenFilesLog {
  warn(obj: object, msg?: string): void;
}

/** Told when a write open could not be closed: its UNSTABLE writes may be lost. */
export type OnLost = (fileid: bigint, err: unknown) => void;

export class OpenFiles {
  private readonly states = new Map<bigint, OpenState>();
  private readonly opening = new Map<bigint, Opening>();
  private readonly locks = new Map<bigint, Promise<unknown>>();
  private readonly sweeper: ReturnType<typeof setInterval>;
  private closed = false;

  constructor(
    private readonly vfs: PgVfs,
    private readonly log: OpenFilesLog,
    private readonly idleMs = IDLE_CLOSE_MS,
    private readonly onLost: OnLost = () => {},
  ) {
    this.sweeper = setInterval(() => void this.sweep(), Math.max(50, Math.min(1000, idleMs / 4)));
    this.sweeper.unref?.();
  }

  /** Runs `fn` alone among everything done to `fileid`'s open. */
  lock<T>(fileid: bigint, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(fileid) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => {});
    this.locks.set(fileid, tail);
    void tail.then(() => {
      if (this.locks.get(fileid) === tail) this.locks.delete(fileid);
    });
    return next;
  }

  /** An open of `fileid` exists (its attributes are the ones the writes made). Call under the lock or for a hint. */
  isOpen(fileid: bigint): boolean {
    return this.states.has(fileid);
  }

  /** The open's fh when it is open for writing (a truncate goes through it). */
  writeFh(fileid: bigint): bigint | undefined {
    const s = this.states.get(fileid);
    return s?.write ? s.fh : undefined;
  }

  /** Under the lock: an open good for reading, made if needed. */
  async forRead(fileid: bigint, ino: bigint, who: Caller): Promise<bigint> {
    const s = this.states.get(fileid);
    if (s && s.ino === ino) {
      s.lastUsed = Date.now();
      return s.fh;
    }
    if (s) await this.end(fileid, s);
    let o = this.opening.get(fileid);
    if (o && o.ino !== ino) {
      this.dropOpening(fileid, o);
      o = undefined;
    }
    if (!o) {
      const started: Opening = { ino, settled: Promise.resolve() };
      started.settled = this.vfs.open(ino, O_RDONLY, who).then(
        (r) => {
          started.fh = r.fh;
          started.doneAt = Date.now();
          // Nobody will come for it (the server stopped, or another open replaced it).
          if (this.closed || this.opening.get(fileid) !== started) void this.vfs.release(ino, r.fh).catch(() => {});
        },
        (e) => {
          started.error = e;
          started.doneAt = Date.now();
        },
      );
      this.opening.set(fileid, started);
      o = started;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([o.settled, new Promise<void>((resolve) => (timer = setTimeout(resolve, SLOW_OPEN_MS)))]);
    clearTimeout(timer);
    if (o.doneAt === undefined) throw new VfsError(Errno.EAGAIN, "the file is still being fetched from PostgreSQL; try again");
    this.opening.delete(fileid);
    if (o.error !== undefined) throw o.error;
    return this.adopt(fileid, ino, o.fh!, false);
  }

  /** Forgets an open a READ gave up on; released now if it finished, else when it does. */
  private dropOpening(fileid: bigint, o: Opening) {
    if (this.opening.get(fileid) === o) this.opening.delete(fileid);
    if (o.fh !== undefined) void this.vfs.release(o.ino, o.fh).catch(() => {});
  }

  /** Under the lock: an open good for writing, made if needed (a read-only open is replaced). */
  async forWrite(fileid: bigint, ino: bigint, who: Caller): Promise<bigint> {
    const s = this.states.get(fileid);
    if (s && s.ino === ino && s.write) {
      s.lastUsed = Date.now();
      return s.fh;
    }
    const fh = (await this.vfs.open(ino, O_RDWR, who)).fh;
    if (s) await this.end(fileid, s);
    return this.adopt(fileid, ino, fh, true);
  }

  /** Takes over an open the caller made (CREATE's). Under the lock. */
  adopt(fileid: bigint, ino: bigint, fh: bigint, write: boolean): bigint {
    if (this.closed) {
      // The server is stopping: nobody would close it later.
      void this.vfs.release(ino, fh);
      return fh;
    }
    this.states.set(fileid, { ino, fh, write, lastUsed: Date.now() });
    return fh;
  }

  /**
   * Under the lock. COMMIT: the file's content is a version, durably in the
   * journal, before this returns (fsync); the open is closed. With no open,
   * the version an earlier close recorded is made durable (fsync of a file
   * opened just for it records nothing new).
   */
  async commit(fileid: bigint, ino: bigint, who: Caller): Promise<void> {
    const s = this.states.get(fileid);
    if (s && s.ino === ino) {
      await this.vfs.fsync(ino, s.fh);
      await this.end(fileid, s);
      return;
    }
    if (s) await this.end(fileid, s);
    const { fh } = await this.vfs.open(ino, O_RDONLY, who);
    try {
      await this.vfs.fsync(ino, fh);
    } finally {
      await this.vfs.release(ino, fh);
    }
  }

  /** Under the lock, or after the file was removed: closes the open, if any (close(2): a version if changed). */
  async close(fileid: bigint): Promise<void> {
    const s = this.states.get(fileid);
    if (s) await this.end(fileid, s);
  }

  private async end(fileid: bigint, s: OpenState) {
    if (this.states.get(fileid) === s) this.states.delete(fileid);
    try {
      try {
        if (s.write) await this.vfs.flush(s.ino, s.fh, { uid: 0, gid: 0, pid: 0 });
      } finally {
        await this.vfs.release(s.ino, s.fh);
      }
    } catch (e) {
      // The open is gone either way (the vfs ends its state at release): what it held may not be a version.
      if (s.write) this.onLost(fileid, e);
      throw e;
    }
  }

  private async sweep() {
    const now = Date.now();
    // Opens a READ gave up on and no retry came for.
    for (const [fileid, o] of this.opening) if (o.doneAt !== undefined && now - o.doneAt >= this.idleMs) this.dropOpening(fileid, o);
    for (const [fileid, s] of this.states) {
      if (now - s.lastUsed < this.idleMs || this.locks.has(fileid)) continue;
      await this.lock(fileid, async () => {
        const cur = this.states.get(fileid);
        if (cur === s && Date.now() - s.lastUsed >= this.idleMs) await this.end(fileid, s);
      }).catch((e) => this.log.warn({ fileid: String(fileid), err: (e as Error).message }, "nfs: closing an idle file failed"));
    }
  }

  /**
   * Server shutdown: every open is fsynced (a version, durable) and closed.
   * All files at once: one whose lock a stuck call holds does not keep the
   * others open.
   */
  async closeAll(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const [fileid, o] of this.opening) this.dropOpening(fileid, o);
    await Promise.all(
      [...this.states.keys()].map((fileid) =>
        this.lock(fileid, async () => {
          const s = this.states.get(fileid);
          if (!s) return;
          try {
            if (s.write) await this.vfs.fsync(s.ino, s.fh);
          } finally {
            await this.end(fileid, s);
          }
        }).catch((e) => this.log.warn({ fileid: String(fileid), err: (e as Error).message }, "nfs: closing a file at shutdown failed")),
      ),
    );
  }
}
