// Where do journal bodies live: SQLite blobs or one file per body?
// bun:sqlite in WAL mode, synchronous NORMAL and FULL; sizes 1 KiB .. 16 MiB.
//
//   node_modules/.bin/bun bench/journal-bodies.ts          # ~3 minutes
//   env: CELL_SECONDS (default 1) bounds every write cell; REPS (default 3) rounds over all
//        cells, reported as the median (and min-max); BENCH_DIR (default os.tmpdir())
//
// Variants for "a file was closed, record its body":
//   blob/tx       INSERT INTO bodies(id, meta, data) — one transaction per body
//   blob/100tx    the same, 100 bodies per transaction
//   file          writeFileSync(tmp) + rename, then INSERT the row (path) in one transaction
//   file+fsync    as file, but fsync the body before rename, and fsync the directory after
// Each variant runs with the synchronous= setting whose durability it matches: a body that
// survives a daemon crash (blob + NORMAL, file without fsync + NORMAL) and one that survives
// power loss (blob + FULL, file+fsync + FULL). The mismatched pairs are skipped: with FULL an
// un-fsynced body could be lost under a durable row, and with NORMAL fsyncing the body buys
// nothing while the row itself may roll back.
// Results are written up in docs/storage.md.
import { Database } from "bun:sqlite";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import crypto from "node:crypto";

const KiB = 1024;
const MiB = 1024 * KiB;
const CELL_SECONDS = Number(process.env.CELL_SECONDS ?? 1);
const REPS = Number(process.env.REPS ?? 3);
const BASE = process.env.BENCH_DIR ?? os.tmpdir();
const SIZES: [string, number, number][] = [
  // label, bytes, max count
  ["1 KiB", KiB, 2000],
  ["4 KiB", 4 * KiB, 2000],
  ["64 KiB", 64 * KiB, 1000],
  ["128 KiB", 128 * KiB, 1000],
  ["256 KiB", 256 * KiB, 500],
  ["1 MiB", MiB, 200],
  ["16 MiB", 16 * MiB, 30],
];
const SYNCS = ["NORMAL", "FULL"] as const;
const VARIANTS = ["blob/tx", "blob/100tx", "file", "file+fsync"] as const;
const PAIRS: Record<(typeof SYNCS)[number], (typeof VARIANTS)[number][]> = {
  NORMAL: ["blob/tx", "blob/100tx", "file"],
  FULL: ["blob/tx", "blob/100tx", "file+fsync"],
};
// Flush dirty pages of the benchmark's filesystem between cells (outside the timed part)
// so one cell's writeback does not throttle the next.
const settle = () => Bun.spawnSync({ cmd: ["sync", "-f", BASE] });

const now = () => performance.now();
const fmt = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "n/a");
const META = JSON.stringify({ size: 0, mode: 0o100644, uid: 1000, gid: 1000, mtime: Date.now(), content_type: "application/octet-stream", etag: "x".repeat(64) });

const pool = crypto.randomBytes(16 * MiB + 4096);
// a distinct body each time (different start offset), no allocation in the timed loop
const body = (i: number, size: number) => pool.subarray(i % 4096, (i % 4096) + size);

function writeBytes(): number {
  const m = /write_bytes:\s*(\d+)/.exec(fs.readFileSync("/proc/self/io", "utf8"));
  return m ? Number(m[1]) : NaN;
}
function dirBytes(dir: string, re: RegExp): number {
  let n = 0;
  for (const f of fs.readdirSync(dir)) if (re.test(f)) n += fs.statSync(path.join(dir, f)).size;
  return n;
}
function openJournal(dir: string, sync: string) {
  const db = new Database(path.join(dir, "journal.db"), { create: true });
  db.exec("PRAGMA journal_mode=WAL");
  db.exec(`PRAGMA synchronous=${sync}`);
  db.exec("CREATE TABLE bodies (id TEXT PRIMARY KEY, meta TEXT NOT NULL, data BLOB NOT NULL)");
  db.exec("CREATE TABLE bodyfiles (id TEXT PRIMARY KEY, meta TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL)");
  return db;
}
function writeFileDurable(tmp: string, final: string, data: Uint8Array, fsync: boolean, dirFd: number) {
  if (!fsync) {
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, final);
    return;
  }
  const fd = fs.openSync(tmp, "w", 0o600);
  try {
    let o = 0;
    while (o < data.length) o += fs.writeSync(fd, data, o, data.length - o);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, final);
  fs.fsyncSync(dirFd);
}

type Row = Record<string, string>;
type WriteM = { n: number; us: number; mibs: number; amp: number; space: number; walMiB: number; ckMs: number; dbMiB: number };
const writeMs = new Map<string, WriteM[]>();
const readMs = new Map<string, { mibs: number; reads: number }[]>(); // per rep
const push = <T,>(m: Map<string, T[]>, k: string, v: T) => (m.get(k) ?? m.set(k, []).get(k)!).push(v);

function cell(sync: string, label: string, size: number, maxCount: number, variant: (typeof VARIANTS)[number]) {
  const dir = fs.mkdtempSync(path.join(BASE, "pgfiles-jb-"));
  const bodiesDir = path.join(dir, "bodies");
  fs.mkdirSync(bodiesDir);
  const db = openJournal(dir, sync);
  const dirFd = fs.openSync(bodiesDir, "r");
  settle();
  try {
    const insBlob = db.prepare("INSERT INTO bodies (id, meta, data) VALUES (?, ?, ?)");
    const insFile = db.prepare("INSERT INTO bodyfiles (id, meta, path, size) VALUES (?, ?, ?, ?)");
    const ids: string[] = [];
    const one = (i: number) => {
      const id = crypto.randomUUID();
      ids.push(id);
      const data = body(i, size);
      if (variant.startsWith("blob")) insBlob.run(id, META, data);
      else {
        const final = path.join(bodiesDir, id);
        writeFileDurable(final + ".tmp", final, data, variant === "file+fsync", dirFd);
        insFile.run(id, META, final, size);
      }
    };
    const batch = variant === "blob/100tx" ? 100 : 1;
    const tx = db.transaction((start: number, n: number) => {
      for (let k = 0; k < n; k++) one(start + k);
    });
    const minCount = Math.min(maxCount, batch === 100 ? 100 : 5);
    const deadline = now() + CELL_SECONDS * 1000;
    const wb0 = writeBytes();
    const t0 = now();
    let n = 0;
    while (n < maxCount && (n < minCount || now() < deadline)) {
      const k = Math.min(batch, maxCount - n);
      tx(n, k);
      n += k;
    }
    const writeS = (now() - t0) / 1000;
    const wb1 = writeBytes();
    const payload = n * size;
    const onDisk = dirBytes(dir, /^journal\.db/) + dirBytes(bodiesDir, /./);
    const walBytes = dirBytes(dir, /-wal$/);
    const c0 = now();
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    const ckMs = now() - c0;
    const dbBytes = dirBytes(dir, /^journal\.db$/);
    const m: WriteM = {
      n,
      us: (writeS * 1e6) / n,
      mibs: payload / MiB / writeS,
      amp: (wb1 - wb0) / payload,
      space: onDisk / payload,
      walMiB: walBytes / MiB,
      ckMs,
      dbMiB: dbBytes / MiB,
    };
    push(writeMs, `${sync}|${label}|${variant}`, m);
    console.error(sync, label, variant, JSON.stringify(m));

    // read back a random sample (page cache is warm for both)
    if (sync === "NORMAL" && (variant === "blob/tx" || variant === "file")) {
      const sample = Math.min(ids.length, size >= MiB ? 20 : 200);
      const pick = Array.from({ length: sample }, (_, i) => ids[(i * 7919) % ids.length]);
      const selBlob = db.prepare("SELECT data FROM bodies WHERE id = ?");
      const selPath = db.prepare("SELECT path FROM bodyfiles WHERE id = ?");
      const r0 = now();
      let got = 0;
      for (const id of pick) {
        if (variant === "blob/tx") got += (selBlob.get(id) as { data: Uint8Array }).data.length;
        else got += fs.readFileSync((selPath.get(id) as { path: string }).path).length;
      }
      const rs = (now() - r0) / 1000;
      if (got !== sample * size) throw new Error("short read");
      push(readMs, `${label}|${variant === "file" ? "file (SELECT path + readFileSync)" : "blob (SELECT data)"}`, { mibs: got / MiB / rs, reads: sample });
    }
  } finally {
    fs.closeSync(dirFd);
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// Reading 64 KiB from the middle of a 16 MiB body: SQLite substr() vs pread().
function rangeTest(): Row[] {
  const rows: Row[] = [];
  const dir = fs.mkdtempSync(path.join(BASE, "pgfiles-jb-"));
  const db = openJournal(dir, "NORMAL");
  try {
    const size = 16 * MiB;
    const len = 64 * KiB;
    const data = body(0, size);
    db.prepare("INSERT INTO bodies (id, meta, data) VALUES ('big', ?, ?)").run(META, data);
    const fpath = path.join(dir, "big.body");
    fs.writeFileSync(fpath, data);
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    const N = 100;
    const offs = Array.from({ length: N }, (_, i) => Math.floor(((i * 0.6180339887) % 1) * (size - len)));
    const time = (name: string, f: (off: number) => Uint8Array, count = N) => {
      f(offs[0]); // warm
      const t0 = now();
      for (let i = 0; i < count; i++) {
        const off = offs[i];
        const r = f(off);
        if (r.length !== len && r.length !== size) throw new Error(`bad length ${r.length}`);
        if (r.length === len && name.includes("random") && (r[0] !== data[off] || r[len - 1] !== data[off + len - 1])) throw new Error("range mismatch");
      }
      const ms = (now() - t0) / count;
      rows.push({ read: name, reads: String(count), "ms/read": fmt(ms, 3), "MiB/s of useful data": fmt(len / MiB / (ms / 1000), 0) });
      console.error(JSON.stringify(rows.at(-1)));
    };
    const sub = db.prepare("SELECT substr(data, ?, ?) AS d FROM bodies WHERE id = 'big'");
    const full = db.prepare("SELECT data AS d FROM bodies WHERE id = 'big'");
    const lenq = db.prepare("SELECT length(data) AS d FROM bodies WHERE id = 'big'");
    time("sqlite SELECT substr(data, off, 64 KiB) (random off)", (off) => (sub.get(off + 1, len) as { d: Uint8Array }).d);
    time("sqlite SELECT substr(data, 1, 64 KiB) (offset 0)", () => (sub.get(1, len) as { d: Uint8Array }).d, N);
    const tail = size - len;
    time("sqlite SELECT substr(data, 16M-64K, 64 KiB) (last 64 KiB)", () => (sub.get(tail + 1, len) as { d: Uint8Array }).d, 20);
    time("sqlite SELECT data (whole 16 MiB)", () => (full.get() as { d: Uint8Array }).d, 20);
    const t0 = now();
    for (let i = 0; i < 1000; i++) lenq.get();
    rows.push({ read: "sqlite SELECT length(data)", reads: "1000", "ms/read": fmt((now() - t0) / 1000, 3), "MiB/s of useful data": "-" });
    const fd = fs.openSync(fpath, "r");
    const buf = Buffer.alloc(len);
    try {
      time("file pread 64 KiB, fd kept open (random off)", (off) => {
        fs.readSync(fd, buf, 0, len, off);
        return buf;
      });
    } finally {
      fs.closeSync(fd);
    }
    time("file open + pread 64 KiB + close (random off)", (off) => {
      const f = fs.openSync(fpath, "r");
      try {
        const b = Buffer.alloc(len);
        fs.readSync(f, b, 0, len, off);
        return b;
      } finally {
        fs.closeSync(f);
      }
    });
  } finally {
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

function table(rows: Row[]): string {
  if (!rows.length) return "(none)\n";
  const cols = Object.keys(rows[0]);
  return [`| ${cols.join(" | ")} |`, `|${cols.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${cols.map((k) => r[k]).join(" | ")} |`)].join("\n") + "\n";
}

const tStart = now();
const loadStart = os.loadavg().map((x) => x.toFixed(2)).join(" ");
const fsType = (() => {
  const r = Bun.spawnSync({ cmd: ["df", "-T", BASE], stdout: "pipe" });
  return r.stdout.toString().trim().split("\n").at(-1)?.split(/\s+/)[1] ?? "?";
})();
const sqliteVersion = (() => {
  const d = new Database(":memory:");
  const v = (d.query("SELECT sqlite_version() AS v").get() as { v: string }).v;
  d.close();
  return v;
})();
// rounds outermost, so slow drift of the machine (other tenants, writeback) spreads over all cells
for (let rep = 0; rep < REPS; rep++) for (const sync of SYNCS) for (const [label, size, max] of SIZES) for (const v of PAIRS[sync]) cell(sync, label, size, max, v);
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const writeRows: Row[] = [...writeMs].map(([k, ms]) => {
  const [sync, size, variant] = k.split("|");
  const us = ms.map((m) => m.us);
  const last = ms.at(-1)!;
  return {
    sync,
    size,
    variant,
    "n/rep": String(med(ms.map((m) => m.n))),
    "µs/write median (min-max)": `${fmt(med(us), 0)} (${fmt(Math.min(...us), 0)}-${fmt(Math.max(...us), 0)})`,
    "writes/s": fmt(1e6 / med(us), 0),
    "MiB/s": fmt(med(ms.map((m) => m.mibs)), 1),
    "disk writes / payload": fmt(med(ms.map((m) => m.amp)), 2),
    "files+db / payload": fmt(med(ms.map((m) => m.space)), 2),
    "WAL at end MiB": fmt(last.walMiB, 1),
    "final checkpoint ms": fmt(med(ms.map((m) => m.ckMs)), 1),
    "db file MiB": fmt(last.dbMiB, 1),
  };
});
const readRows: Row[] = [...readMs].map(([k, v]) => {
  const [size, variant] = k.split("|");
  const x = v.map((r) => r.mibs);
  return { size, variant, "reads/rep": String(med(v.map((r) => r.reads))), "MiB/s median": fmt(med(x), 0), "min-max": `${fmt(Math.min(...x), 0)}-${fmt(Math.max(...x), 0)}` };
});
const ranges = rangeTest();

console.log(
  `# journal-bodies results\n\nmachine: ${os.cpus().length} cores, load average at start ${loadStart} / end ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}, kernel ${os.release()}, Bun ${Bun.version}, SQLite ${sqliteVersion}, dir ${BASE} (${fsType}), ${new Date().toISOString()}\n` +
    `${REPS} rounds; each write cell runs until its count or ${CELL_SECONDS} s; "disk writes / payload" = /proc/self/io write_bytes delta / body bytes (checkpoints during the run included, final checkpoint not)\n\n` +
    `## Writes (one body = one close)\n\n` +
    table(writeRows) +
    `\n## Read back (random sample, warm page cache, synchronous=NORMAL cells)\n\n` +
    table(readRows) +
    `\n## 64 KiB ranged read from a 16 MiB body\n\n` +
    table(ranges) +
    `\ntotal run ${fmt((now() - tStart) / 1000, 0)} s\n`,
);
