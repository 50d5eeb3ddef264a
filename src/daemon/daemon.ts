// One mount's lifetime: journal, pool, vfs, kernel session, flusher, control
// socket, signals, and a bounded clean shutdown that never loses data.
import type { Config } from "../config/index.ts";
import { OfflineError } from "../errors.ts";
import { Journal } from "../journal/journal.ts";
import type { Logger } from "../log.ts";
import { connect, describe, dsnHost, type Sql } from "../store/connect.ts";
import { checkSchema } from "../store/store.ts";
import { Flusher } from "../sync/flusher.ts";
import { Follower } from "../sync/follower.ts";
import { Errno, VfsError } from "../vfs/types.ts";
import { PgVfs } from "../vfs/vfs.ts";
import { serve, type Request } from "./control.ts";
import { startFrontend, type Backend, type Frontend } from "./frontend.ts";
import { type MountRecord, removeRecord, socketPath, writeRecord } from "./registry.ts";
import { FlushRate, journalStatus } from "./status.ts";

/** Strict mode: how long close/fsync wait for Postgres before failing with EIO (the version stays queued). */
const STRICT_WAIT_MS = 30_000;

export interface DaemonOptions {
  config: Config;
  dsn: string;
  /** null: serve NFS without mounting (`pgfiles serve-nfs`): no registry record, no control socket. */
  mountpoint: string | null;
  /** FUSE (Linux) or NFS (macOS). Default fuse. */
  backend?: Backend;
  /** NFS: the port to listen on (default: any free one). */
  port?: number;
  /** FUSE, root only (`mount --suid`, `--dev`): honour setuid/setgid bits, device files. Default: nosuid,nodev. */
  suid?: boolean;
  dev?: boolean;
  /** Called once the frontend serves, before the daemon settles into running. */
  onServing?: (frontend: Frontend) => void;
  log: Logger;
  /** How long shutdown may spend flushing before it leaves the rest queued. */
  drainTimeoutMs?: number;
}

export interface UnmountResult {
  flushed: number;
  /** Versions left in the journal (held ones included). */
  pending: number;
  offline: string | null;
  /** Versions Postgres refused, left held in the journal, and its reasons. */
  held?: number;
  heldReasons?: string[];
}

/** How long held versions wait before their next try: doubling from the first to the last. */
const HELD_RETRY_MS = { first: 2_000, max: 60_000 };

/** Puts held versions back into the flow now and then (capped backoff), and at once when asked. */
function heldRetrier(journal: Journal, poke: () => void) {
  let wait = HELD_RETRY_MS.first;
  let next = Date.now() + wait;
  const release = () => {
    if (journal.releaseHeld() > 0) poke();
  };
  const timer = setInterval(() => {
    if (journal.pendingCounts().held === 0) {
      wait = HELD_RETRY_MS.first;
      next = Date.now() + wait;
      return;
    }
    if (Date.now() < next) return;
    release();
    wait = Math.min(HELD_RETRY_MS.max, wait * 2);
    next = Date.now() + wait;
  }, 500);
  return {
    now: release,
    stop: () => clearInterval(timer),
  };
}

/** Runs until unmounted (by `pgfiles unmount`, a signal, or umount). */
export async function runDaemon(o: DaemonOptions): Promise<UnmountResult> {
  const { config, log } = o;
  const journal = new Journal({ cacheDir: config.cacheDir, dsn: o.dsn, prefix: config.prefix, cacheMaxSize: config.cacheMaxSize });
  journal.collectGarbage();
  journal.releaseHeld();
  journal.checkpointInBackground((m) => log.warn({ err: m }, "journal checkpoint failed"));
  const sql: Sql = connect({ dsn: o.dsn, poolSize: config.poolSize, preparedStatements: config.preparedStatements, connectTimeout: 5 });
  const backend = o.backend ?? "fuse";
  const mp = o.mountpoint;
  const record: MountRecord = {
    pid: process.pid, mountpoint: mp ?? "", socket: mp ? socketPath(mp) : "", prefix: config.prefix, journal: journal.dir,
    backend, startedAt: Date.now(), state: "starting", warnings: [],
  };
  // Only a mount has a record (how `unmount` and `status` find it); serve-nfs is found by its port.
  const saveRecord = () => void (mp && writeRecord(record));
  saveRecord();

  // Postgres away at mount time is not an error: serve from the journal and cache.
  let online = true;
  try {
    await checkSchema(sql);
  } catch (e) {
    const err = describe(e, dsnHost(o.dsn));
    if (!(err instanceof OfflineError)) {
      record.state = "failed";
      record.error = err.message;
      saveRecord();
      await sql.end({ timeout: 2 });
      journal.close();
      throw err;
    }
    online = false;
    record.warnings!.push(`${err.message} Mounting from the local journal and cache; changes flush when it is back.`);
  }

  const flusher = new Flusher({ journal, sql, dsn: o.dsn, log });
  const vfs = new PgVfs({
    journal,
    sql: () => (flusher.state === "offline" || !online ? null : sql),
    prefix: config.prefix,
    readOnly: config.readOnly,
    metadataTtlMs: config.metadataTtlMs,
    log,
    ...(config.strict ? { waitForPostgres: (ids: string[]) => waitFlushed(ids) } : {}),
  });

  /** Strict mode: wakes the flusher and waits until the versions left the journal (are in Postgres). */
  async function waitFlushed(ids: string[]) {
    const deadline = Date.now() + STRICT_WAIT_MS;
    while (ids.some((id) => journal.pendingById(id))) {
      background?.poke(); // wakes the flusher if it sleeps between rounds
      if (Date.now() > deadline) {
        throw new VfsError(Errno.EIO, `PostgreSQL did not take the version within ${STRICT_WAIT_MS / 1000} s (strict mode); it stays queued in the journal.`);
      }
      await Bun.sleep(5);
    }
  }

  await vfs.loadRoot();

  let frontend: Frontend;
  try {
    frontend = await startFrontend(backend, { vfs, journal, config, log, mountpoint: mp, port: o.port, suid: o.suid, dev: o.dev });
  } catch (e) {
    record.state = "failed";
    record.error = (e as Error).message;
    saveRecord();
    await sql.end({ timeout: 2 });
    journal.close();
    throw e;
  }
  record.warnings!.push(...frontend.warnings);

  // While Postgres is (or was last seen) away, probe it every few seconds so
  // reads go back to it as soon as it returns, even with nothing to flush.
  let background: ReturnType<Flusher["run"]> | undefined;
  const probe = setInterval(async () => {
    if (online && flusher.state !== "offline") return;
    try {
      await checkSchema(sql);
      online = true;
      if (flusher.state === "offline") {
        flusher.state = "online";
        // Back: whatever Postgres refused before may go through now (a grant restored with the server).
        retryHeld.now();
        // Back: drain now rather than at the end of the flusher's backoff (up to 30 s).
        background?.poke();
      }
    } catch {
      online = false;
    }
  }, 3000);

  // Held versions (Postgres refused them: a revoked grant, a constraint) go back into the flow with capped
  // backoff, so that fixing the cause delivers them without anyone running a command.
  const retryHeld = heldRetrier(journal, () => background?.poke());

  // Flush four times a second rather than after every close: one Postgres
  // transaction per close (13,917 in the agent workload) cost 40% of the thread
  // that answers the kernel. Each round takes everything recorded until then in
  // as few transactions as possible; closed files are durable in the journal
  // meanwhile, and other mounts see them within about half a second.
  background = flusher.run({ intervalMs: 250 });

  // Other mounts' (and plain SQL's) changes: LISTEN, read the changed head rows,
  // reload those directories and drop what the kernel cached of them. PgBouncer in
  // transaction mode (prepared statements off) cannot LISTEN: poll every second.
  const follower = new Follower({
    sql,
    prefix: config.prefix,
    log,
    listen: config.preparedStatements,
    onChanges: async (changes) => {
      const invalidations = await vfs.remoteChanges(changes);
      await Promise.all(invalidations.map((i) => frontend.invalidate(i)));
    },
  });
  void follower.start();

  const rate = new FlushRate(journal);
  rate.sample();
  const sampler = setInterval(() => rate.sample(), 1000);
  let shuttingDown: Promise<UnmountResult> | null = null;
  let finished!: (r: UnmountResult) => void;
  const done = new Promise<UnmountResult>((resolve) => (finished = resolve));
  const shutdown = (progress?: (p: unknown) => void, wait = false): Promise<UnmountResult> => {
    shuttingDown ??= (async () => {
      log.info("unmounting");
      clearInterval(probe);
      retryHeld.stop();
      clearInterval(sampler);
      await follower.stop();
      await background?.stop();
      vfs.commitAll();
      // Unmount first: after this no new writes can arrive.
      await frontend.unmount();
      await frontend.stop();
      // One last try for what Postgres refused before: its cause may be fixed by now.
      journal.releaseHeld();
      const deadline = Date.now() + (wait ? Number.MAX_SAFE_INTEGER : (o.drainTimeoutMs ?? 30_000));
      let flushed = 0;
      let offline: string | null = null;
      const f = new Flusher({ journal, sql, dsn: o.dsn, log, onProgress: (v, b) => progress?.({ versions: flushed + v, bytes: b }) });
      for (;;) {
        try {
          const r = await f.flushAll();
          flushed += r.versions;
          offline = null;
          break;
        } catch (e) {
          offline = (e as Error).message;
          if (Date.now() > deadline) break;
          progress?.({ waiting: offline });
          await Bun.sleep(1000);
        }
      }
      const pending = journal.stats().pending;
      const heldRows = journal.heldRows();
      record.state = "stopped";
      if (mp) removeRecord(mp);
      control?.close();
      await sql.end({ timeout: 5 });
      journal.close();
      return { flushed, pending, offline, held: heldRows.length, heldReasons: [...new Set(heldRows.map((r) => r.held_reason ?? "refused"))] };
    })();
    void shuttingDown.then(finished);
    return shuttingDown;
  };

  const control = mp ? serve(record.socket, async (req: Request, progress) => {
    switch (req.cmd) {
      case "status": {
        const st = journalStatus(
          journal,
          { mount: mp, prefix: config.prefix, pid: process.pid, backend },
          { server: dsnHost(o.dsn), online: flusher.state !== "offline" && (online || flusher.state === "online"), reason: flusher.lastError },
        );
        return { ...st, flushRate: rate.current(), io: frontend.io() };
      }
      case "cache-stats":
        return journal.stats();
      case "cache-clear":
        return journal.clearCache();
      case "unmount":
        return await shutdown(progress, req.wait);
      case "changed": {
        // A CLI command on this machine changed these keys: show them before it returns.
        const invalidations = await vfs.localChanges(Array.isArray(req.keys) ? req.keys.filter((k) => typeof k === "string") : []);
        await Promise.all(invalidations.map((i) => frontend.invalidate(i)));
        return { invalidated: invalidations.length };
      }
    }
  }) : null;

  for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => void shutdown());
  record.state = "ready";
  saveRecord();
  for (const w of record.warnings!) log.warn(w);
  o.onServing?.(frontend);

  // Someone ran umount(8) directly: the session ends; shut down the rest.
  void frontend.ended.then(() => shutdown());
  return await done;
}
