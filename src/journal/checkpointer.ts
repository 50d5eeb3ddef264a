// WAL checkpoints off the thread that records versions.
//
// SQLite's automatic checkpoint runs inside the COMMIT that pushes the WAL past
// 1,000 pages, and a checkpoint fsyncs the WAL and the database file. In the
// mount that COMMIT is a close(2) some agent waits for: with PostgreSQL
// writing and fsyncing its own WAL on the same disk, those fsyncs took tens of
// milliseconds, and journal.record averaged 660 µs instead of ~120 µs
// (docs/benchmarks.md). Here the daemon's connection turns automatic
// checkpoints off and a Worker with its own connection runs PASSIVE
// checkpoints (which never block writers or readers) whenever the WAL has grown.
// Commits stay as durable as before: NORMAL commits survive a crash of the
// process, durable ones still fsync the WAL at COMMIT.
import type { Database } from "bun:sqlite";

export interface Checkpointer {
  stop(): void;
}

const source = `
const { Database } = require("bun:sqlite");
const fs = require("node:fs");
let db = null, timer = null;
onmessage = (ev) => {
  const m = ev.data;
  if (m.stop) { if (timer) clearInterval(timer); if (db) db.close(); db = null; postMessage({ stopped: true }); return; }
  db = new Database(m.file);
  db.exec("PRAGMA busy_timeout = 5000");
  timer = setInterval(() => {
    let size = 0;
    try { size = fs.statSync(m.file + "-wal").size; } catch { return; }
    if (size < m.thresholdBytes) return;
    try { db.exec("PRAGMA wal_checkpoint(PASSIVE)"); } catch (e) { postMessage({ error: String(e && e.message || e) }); }
  }, m.intervalMs);
};
`;
let url: string | undefined;

/** Moves WAL checkpoints of `db` (the journal at `file`) to a background thread until stopped. */
export function startCheckpointer(
  db: Database,
  file: string,
  opts: { intervalMs?: number; thresholdBytes?: number; onError?: (message: string) => void } = {},
): Checkpointer {
  url ??= URL.createObjectURL(new Blob([source], { type: "application/javascript" }));
  const worker = new Worker(url);
  (worker as unknown as { unref?: () => void }).unref?.();
  worker.onmessage = (ev: MessageEvent) => {
    if (ev.data?.error) opts.onError?.(ev.data.error);
  };
  db.exec("PRAGMA wal_autocheckpoint = 0");
  worker.postMessage({ file, intervalMs: opts.intervalMs ?? 200, thresholdBytes: opts.thresholdBytes ?? 4 * 1024 * 1024 });
  let stopped = false;
  return {
    stop() {
      if (stopped) return;
      stopped = true;
      worker.terminate();
      try {
        db.exec("PRAGMA wal_autocheckpoint = 1000");
      } catch {
        // The journal is already closed: nothing to restore.
      }
    },
  };
}
