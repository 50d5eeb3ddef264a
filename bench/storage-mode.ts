// Which storage mode for pgfiles.data? Measures EXTENDED+pglz (Postgres' default),
// EXTENDED+lz4, EXTERNAL (uncompressed, out of line) and EXTERNAL with toast_tuple_target=8160
// (small-file part only) — optionally MAIN — on a
// throwaway cluster: text-corpus insert/size/read, 2 KiB small files, and 256 MiB
// bodies (random and text) with ranged reads via substring().
//
//   node_modules/.bin/bun bench/storage-mode.ts            # ~3 minutes on 2 cores
//   node_modules/.bin/bun bench/storage-mode.ts --main     # also STORAGE MAIN
//   env: CORPUS_MIB (default 100), LARGE_MIB (256), RANGE_READS (200), CELL_SECONDS (10)
//
// Results are written up in docs/storage.md.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import crypto from "node:crypto";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import postgres from "postgres";
import { startCluster, type Cluster } from "../test/harness/postgres.ts";
import { schemaSql } from "../src/store/schema.ts";

const MiB = 1024 * 1024;
const CORPUS_BYTES = Number(process.env.CORPUS_MIB ?? 100) * MiB;
const LARGE_BYTES = Number(process.env.LARGE_MIB ?? 256) * MiB;
const RANGE_READS = Number(process.env.RANGE_READS ?? 200);
const CELL_SECONDS = Number(process.env.CELL_SECONDS ?? 10);
const SMALL_ROWS = 5000;
const SMALL_SIZE = 2048;
const BATCH_ROWS = 2000;
const BATCH_BYTES = 32 * MiB;

type Variant = { name: string; storage: string; compression: string; tupleTarget?: number; smallOnly?: boolean };
const VARIANTS: Variant[] = [
  { name: "EXTENDED pglz", storage: "EXTENDED", compression: "pglz" },
  { name: "EXTENDED lz4", storage: "EXTENDED", compression: "lz4" },
  { name: "EXTERNAL", storage: "EXTERNAL", compression: "pglz" }, // compression setting unused
  // EXTERNAL but rows up to ~8 KB stay inline in the heap (no TOAST lookup for small files);
  // large bodies behave exactly as EXTERNAL, so only the corpus and small-file parts run.
  { name: "EXTERNAL tt=8160", storage: "EXTERNAL", compression: "pglz", tupleTarget: 8160, smallOnly: true },
];
if (process.argv.includes("--main")) VARIANTS.push({ name: "MAIN lz4", storage: "MAIN", compression: "lz4" });

const now = () => performance.now();
const secs = (t0: number) => (performance.now() - t0) / 1000;
const fmt = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "n/a");
const mib = (b: number) => b / MiB;

// ---------- corpus: real text/source files ----------
const TEXT_EXT = /\.(js|mjs|cjs|ts|md|json|py|pm|h|txt)$/;
function collectCorpus(limit: number) {
  const roots = ["/work/main/node_modules", "/usr/lib/python3", "/usr/lib/python3.11", "/usr/share/perl", "/usr/include"];
  const files: { path: string; data: Buffer }[] = [];
  const perRoot: Record<string, { n: number; bytes: number }> = {};
  let total = 0;
  const seen = new Set<string>();
  const walk = (dir: string, root: string) => {
    let ents: fs.Dirent[];
    try {
      ents = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    ents.sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of ents) {
      if (total >= limit) return;
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p, root);
      else if (e.isFile() && TEXT_EXT.test(e.name)) {
        let real: string;
        try {
          real = fs.realpathSync(p);
        } catch {
          continue;
        }
        if (seen.has(real)) continue;
        seen.add(real);
        const data = fs.readFileSync(p);
        if (data.length === 0 || total + data.length > limit) continue;
        files.push({ path: p, data });
        total += data.length;
        (perRoot[root] ??= { n: 0, bytes: 0 }).n++;
        perRoot[root].bytes += data.length;
      }
    }
  };
  for (const r of roots) if (total < limit && fs.existsSync(r)) walk(r, r);
  return { files, total, perRoot };
}

// ---------- binary COPY encoder (avoids hex-encoding bodies in the client) ----------
const COPY_HEADER = Buffer.concat([Buffer.from("PGCOPY\n\xff\r\n\0", "latin1"), Buffer.alloc(8)]);
const COPY_TRAILER = Buffer.from([0xff, 0xff]);
function tupleHead(id: Buffer, key: string, dataLen: number): Buffer {
  const k = Buffer.from(key);
  const meta = Buffer.from("\x01{}", "latin1"); // jsonb binary: version 1 + text
  const b = Buffer.alloc(2 + 4 + 16 + 4 + k.length + 4 + meta.length + 4);
  let o = b.writeInt16BE(4, 0);
  o = b.writeInt32BE(16, o);
  o += id.copy(b, o);
  o = b.writeInt32BE(k.length, o);
  o += k.copy(b, o);
  o = b.writeInt32BE(meta.length, o);
  o += meta.copy(b, o);
  b.writeInt32BE(dataLen, o);
  return b;
}
function uuidBytes(): { bin: Buffer; str: string } {
  const str = crypto.randomUUID();
  return { bin: Buffer.from(str.replace(/-/g, ""), "hex"), str };
}
async function copyRows(sql: postgres.Sql, rows: { id: Buffer; key: string; data: Buffer }[]) {
  const w = await sql`COPY pgfiles (id, key, meta, data) FROM STDIN (FORMAT binary)`.writable();
  function* gen() {
    yield COPY_HEADER;
    for (const r of rows) {
      yield tupleHead(r.id, r.key, r.data.length);
      for (let o = 0; o < r.data.length; o += 4 * MiB) yield r.data.subarray(o, Math.min(r.data.length, o + 4 * MiB));
    }
    yield COPY_TRAILER;
  }
  await pipeline(Readable.from(gen()), w);
}
async function copyBatched(sql: postgres.Sql, rows: { id: Buffer; key: string; data: Buffer }[]) {
  let batch: typeof rows = [];
  let bytes = 0;
  for (const r of rows) {
    batch.push(r);
    bytes += r.data.length;
    if (batch.length >= BATCH_ROWS || bytes >= BATCH_BYTES) {
      await copyRows(sql, batch);
      batch = [];
      bytes = 0;
    }
  }
  if (batch.length) await copyRows(sql, batch);
}

// ---------- helpers ----------
async function walLsn(sql: postgres.Sql): Promise<string> {
  return (await sql`SELECT pg_current_wal_insert_lsn()::text AS l`)[0].l;
}
async function walSince(sql: postgres.Sql, from: string): Promise<number> {
  return Number((await sql`SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), ${from}::pg_lsn)::bigint AS d`)[0].d);
}
async function tableSize(sql: postgres.Sql) {
  await sql.unsafe("VACUUM pgfiles");
  await sql.unsafe("CHECKPOINT");
  const r = (
    await sql`SELECT pg_total_relation_size('pgfiles')::bigint AS total,
                     pg_relation_size('pgfiles')::bigint AS heap,
                     pg_total_relation_size(reltoastrelid)::bigint AS toast
                FROM pg_class WHERE relname = 'pgfiles'`
  )[0];
  return { total: Number(r.total), heap: Number(r.heap), toast: Number(r.toast) };
}
function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const avg = xs.reduce((a, b) => a + b, 0) / xs.length;
  return { avg, p50: s[Math.floor(s.length / 2)], max: s[s.length - 1] };
}

type Row = Record<string, string>;
const results = {
  corpus: [] as Row[],
  small: [] as Row[],
  large: [] as Row[],
  ranged: [] as Row[],
};

async function runVariant(c: Cluster, v: Variant, corpus: ReturnType<typeof collectCorpus>, bigRandom: Buffer, bigText: Buffer) {
  const db = "bench_" + v.name.toLowerCase().replace(/[^a-z0-9]+/g, "_");
  c.psql(`DROP DATABASE IF EXISTS ${db}`);
  c.psql(`CREATE DATABASE ${db}`);
  const sql = postgres(c.dsn.replace(/\/postgres$/, "/" + db), { onnotice: () => {}, max: 1 });
  try {
    await sql.unsafe(schemaSql());
    await sql.unsafe(`ALTER TABLE pgfiles ALTER COLUMN data SET STORAGE ${v.storage}, ALTER COLUMN data SET COMPRESSION ${v.compression}`);
    if (v.tupleTarget) await sql.unsafe(`ALTER TABLE pgfiles SET (toast_tuple_target = ${v.tupleTarget})`);
    const attr = (await sql`SELECT attstorage, attcompression FROM pg_attribute WHERE attrelid = 'pgfiles'::regclass AND attname = 'data'`)[0];
    console.error(`\n== ${v.name} (attstorage=${attr.attstorage}, attcompression=${attr.attcompression || "default"})`);

    // ---- 1. text corpus ----
    const rows = corpus.files.map((f, i) => ({ id: uuidBytes().bin, key: `corpus/${i}${f.path}`, data: f.data }));
    await sql.unsafe("CHECKPOINT");
    let lsn = await walLsn(sql);
    let t0 = now();
    await copyBatched(sql, rows);
    const insS = secs(t0);
    const wal = await walSince(sql, lsn);
    const size = await tableSize(sql);
    // full read, server side only (detoast + decompress every body, nothing sent)
    t0 = now();
    await sql`SELECT sum(octet_length(data || '\\x'::bytea)) FROM pgfiles WHERE key LIKE 'corpus/%'`;
    const detoastS = secs(t0);
    // full read through the client (hex on the wire, postgres.js decodes)
    t0 = now();
    let got = 0;
    await sql`SELECT data FROM pgfiles WHERE key LIKE 'corpus/%'`.cursor(500, (rs) => {
      for (const r of rs) got += r.data.length;
    });
    const readS = secs(t0);
    if (got !== corpus.total) throw new Error(`read back ${got} bytes, expected ${corpus.total}`);
    results.corpus.push({
      variant: v.name,
      "insert MiB/s": fmt(mib(corpus.total) / insS),
      "WAL MiB": fmt(mib(wal)),
      "on disk MiB (toast)": `${fmt(mib(size.total))} (${fmt(mib(size.toast))})`,
      "raw/disk": fmt(corpus.total / size.total, 2),
      "server detoast MiB/s": fmt(mib(corpus.total) / detoastS),
      "client read MiB/s": fmt(mib(corpus.total) / readS),
    });
    console.error(results.corpus.at(-1));

    // ---- per-row cost: 2 KiB text files ----
    const flat = Buffer.concat(corpus.files.slice(0, 400).map((f) => f.data));
    const small = Array.from({ length: SMALL_ROWS }, (_, i) => {
      const off = (i * 7919 * 13) % (flat.length - SMALL_SIZE);
      return { id: uuidBytes().bin, key: `small/${i}`, data: flat.subarray(off, off + SMALL_SIZE) };
    });
    const toastName = `pg_toast.pg_toast_${(await sql`SELECT 'pgfiles'::regclass::oid AS o`)[0].o}`;
    const toastCount = async () => Number((await sql.unsafe(`SELECT count(*) AS n FROM ${toastName}`))[0].n);
    const toastBefore = await toastCount();
    const before = await tableSize(sql);
    lsn = await walLsn(sql);
    t0 = now();
    await copyBatched(sql, small);
    const smallS = secs(t0);
    const smallWal = await walSince(sql, lsn);
    const after = await tableSize(sql);
    const ids = (await sql`SELECT id::text AS id FROM pgfiles WHERE key LIKE 'small/%'`).map((r) => r.id as string);
    const lat: number[] = [];
    for (let i = 0; i < 1000; i++) {
      const id = ids[(i * 2654435761) % ids.length];
      const t = now();
      await sql`SELECT data FROM pgfiles WHERE id = ${id}`;
      lat.push(now() - t);
    }
    const sl = stats(lat);
    const toastRows = (await toastCount()) - toastBefore;
    results.small.push({
      variant: v.name,
      "rows/s": fmt(SMALL_ROWS / smallS, 0),
      "disk bytes/row": fmt((after.total - before.total) / SMALL_ROWS, 0),
      "WAL bytes/row": fmt(smallWal / SMALL_ROWS, 0),
      "point read avg ms": fmt(sl.avg, 3),
      "toast chunks / row": fmt(toastRows / SMALL_ROWS, 2),
    });
    console.error(results.small.at(-1));

    // ---- 2. large bodies ----
    for (const [kind, body] of v.smallOnly ? [] : ([["random", bigRandom], ["text", bigText]] as const)) {
      const u = uuidBytes();
      const b0 = await tableSize(sql);
      lsn = await walLsn(sql);
      t0 = now();
      await copyRows(sql, [{ id: u.bin, key: `large/${kind}`, data: body }]);
      const bigInsS = secs(t0);
      const bigWal = await walSince(sql, lsn);
      const b1 = await tableSize(sql);
      t0 = now();
      await sql`SELECT octet_length(data || '\\x'::bytea) FROM pgfiles WHERE id = ${u.str}`;
      const bigDetoastS = secs(t0);
      t0 = now();
      const full = (await sql`SELECT data FROM pgfiles WHERE id = ${u.str}`)[0].data as Buffer;
      const bigReadS = secs(t0);
      if (full.length !== body.length || !full.subarray(body.length - 4096).equals(body.subarray(body.length - 4096))) throw new Error("large read mismatch");
      results.large.push({
        variant: v.name,
        body: `${mib(body.length)} MiB ${kind}`,
        "insert s (MiB/s)": `${fmt(bigInsS, 2)} (${fmt(mib(body.length) / bigInsS, 0)})`,
        "WAL MiB": fmt(mib(bigWal)),
        "on disk MiB": fmt(mib(b1.total - b0.total)),
        "server detoast s": fmt(bigDetoastS, 2),
        "client full read s": fmt(bigReadS, 2),
      });
      console.error(results.large.at(-1));

      for (const len of [65536, MiB]) {
        const lat: { off: number; ms: number }[] = [];
        const deadline = now() + CELL_SECONDS * 1000;
        // deterministic pseudo-random offsets, uniform over the body
        let seed = 12345 + len;
        const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
        // warm-up (not counted)
        await sql`SELECT substring(data from 1 for ${len}) AS d FROM pgfiles WHERE id = ${u.str}`;
        while (lat.length < RANGE_READS && now() < deadline) {
          const off = Math.floor(rnd() * (body.length - len));
          const t = now();
          const r = (await sql`SELECT substring(data from ${off + 1} for ${len}) AS d FROM pgfiles WHERE id = ${u.str}`)[0].d as Buffer;
          lat.push({ off, ms: now() - t });
          if (r.length !== len || r[0] !== body[off] || r[len - 1] !== body[off + len - 1]) throw new Error("range mismatch");
        }
        const all = stats(lat.map((x) => x.ms));
        const first = lat.filter((x) => x.off < body.length / 4).map((x) => x.ms);
        const last = lat.filter((x) => x.off >= (body.length * 3) / 4).map((x) => x.ms);
        results.ranged.push({
          variant: v.name,
          body: kind,
          range: len === MiB ? "1 MiB" : "64 KiB",
          reads: String(lat.length),
          "avg ms": fmt(all.avg, 2),
          "p50 ms": fmt(all.p50, 2),
          "avg ms, offset in first 1/4": first.length ? fmt(stats(first).avg, 2) : "n/a",
          "avg ms, offset in last 1/4": last.length ? fmt(stats(last).avg, 2) : "n/a",
          "full read / avg range": fmt((bigReadS * 1000) / all.avg, 0) + "x",
        });
        console.error(results.ranged.at(-1));
      }
    }
  } finally {
    await sql.end({ timeout: 5 });
    c.psql(`DROP DATABASE IF EXISTS ${db}`);
  }
}

function table(rows: Row[]): string {
  if (!rows.length) return "(none)\n";
  const cols = Object.keys(rows[0]);
  return [`| ${cols.join(" | ")} |`, `|${cols.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${cols.map((k) => r[k]).join(" | ")} |`)].join("\n") + "\n";
}

async function main() {
  const tStart = now();
  const loadStart = os.loadavg().map((x) => x.toFixed(2)).join(" ");
  const corpus = collectCorpus(CORPUS_BYTES);
  console.error(`corpus: ${corpus.files.length} files, ${fmt(mib(corpus.total))} MiB`, corpus.perRoot);
  const bigRandom = crypto.randomBytes(LARGE_BYTES);
  const bigText = Buffer.alloc(LARGE_BYTES);
  for (let o = 0, i = 0; o < LARGE_BYTES; i = (i + 1) % corpus.files.length) o += corpus.files[i].data.copy(bigText, o);

  const c = await startCluster({ settings: { max_wal_size: "'4GB'" } });
  let pgVersion = "";
  let lz4 = false;
  try {
    pgVersion = c.psql("SHOW server_version");
    try {
      c.psql("SET default_toast_compression = lz4");
      lz4 = true;
    } catch {
      lz4 = false;
    }
    console.error(`PostgreSQL ${pgVersion}; lz4 available: ${lz4}`);
    for (const v of VARIANTS) {
      if (v.compression === "lz4" && !lz4) {
        console.error(`skipping ${v.name}: server built without lz4`);
        continue;
      }
      await runVariant(c, v, corpus, bigRandom, bigText);
    }
  } finally {
    await c.destroy();
  }

  const out =
    `# storage-mode results\n\n` +
    `machine: ${os.cpus().length} cores, load average at start ${loadStart} / end ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}, kernel ${os.release()}, PostgreSQL ${pgVersion} (lz4 ${lz4 ? "available" : "missing"}), Bun ${Bun.version}, ${new Date().toISOString()}\n\n` +
    `## Text corpus: ${corpus.files.length} files, ${fmt(mib(corpus.total))} MiB (${Object.entries(corpus.perRoot)
      .map(([r, s]) => `${r}: ${s.n} files ${fmt(mib(s.bytes))} MiB`)
      .join("; ")}); binary COPY, <= ${BATCH_ROWS} rows / ${mib(BATCH_BYTES)} MiB per statement\n\n` +
    table(results.corpus) +
    `\n## Small files: ${SMALL_ROWS} rows of ${SMALL_SIZE} B text, one COPY per ${BATCH_ROWS} rows; point read = SELECT data WHERE id (1000 reads)\n\n` +
    table(results.small) +
    `\n## Large bodies (${mib(LARGE_BYTES)} MiB, one row)\n\n` +
    table(results.large) +
    `\n## Ranged reads: SELECT substring(data from off for len) WHERE id, uniform random offsets, up to ${RANGE_READS} reads or ${CELL_SECONDS} s per cell\n\n` +
    table(results.ranged) +
    `\ntotal run ${fmt(secs(tStart), 0)} s\n`;
  console.log(out);
}

await main();
