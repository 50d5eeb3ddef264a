// The flusher under faults: every closed version reaches Postgres exactly once,
// in order, whatever gets killed or stopped in between.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Journal } from "../src/journal/journal.ts";
import { fileMeta } from "../src/meta.ts";
import { applyBatch } from "../src/store/apply.ts";
import { connect, type Sql } from "../src/store/connect.ts";
import { initSchema } from "../src/store/store.ts";
import { Flusher } from "../src/sync/flusher.ts";
import { cleanEnv, cliCommand, ok, run } from "./harness/cli.ts";
import { startCluster, type Cluster } from "./harness/postgres.ts";

let pg: Cluster;
let sql: Sql;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pgfiles-flush-"));

beforeAll(async () => {
  pg = await startCluster();
  sql = connect({ dsn: pg.dsn, poolSize: 4, preparedStatements: true });
  await initSchema(sql);
});
afterAll(async () => {
  await sql?.end({ timeout: 5 });
  await pg?.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function newJournal(prefix: string): Journal {
  return new Journal({ cacheDir: fs.mkdtempSync(path.join(tmp, "cache-")), dsn: pg.dsn, prefix, cacheMaxSize: 1 << 30 });
}

function put(j: Journal, key: string, text: string) {
  const id = crypto.randomUUID();
  const body = j.bodies.fromBytes(id, Buffer.from(text), false);
  j.record([{ id, key, op: "put", meta: fileMeta(key, body.size, body.etag), body }], false);
  return id;
}

const q = (s: string) => pg.psql(s);

describe("flusher", () => {
  test("versions reach Postgres in journal order with versions 1..N per key", async () => {
    const j = newJournal("order/");
    for (let i = 1; i <= 30; i++) put(j, `order/k${i % 3}`, `body ${i}`);
    const r = await new Flusher({ journal: j, sql, dsn: pg.dsn, maxRows: 7 }).flushAll();
    expect(r.versions).toBe(30);
    expect(r.remaining).toBe(0);
    // key k1 got bodies 1, 4, 7, … as versions 1, 2, 3, …
    const rows = q(`SELECT meta->>'version' || ':' || convert_from(data, 'UTF8') FROM pgfiles WHERE key = 'order/k1' ORDER BY (meta->>'version')::int`);
    expect(rows.split("\n")).toEqual(Array.from({ length: 10 }, (_, i) => `${i + 1}:body ${1 + 3 * i}`));
    j.close();
  });

  test("a batch retried after its Postgres commit inserts nothing twice and leaves no version gap", async () => {
    const j = newJournal("retry/");
    for (let i = 1; i <= 5; i++) put(j, "retry/same", `v${i}`);
    for (let i = 1; i <= 20; i++) put(j, `retry/f${i}`, `f${i}`);
    // The crash window: Postgres committed the first batch, the journal never heard back.
    const first = j.nextBatch(12, 1 << 30);
    await applyBatch(
      sql,
      first.map((r) => ({ ...r, bodyPath: null, dataNull: false })),
    );
    const r = await new Flusher({ journal: j, sql, dsn: pg.dsn }).flushAll();
    expect(r.remaining).toBe(0);
    expect(q(`SELECT count(*) || '/' || count(DISTINCT id) FROM pgfiles WHERE key LIKE 'retry/%'`)).toBe("25/25");
    expect(q(`SELECT string_agg(meta->>'version' || '=' || convert_from(data, 'UTF8'), ',' ORDER BY (meta->>'version')::int) FROM pgfiles WHERE key = 'retry/same'`)).toBe(
      "1=v1,2=v2,3=v3,4=v4,5=v5",
    );
    // The head points at the newest version.
    expect(q(`SELECT version FROM pgfiles_head WHERE key = 'retry/same'`)).toBe("5");
    j.close();
  });

  test("a version Postgres rejects is held with its reason and the rest keeps flowing", async () => {
    q(`ALTER TABLE pgfiles ADD CONSTRAINT test_no_rejects CHECK (key NOT LIKE '%/reject-me')`);
    try {
      const j = newJournal("held/");
      put(j, "held/a", "a");
      put(j, "held/reject-me", "no");
      put(j, "held/b", "b");
      put(j, "held/reject-me", "no again"); // same key after a held one: stays behind it
      const r = await new Flusher({ journal: j, sql, dsn: pg.dsn }).flushAll();
      expect(r.held).toBe(1);
      expect(r.remaining).toBe(2);
      expect(q(`SELECT string_agg(key, ',' ORDER BY key) FROM pgfiles WHERE key LIKE 'held/%'`)).toBe("held/a,held/b");
      const held = j.heldRows();
      expect(held.length).toBe(1);
      expect(held[0].held_reason).toContain("test_no_rejects");
      // Once the cause is gone, the held versions go through in order.
      q(`ALTER TABLE pgfiles DROP CONSTRAINT test_no_rejects`);
      j.releaseHeld();
      await new Flusher({ journal: j, sql, dsn: pg.dsn }).flushAll();
      expect(q(`SELECT string_agg(convert_from(data, 'UTF8'), ',' ORDER BY (meta->>'version')::int) FROM pgfiles WHERE key = 'held/reject-me'`)).toBe("no,no again");
      j.close();
    } finally {
      q(`ALTER TABLE pgfiles DROP CONSTRAINT IF EXISTS test_no_rejects`);
    }
  });

  test("only one process flushes a journal at a time", async () => {
    const cacheDir = fs.mkdtempSync(path.join(tmp, "cache-"));
    const a = new Journal({ cacheDir, dsn: pg.dsn, prefix: "lease/", cacheMaxSize: 1 << 30 });
    const b = new Journal({ cacheDir, dsn: pg.dsn, prefix: "lease/", cacheMaxSize: 1 << 30 });
    put(a, "lease/x", "x");
    expect(a.acquireLease()).toBe(true);
    const fb = new Flusher({ journal: b, sql, dsn: pg.dsn });
    const r = await fb.flushAll();
    expect(fb.state).toBe("busy");
    expect(r.versions).toBe(0);
    a.releaseLease();
    expect((await fb.flushAll()).versions).toBe(1);
    a.close();
    b.close();
  });

  test("a large file flushes with flat memory and identical bytes", async () => {
    const size = 300 * 1024 * 1024;
    const file = path.join(tmp, "big.bin");
    const fd = fs.openSync(file, "w");
    const chunk = Buffer.allocUnsafe(1 << 20);
    for (let i = 0; i < size / chunk.length; i++) {
      for (let k = 0; k < chunk.length; k += 4) chunk.writeUInt32LE((i * 2654435761 + k * 40503) >>> 0, k);
      fs.writeSync(fd, chunk);
    }
    fs.closeSync(fd);
    const cacheDir = fs.mkdtempSync(path.join(tmp, "cache-"));
    const p = Bun.spawnSync({
      cmd: [path.resolve(import.meta.dir, "../node_modules/.bin/bun"), path.join(import.meta.dir, "fixtures/flush-file.ts"), pg.dsn, cacheDir, "big/", "big/file.bin", file],
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(p.stderr.toString()).toBe("");
    const out = JSON.parse(p.stdout.toString());
    expect(out.versions).toBe(1);
    // Memory stays far below the file size: chunks stream from disk into COPY.
    expect(out.peakRss - out.rssBefore).toBeLessThan(100 * 1024 * 1024);
    expect(q(`SELECT octet_length(data) || ' ' || encode(sha256(data), 'hex') FROM pgfiles WHERE key = 'big/file.bin'`)).toBe(`${size} ${out.etag}`);
    fs.rmSync(file);
    fs.rmSync(cacheDir, { recursive: true, force: true });
  }, 120_000);

  test("a file larger than one bytea can hold is refused at write time with EFBIG", async () => {
    const file = path.join(tmp, "huge.sparse");
    const fd = fs.openSync(file, "w");
    fs.ftruncateSync(fd, 1024 * 1024 * 1024); // 1 GiB, sparse: no disk used
    fs.closeSync(fd);
    const env = cleanEnv({ PGFILES_DSN: pg.dsn, PGFILES_PREFIX: "efbig/" });
    const r = await run(["batch"], env, `put-file huge.bin ${file}\n`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("largest file pgfiles can store");
    expect(r.stderr).toContain("nothing was applied");
    const st = await ok(["status", "--json"], env);
    expect(JSON.parse(st.stdout).pending.versions).toBe(0);
    fs.rmSync(file);
  });
});

describe("faults", () => {
  test("the background flusher rides out an outage with backoff and delivers on its own when Postgres returns", async () => {
    const j = newJournal("bg/");
    const own = connect({ dsn: pg.dsn, poolSize: 2, preparedStatements: true, connectTimeout: 2 });
    const f = new Flusher({ journal: j, sql: own, dsn: pg.dsn });
    const bg = f.run({ intervalMs: 50, minBackoffMs: 100, maxBackoffMs: 400 });
    try {
      put(j, "bg/before", "before");
      for (let i = 0; i < 100 && j.stats().pending > 0; i++) await Bun.sleep(50);
      expect(j.stats().pending).toBe(0);
      await pg.stop();
      // Writes keep landing in the journal while Postgres is away.
      put(j, "bg/during-1", "one");
      put(j, "bg/during-2", "two");
      await Bun.sleep(1500);
      expect(f.state).toBe("offline");
      expect(j.stats().pending).toBe(2);
      await pg.start();
      for (let i = 0; i < 100 && j.stats().pending > 0; i++) await Bun.sleep(100);
      expect(j.stats().pending).toBe(0);
      expect(f.state).toBe("online");
    } finally {
      await bg.stop();
      await own.end({ timeout: 2 });
      j.close();
    }
    expect(q(`SELECT string_agg(key || '=' || convert_from(data, 'UTF8'), ',' ORDER BY key) FROM pgfiles WHERE key LIKE 'bg/%'`)).toBe(
      "bg/before=before,bg/during-1=one,bg/during-2=two",
    );
  }, 60_000);

  test("Postgres stopped while batch writes: batch succeeds into the journal, and everything lands byte for byte once it is back", async () => {
    const env = cleanEnv({ PGFILES_DSN: pg.dsn, PGFILES_PREFIX: "outage/" });
    const local = path.join(tmp, "outage.bin");
    const bytes = crypto.getRandomValues(new Uint8Array(3 * 1024 * 1024 + 17));
    fs.writeFileSync(local, bytes);
    await pg.stop();
    try {
      const r = await run(["batch"], env, `put a.txt "first"\nput-file dir/big.bin ${local}\nput a.txt "second"\nmkdir empty\n`);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("Queued 4 operations");
      expect(r.stderr).toContain("unreachable");
      const st = await run(["status", "--json"], env);
      expect(st.code).toBe(3);
      const s = JSON.parse(st.stdout);
      expect(s.postgres.online).toBe(false);
      expect(s.pending.versions).toBe(4);
    } finally {
      await pg.start();
    }
    // The next command delivers.
    const st = await run(["status"], env);
    expect(st.code).toBe(0);
    expect(q(`SELECT string_agg(meta->>'version' || '=' || convert_from(data, 'UTF8'), ',' ORDER BY (meta->>'version')::int) FROM pgfiles WHERE key = 'outage/a.txt'`)).toBe(
      "1=first,2=second",
    );
    const sha = createHash("sha256").update(bytes).digest("hex");
    expect(q(`SELECT encode(sha256(data), 'hex') FROM pgfiles WHERE key = 'outage/dir/big.bin'`)).toBe(sha);
    expect(q(`SELECT (data IS NULL)::text FROM pgfiles WHERE key = 'outage/empty/'`)).toBe("true");
  }, 60_000);

  test("kill -9 of the flushing process mid-batch: after a restart no version is missing and none is duplicated", async () => {
    const rounds = 4;
    let killedMidCopy = 0;
    for (let round = 0; round < rounds; round++) {
      const env = cleanEnv({ PGFILES_DSN: pg.dsn, PGFILES_PREFIX: `kill${round}/` });
      const n = 4000;
      const lines: string[] = [];
      for (let i = 0; i < n; i++) lines.push(`put f${i}.txt "round ${round} file ${i} ${"x".repeat(1000)}"`);
      const child = Bun.spawn({ cmd: [...cliCommand(), "batch"], env: env as Record<string, string>, stdin: new Blob([lines.join("\n")]), stdout: "ignore", stderr: "ignore" });
      // Even rounds: wait until the COPY is running in Postgres, then kill. Odd rounds: kill at a random moment.
      if (round % 2 === 0) {
        const deadline = Date.now() + 10_000;
        while (Date.now() < deadline) {
          const active = q(`SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgfiles' AND query LIKE 'COPY%' AND state = 'active'`);
          if (active !== "0") break;
          await Bun.sleep(5);
        }
        if (Date.now() < deadline) killedMidCopy++;
      } else {
        await Bun.sleep(200 + Math.random() * 800);
      }
      child.kill(9);
      await child.exited;
      // Restart: the next command on the same journal delivers what was recorded.
      await run(["status"], env);
      const counts = q(`SELECT count(*) || '/' || count(DISTINCT key) || '/' || COALESCE(max((meta->>'version')::int), 0) FROM pgfiles WHERE key LIKE 'kill${round}/%'`);
      const [rows, keys, maxVersion] = counts.split("/").map(Number);
      // One batch is one group: all of it or (killed before the journal commit) none of it.
      expect([0, n]).toContain(rows);
      expect(keys).toBe(rows);
      expect(maxVersion).toBe(rows ? 1 : 0);
      if (round % 2 === 0) expect(rows).toBe(n);
      const st = JSON.parse((await run(["status", "--json"], env)).stdout);
      expect(st.pending.versions).toBe(0);
    }
    expect(killedMidCopy).toBeGreaterThan(0);
  }, 180_000);

  test("two flushers with two journals writing the same keys at once: versions 1..N, no gap, no duplicate", async () => {
    const keys = 100;
    const batches = 6;
    const writer = (reverse: boolean) => {
      const env = cleanEnv({ PGFILES_DSN: pg.dsn, PGFILES_PREFIX: "race/" });
      return (async () => {
        for (let b = 0; b < batches; b++) {
          const idx = Array.from({ length: keys }, (_, i) => i);
          if (reverse) idx.reverse();
          await ok(["batch"], env, idx.map((i) => `put k${i} "${reverse ? "B" : "A"}${b}"`).join("\n"));
        }
        await ok(["status"], env); // deliver anything a conflict left queued
        return env;
      })();
    };
    await Promise.all([writer(false), writer(true)]);
    const perKey = q(
      `SELECT count(*) FROM (SELECT key, count(*) AS n, count(DISTINCT meta->>'version') AS d, min((meta->>'version')::int) AS lo, max((meta->>'version')::int) AS hi
         FROM pgfiles WHERE key LIKE 'race/%' GROUP BY key) s WHERE n = ${2 * batches} AND d = n AND lo = 1 AND hi = n`,
    );
    expect(perKey).toBe(String(keys));
    // Each writer's own versions of a key keep their order.
    const a = q(`SELECT string_agg(convert_from(data, 'UTF8'), ',' ORDER BY (meta->>'version')::int) FROM pgfiles WHERE key = 'race/k7' AND convert_from(data, 'UTF8') LIKE 'A%'`);
    expect(a).toBe(Array.from({ length: batches }, (_, b) => `A${b}`).join(","));
  }, 120_000);
});
