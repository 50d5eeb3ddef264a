// The vfs on real PostgreSQL and a real journal, called the way a frontend calls
// it (no kernel in the way): versions on close, listings, renames, unlink while
// open, implicit directories, xattrs as tags.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startCluster, type Cluster } from "../../test/harness/postgres.ts";
import { Journal } from "../journal/journal.ts";
import { connect, type Sql } from "../store/connect.ts";
import { initSchema } from "../store/store.ts";
import { Flusher } from "../sync/flusher.ts";
import { Errno, RENAME_EXCHANGE, RENAME_NOREPLACE, VfsError } from "./types.ts";
import { PgVfs } from "./vfs.ts";

let pg: Cluster;
let sql: Sql;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pgfiles-vfs-"));
const who = { uid: 1000, gid: 1000, pid: 1 };
const O_RDONLY = 0;
const O_WRONLY = 1;
const O_RDWR = 2;
const O_TRUNC = 0o1000;

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

function mount(prefix: string, opts: { readOnly?: boolean; cacheDir?: string; ttl?: number } = {}) {
  const journal = new Journal({ cacheDir: opts.cacheDir ?? fs.mkdtempSync(path.join(tmp, "c-")), dsn: pg.dsn, prefix, cacheMaxSize: 1 << 30 });
  const vfs = new PgVfs({ journal, sql: () => sql, prefix, readOnly: opts.readOnly ?? false, metadataTtlMs: opts.ttl ?? 60_000 });
  const flush = () => new Flusher({ journal, sql, dsn: pg.dsn }).flushAll();
  return { journal, vfs, flush };
}

async function writeFile(vfs: PgVfs, parent: bigint, name: string, text: string | Uint8Array) {
  const { attr, opened } = await vfs.create(parent, name, 0o644, O_WRONLY, who);
  await vfs.write(attr.ino, opened.fh, 0, typeof text === "string" ? Buffer.from(text) : text, who);
  await vfs.flush(attr.ino, opened.fh, who);
  await vfs.release(attr.ino, opened.fh);
  return attr.ino;
}

async function readFile(vfs: PgVfs, ino: bigint): Promise<string> {
  const o = await vfs.open(ino, O_RDONLY, who);
  const out = Buffer.from(await vfs.read(ino, o.fh, 0, 1 << 20));
  await vfs.release(ino, o.fh);
  return out.toString();
}

async function resolve(vfs: PgVfs, p: string): Promise<bigint> {
  let ino = 1n;
  for (const part of p.split("/").filter(Boolean)) ino = (await vfs.lookup(ino, part, who)).ino;
  return ino;
}

async function names(vfs: PgVfs, p: string): Promise<string[]> {
  const ino = await resolve(vfs, p);
  const fh = await vfs.opendir(ino, who);
  const out: string[] = [];
  let cookie = 0n;
  for (;;) {
    const page = await vfs.readdir(ino, fh, cookie, 100, false);
    if (page.length === 0) break;
    out.push(...page.map((e) => e.name));
    cookie = page[page.length - 1].cookie;
  }
  await vfs.releasedir(ino, fh);
  return out.filter((n) => n !== "." && n !== "..");
}

async function errno(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (e) {
    if (e instanceof VfsError) return e.errno;
    throw e;
  }
  return 0;
}

const q = (s: string) => pg.psql(s);

describe("vfs", () => {
  test("a closed file is one version; reopening and closing without a change makes none", async () => {
    const { vfs, journal, flush } = mount("v1/");
    const ino = await writeFile(vfs, 1n, "a.txt", "hello");
    expect(journal.stats().pending).toBe(1);
    const o = await vfs.open(ino, O_RDWR, who);
    await vfs.flush(ino, o.fh, who);
    await vfs.release(ino, o.fh);
    expect(journal.stats().pending).toBe(1);
    await flush();
    expect(q(`SELECT meta->>'version' || ' ' || convert_from(data, 'UTF8') || ' ' || (meta->>'size') FROM pgfiles WHERE key = 'v1/a.txt'`)).toBe("1 hello 5");
    expect(await readFile(vfs, ino)).toBe("hello");
  });

  test("two creates, mkdirs or symlinks of one name at once: one wins, the other gets EEXIST, one entry remains", async () => {
    const { vfs } = mount("v-race/");
    await vfs.loadRoot();
    const both = async (f: () => Promise<unknown>) => (await Promise.all([errno(f()), errno(f())])).sort();
    expect(await both(() => vfs.create(1n, "f", 0o644, O_RDWR, who))).toEqual([0, 17]);
    expect(await both(() => vfs.mkdir(1n, "d", 0o755, who))).toEqual([0, 17]);
    expect(await both(() => vfs.symlink(1n, "l", "f", who))).toEqual([0, 17]);
    expect((await names(vfs, "")).filter((n) => n !== "." && n !== "..").sort()).toEqual(["d", "f", "l"]);
  });

  test("a second mount with an empty cache sees directories, files and bytes from Postgres", async () => {
    const a = mount("v2/");
    const d = await a.vfs.mkdir(1n, "docs", 0o755, who);
    const sub = await a.vfs.mkdir(d.ino, "sub", 0o700, who);
    const bytes = crypto.getRandomValues(new Uint8Array(300_000));
    await writeFile(a.vfs, sub.ino, "blob.bin", bytes);
    await writeFile(a.vfs, 1n, "top.txt", "top");
    await a.flush();
    const b = mount("v2/");
    expect((await names(b.vfs, "")).sort()).toEqual(["docs", "top.txt"]);
    expect(await names(b.vfs, "docs")).toEqual(["sub"]);
    const ino = await resolve(b.vfs, "docs/sub/blob.bin");
    const attr = await b.vfs.getattr(ino, who);
    expect(attr.size).toBe(300_000);
    expect((await b.vfs.getattr(await resolve(b.vfs, "docs/sub"), who)).mode & 0o777).toBe(0o700);
    const o = await b.vfs.open(ino, O_RDONLY, who);
    const got = await b.vfs.read(ino, o.fh, 0, 400_000);
    expect(Buffer.from(got).equals(Buffer.from(bytes))).toBe(true);
  });

  test("unlink of an open file: still readable and writable, its last close makes no version", async () => {
    const { vfs, flush } = mount("v3/");
    const ino = await writeFile(vfs, 1n, "open.txt", "before");
    const o = await vfs.open(ino, O_RDWR, who);
    await vfs.unlink(1n, "open.txt", who);
    expect(await errno(vfs.lookup(1n, "open.txt", who))).toBe(Errno.ENOENT);
    await vfs.write(ino, o.fh, 6, Buffer.from(" after"), who);
    expect(Buffer.from(await vfs.read(ino, o.fh, 0, 100)).toString()).toBe("before after");
    await vfs.flush(ino, o.fh, who);
    await vfs.release(ino, o.fh);
    await flush();
    expect(q(`SELECT string_agg(meta->>'version' || ':' || (meta->>'deleted'), ',' ORDER BY (meta->>'version')::int) FROM pgfiles WHERE key = 'v3/open.txt'`)).toBe("1:false,2:true");
  });

  test("rename replaces the target atomically; directory rename moves every key below it", async () => {
    const { vfs, flush } = mount("v4/");
    await writeFile(vfs, 1n, "new.txt", "new content");
    await writeFile(vfs, 1n, "target.txt", "old content");
    await vfs.rename(1n, "new.txt", 1n, "target.txt", 0, who);
    expect(await readFile(vfs, await resolve(vfs, "target.txt"))).toBe("new content");
    const d = await vfs.mkdir(1n, "src", 0o755, who);
    const inner = await vfs.mkdir(d.ino, "inner", 0o755, who);
    await writeFile(vfs, inner.ino, "deep.txt", "deep");
    await writeFile(vfs, d.ino, "f.txt", "f");
    await vfs.rename(1n, "src", 1n, "dst", 0, who);
    await flush();
    const live = q(`SELECT string_agg(h.key, ',' ORDER BY h.key) FROM pgfiles_head h WHERE h.key LIKE 'v4/%' AND NOT h.deleted`);
    expect(live).toBe("v4/dst/,v4/dst/f.txt,v4/dst/inner/,v4/dst/inner/deep.txt,v4/target.txt");
    expect(q(`SELECT convert_from(p.data, 'UTF8') FROM pgfiles_head h JOIN pgfiles p ON p.id = h.id WHERE h.key = 'v4/dst/inner/deep.txt'`)).toBe("deep");
    // A fresh mount agrees.
    const b = mount("v4/");
    expect(await readFile(b.vfs, await resolve(b.vfs, "dst/inner/deep.txt"))).toBe("deep");
  });

  test("RENAME_NOREPLACE refuses an existing target; RENAME_EXCHANGE swaps two files", async () => {
    const { vfs } = mount("v5/");
    await writeFile(vfs, 1n, "a", "A");
    await writeFile(vfs, 1n, "b", "B");
    expect(await errno(vfs.rename(1n, "a", 1n, "b", RENAME_NOREPLACE, who))).toBe(Errno.EEXIST);
    await vfs.rename(1n, "a", 1n, "b", RENAME_EXCHANGE, who);
    expect(await readFile(vfs, await resolve(vfs, "a"))).toBe("B");
    expect(await readFile(vfs, await resolve(vfs, "b"))).toBe("A");
  });

  test("rmdir of a non-empty directory is ENOTEMPTY; removing the last file keeps its directory", async () => {
    const { vfs, flush } = mount("v6/");
    // An implicit directory: keys below it, no marker.
    q(`INSERT INTO pgfiles (key, meta, data) VALUES ('v6/implicit/only.txt', '{"type":"file","size":1}', 'x')`);
    expect(await names(vfs, "")).toEqual(["implicit"]);
    expect(await errno(vfs.rmdir(1n, "implicit", who))).toBe(Errno.ENOTEMPTY);
    await vfs.unlink(await resolve(vfs, "implicit"), "only.txt", who);
    await flush();
    const b = mount("v6/");
    expect(await names(b.vfs, "")).toEqual(["implicit"]);
    expect(await names(b.vfs, "implicit")).toEqual([]);
    await b.vfs.rmdir(1n, "implicit", who);
    await b.flush();
    expect(await names(mount("v6/").vfs, "")).toEqual([]);
  });

  test("symlinks, truncate of a closed file, chmod and user xattrs become versions with the right meta", async () => {
    const { vfs, flush } = mount("v7/");
    const s = await vfs.symlink(1n, "link", "some/where", who);
    expect(await vfs.readlink(s.ino, who)).toBe("some/where");
    const ino = await writeFile(vfs, 1n, "t.txt", "0123456789");
    await vfs.setattr(ino, { size: 4 }, who);
    await vfs.setattr(ino, { mode: 0o600 }, who);
    await vfs.setxattr(ino, "user.owner", Buffer.from("agent-7"), 0, who);
    await vfs.setxattr(ino, "user.gone", Buffer.from("x"), 0, who);
    await vfs.removexattr(ino, "user.gone", who);
    expect(await errno(vfs.setxattr(ino, "trusted.x", Buffer.from("x"), 0, who))).toBe(Errno.ENOTSUP);
    expect(await errno(vfs.getxattr(ino, "user.nope"))).toBe(Errno.ENODATA);
    expect(Buffer.from(await vfs.getxattr(ino, "user.owner")).toString()).toBe("agent-7");
    await flush();
    expect(q(`SELECT meta->>'type' || ' ' || (meta->>'target') || ' ' || (data IS NULL)::text FROM pgfiles WHERE key = 'v7/link'`)).toBe("symlink some/where true");
    const latest = q(`SELECT (meta->>'version') || ' ' || convert_from(p.data, 'UTF8') || ' ' || (meta->>'mode') || ' ' || (meta->'tags')::text FROM pgfiles_head h JOIN pgfiles p ON p.id = h.id WHERE h.key = 'v7/t.txt'`);
    expect(latest).toBe(`6 0123 384 {"owner": "agent-7"}`);
  });

  test("a directory of 2,500 entries lists each name exactly once across pages", async () => {
    const { vfs, flush } = mount("v8/");
    q(`INSERT INTO pgfiles (key, meta, data) SELECT 'v8/big/f' || lpad(i::text, 5, '0'), '{"type":"file","size":1}', 'x' FROM generate_series(1, 2500) i`);
    await writeFile(vfs, await resolve(vfs, "big"), "zz-local.txt", "local");
    const listed = await names(vfs, "big");
    expect(listed.length).toBe(2501);
    expect(new Set(listed).size).toBe(2501);
    expect(listed).toContain("zz-local.txt");
    await flush();
  });

  test("O_TRUNC empties the file; read-only mode refuses every write with EROFS", async () => {
    const { vfs, journal } = mount("v9/");
    const ino = await writeFile(vfs, 1n, "f", "something");
    const o = await vfs.open(ino, O_WRONLY | O_TRUNC, who);
    await vfs.release(ino, o.fh);
    expect(await readFile(vfs, ino)).toBe("");
    const ro = new PgVfs({ journal, sql: () => sql, prefix: "v9/", readOnly: true, metadataTtlMs: 1000 });
    const f = await resolve(ro, "f");
    expect(await errno(ro.create(1n, "x", 0o644, O_WRONLY, who))).toBe(Errno.EROFS);
    expect(await errno(ro.mkdir(1n, "d", 0o755, who))).toBe(Errno.EROFS);
    expect(await errno(ro.unlink(1n, "f", who))).toBe(Errno.EROFS);
    expect(await errno(ro.open(f, O_WRONLY, who))).toBe(Errno.EROFS);
    expect(await errno(ro.setattr(f, { mode: 0o600 }, who))).toBe(Errno.EROFS);
  });

  test("bad names get EINVAL or ENAMETOOLONG, never a key outside the prefix", async () => {
    const { vfs } = mount("v10/");
    expect(await errno(vfs.create(1n, "x".repeat(256), 0o644, O_WRONLY, who))).toBe(Errno.ENAMETOOLONG);
    expect(await errno(vfs.mkdir(1n, "..", 0o755, who))).toBe(Errno.EINVAL);
    expect(await errno(vfs.create(1n, "a/b", 0o644, O_WRONLY, who))).toBe(Errno.EINVAL);
    expect(q(`SELECT count(*) FROM pgfiles WHERE key NOT LIKE 'v%'`)).toBe("0");
  });

  test("readers share the cached body without copying it; the first writer gets a private copy everyone then sees", async () => {
    const { vfs, flush, journal } = mount("v11/");
    const bytes = Buffer.alloc(512 * 1024, 7);
    const ino = await writeFile(vfs, 1n, "big.bin", bytes);
    await flush();
    const staging = path.join(journal.dir, "staging", String(process.pid));
    const r = await vfs.open(ino, O_RDONLY, who);
    expect(fs.readdirSync(staging)).toEqual([]); // no copy for a reader
    const w = await vfs.open(ino, O_RDWR, who);
    expect(fs.readdirSync(staging).length).toBe(1);
    await vfs.write(ino, w.fh, 0, Buffer.from("new"), who);
    expect(Buffer.from(await vfs.read(ino, r.fh, 0, 4)).toString()).toBe("new\x07");
    await vfs.release(ino, w.fh);
    await vfs.release(ino, r.fh);
    await flush();
    expect(fs.readdirSync(staging)).toEqual([]);
    expect(q(`SELECT string_agg(encode(substring(data FROM 1 FOR 3), 'hex'), ',' ORDER BY (meta->>'version')::int) FROM pgfiles WHERE key = 'v11/big.bin'`)).toBe("070707,6e6577");
  });

  test("a large file's staging file becomes its body file at fsync (no copy); writes after it copy again; bytes and hashes stay right", async () => {
    const { vfs, flush, journal } = mount("v13/");
    const staging = path.join(journal.dir, "staging", String(process.pid));
    const { attr, opened } = await vfs.create(1n, "big.bin", 0o644, O_WRONLY, who);
    const ino = attr.ino;
    const part1 = Buffer.alloc(300 * 1024, 1);
    await vfs.write(ino, opened.fh, 0, part1.subarray(0, 100_000), who);
    await vfs.write(ino, opened.fh, 100_000, part1.subarray(100_000), who); // front to back: hashed on the way
    await vfs.fsync(ino, opened.fh);
    expect(fs.readdirSync(staging)).toEqual([]); // handed over to the journal, not copied
    const v1 = journal.pendingForKey("v13/big.bin")[0];
    expect(fs.readFileSync(journal.bodies.pathOf(v1.body_file!)).equals(part1)).toBe(true);
    // Still open: a write now must not change the recorded body.
    await vfs.write(ino, opened.fh, 10, Buffer.from("XY"), who);
    expect(fs.readdirSync(staging).length).toBe(1);
    expect(fs.readFileSync(journal.bodies.pathOf(v1.body_file!)).equals(part1)).toBe(true);
    await vfs.flush(ino, opened.fh, who);
    await vfs.release(ino, opened.fh);
    const part2 = Buffer.from(part1);
    part2.write("XY", 10);
    await flush();
    const sha = (b: Buffer) => new Bun.CryptoHasher("sha256").update(b).digest("hex");
    expect(q(`SELECT string_agg(encode(sha256(data), 'hex') || '=' || (meta->>'etag'), ',' ORDER BY (meta->>'version')::int) FROM pgfiles WHERE key = 'v13/big.bin'`)).toBe(
      `${sha(part1)}=${sha(part1)},${sha(part2)}=${sha(part2)}`,
    );
    // A reader of the cached body keeps its bytes even after the cache drops the file; a writer then copies
    // through the open descriptor.
    const r = await vfs.open(ino, O_RDONLY, who);
    journal.clearCache();
    const w = await vfs.open(ino, O_RDWR, who);
    await vfs.write(ino, w.fh, 0, Buffer.from("Z"), who);
    expect(Buffer.from(await vfs.read(ino, r.fh, 0, 12)).toString("latin1")).toBe("Z\x01\x01\x01\x01\x01\x01\x01\x01\x01XY");
    await vfs.release(ino, w.fh);
    await vfs.release(ino, r.fh);
  });

  test("a small file is read from memory; a writer's changes reach a reader opened before it", async () => {
    const { vfs, flush, journal } = mount("v12/");
    const ino = await writeFile(vfs, 1n, "small.txt", "0123456789");
    await flush();
    const staging = path.join(journal.dir, "staging", String(process.pid));
    const r = await vfs.open(ino, O_RDONLY, who);
    expect(fs.readdirSync(staging)).toEqual([]);
    expect(Buffer.from(await vfs.read(ino, r.fh, 8, 100)).toString()).toBe("89");
    expect((await vfs.read(ino, r.fh, 50, 10)).length).toBe(0);
    const w = await vfs.open(ino, O_WRONLY, who);
    await vfs.write(ino, w.fh, 10, Buffer.from("AB"), who);
    expect(Buffer.from(await vfs.read(ino, r.fh, 0, 100)).toString()).toBe("0123456789AB");
    expect((await vfs.getattr(ino, who)).size).toBe(12);
    await vfs.release(ino, w.fh);
    await vfs.release(ino, r.fh);
    expect(fs.readdirSync(staging)).toEqual([]);
  });
});
