// The CLI commands end to end: a real PostgreSQL cluster, the real SQLite journal,
// and `pgfiles` run as a subprocess with a clean environment. Every assertion about
// what was stored reads Postgres itself through psql.
//
// One cluster for the whole file; every test gets its own database (and so its own
// journal, since a journal is keyed by database and prefix), so the tests run
// concurrently. The test that stops PostgreSQL runs last, alone.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pgBinDir, startCluster, type Cluster } from "./harness/postgres.ts";
import { startBouncer, type Bouncer } from "./harness/pgbouncer.ts";
import { cleanEnv, ok, run, type CliEnv, type CliResult } from "./harness/cli.ts";

setDefaultTimeout(60_000);

let pg: Cluster;
beforeAll(async () => {
  // fsync off: nothing here tests server crash safety, and CREATE DATABASE per test
  // is several times faster without it.
  pg = await startCluster({ settings: { fsync: "off" } });
}, 60_000);
afterAll(async () => {
  await pg?.destroy();
}, 60_000);

const sha256 = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");
const hex = (s: string) => Buffer.from(s, "utf8").toString("hex");

interface Db {
  name: string;
  dsn: string;
  /** One environment per test: the same HOME, so the same journal, for every command. */
  env: CliEnv;
  q(sql: string): string;
  /** Runs a query whose single value is JSON (e.g. json_agg) and parses it. */
  json<T = unknown>(sql: string): T;
  rows(): number;
  pending(): Promise<number>;
  batch(lines: string | string[], extraArgs?: string[]): Promise<CliResult>;
}

/** CREATE DATABASE without blocking the other (concurrent) tests, unlike the harness's synchronous psql. */
async function createDatabase(name: string) {
  const p = Bun.spawn({
    cmd: [path.join(pgBinDir(), "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", String(pg.port), "-U", "pgfiles", "-d", "postgres", "-c", `CREATE DATABASE ${name}`],
    stdout: "pipe",
    stderr: "pipe",
  });
  const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`CREATE DATABASE ${name} failed: ${err}`);
}

let seq = 0;
/** A fresh database with the schema, and an environment pointing at it. */
async function freshDb(label: string, extraEnv: CliEnv = {}, opts: { dsn?: (name: string) => string } = {}): Promise<Db> {
  const name = `cmd_${++seq}_${label}`;
  await createDatabase(name);
  const dsn = opts.dsn ? opts.dsn(name) : pg.dsn.replace(/\/postgres$/, `/${name}`);
  const env = cleanEnv({ PGFILES_DSN: dsn, ...extraEnv });
  await ok(["init"], env);
  const db: Db = {
    name,
    dsn,
    env,
    q: (sql) => pg.psql(sql, name),
    json: (sql) => JSON.parse(pg.psql(sql, name) || "null"),
    rows: () => Number(pg.psql("SELECT count(*) FROM pgfiles", name)),
    async pending() {
      const r = await run(["status", "--json"], env);
      return JSON.parse(r.stdout).pending.versions as number;
    },
    batch: (lines, extraArgs = []) => run(["batch", ...extraArgs], env, Array.isArray(lines) ? lines.join("\n") + "\n" : lines),
  };
  return db;
}

async function okBatch(db: Db, lines: string | string[], extraArgs: string[] = []): Promise<CliResult> {
  const r = await db.batch(lines, extraArgs);
  if (r.code !== 0) throw new Error(`batch exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** The meta of one stored version (the latest when version is omitted). */
function metaOf(db: Db, key: string, version?: number): Record<string, any> {
  const lit = sqlLit(key);
  const where = version === undefined ? `key = ${lit} ORDER BY (meta->>'version')::int DESC LIMIT 1` : `key = ${lit} AND meta->>'version' = '${version}'`;
  const m = db.json<Record<string, any> | null>(`SELECT meta FROM pgfiles WHERE ${where}`);
  if (!m) throw new Error(`no version ${version ?? "latest"} of ${JSON.stringify(key)}`);
  return m;
}

/** hex of data of one version ("NULL" for a NULL body). */
function dataHex(db: Db, key: string, version: number): string {
  return db.q(`SELECT COALESCE(encode(data, 'hex'), 'NULL') FROM pgfiles WHERE key = ${sqlLit(key)} AND meta->>'version' = '${version}'`);
}

/** A SQL string literal for any text (newlines and quotes included), via hex so psql -c sees plain ASCII. */
function sqlLit(s: string): string {
  return `convert_from('\\x${hex(s)}'::bytea, 'UTF8')`;
}

function keysUnder(db: Db, prefix: string): string[] {
  return db.json<string[] | null>(`SELECT json_agg(DISTINCT key ORDER BY key) FROM pgfiles WHERE starts_with(key, ${sqlLit(prefix)})`) ?? [];
}

// ---------------------------------------------------------------------------
describe.concurrent("batch: every operation lands in Postgres as the right row", () => {
  test("put, put-base64, put-file, delete, mkdir, restore, copy, tag and untag store the right keys, versions, bytes and meta", async () => {
    const db = await freshDb("ops");
    const all256 = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const localDir = fs.mkdtempSync(path.join(os.tmpdir(), "pgfiles-local-"));
    const localFile = path.join(localDir, "local input.json");
    const localBody = '{"answer": 42, "é": "ü"}\n';
    fs.writeFileSync(localFile, localBody);

    const r1 = await okBatch(db, [
      "# a comment, then a blank line",
      "",
      'put docs/readme.md "hello world\\n"',
      `put-base64 bin/all.bin ${all256.toString("base64")}`,
      `put-file data/local.json ${JSON.stringify(localFile)}`,
      "put empty.txt \"\"",
      "mkdir out",
      "put docs/old.txt first",
      "put docs/old.txt second",
      "delete docs/old.txt",
      "copy docs/readme.md docs/copy.md",
      'tag docs/readme.md owner=alice "team=data eng"',
    ]);
    // The output names every line's path and the version it became.
    expect(r1.stdout).toContain("docs/readme.md  version 1");
    expect(r1.stdout).toContain("docs/old.txt  version 3");
    expect(r1.stdout).toContain("out/  version 1");

    // put: UTF-8 text, exact bytes, size, etag, content type from the name.
    expect(dataHex(db, "docs/readme.md", 1)).toBe(hex("hello world\n"));
    const readme1 = metaOf(db, "docs/readme.md", 1);
    expect(readme1).toMatchObject({ version: 1, deleted: false, type: "file", size: 12, etag: sha256("hello world\n"), content_type: "text/markdown" });

    // put-base64: all 256 byte values, hex-exact.
    expect(dataHex(db, "bin/all.bin", 1)).toBe(all256.toString("hex"));
    expect(metaOf(db, "bin/all.bin", 1)).toMatchObject({ size: 256, etag: sha256(all256), content_type: "application/octet-stream", type: "file" });

    // put-file: the local file's bytes (a local name with a space, quoted).
    expect(dataHex(db, "data/local.json", 1)).toBe(hex(localBody));
    expect(metaOf(db, "data/local.json", 1)).toMatchObject({ size: Buffer.byteLength(localBody), etag: sha256(localBody), content_type: "application/json" });

    // An empty file is an empty bytea, not NULL.
    expect(dataHex(db, "empty.txt", 1)).toBe("");
    expect(metaOf(db, "empty.txt", 1)).toMatchObject({ size: 0, etag: sha256(""), content_type: "text/plain", type: "file" });

    // mkdir: a key ending in "/", NULL data, type dir.
    expect(dataHex(db, "out/", 1)).toBe("NULL");
    expect(metaOf(db, "out/", 1)).toMatchObject({ type: "dir", deleted: false, size: 0 });
    expect(db.q("SELECT count(*) FROM pgfiles WHERE key = 'out'")).toBe("0");

    // Several versions of one key in one batch, then a tombstone.
    expect(dataHex(db, "docs/old.txt", 1)).toBe(hex("first"));
    expect(dataHex(db, "docs/old.txt", 2)).toBe(hex("second"));
    expect(metaOf(db, "docs/old.txt", 3)).toMatchObject({ deleted: true, size: 0 });
    expect(dataHex(db, "docs/old.txt", 3)).toBe("NULL");

    // copy: same bytes and etag under the new key.
    expect(dataHex(db, "docs/copy.md", 1)).toBe(hex("hello world\n"));
    expect(metaOf(db, "docs/copy.md", 1)).toMatchObject({ size: 12, etag: sha256("hello world\n"), type: "file", deleted: false });

    // tag: a new version with the same body and the tags.
    expect(dataHex(db, "docs/readme.md", 2)).toBe(hex("hello world\n"));
    expect(metaOf(db, "docs/readme.md", 2)).toMatchObject({ version: 2, etag: sha256("hello world\n"), tags: { owner: "alice", team: "data eng" } });

    // Second batch: untag and tag merge with the existing tags; restore brings back old content.
    await okBatch(db, ["untag docs/readme.md owner", "tag docs/readme.md stage=final team=ml", "restore docs/old.txt 1", "copy out/ out2/"]);
    // A directory marker copies as a directory marker.
    expect(dataHex(db, "out2/", 1)).toBe("NULL");
    expect(metaOf(db, "out2/", 1)).toMatchObject({ type: "dir", deleted: false });
    expect(metaOf(db, "docs/readme.md", 3).tags).toEqual({ team: "data eng" });
    expect(metaOf(db, "docs/readme.md", 4).tags).toEqual({ team: "ml", stage: "final" });
    expect(dataHex(db, "docs/readme.md", 4)).toBe(hex("hello world\n"));
    expect(metaOf(db, "docs/old.txt", 4)).toMatchObject({ version: 4, deleted: false, size: 5, etag: sha256("first") });
    expect(dataHex(db, "docs/old.txt", 4)).toBe(hex("first"));
    // Untagging the last tag leaves no tags at all.
    await okBatch(db, ["untag docs/readme.md team stage"]);
    expect(metaOf(db, "docs/readme.md", 5).tags).toBeUndefined();

    fs.rmSync(localDir, { recursive: true, force: true });
  });

  test("copy takes the source body from Postgres, not from the local cache", async () => {
    const db = await freshDb("copy_server");
    await okBatch(db, ["put src.bin local-bytes"]);
    // Change the stored body behind pgfiles' back: the local journal/cache still has "local-bytes".
    db.q(`UPDATE pgfiles SET data = '\\xdeadbeef'::bytea WHERE key = 'src.bin'`);
    await okBatch(db, ["copy src.bin dst.bin"]);
    expect(dataHex(db, "dst.bin", 1)).toBe("deadbeef");
  });

  test("--json output and -f FILE report each line's key and stored version", async () => {
    const db = await freshDb("json");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgfiles-batchfile-"));
    const file = path.join(dir, "ops.txt");
    fs.writeFileSync(file, "put a.txt one\nput a.txt two\nmkdir d\n");
    const r = await ok(["batch", "-f", file, "--json"], db.env);
    const out = JSON.parse(r.stdout);
    expect(out.stored).toBe(true);
    expect(out.queued).toBe(false);
    expect(out.results.map((x: any) => [x.line, x.op, x.key, x.version])).toEqual([
      [1, "put", "a.txt", 1],
      [2, "put", "a.txt", 2],
      [3, "mkdir", "d/", 1],
    ]);
    for (const x of out.results) expect(db.q(`SELECT key FROM pgfiles WHERE id = '${x.id}'`)).toBe(x.key);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

// ---------------------------------------------------------------------------
describe.concurrent("batch is all or nothing", () => {
  test("any bad line rejects the whole batch, names the line, and applies nothing", async () => {
    const db = await freshDb("atomic");
    await okBatch(db, ["put keep.txt kept", "put keep.txt kept-2"]);
    const before = db.rows();
    expect(before).toBe(2);
    const journal = JSON.parse((await ok(["where", "--json"], db.env)).stdout).journal as string;
    expect(journal).toBeTruthy();
    // Lines 1-2 are good (line 2 large enough to be staged as a body file); line 3 is bad.
    const big = "x".repeat(200 * 1024);
    const good = ["put new.txt fresh", `put big.txt ${big}`];
    const bad: [string, RegExp][] = [
      ["frobnicate a.txt", /unknown operation "frobnicate"/],
      ['put-base64 a.bin "not base64!"', /not valid base64/],
      ["put-base64 a.bin QUJD=", /not valid base64/],
      ["put lonely.txt", /put takes 2 arguments, got 1/],
      ["delete", /delete takes 1 argument, got 0/],
      ["put ../escape.txt x", /"\.\."/],
      ["put a/../b.txt x", /"\.\."/],
      ['put "unterminated x', /not closed/],
      ["delete never-existed.txt", /never-existed\.txt does not exist/],
      ["copy never-existed.txt c.txt", /never-existed\.txt does not exist/],
      ["tag never-existed.txt a=b", /never-existed\.txt does not exist/],
      ["restore keep.txt 9", /keep\.txt has no version 9/],
      ["restore keep.txt zero", /not a positive whole number/],
      ["put-file x.txt /nonexistent/dir/file.bin", /\/nonexistent\/dir\/file\.bin/],
      ["put dir/ x", /names a directory/],
      // A file's body never lands on a directory marker's key, nor a marker on a file's key.
      ["copy keep.txt somedir/", /somedir\/ names a directory/],
      ["copy somedir/ file.txt", /somedir\/ names a directory/],
      ["tag keep.txt novalue", /not NAME=VALUE/],
    ];
    for (const [line, why] of bad) {
      const r = await db.batch([...good, line]);
      const ctx = `batch with bad line ${JSON.stringify(line)}: exit ${r.code}, stderr ${r.stderr}`;
      expect(r.code, ctx).not.toBe(0);
      expect(r.stderr, ctx).toContain("line 3");
      expect(r.stderr, ctx).toContain("nothing was applied");
      expect(r.stderr, ctx).toMatch(why);
      expect(r.stderr.trim().split("\n").length, ctx).toBe(1);
      expect(r.stdout, ctx).toBe("");
      expect(db.rows(), ctx).toBe(before);
      // No staged body file is left behind in the journal.
      expect(fs.readdirSync(path.join(journal, "blobs")), ctx).toEqual([]);
    }
    expect(keysUnder(db, "")).toEqual(["keep.txt"]);
    expect(await db.pending()).toBe(0);
  });

  test("an empty batch is refused with exit 2", async () => {
    const db = await freshDb("empty");
    const r = await db.batch("# only a comment\n\n");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("empty");
    expect(db.rows()).toBe(0);
  });
});

// ---------------------------------------------------------------------------
describe.concurrent("batch visibility", () => {
  test("all rows of one batch are written by one Postgres transaction", async () => {
    const db = await freshDb("xmin");
    await okBatch(db, ["put tx/seed.txt seed"]);
    await okBatch(db, [
      "put tx/a.txt a",
      "put tx/b.txt b",
      "mkdir tx/dir",
      "copy tx/seed.txt tx/c.txt",
      "tag tx/a.txt k=v",
      "delete tx/b.txt",
      "restore tx/seed.txt 1",
      `put tx/big.bin ${"y".repeat(300 * 1024)}`,
    ]);
    const sameTx = db.q(
      `SELECT count(DISTINCT xmin::text) || ' ' || count(*) FROM pgfiles WHERE key LIKE 'tx/%' AND NOT (key = 'tx/seed.txt' AND meta->>'version' = '1')`,
    );
    expect(sameTx).toBe("1 8");
    // The check can tell batches apart: the first batch was another transaction.
    expect(db.q(`SELECT count(DISTINCT xmin::text) FROM pgfiles WHERE key LIKE 'tx/%'`)).toBe("2");
  });
});

// ---------------------------------------------------------------------------
describe.concurrent("hostile names", () => {
  test("names with % _ \\ quotes, spaces, a newline and emoji become exactly those keys", async () => {
    const db = await freshDb("hostile", { PGFILES_PREFIX: "agents/x" });
    const names = [
      "100%_done\\x.txt", // LIKE wildcards and a backslash, as a bare word
      `it's "quoted".txt`,
      "a b  c.txt",
      "a\nb",
      "🚀 launch/notes.md",
      "_/%/\\",
    ];
    const lines = names.map((n, i) => `put ${JSON.stringify(n)} ${JSON.stringify(`body ${i}`)}`);
    lines[0] = "put 100%_done\\x.txt \"body 0\""; // bare word: backslash is literal outside quotes
    await okBatch(db, lines);
    expect(keysUnder(db, "")).toEqual(names.map((n) => `agents/x/${n}`).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
    names.forEach((n, i) => expect(dataHex(db, `agents/x/${n}`, 1)).toBe(hex(`body ${i}`)));
    // A LIKE-special name does not match its look-alikes: version lists only the exact key.
    await okBatch(db, ["put 100x_done\\x.txt other", "put 100%Adone\\x.txt other"]);
    const v = JSON.parse((await ok(["version", "100%_done\\x.txt", "--json"], db.env)).stdout);
    expect(v.key).toBe("agents/x/100%_done\\x.txt");
    expect(v.versions.length).toBe(1);
    // The newline name round-trips through version too.
    const nl = JSON.parse((await ok(["version", "a\nb", "--json"], db.env)).stdout);
    expect(nl.key).toBe("agents/x/a\nb");
    expect(nl.versions.length).toBe(1);
  });

  test("a 255-byte name is accepted and a 256-byte name is rejected (bytes, not characters)", async () => {
    const db = await freshDb("namemax", { PGFILES_PREFIX: "agents/x" });
    const n255 = "x".repeat(251) + ".txt";
    const e255 = "é".repeat(127) + "a"; // 128 characters, 255 bytes
    await okBatch(db, [`put ${n255} ok`, `put ${e255} ok`]);
    expect(keysUnder(db, "agents/x/").sort()).toEqual([`agents/x/${n255}`, `agents/x/${e255}`].sort());
    for (const n256 of ["x".repeat(252) + ".txt", "é".repeat(128)]) {
      const r = await db.batch(["put fine.txt ok", `put ${n256} no`]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain("line 2");
      expect(r.stderr).toContain("256 bytes");
      expect(db.rows()).toBe(2);
    }
  });

  test('PGFILES_PREFIX without a trailing slash ("agents/x") scopes keys under "agents/x/"', async () => {
    const db = await freshDb("prefix", { PGFILES_PREFIX: "agents/x" });
    await okBatch(db, ["put a.txt 1", "mkdir d", "put /rooted.txt 2"]);
    expect(keysUnder(db, "")).toEqual(["agents/x/a.txt", "agents/x/d/", "agents/x/rooted.txt"]);
    // A sibling prefix sharing the first characters is a different scope.
    const sib = { ...db.env, PGFILES_PREFIX: "agents/xy" };
    await ok(["batch"], sib, "put a.txt 3\n");
    expect(db.q("SELECT key FROM pgfiles WHERE key LIKE 'agents/xy%'")).toBe("agents/xy/a.txt");
    const v = JSON.parse((await ok(["version", "a.txt", "--json"], db.env)).stdout);
    expect(v.versions.length).toBe(1);
    expect(v.key).toBe("agents/x/a.txt");
  });
});

// ---------------------------------------------------------------------------
describe.concurrent("version", () => {
  test("lists versions 1..N with size, etag and deleted, as text and as JSON matching Postgres", async () => {
    const db = await freshDb("version");
    await okBatch(db, ["put f.txt a", "put f.txt bb"]);
    await okBatch(db, ["delete f.txt"]);
    await okBatch(db, ["put f.txt dddd"]);
    const text = await ok(["version", "f.txt"], db.env);
    const lines = text.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^VERSION\s+SIZE\s+ETAG\s+MTIME\s+STATE$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 2))).toEqual([["1", "1"], ["2", "2"], ["3", "0"], ["4", "4"]]);
    expect(lines[1]).toContain(sha256("a").slice(0, 12));
    expect(lines[3]).toContain("deleted");
    expect(lines[4]).not.toContain("deleted");

    const j = JSON.parse((await ok(["version", "f.txt", "--json"], db.env)).stdout);
    expect(j.key).toBe("f.txt");
    expect(j.online).toBe(true);
    const fromPg = db.json<any[]>(
      `SELECT json_agg(json_build_object('version', (meta->>'version')::int, 'id', id, 'size', COALESCE(octet_length(data), 0), 'etag', meta->>'etag', 'deleted', (meta->>'deleted')::boolean) ORDER BY (meta->>'version')::int) FROM pgfiles WHERE key = 'f.txt'`,
    );
    expect(j.versions.map((v: any) => ({ version: v.version, id: v.id, size: v.size, etag: v.etag, deleted: v.deleted }))).toEqual(fromPg);
    expect(fromPg.map((v) => [v.version, v.size, v.deleted])).toEqual([[1, 1, false], [2, 2, false], [3, 0, true], [4, 4, false]]);
    expect(j.versions[1].etag).toBe(sha256("bb"));
    expect(j.versions.every((v: any) => v.pending === false)).toBe(true);
  });

  test("an unknown path exits non-zero with one sentence", async () => {
    const db = await freshDb("version_unknown");
    const r = await run(["version", "nope.txt"], db.env);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split("\n").length).toBe(1);
    expect(r.stderr).toContain("nope.txt has no versions");
    expect(r.stdout).toBe("");
  });
});

// ---------------------------------------------------------------------------
describe.concurrent("restore", () => {
  test("makes a new latest version with the old content, also for a deleted file", async () => {
    const db = await freshDb("restore");
    const v1 = Buffer.from([0, 1, 2, 254, 255, 10, 13]);
    await okBatch(db, [`put-base64 r.bin ${v1.toString("base64")}`, "put r.bin second"]);
    const r = await ok(["restore", "r.bin", "1"], db.env);
    expect(r.stdout).toContain("it is now version 3");
    expect(dataHex(db, "r.bin", 3)).toBe(v1.toString("hex"));
    expect(metaOf(db, "r.bin")).toMatchObject({ version: 3, deleted: false, size: 7, etag: sha256(v1) });
    // The versions in between are untouched.
    expect(dataHex(db, "r.bin", 2)).toBe(hex("second"));

    await okBatch(db, ["delete r.bin"]);
    expect(metaOf(db, "r.bin").deleted).toBe(true);
    await ok(["restore", "r.bin", "2"], db.env);
    expect(metaOf(db, "r.bin")).toMatchObject({ version: 5, deleted: false, etag: sha256("second") });
    expect(dataHex(db, "r.bin", 5)).toBe(hex("second"));
    expect(db.q("SELECT deleted FROM pgfiles_head WHERE key = 'r.bin'")).toBe("f");
  });

  test("refuses a version that does not exist or is a deletion, and a version that is not a number", async () => {
    const db = await freshDb("restore_bad");
    await okBatch(db, ["put r.txt a"]);
    await okBatch(db, ["delete r.txt"]);
    const rows = db.rows();
    const missing = await run(["restore", "r.txt", "7"], db.env);
    expect(missing.code).not.toBe(0);
    expect(missing.code).not.toBe(2);
    expect(missing.stderr).toContain("r.txt has no version 7");
    expect(missing.stderr.trim().split("\n").length).toBe(1);
    const tomb = await run(["restore", "r.txt", "2"], db.env);
    expect(tomb.code).not.toBe(0);
    expect(tomb.stderr).toContain("is a deletion");
    expect(tomb.stderr.trim().split("\n").length).toBe(1);
    const nan = await run(["restore", "r.txt", "abc"], db.env);
    expect(nan.code).toBe(2);
    expect(nan.stderr).toContain('"abc" is not a positive whole number');
    const unknownFile = await run(["restore", "ghost.txt", "1"], db.env);
    expect(unknownFile.code).not.toBe(0);
    expect(unknownFile.stderr).toContain("ghost.txt has no version 1");
    expect(db.rows()).toBe(rows);
    expect(await db.pending()).toBe(0);
  });
});

// ---------------------------------------------------------------------------
describe.concurrent("purge and purge-prefix", () => {
  test("purge needs --yes when stdin is not a terminal; with --yes it removes every version of that key only", async () => {
    const db = await freshDb("purge");
    await okBatch(db, ["put p.txt 1", "put p.txt 2", "put p.txt.bak keep", "put p_txt keep", "mkdir p.txt.d", "put p.txt.d/x keep"]);
    const r = await run(["purge", "p.txt"], db.env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--yes");
    expect(db.q("SELECT count(*) FROM pgfiles WHERE key = 'p.txt'")).toBe("2");
    const y = await ok(["purge", "p.txt", "--yes"], db.env);
    expect(y.stdout).toContain("2 versions deleted");
    expect(db.q("SELECT count(*) FROM pgfiles WHERE key = 'p.txt'")).toBe("0");
    expect(db.q("SELECT count(*) FROM pgfiles_head WHERE key = 'p.txt'")).toBe("0");
    expect(keysUnder(db, "")).toEqual(["p.txt.bak", "p.txt.d/", "p.txt.d/x", "p_txt"]);
    // Purging it again: nothing there, non-zero.
    const again = await run(["purge", "p.txt", "--yes"], db.env);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain("has no versions");
  });

  test("purge-prefix refuses the root, and with --yes deletes a 5000-version subtree and nothing else, with progress", async () => {
    const db = await freshDb("purge_prefix");
    // 5000 versions in one batch: 1000 keys under a/, five versions each.
    const lines: string[] = [];
    for (let v = 1; v <= 5; v++) for (let i = 0; i < 1000; i++) lines.push(`put a/d${i % 10}/f${i}.txt v${v}`);
    await okBatch(db, lines);
    await okBatch(db, ["put ab/sibling.txt keep", "put a_/lookalike.txt keep", "put a.txt keep", "mkdir a%"]);
    expect(db.q("SELECT count(*) FROM pgfiles WHERE key LIKE 'a/%'")).toBe("5000");
    expect(db.q("SELECT max((meta->>'version')::int) FROM pgfiles WHERE key LIKE 'a/%'")).toBe("5");

    for (const root of ["", "/"]) {
      const r = await run(["purge-prefix", root, "--yes"], db.env);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("refuses an empty prefix");
    }
    const noYes = await run(["purge-prefix", "a/"], db.env);
    expect(noYes.code).toBe(2);
    expect(db.rows()).toBe(5004);

    const r = await ok(["purge-prefix", "a/", "--yes"], db.env);
    expect(r.stdout).toContain("5000 versions deleted");
    expect(r.stderr).toMatch(/purged \d+ of 5000 versions/);
    expect(r.stderr).toContain("purged 5000 of 5000 versions");
    expect(keysUnder(db, "")).toEqual(["a%/", "a.txt", "a_/lookalike.txt", "ab/sibling.txt"]);
    expect(db.q("SELECT count(*) FROM pgfiles_head WHERE key LIKE 'a/%'")).toBe("0");

    // LIKE wildcards in the prefix are literal: "a_" does not reach "ab/".
    await ok(["purge-prefix", "a_", "--yes"], db.env);
    await ok(["purge-prefix", "a%/", "--yes"], db.env);
    expect(keysUnder(db, "")).toEqual(["a.txt", "ab/sibling.txt"]);
  });
});

// ---------------------------------------------------------------------------
describe.concurrent("cache", () => {
  test("stats show the entries a batch cached, and clear empties them", async () => {
    const db = await freshDb("cache");
    await okBatch(db, ["put c1.txt one", "put c2.txt two", `put c3.bin ${"z".repeat(200 * 1024)}`]);
    const s = JSON.parse((await ok(["cache", "stats", "--json"], db.env)).stdout);
    expect(s.entries).toBe(3);
    expect(s.bytes).toBe(3 + 3 + 200 * 1024);
    expect(s.metaEntries).toBe(3);
    expect(s.pending).toBe(0);
    const text = await ok(["cache", "stats"], db.env);
    expect(text.stdout).toMatch(/cache: +3 bodies/);
    const c = await ok(["cache", "clear"], db.env);
    expect(c.stdout).toContain("Cleared 3 cached bodies");
    const after = JSON.parse((await ok(["cache", "stats", "--json"], db.env)).stdout);
    expect(after.entries).toBe(0);
    expect(after.bytes).toBe(0);
    expect(after.metaEntries).toBe(0);
    expect(fs.readdirSync(path.join(after.journal, "blobs"))).toEqual([]);
    // Clearing the cache never touches Postgres.
    expect(db.rows()).toBe(3);
  });
});

// ---------------------------------------------------------------------------
describe.concurrent("where", () => {
  test("prints the prefix and the key a path maps to, as text and JSON", async () => {
    const env = cleanEnv({ PGFILES_PREFIX: "agents/x" });
    const t = await ok(["where", "docs/a b.txt"], env);
    expect(t.stdout).toContain('prefix:  "agents/x/"');
    expect(t.stdout).toContain('key:     "agents/x/docs/a b.txt"');
    const j = JSON.parse((await ok(["where", "docs/a b.txt", "--json"], env)).stdout);
    expect(j).toMatchObject({ prefix: "agents/x/", path: "docs/a b.txt", key: "agents/x/docs/a b.txt" });
    expect(JSON.parse((await ok(["where", "out/", "--json"], env)).stdout).key).toBe("agents/x/out/");
    expect(JSON.parse((await ok(["where", "--json"], env)).stdout).key).toBe("agents/x/");
    const none = JSON.parse((await ok(["where", "--json", "f.txt"], cleanEnv())).stdout);
    expect(none).toMatchObject({ prefix: "", key: "f.txt" });
    const bad = await run(["where", "../up.txt"], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('".."');
  });
});

// ---------------------------------------------------------------------------
describe.concurrent("config show", () => {
  test("prints resolved values with their sources and masks the DSN password", async () => {
    const secret = "Sup3rS3cretPw";
    const dsn = `postgres://pgfiles:${secret}@127.0.0.1:5432/app`;
    const env = cleanEnv({ PGFILES_DSN: dsn, PGFILES_POOL_SIZE: "4" });
    const t = await ok(["--log-level", "info", "config", "show"], env);
    expect(t.stdout + t.stderr).not.toContain(secret);
    expect(t.stdout).toMatch(/PGFILES_DSN +postgres:\/\/pgfiles:\*\*\*\*@127\.0\.0\.1:5432\/app +\(environment\)/);
    expect(t.stdout).toMatch(/PGFILES_POOL_SIZE +4 +\(environment\)/);
    expect(t.stdout).toMatch(/PGFILES_LOG_LEVEL +info +\(argument\)/);
    expect(t.stdout).toMatch(/PGFILES_READ_ONLY +false +\(default\)/);
    const j = await ok(["config", "show", "--json"], env);
    expect(j.stdout + j.stderr).not.toContain(secret);
    const parsed = JSON.parse(j.stdout);
    expect(parsed.settings.PGFILES_DSN).toEqual({ value: "postgres://pgfiles:****@127.0.0.1:5432/app", source: "environment" });
    expect(parsed.settings.PGFILES_POOL_SIZE).toEqual({ value: 4, source: "environment" });
    // From the config file too.
    const home = env.HOME!;
    fs.mkdirSync(path.join(home, ".config", "pgfiles"), { recursive: true });
    fs.writeFileSync(path.join(home, ".config", "pgfiles", "config.yaml"), "prefix: agents/from-file\n");
    const f = JSON.parse((await ok(["config", "show", "--json"], env)).stdout);
    expect(f.settings.PGFILES_PREFIX).toEqual({ value: "agents/from-file/", source: "config file" });
    expect(f.configFileFound).toBe(true);
  });

  test("a bad value exits 2 naming the setting", async () => {
    const r = await run(["config", "show"], cleanEnv({ PGFILES_CACHE_MAX_SIZE: "12XB" }));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("PGFILES_CACHE_MAX_SIZE");
    expect(r.stderr).toContain('"12XB"');
    expect(r.stderr.trim().split("\n").length).toBe(1);
    // Every command resolves the config first: batch fails the same way.
    const b = await run(["batch"], cleanEnv({ PGFILES_DSN: pg.dsn, PGFILES_CACHE_MAX_SIZE: "12XB" }), "put a b\n");
    expect(b.code).toBe(2);
    expect(b.stderr).toContain("PGFILES_CACHE_MAX_SIZE");
  });
});

// ---------------------------------------------------------------------------
describe.concurrent("read-only", () => {
  test("PGFILES_READ_ONLY=true makes batch, restore, purge and purge-prefix fail and write nothing", async () => {
    const db = await freshDb("readonly");
    await okBatch(db, ["put ro/a.txt one", "put ro/a.txt two"]);
    const ro = { ...db.env, PGFILES_READ_ONLY: "true" };
    const attempts: [string[], string | undefined][] = [
      [["batch"], "put ro/b.txt x\n"],
      [["restore", "ro/a.txt", "1"], undefined],
      [["purge", "ro/a.txt", "--yes"], undefined],
      [["purge-prefix", "ro/", "--yes"], undefined],
    ];
    for (const [args, stdin] of attempts) {
      const r = await run(args, ro, stdin);
      expect(r.code, args.join(" ")).not.toBe(0);
      expect(r.stderr, args.join(" ")).toContain("read-only");
      expect(r.stderr.trim().split("\n").length).toBe(1);
    }
    expect(db.rows()).toBe(2);
    expect(await db.pending()).toBe(0);
    // Reading still works.
    expect(JSON.parse((await ok(["version", "ro/a.txt", "--json"], ro)).stdout).versions.length).toBe(2);
  });
});

// ---------------------------------------------------------------------------
describe.concurrent("logs", () => {
  test("debug logs contain neither the DSN password nor a file's contents", async () => {
    const secret = "LogLeakPw9876";
    const marker = "MARKER-7c1e9f-contents";
    const db = await freshDb("logs", { PGFILES_LOG_LEVEL: "debug" }, { dsn: (n) => `postgres://pgfiles:${secret}@127.0.0.1:${pg.port}/${n}` });
    const outputs: CliResult[] = [];
    outputs.push(await okBatch(db, [`put secret.txt ${marker}`, `put-base64 secret.bin ${Buffer.from(marker).toString("base64")}`, "copy secret.txt copy.txt"]));
    outputs.push(await ok(["version", "secret.txt"], db.env));
    outputs.push(await ok(["status"], db.env));
    outputs.push(await ok(["restore", "secret.txt", "1"], db.env));
    // Offline against a dead port: the error path logs too.
    outputs.push(await run(["status"], { ...db.env, PGFILES_DSN: `postgres://pgfiles:${secret}@127.0.0.1:1/x` }));
    expect(outputs.some((o) => o.stderr.length > 0)).toBe(true); // debug logging really happened
    for (const o of outputs) {
      expect(o.stderr).not.toContain(secret);
      expect(o.stderr).not.toContain(marker);
      expect(o.stdout).not.toContain(secret);
    }
    expect(db.q("SELECT convert_from(data, 'UTF8') FROM pgfiles WHERE key = 'secret.txt' AND meta->>'version' = '1'")).toBe(marker);
  });
});

// ---------------------------------------------------------------------------
describe.concurrent("through PgBouncer in transaction mode", () => {
  test("init, batch, version, restore, purge and purge-prefix work with prepared statements off", async () => {
    let bouncer: Bouncer | undefined;
    try {
      bouncer = await startBouncer(pg);
      const name = `cmd_${++seq}_bouncer`;
      await createDatabase(name);
      const dsn = bouncer.dsn.replace(/\/postgres$/, `/${name}`);
      const env = cleanEnv({ PGFILES_DSN: dsn, PGFILES_PREPARED_STATEMENTS: "false" });
      const q = (sql: string) => pg.psql(sql, name);
      await ok(["init"], env);
      expect(q("SELECT version FROM pgfiles_schema")).toBe("1");
      await ok(["batch"], env, ["put b/a.txt one", "put b/a.txt two", "mkdir b/d", "copy b/a.txt b/c.txt", "tag b/c.txt k=v", "put x.txt keep"].join("\n"));
      expect(q("SELECT string_agg(key || ':' || (meta->>'version') || ':' || COALESCE(encode(data, 'escape'), 'NULL'), ',' ORDER BY key, (meta->>'version')::int) FROM pgfiles")).toBe(
        "b/a.txt:1:one,b/a.txt:2:two,b/c.txt:1:two,b/c.txt:2:two,b/d/:1:NULL,x.txt:1:keep",
      );
      expect(q("SELECT count(DISTINCT xmin::text) FROM pgfiles")).toBe("1");
      const v = JSON.parse((await ok(["version", "b/a.txt", "--json"], env)).stdout);
      expect(v.versions.map((x: any) => x.version)).toEqual([1, 2]);
      await ok(["restore", "b/a.txt", "1"], env);
      expect(q("SELECT convert_from(data, 'UTF8') FROM pgfiles WHERE key = 'b/a.txt' AND meta->>'version' = '3'")).toBe("one");
      await ok(["purge", "b/c.txt", "--yes"], env);
      expect(q("SELECT count(*) FROM pgfiles WHERE key = 'b/c.txt'")).toBe("0");
      await ok(["purge-prefix", "b", "--yes"], env);
      expect(q("SELECT string_agg(key, ',') FROM pgfiles")).toBe("x.txt");
      const st = await ok(["status", "--json"], env);
      expect(JSON.parse(st.stdout).pending.versions).toBe(0);
      // The traffic really went through the bouncer.
      expect(bouncer.admin("SHOW STATS").split("\n").some((l) => l.startsWith(`${name}|`) && Number(l.split("|")[1]) > 0)).toBe(true);
    } finally {
      await bouncer?.stop();
    }
  });
});

// ---------------------------------------------------------------------------
// Last: this test stops and restarts the shared cluster.
describe("offline", () => {
  test("a batch while Postgres is down is queued, survives cache clear, and the next command delivers it", async () => {
    const db = await freshDb("offline");
    await okBatch(db, ["put before.txt online"]);
    const body = Buffer.from(Array.from({ length: 256 }, (_, i) => 255 - i));
    const big = "q".repeat(200 * 1024); // staged as a body file in the journal
    await pg.stop();
    try {
      const r = await db.batch([`put-base64 off.bin ${body.toString("base64")}`, `put big.txt ${big}`, "tag before.txt state=offline", "restore before.txt 1"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("Queued 4 operations");
      expect(r.stderr).toContain("unreachable");
      // A line that needs Postgres to be checked is left to the flush, but a syntax error is still refused.
      const bad = await db.batch(["put x.txt y", "frobnicate"]);
      expect(bad.code).toBe(2);
      const cleared = await ok(["cache", "clear"], db.env);
      expect(cleared.stdout).toContain("4 pending versions were kept");
      const s = JSON.parse((await ok(["cache", "stats", "--json"], db.env)).stdout);
      expect(s.pending).toBe(4);
      const st = await run(["status", "--json"], db.env);
      expect(st.code).toBe(3);
      expect(JSON.parse(st.stdout).postgres.online).toBe(false);
    } finally {
      await pg.start();
    }
    const st = await run(["status", "--json"], db.env);
    expect(st.code).toBe(0);
    expect(JSON.parse(st.stdout).pending.versions).toBe(0);
    expect(dataHex(db, "off.bin", 1)).toBe(body.toString("hex"));
    expect(metaOf(db, "off.bin", 1)).toMatchObject({ size: 256, etag: sha256(body) });
    expect(db.q("SELECT octet_length(data) FROM pgfiles WHERE key = 'big.txt'")).toBe(String(big.length));
    expect(db.q("SELECT md5(data) FROM pgfiles WHERE key = 'big.txt'")).toBe(createHash("md5").update(big).digest("hex"));
    expect(metaOf(db, "before.txt", 2).tags).toEqual({ state: "offline" });
    expect(dataHex(db, "before.txt", 3)).toBe(hex("online"));
    // The queued batch was one transaction too.
    expect(db.q("SELECT count(DISTINCT xmin::text) FROM pgfiles WHERE key <> 'before.txt' OR meta->>'version' <> '1'")).toBe("1");
  });
});
