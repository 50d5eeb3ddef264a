// The journal on real SQLite files: format versioning, groups, the data cache's
// cap and LRU order (never evicting unflushed data), garbage collection.
import { Database } from "bun:sqlite";
import { afterAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileMeta } from "../meta.ts";
import { INLINE_MAX } from "./bodies.ts";
import { Journal, type NewVersion } from "./journal.ts";
import { JOURNAL_VERSION } from "./open.ts";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pgfiles-journal-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const DSN = "postgres://u:secret@db.example:5432/app";
function open(opts: { cacheDir?: string; prefix?: string; max?: number } = {}) {
  return new Journal({ cacheDir: opts.cacheDir ?? fs.mkdtempSync(path.join(tmp, "c-")), dsn: DSN, prefix: opts.prefix ?? "p/", cacheMaxSize: opts.max ?? 1 << 30 });
}
function version(j: Journal, key: string, bytes: Uint8Array): NewVersion {
  const id = crypto.randomUUID();
  const body = j.bodies.fromBytes(id, bytes, false);
  return { id, key, op: "put", meta: fileMeta(key, body.size, body.etag), body };
}
function flushAll(j: Journal) {
  const rows = j.nextBatch(1 << 20, Number.MAX_SAFE_INTEGER);
  j.markFlushed(rows, new Map(rows.map((r) => [r.id, { version: 1, meta: r.meta }])));
}

describe("journal", () => {
  test("lives in WAL mode, one directory per (database, prefix), password not part of its identity", () => {
    const cacheDir = fs.mkdtempSync(path.join(tmp, "c-"));
    const a = open({ cacheDir, prefix: "a/" });
    const b = open({ cacheDir, prefix: "b/" });
    const a2 = new Journal({ cacheDir, dsn: DSN.replace("secret", "other"), prefix: "a/", cacheMaxSize: 1 });
    expect(a.dir).not.toBe(b.dir);
    expect(a2.dir).toBe(a.dir);
    expect((a.db.query("PRAGMA journal_mode").get() as { journal_mode: string }).journal_mode).toBe("wal");
    expect(fs.readFileSync(path.join(a.dir, "journal.db")).includes(Buffer.from("secret"))).toBe(false);
    a.close();
    b.close();
    a2.close();
  });

  test("records its format version and refuses a journal from a newer pgfiles", () => {
    const j = open();
    const dir = j.dir;
    expect((j.db.query("PRAGMA user_version").get() as { user_version: number }).user_version).toBe(JOURNAL_VERSION);
    j.close();
    const raw = new Database(path.join(dir, "journal.db"));
    raw.exec(`PRAGMA user_version = ${JOURNAL_VERSION + 1}`);
    raw.close();
    expect(() => new Journal({ cacheDir: path.dirname(path.dirname(dir)), dsn: DSN, prefix: "p/", cacheMaxSize: 1 })).toThrow(/newer pgfiles/);
  });

  test("small bodies are inline, large ones are files, and both read back exactly", () => {
    const j = open();
    const small = version(j, "p/s", Buffer.alloc(INLINE_MAX, 1));
    const large = version(j, "p/l", Buffer.alloc(INLINE_MAX + 1, 2));
    j.record([small, large], true);
    const [s, l] = [j.pendingById(small.id)!, j.pendingById(large.id)!];
    expect(s.body?.length).toBe(INLINE_MAX);
    expect(s.body_file).toBeNull();
    expect(l.body).toBeNull();
    expect(fs.readFileSync(j.bodies.pathOf(l.body_file!)).equals(Buffer.alloc(INLINE_MAX + 1, 2))).toBe(true);
    j.close();
  });

  test("a group is never split across batches, and a group larger than the limit goes whole", () => {
    const j = open();
    j.record([1, 2, 3].map((i) => version(j, `p/g1-${i}`, Buffer.from("x"))), false);
    j.record([1, 2, 3].map((i) => version(j, `p/g2-${i}`, Buffer.from("x"))), false);
    expect(j.nextBatch(4, 1 << 30).map((r) => r.key)).toEqual(["p/g1-1", "p/g1-2", "p/g1-3"]);
    expect(j.nextBatch(2, 1 << 30).map((r) => r.key)).toEqual(["p/g1-1", "p/g1-2", "p/g1-3"]);
    expect(j.nextBatch(6, 1 << 30).length).toBe(6);
    j.close();
  });

  test("a failed record leaves nothing behind: no rows, no body files", () => {
    const j = open();
    const good = version(j, "p/ok", Buffer.alloc(INLINE_MAX + 10));
    const dup = { ...version(j, "p/dup", Buffer.from("x")), id: good.id }; // same id: UNIQUE violation
    expect(() => j.record([good, dup], false)).toThrow();
    expect(j.stats().pending).toBe(0);
    expect(fs.readdirSync(j.bodies.dir)).toEqual([]);
    j.close();
  });

  test("the data cache evicts least recently used clean bodies first and never pending ones", () => {
    const j = new Journal({ cacheDir: fs.mkdtempSync(path.join(tmp, "c-")), dsn: DSN, prefix: "p/", cacheMaxSize: 3 * 200_000 + 1000, lruGranularityMs: 0 });
    const vs = [0, 1, 2].map((i) => version(j, `p/c${i}`, Buffer.alloc(200_000, i)));
    j.record(vs, false);
    flushAll(j); // all three now clean, in the cache
    expect(j.stats().entries).toBe(3);
    j.cached(vs[0].id); // c0 is now the most recently used
    // A pending body of 400 KB pushes the total over the cap: two clean bodies go, LRU first.
    const pend = version(j, "p/pending", Buffer.alloc(400_000, 9));
    j.record([pend], false);
    j.evict();
    expect(j.cached(vs[1].id)).toBeNull();
    expect(j.cached(vs[2].id)).toBeNull();
    expect(j.cached(vs[0].id)?.size).toBe(200_000);
    expect(j.pendingById(pend.id)?.size).toBe(400_000);
    // Even a cap of one byte never touches the pending body.
    const tiny = new Journal({ cacheDir: path.dirname(path.dirname(j.dir)), dsn: DSN, prefix: "p/", cacheMaxSize: 1 });
    tiny.evict();
    expect(tiny.stats().entries).toBe(0);
    expect(fs.existsSync(tiny.bodies.pathOf(tiny.pendingById(pend.id)!.body_file!))).toBe(true);
    tiny.close();
    j.close();
  });

  test("cache clear drops cached bodies and metadata but keeps every pending version", () => {
    const j = open();
    j.record([version(j, "p/a", Buffer.alloc(INLINE_MAX * 2))], false);
    flushAll(j);
    const pend = version(j, "p/b", Buffer.alloc(INLINE_MAX * 2, 7));
    j.record([pend], false);
    const r = j.clearCache();
    expect(r.entries).toBe(1);
    const s = j.stats();
    expect(s.entries).toBe(0);
    expect(s.metaEntries).toBe(0);
    expect(s.pending).toBe(1);
    expect(fs.readFileSync(j.bodies.pathOf(j.pendingById(pend.id)!.body_file!)).equals(Buffer.alloc(INLINE_MAX * 2, 7))).toBe(true);
    j.close();
  });

  test("a flushed copy (rename) is cached under its own id, in the same flush as its source or later, and outlives the source's eviction", () => {
    const j = open();
    const small = version(j, "p/small", Buffer.from("small body"));
    const large = version(j, "p/large", Buffer.alloc(INLINE_MAX * 2, 5));
    j.record([small, large], false);
    const copy = (src: NewVersion, key: string): NewVersion => ({ id: crypto.randomUUID(), key, op: "copy", meta: src.meta, src: { id: src.id } });
    const c1 = copy(small, "p/small2");
    j.record([c1], false);
    flushAll(j); // source and copy in one batch
    const c2 = copy(large, "p/large2");
    j.record([c2], false);
    flushAll(j); // the copy after its source
    expect(Buffer.from(j.cached(c1.id)!.body!).toString()).toBe("small body");
    const f = j.cached(c2.id)!.file!;
    expect(fs.readFileSync(j.bodies.pathOf(f)).equals(Buffer.alloc(INLINE_MAX * 2, 5))).toBe(true);
    j.dropCached([large.id]);
    expect(j.cached(large.id)).toBeNull();
    expect(fs.readFileSync(j.bodies.pathOf(j.cached(c2.id)!.file!)).equals(Buffer.alloc(INLINE_MAX * 2, 5))).toBe(true);
    j.close();
  });

  test("making a pending copy durable fsyncs the body of the version it copies (a chmod after a close)", () => {
    const j = open();
    const large = version(j, "p/durable", Buffer.alloc(INLINE_MAX * 2, 9));
    j.record([large], false); // a close: recorded, body file not fsynced
    const chmod: NewVersion = { id: crypto.randomUUID(), key: "p/durable", op: "copy", meta: large.meta, src: { id: large.id } };
    const rename: NewVersion = { id: crypto.randomUUID(), key: "p/moved", op: "copy", meta: large.meta, src: { id: chmod.id } };
    j.record([chmod], false);
    j.record([rename], false);
    const synced: string[] = [];
    const pathOf = j.bodies.pathOf.bind(j.bodies);
    j.bodies.pathOf = (name: string) => (synced.push(name), pathOf(name));
    j.makeDurable(rename.id);
    expect(synced).toEqual([j.pendingById(large.id)!.body_file!]);
    j.close();
  });

  test("checkpoints run in the background: the database file takes the WAL's pages while this thread only commits", async () => {
    const j = open();
    j.checkpointInBackground();
    expect((j.db.query("PRAGMA wal_autocheckpoint").get() as { wal_autocheckpoint: number }).wal_autocheckpoint).toBe(0);
    const dbFile = path.join(j.dir, "journal.db");
    const before = fs.statSync(dbFile).size;
    for (let i = 0; i < 80; i++) j.record([version(j, `p/ck${i}`, Buffer.alloc(100 * 1024, i))], false);
    let after = before;
    for (let t = 0; t < 50 && after < before + 4 * 1024 * 1024; t++) {
      await Bun.sleep(100);
      after = fs.statSync(dbFile).size;
    }
    expect(after).toBeGreaterThan(before + 4 * 1024 * 1024);
    j.close();
  });

  test("hit rate counts hits and misses", () => {
    const j = open();
    const v = version(j, "p/h", Buffer.from("hi"));
    j.record([v], false);
    flushAll(j);
    j.cached(v.id);
    j.cached(v.id);
    j.cached(crypto.randomUUID());
    const s = j.stats();
    expect([s.hits, s.misses]).toEqual([2, 1]);
    expect(s.hitRate).toBeCloseTo(2 / 3);
    j.close();
  });

  test("metadata is trusted for the TTL only, negative entries included", async () => {
    const j = open();
    j.putMeta("p/a", "id-1", '{"size":1}');
    j.putMeta("p/missing", null, null);
    expect(j.cachedMeta("p/a", 10_000)).toEqual({ id: "id-1", meta: '{"size":1}' });
    expect(j.cachedMeta("p/missing", 10_000)).toEqual({ id: null, meta: null });
    await Bun.sleep(30);
    expect(j.cachedMeta("p/a", 10)).toBeNull();
    expect(j.cachedMeta("p/a", 0)).toBeNull();
    j.close();
  });

  test("garbage collection removes abandoned body files but never a referenced one", () => {
    const j = open();
    const v = version(j, "p/keep", Buffer.alloc(INLINE_MAX + 1));
    j.record([v], false);
    fs.writeFileSync(j.bodies.pathOf("tmp-abandoned"), "x");
    fs.writeFileSync(j.bodies.pathOf(crypto.randomUUID()), "orphan");
    const old = new Date(Date.now() - 2 * 3600_000);
    for (const f of fs.readdirSync(j.bodies.dir)) fs.utimesSync(j.bodies.pathOf(f), old, old);
    expect(j.collectGarbage()).toBe(2);
    expect(fs.readdirSync(j.bodies.dir)).toEqual([v.id]);
    j.close();
  });

  test("a lease held by a dead process is taken over; a live one is respected", () => {
    const cacheDir = fs.mkdtempSync(path.join(tmp, "c-"));
    const a = open({ cacheDir });
    const b = open({ cacheDir });
    expect(a.acquireLease()).toBe(true);
    expect(b.acquireLease()).toBe(false);
    expect(b.leaseHolder()?.pid).toBe(process.pid);
    // Pretend the holder was a process that has exited.
    const dead = Bun.spawnSync({ cmd: ["true"] }).pid;
    a.db.query("UPDATE flush_lease SET pid = $pid").run({ pid: dead });
    expect(b.acquireLease()).toBe(true);
    a.close();
    b.close();
  });
});
