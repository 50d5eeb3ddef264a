// Flush throughput: how fast does the flusher copy pending journal versions to
// Postgres, and does its memory stay flat whatever the file size?
//
//   node_modules/.bin/bun bench/flush.ts            # ~2-4 minutes on 2 cores, needs ~6 GiB of free disk
//   env: SCENARIOS (default: all below), BIG_MIB (default 1023 = MAX_FILE_SIZE), BENCH_DIR (default os.tmpdir()),
//        CPU_PROF=1 runs every scenario child under `bun --cpu-prof` (profiles kept in BENCH_PROF_DIR,
//        default $TMPDIR/pgfiles-bench-prof; not removed)
//
// Scenarios (each in its own child process and its own fresh journal, so peak RSS is per scenario):
//   A      10,000 versions x 2 KiB, distinct keys, recorded in groups of 100 (inline bodies in SQLite)
//   Awarm  A again, but the journal's data cache already holds 400,000 clean 2 KiB bodies (781 MiB, under
//          the default 1GB cap), as after a day of work: shows costs that grow with the cache, not the batch
//   B      one file of MAX_FILE_SIZE (1023 MiB), staged with bodies.fromLocalFile (a body file in blobs/)
//   C64    2,000 versions x 64 KiB, groups of 100 (inline bodies)
//   C4M    100 versions x 4 MiB, one version per group (body files), as closes of separate files would record them
//   X:notrigger  scenario X with pgfiles' BEFORE INSERT trigger disabled for its duration (ALTER TABLE ...
//          DISABLE TRIGGER): not a valid pgfiles state (no versions, no head rows), only to attribute the
//          trigger's share of the flush time. Default set: A, C4M and B.
//
// Every child: record into a fresh journal (timed: "record"), then Bun.gc, reset the
// kernel's peak-RSS counter (/proc/self/clear_refs "5"), and time Flusher.flushAll()
// while sampling RSS every 50 ms. Peak = max(samples, VmHWM). Also measured: client CPU
// (process.cpuUsage) and server CPU (utime+stime of all postmaster children, i.e.
// backends + walwriter + checkpointer), to attribute where the wall time goes.
// Then every scenario checks in Postgres what it wrote (count, octet_length, sha256).
//
// The cluster is a throwaway one (test/harness/postgres.ts: fsync on, shared_buffers 128MB,
// other settings default); it and every temp file are removed at the end, even on failure.
// Results are written up in docs/benchmarks.md.
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Journal, type NewVersion } from "../src/journal/journal.ts";
import { fileMeta, MAX_FILE_SIZE } from "../src/meta.ts";
import { connect, type Sql } from "../src/store/connect.ts";
import { initSchema } from "../src/store/store.ts";
import { Flusher } from "../src/sync/flusher.ts";
import { startCluster, type Cluster } from "../test/harness/postgres.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const BUN = process.execPath;
const SELF = import.meta.path;

type Base = "A" | "Awarm" | "B" | "C64" | "C4M";
const BASES: Base[] = ["A", "Awarm", "B", "C64", "C4M"];
const DEFAULT_SCENARIOS = "A,Awarm,B,C64,C4M,A:notrigger,C4M:notrigger,B:notrigger";
const WARM_ENTRIES = 400_000;

interface Result {
  scenario: string;
  label: string;
  versions: number;
  bytes: number;
  recordSeconds: number;
  flushSeconds: number;
  baselineRss: number;
  peakRss: number;
  clientCpu: number;
  serverCpu: number;
  serverBackendHwm: number | null;
  verified: string;
  notes: string[];
}

// ---------------------------------------------------------------- helpers

const now = () => performance.now();
const fmt = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "n/a");
const fmtInt = (x: number) => Math.round(x).toLocaleString("en-US");
const mib = (b: number) => b / MiB;
const log = (msg: string) => process.stderr.write(`[flush-bench] ${msg}\n`);

const PAGE = 4096;
/** Resident set size from /proc/self/statm: far cheaper than process.memoryUsage() in Bun. */
function rssNow(): number {
  return Number(fs.readFileSync("/proc/self/statm", "utf8").split(" ")[1]) * PAGE;
}

function procStatus(pid: number | "self", field: string): number {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** utime+stime in seconds of every direct child of the postmaster (and the postmaster). */
function serverCpuSeconds(postmasterPid: number): number {
  const tick = 100; // USER_HZ on Linux
  let total = 0;
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${name}/stat`, "utf8");
    } catch {
      continue;
    }
    // pid (comm) state ppid ... utime(14) stime(15)
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ppid = Number(rest[1]);
    if (Number(name) !== postmasterPid && ppid !== postmasterPid) continue;
    total += (Number(rest[11]) + Number(rest[12])) / tick;
  }
  return total;
}

/** Microseconds some task waited for a CPU (PSI), machine-wide: a noise indicator. */
function cpuStallUs(): number {
  try {
    return Number(/^some .*total=(\d+)/m.exec(fs.readFileSync("/proc/pressure/cpu", "utf8"))?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

function loadavg1(): number {
  return os.loadavg()[0];
}

function postmasterPid(clusterDir: string): number {
  return Number(fs.readFileSync(path.join(clusterDir, "postmaster.pid"), "utf8").split("\n")[0]);
}

// ---------------------------------------------------------------- child: one scenario

async function child(scenario: string) {
  const base = scenario.split(":")[0] as Base;
  const dsn = process.env.BENCH_DSN!;
  const dir = process.env.BENCH_SCRATCH!;
  const pmPid = Number(process.env.BENCH_POSTMASTER_PID);
  const sql = connect({ dsn, poolSize: 10, preparedStatements: true });
  // cacheMaxSize: the default (1GB), so markFlushed's eviction runs as in production.
  const journal = new Journal({ cacheDir: path.join(dir, "cache"), dsn, prefix: "", cacheMaxSize: 1_000_000_000 });
  const notes: string[] = [];
  let label = "";
  let versions = 0;
  let bytes = 0;
  let verify: () => Promise<string>;

  const keyPrefix = `bench-${scenario.toLowerCase().replace(/[^a-z0-9]+/g, "-")}/`;
  if (base === "Awarm") {
    // Clean bodies of earlier versions, as markFlushed leaves them (not timed).
    const tw = now();
    journal.db
      .query(
        `WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < $n - 1)
         INSERT INTO data_cache (id, size, body, body_file, last_used)
         SELECT printf('warm-%08d', i), length($body), $body, NULL, $old + i FROM c`,
      )
      .run({ n: WARM_ENTRIES, body: randomBytes(2 * KiB), old: Date.now() - 86_400_000 });
    notes.push(`pre-filled the data cache with ${fmtInt(WARM_ENTRIES)} x 2 KiB in ${fmt((now() - tw) / 1000)} s`);
  }
  let recordStart = now();
  if (base !== "B") {
    const [count, size, group] = base === "A" || base === "Awarm" ? [10_000, 2 * KiB, 100] : base === "C64" ? [2_000, 64 * KiB, 100] : [100, 4 * MiB, 1];
    label = `${fmtInt(count)} x ${size >= MiB ? `${size / MiB} MiB` : `${size / KiB} KiB`}`;
    const pool = randomBytes(size + 64 * KiB);
    let batch: NewVersion[] = [];
    for (let i = 0; i < count; i++) {
      const id = crypto.randomUUID();
      const key = `${keyPrefix}${String(i).padStart(6, "0")}.bin`;
      // a distinct body per version: another window of the random pool, stamped with i
      const body = Buffer.from(pool.subarray((i * 4099) % (64 * KiB), ((i * 4099) % (64 * KiB)) + size));
      body.writeUInt32BE(i, 0);
      const staged = journal.bodies.fromBytes(id, body, false);
      batch.push({ id, key, op: "put", meta: fileMeta(key, staged.size, staged.etag), body: staged });
      if (batch.length === group) {
        journal.record(batch, false);
        batch = [];
      }
    }
    if (batch.length) journal.record(batch, false);
    versions = count;
    bytes = count * size;
    verify = async () => {
      const [r] = await sql`
        SELECT count(*)::bigint AS n, sum(octet_length(data))::bigint AS b, count(DISTINCT key)::bigint AS k
          FROM pgfiles WHERE key COLLATE "C" LIKE ${keyPrefix + "%"}`;
      const ok = Number(r.n) === count && Number(r.b) === bytes && Number(r.k) === count;
      if (!ok) throw new Error(`verification failed: ${JSON.stringify(r)}`);
      return `${fmtInt(Number(r.n))} rows, ${fmtInt(Number(r.b))} bytes`;
    };
  } else {
    const size = Number(process.env.BIG_MIB ?? MAX_FILE_SIZE / MiB) * MiB;
    if (size > MAX_FILE_SIZE) throw new Error(`BIG_MIB is above MAX_FILE_SIZE`);
    label = `1 x ${fmt(size / MiB, 0)} MiB`;
    const local = path.join(dir, "big.bin");
    // Random content written in 1 MiB chunks (never whole in memory), hashed on the way.
    const tg = now();
    const hash = createHash("sha256");
    const fd = fs.openSync(local, "w", 0o600);
    try {
      for (let off = 0; off < size; off += MiB) {
        const n = Math.min(MiB, size - off);
        const chunk = randomBytes(n); // incompressible, like media or archives
        hash.update(chunk);
        fs.writeSync(fd, chunk, 0, n);
      }
    } finally {
      fs.closeSync(fd);
    }
    const localHash = hash.digest("hex");
    notes.push(`generating the local file took ${fmt((now() - tg) / 1000)} s`);
    recordStart = now(); // the record time is the staging (a copy into blobs/, hashed) plus record()
    const id = crypto.randomUUID();
    const key = `${keyPrefix}big.bin`;
    const staged = journal.bodies.fromLocalFile(id, local, false);
    journal.record([{ id, key, op: "put", meta: fileMeta(key, staged.size, staged.etag), body: staged }], false);
    if (staged.etag !== localHash) throw new Error("the journal's etag differs from the local file's sha256");
    versions = 1;
    bytes = size;
    verify = async () => {
      const [r] = await sql`SELECT octet_length(data)::bigint AS len, encode(sha256(data), 'hex') AS h FROM pgfiles WHERE id = ${id}::uuid`;
      if (!r) throw new Error("verification failed: the row is missing");
      if (Number(r.len) !== size) throw new Error(`verification failed: octet_length ${r.len} != ${size}`);
      if (r.h !== localHash) throw new Error(`verification failed: sha256 ${r.h} != ${localHash}`);
      return `octet_length = ${fmtInt(size)}, sha256 matches (${localHash.slice(0, 12)}…)`;
    };
  }
  const recordSeconds = (now() - recordStart) / 1000;
  log(`${scenario}: recorded ${label} in ${fmt(recordSeconds, 2)} s`);

  // Warm the pool (one connection), so connect time is not counted as flush time.
  await sql`SELECT 1`;
  Bun.gc(true);
  await Bun.sleep(100);
  Bun.gc(true);
  const baselineRss = rssNow();
  try {
    fs.writeFileSync("/proc/self/clear_refs", "5"); // resets VmHWM to the current RSS
  } catch {
    notes.push("could not reset VmHWM; peak comes from 50 ms samples only");
  }
  let sampledPeak = baselineRss;
  const sampler = setInterval(() => {
    const r = rssNow();
    if (r > sampledPeak) sampledPeak = r;
  }, 50);
  const cpu0 = process.cpuUsage();
  const srv0 = serverCpuSeconds(pmPid);
  const stall0 = cpuStallUs();
  const load0 = loadavg1();
  const tf = now();
  const result = await new Flusher({ journal, sql, dsn }).flushAll();
  const flushSeconds = (now() - tf) / 1000;
  const stall = (cpuStallUs() - stall0) / 1e6 / flushSeconds;
  const load1 = loadavg1();
  const srv1 = serverCpuSeconds(pmPid);
  const cpu = process.cpuUsage(cpu0);
  clearInterval(sampler);
  const hwm = procStatus("self", "VmHWM");
  const peakRss = Math.max(sampledPeak, Number.isFinite(hwm) ? hwm : 0);
  if (result.versions !== versions || result.remaining !== 0) {
    throw new Error(`flushAll stored ${result.versions} of ${versions} versions, ${result.remaining} remain`);
  }
  log(`${scenario}: flushed in ${fmt(flushSeconds, 2)} s`);

  notes.push(`load average ${fmt(load0)} → ${fmt(load1)}, CPU pressure (PSI some) ${fmt(stall * 100, 0)}% of the flush`);

  // The backends' own peak memory (shared buffers they touched included).
  let serverBackendHwm: number | null = null;
  try {
    const rows = await sql`SELECT pid FROM pg_stat_activity WHERE application_name = 'pgfiles'`;
    const hwms = rows.map((r) => procStatus(Number(r.pid), "VmHWM")).filter(Number.isFinite);
    if (hwms.length) serverBackendHwm = Math.max(...hwms);
  } catch {
    // informational only
  }

  const tv = now();
  const verified = await verify();
  notes.push(`verified in ${fmt((now() - tv) / 1000)} s: ${verified}`);
  journal.close();
  await sql.end({ timeout: 5 });
  const out: Result = {
    scenario,
    label,
    versions,
    bytes,
    recordSeconds,
    flushSeconds,
    baselineRss,
    peakRss,
    clientCpu: (cpu.user + cpu.system) / 1e6,
    serverCpu: srv1 - srv0,
    serverBackendHwm,
    verified,
    notes,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

// ---------------------------------------------------------------- parent

async function main() {
  const scenarios = (process.env.SCENARIOS ?? DEFAULT_SCENARIOS).split(",").map((s) => s.trim()).filter(Boolean);
  for (const s of scenarios) {
    const [b, flag] = s.split(":");
    if (!BASES.includes(b as Base) || (flag !== undefined && flag !== "notrigger")) {
      throw new Error(`unknown scenario ${s}; pick from ${BASES.join(",")}, optionally with :notrigger`);
    }
  }
  const root = fs.mkdtempSync(path.join(process.env.BENCH_DIR ?? os.tmpdir(), "pgfiles-bench-flush-"));
  fs.chmodSync(root, 0o755);
  let cluster: Cluster | null = null;
  let running: ReturnType<typeof Bun.spawn> | null = null;
  const cleanup = () => {
    if (running && running.exitCode === null) running.kill("SIGKILL");
    fs.rmSync(root, { recursive: true, force: true });
  };
  process.on("exit", cleanup); // the harness' own exit hook stops the cluster
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => process.exit(130));

  const results: Result[] = [];
  let sql: Sql | null = null;
  try {
    log("starting a throwaway PostgreSQL cluster");
    cluster = await startCluster();
    sql = connect({ dsn: cluster.dsn, poolSize: 2, preparedStatements: true });
    await initSchema(sql);
    const [{ v }] = await sql`SELECT current_setting('server_version') AS v`;
    const settings = await sql`
      SELECT name, setting, unit FROM pg_settings
       WHERE name IN ('shared_buffers', 'max_wal_size', 'wal_level', 'fsync', 'synchronous_commit', 'full_page_writes')
       ORDER BY name`;
    const facts = {
      date: new Date().toISOString().slice(0, 10),
      nproc: os.availableParallelism(),
      cpu: os.cpus()[0]?.model ?? "unknown",
      memGiB: fmt(os.totalmem() / 1024 ** 3, 1),
      kernel: os.release(),
      postgres: String(v),
      pgSettings: settings.map((s) => `${s.name}=${s.setting}${s.unit ? ` (${s.unit})` : ""}`).join(", "),
      bun: Bun.version,
      git: Bun.spawnSync({ cmd: ["git", "rev-parse", "--short", "HEAD"], cwd: path.dirname(path.dirname(SELF)) }).stdout.toString().trim(),
      dirty: Bun.spawnSync({ cmd: ["git", "status", "--porcelain", "src"], cwd: path.dirname(path.dirname(SELF)) }).stdout.toString().trim() !== "",
    };
    const pm = postmasterPid(cluster.dir);

    for (const s of scenarios) {
      await sql`CHECKPOINT`; // one scenario's dirty pages do not land on the next one's clock
      const scratch = path.join(root, s.replace(/[^A-Za-z0-9]+/g, "-"));
      const noTrigger = s.endsWith(":notrigger");
      if (noTrigger) await sql`ALTER TABLE pgfiles DISABLE TRIGGER pgfiles_before_insert`;
      fs.mkdirSync(scratch);
      log(`scenario ${s}`);
      const profDir = process.env.BENCH_PROF_DIR ?? path.join(os.tmpdir(), "pgfiles-bench-prof");
      const prof = process.env.CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`] : [];
      running = Bun.spawn({
        cmd: [BUN, ...prof, SELF, "--child", s],
        env: { ...process.env, BENCH_DSN: cluster.dsn, BENCH_SCRATCH: scratch, BENCH_POSTMASTER_PID: String(pm) },
        stdout: "pipe",
        stderr: "inherit",
      });
      const out = await new Response(running.stdout as ReadableStream).text();
      const code = await running.exited;
      running = null;
      if (noTrigger) await sql`ALTER TABLE pgfiles ENABLE TRIGGER pgfiles_before_insert`;
      fs.rmSync(scratch, { recursive: true, force: true });
      if (code !== 0) throw new Error(`scenario ${s} failed (exit ${code})`);
      results.push(JSON.parse(out.trim().split("\n").pop()!) as Result);
    }
    await sql`CHECKPOINT`;
    const [{ size }] = await sql`SELECT pg_size_pretty(pg_total_relation_size('pgfiles')) AS size`;

    // ---- report
    const lines: string[] = [];
    lines.push(`Machine: ${facts.nproc} CPUs (${facts.cpu}), ${facts.memGiB} GiB RAM, Linux ${facts.kernel}; PostgreSQL ${facts.postgres}; Bun ${facts.bun}; pgfiles ${facts.git}${facts.dirty ? " (+ uncommitted changes in src/)" : ""}; ${facts.date}`);
    lines.push(`Cluster: ${facts.pgSettings}`);
    lines.push("");
    lines.push("| scenario | versions | bytes | record s | record versions/s | record MiB/s | flush s | flush versions/s | flush MiB/s | flush client CPU s | flush server CPU s | baseline RSS MiB | peak RSS above baseline MiB |");
    lines.push("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (const r of results) {
      lines.push(
        `| ${r.scenario} (${r.label}) | ${fmtInt(r.versions)} | ${fmt(mib(r.bytes), 1)} MiB | ${fmt(r.recordSeconds, 2)} | ${fmtInt(r.versions / r.recordSeconds)} | ${fmt(mib(r.bytes) / r.recordSeconds, 1)} | ${fmt(r.flushSeconds, 2)} | ${fmtInt(r.versions / r.flushSeconds)} | ${fmt(mib(r.bytes) / r.flushSeconds, 1)} | ${fmt(r.clientCpu, 2)} | ${fmt(r.serverCpu, 2)} | ${fmt(mib(r.baselineRss), 0)} | ${fmt(mib(r.peakRss - r.baselineRss), 1)} |`,
      );
    }
    lines.push("");
    for (const r of results) {
      const extra = r.serverBackendHwm ? `; Postgres backend peak RSS (VmHWM) ${fmt(mib(r.serverBackendHwm), 0)} MiB` : "";
      lines.push(`- ${r.scenario}: ${r.notes.join("; ")}${extra}`);
    }
    lines.push(`- pgfiles table after all scenarios: ${size}`);
    const get = (n: string) => results.find((r) => r.scenario === n);
    const a = get("A");
    const b = get("B");
    const big = results.filter((r) => !r.scenario.includes(":") && r.bytes / r.versions >= 4 * MiB);
    lines.push("");
    lines.push("Targets (issue: on this 2-core machine):");
    if (a) lines.push(`- small versions: ${fmtInt(a.versions / a.flushSeconds)} versions/s (A) vs >= 5,000: ${a.versions / a.flushSeconds >= 5000 ? "met" : "MISSED"}`);
    for (const r of big) lines.push(`- throughput ${r.scenario}: ${fmt(mib(r.bytes) / r.flushSeconds)} MiB/s vs >= 200 MiB/s: ${mib(r.bytes) / r.flushSeconds >= 200 ? "met" : "MISSED"}`);
    if (b) {
      const above = mib(b.peakRss - b.baselineRss);
      lines.push(`- flusher memory for a ${fmt(mib(b.bytes), 0)} MiB file: peak ${fmt(above)} MiB above baseline: ${above < 100 ? "flat (met)" : "NOT flat"}`);
    }
    process.stdout.write(`${lines.join("\n")}\n`);
  } finally {
    if (sql) await sql.end({ timeout: 5 }).catch(() => {});
    if (cluster) await cluster.destroy().catch((e) => log(`destroying the cluster failed: ${e}`));
    cleanup();
  }
}

if (process.argv[2] === "--child") {
  await child(process.argv[3]);
} else {
  await main();
}
