// The mount's POSIX semantics, one operation at a time, through real syscalls on
// a real mount (our FUSE session, the real kernel, a real Postgres), each checked
// twice: what the syscalls see, and what landed in Postgres after `pgfiles unmount`.
// docs/semantics.md ("On a mount") is the prose version of these tests.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { nsFromStamp } from "../src/meta.ts";
import { cleanEnv, ok, type CliEnv } from "./harness/cli.ts";
import { startCluster, type Cluster } from "./harness/postgres.ts";

import { canMount as haveFuse } from "./harness/fuse.ts";
const isRoot = process.getuid?.() === 0;
// The system python (a pyenv shim under /root is not reachable for `nobody`).
const PY = fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
let pg: Cluster;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pgfiles-sem-"));
fs.chmodSync(tmp, 0o755); // `nobody` walks through it to the mount
const mounted = new Map<string, CliEnv>();
const openFds = new Set<number>();

// Syscalls Node does not offer (renameat2, utimensat with UTIME_OMIT, fallocate,
// telldir/seekdir, xattrs), as a python module the tests call.
const HELPER = String.raw`
import ctypes, errno, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100

def check(r):
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))

def err(fn, *a, **k):
    """'OK' or the errno name of calling fn."""
    try:
        fn(*a, **k)
        return "OK"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

def renameat2(a, b, flags):
    check(libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), ctypes.c_uint(flags)))

class timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

def utimens(p, a, m):
    """a, m: nanoseconds, "now" (UTIME_NOW) or "omit" (UTIME_OMIT)."""
    def ts(x):
        if x == "now": return timespec(0, (1 << 30) - 1)
        if x == "omit": return timespec(0, (1 << 30) - 2)
        return timespec(x // 10**9, x % 10**9)
    arr = (timespec * 2)(ts(a), ts(m))
    check(libc.utimensat(AT_FDCWD, p.encode(), arr, 0))

def fallocate(fd, off, length):
    check(libc.fallocate(ctypes.c_int(fd), ctypes.c_int(0), ctypes.c_long(off), ctypes.c_long(length)))

class dirent(ctypes.Structure):
    _fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64), ("d_reclen", ctypes.c_ushort),
                ("d_type", ctypes.c_ubyte), ("d_name", ctypes.c_char * 256)]
libc.opendir.restype = ctypes.c_void_p
libc.opendir.argtypes = [ctypes.c_char_p]
libc.readdir.restype = ctypes.POINTER(dirent)
libc.readdir.argtypes = [ctypes.c_void_p]
libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
libc.closedir.argtypes = [ctypes.c_void_p]

class Dir:
    """A directory stream with the offsets (d_off) readdir hands out."""
    def __init__(self, p):
        self.d = libc.opendir(p.encode())
        if not self.d: check(-1)
    def next(self):
        e = libc.readdir(self.d)
        if not e: return None
        return (e.contents.d_name.decode(), e.contents.d_off, e.contents.d_ino, e.contents.d_type)
    def all(self):
        out = []
        while True:
            x = self.next()
            if x is None: return out
            out.append(x)
    def seek(self, off):
        libc.seekdir(self.d, off)
    def close(self):
        libc.closedir(self.d)

def out(x):
    print(json.dumps(x))
`;
const helperDir = path.join(tmp, "py");
fs.mkdirSync(helperDir, { mode: 0o755 });
fs.writeFileSync(path.join(helperDir, "h.py"), HELPER, { mode: 0o644 });

/** Runs python with the helper imported; returns its JSON output. `user` runs it as that user. */
function py(code: string, user?: string): any {
  const script = `from h import *\n${code}`;
  const cmd = user ? ["runuser", "-u", user, "--", PY, "-c", script] : [PY, "-c", script];
  const r = Bun.spawnSync({ cmd, cwd: "/", env: { ...process.env, PYTHONPATH: helperDir, PYTHONDONTWRITEBYTECODE: "1" }, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`python failed (${r.exitCode}):\n${code}\n${r.stderr.toString()}`);
  const text = r.stdout.toString().trim();
  return text ? JSON.parse(text.split("\n").at(-1)!) : undefined;
}

function sh(cwd: string, script: string): string {
  const r = Bun.spawnSync({ cmd: ["bash", "-euo", "pipefail", "-c", script], cwd, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`script failed (${r.exitCode}): ${script}\n${r.stderr.toString()}`);
  return r.stdout.toString();
}

/** The errno code of a failing call, or "OK". */
function code(fn: () => unknown): string {
  try {
    fn();
    return "OK";
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
}

function open(p: string, flags: string | number, mode?: number): number {
  const fd = fs.openSync(p, flags, mode);
  openFds.add(fd);
  return fd;
}
function close(fd: number) {
  openFds.delete(fd);
  fs.closeSync(fd);
}

beforeAll(async () => {
  pg = await startCluster();
  await ok(["init"], cleanEnv({ PGFILES_DSN: pg.dsn }));
});
afterEach(async () => {
  for (const fd of openFds) {
    try {
      fs.closeSync(fd);
    } catch {}
  }
  openFds.clear();
  // A failed test must not leave its mount behind: unmount properly, else detach lazily.
  for (const [dir, env] of mounted) {
    const r = await Promise.race([ok(["unmount", dir], env).then(() => true, () => false), Bun.sleep(20_000).then(() => false)]);
    if (!r) Bun.spawnSync({ cmd: ["umount", "-l", dir], stderr: "ignore" });
    mounted.delete(dir);
  }
});
afterAll(async () => {
  for (const dir of mounted.keys()) Bun.spawnSync({ cmd: ["umount", "-l", dir], stderr: "ignore" });
  await pg?.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function mountAt(prefix: string, extra: CliEnv = {}) {
  const dir = fs.mkdtempSync(path.join(tmp, "mnt-"));
  fs.chmodSync(dir, 0o755);
  const env = cleanEnv({ PGFILES_DSN: pg.dsn, PGFILES_PREFIX: prefix, ...extra });
  await ok(["mount", dir], env);
  mounted.set(dir, env);
  return { dir, env, p: (...parts: string[]) => path.join(dir, ...parts) };
}

async function unmountAt(m: { dir: string; env: CliEnv }) {
  await ok(["unmount", m.dir], m.env);
  mounted.delete(m.dir);
}

const q = (s: string) => pg.psql(s);
const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;
/** Number of versions (rows) of one key. */
const versions = (key: string) => Number(q(`SELECT count(*) FROM pgfiles WHERE key = ${lit(key)}`));
/** The latest version of a key: meta (parsed) and body (null for none), or null if no row. */
function latest(key: string): { meta: any; data: Buffer | null } | null {
  const out = q(`SELECT meta::text || E'\\x01' || COALESCE(encode(data, 'base64'), '-') FROM pgfiles WHERE key = ${lit(key)} ORDER BY (meta->>'version')::bigint DESC LIMIT 1`);
  if (!out) return null;
  const [meta, data] = out.split("\x01");
  return { meta: JSON.parse(meta), data: data === "-" ? null : Buffer.from(data.replace(/\s/g, ""), "base64") };
}
const body = (key: string) => latest(key)?.data?.toString() ?? null;
/** Live keys under a prefix, sorted. */
const liveKeys = (prefix: string) =>
  q(`SELECT string_agg(key, ',' ORDER BY key) FROM pgfiles_head WHERE key LIKE ${lit(prefix + "%")} AND NOT deleted`);

/** A file row written straight into Postgres (as another machine would). */
function seedSql(key: string, text: string | null, type = "file") {
  const meta = { deleted: false, type, size: text ? Buffer.byteLength(text) : 0, mode: type === "dir" ? 0o755 : 0o644, uid: 0, gid: 0, mtime: "2024-01-02T03:04:05.123456789Z", ctime: "2024-01-02T03:04:05.123456789Z", created: "2024-01-02T03:04:05.123456789Z" };
  return `INSERT INTO pgfiles (key, meta, data) VALUES (${lit(key)}, ${lit(JSON.stringify(meta))}::jsonb, ${text === null ? "NULL" : `convert_to(${lit(text)}, 'UTF8')`});`;
}

const nowNs = () => BigInt(Date.now()) * 1_000_000n;
const statNs = (p: string) => fs.lstatSync(p, { bigint: true });

describe.skipIf(!haveFuse)("semantics on a mount", () => {
  test("lookup/getattr: types, sizes, st_blocks in 512-byte units, times set on create, stable inode numbers", async () => {
    const m = await mountAt("sem-attr/");
    const before = nowNs() - 2_000_000_000n;
    fs.mkdirSync(m.p("d"));
    const dirBefore = statNs(m.p("d"));
    await Bun.sleep(20);
    fs.writeFileSync(m.p("d/f.bin"), Buffer.alloc(5000, 7));
    const after = nowNs() + 2_000_000_000n;
    const st = statNs(m.p("d/f.bin"));
    expect(st.isFile()).toBe(true);
    expect(st.size).toBe(5000n);
    expect(st.blocks).toBe(10n); // ceil(5000 / 512)
    expect(st.mode & 0o777n).toBe(BigInt(0o666 & ~process.umask()));
    for (const t of [st.atimeNs, st.mtimeNs, st.ctimeNs]) {
      expect(t > before && t < after).toBe(true);
    }
    // Creating an entry changes its directory's mtime.
    expect(statNs(m.p("d")).mtimeNs > dirBefore.mtimeNs).toBe(true);
    // stat(1) agrees: inode, blocks, block unit, links.
    const [ino, blocks, unit, links, type] = sh(m.dir, "stat -c '%i %b %B %h %F' d/f.bin").trim().split(" ");
    expect([BigInt(ino), blocks, unit, links, type]).toEqual([st.ino, "10", "512", "1", "regular"]);
    // Missing names and paths through a file.
    expect(code(() => fs.statSync(m.p("d/nope")))).toBe("ENOENT");
    expect(code(() => fs.statSync(m.p("d/f.bin/x")))).toBe("ENOTDIR");
    // Inode numbers: the same on every stat, after the attribute TTL ran out, and after renames.
    const ino0 = st.ino;
    for (let i = 0; i < 3; i++) expect(statNs(m.p("d/f.bin")).ino).toBe(ino0);
    await Bun.sleep(1200);
    expect(statNs(m.p("d/f.bin")).ino).toBe(ino0);
    fs.mkdirSync(m.p("e"));
    fs.renameSync(m.p("d/f.bin"), m.p("e/g.bin"));
    expect(statNs(m.p("e/g.bin")).ino).toBe(ino0);
    fs.renameSync(m.p("e/g.bin"), m.p("d/f.bin"));
    expect(statNs(m.p("d/f.bin")).ino).toBe(ino0);
    const dIno = statNs(m.p("d")).ino;
    fs.renameSync(m.p("d"), m.p("d2"));
    expect(statNs(m.p("d2")).ino).toBe(dIno);
    expect(statNs(m.p("d2/f.bin")).ino).toBe(ino0);
    const final = statNs(m.p("d2/f.bin"));
    await unmountAt(m);
    const v = latest("sem-attr/d2/f.bin")!;
    expect(v.meta.size).toBe(5000);
    expect(v.data!.equals(Buffer.alloc(5000, 7))).toBe(true);
    // The stored mtime is the one stat showed, to the nanosecond.
    expect(nsFromStamp(v.meta.mtime)).toBe(final.mtimeNs);
  }, 30_000);

  test("inode numbers and listings stay right when every lookup reloads from Postgres (metadata TTL 0)", async () => {
    const m = await mountAt("sem-ttl0/", { PGFILES_CACHE_METADATA_TTL: "0" });
    fs.mkdirSync(m.p("d"));
    fs.writeFileSync(m.p("d/f"), "one");
    const ino = fs.statSync(m.p("d/f")).ino;
    const dIno = fs.statSync(m.p("d")).ino;
    for (let i = 0; i < 5; i++) {
      expect(fs.statSync(m.p("d/f")).ino).toBe(ino);
      expect(fs.readdirSync(m.p("d"))).toEqual(["f"]);
      await Bun.sleep(50);
    }
    // Open and written, not yet closed: still there, same inode, size as written.
    const fd = open(m.p("d/f"), "r+");
    fs.writeSync(fd, "ONE and more", 0);
    expect(fs.statSync(m.p("d/f")).ino).toBe(ino);
    expect(fs.statSync(m.p("d/f")).size).toBe(12);
    expect(fs.readdirSync(m.p("d"))).toEqual(["f"]);
    close(fd);
    fs.renameSync(m.p("d/f"), m.p("d/g"));
    expect(fs.readdirSync(m.p("d"))).toEqual(["g"]);
    expect(fs.statSync(m.p("d/g")).ino).toBe(ino);
    fs.mkdirSync(m.p("d/s"));
    await Bun.sleep(300); // the flusher has delivered by now, or not: both must look the same
    expect(fs.statSync(m.p("d")).nlink).toBe(3);
    expect(fs.statSync(m.p("d")).ino).toBe(dIno);
    expect(fs.readdirSync(m.p("d")).sort()).toEqual(["g", "s"]);
    expect(fs.readFileSync(m.p("d/g"), "utf8")).toBe("ONE and more");
    expect(fs.statSync(m.p("d/g")).ino).toBe(ino);
    await unmountAt(m);
    expect(liveKeys("sem-ttl0/")).toBe("sem-ttl0/d/,sem-ttl0/d/g,sem-ttl0/d/s/");
  }, 30_000);

  test("setattr: chmod, chown, truncate (shrink, grow), utimensat with exact ns, UTIME_NOW and UTIME_OMIT", async () => {
    const m = await mountAt("sem-setattr/");
    const f = m.p("f.txt");
    fs.writeFileSync(f, "hello world");
    fs.chmodSync(f, 0o600);
    expect(fs.statSync(f).mode & 0o7777).toBe(0o600);
    fs.chownSync(f, 65534, 65534);
    expect([fs.statSync(f).uid, fs.statSync(f).gid]).toEqual([65534, 65534]);
    fs.truncateSync(f, 5);
    expect(fs.readFileSync(f, "utf8")).toBe("hello");
    fs.truncateSync(f, 10);
    expect(fs.readFileSync(f)).toEqual(Buffer.from("hello\0\0\0\0\0"));
    expect(fs.statSync(f).size).toBe(10);
    const A = 1_600_000_000_123_456_789n;
    const M = 1_500_000_000_987_654_321n;
    py(`utimens(${JSON.stringify(f)}, ${A}, ${M})`);
    let st = statNs(f);
    expect([st.atimeNs, st.mtimeNs]).toEqual([A, M]);
    // UTIME_OMIT leaves that time alone.
    const M2 = 1_400_000_000_000_000_001n;
    py(`utimens(${JSON.stringify(f)}, "omit", ${M2})`);
    st = statNs(f);
    expect([st.atimeNs, st.mtimeNs]).toEqual([A, M2]);
    // UTIME_NOW sets the current time.
    const t0 = nowNs() - 2_000_000_000n;
    py(`utimens(${JSON.stringify(f)}, "now", "omit")`);
    st = statNs(f);
    expect(st.atimeNs > t0).toBe(true);
    expect(st.mtimeNs).toBe(M2);
    py(`utimens(${JSON.stringify(f)}, "omit", "now")`);
    st = statNs(f);
    expect(st.mtimeNs > t0).toBe(true);
    const finalMtime = st.mtimeNs;
    // touch -d sets both.
    sh(m.dir, "touch -d '2001-02-03 04:05:06.5 UTC' g.txt");
    expect(statNs(m.p("g.txt")).mtimeNs).toBe(981173106_500_000_000n);
    // chmod of a directory.
    fs.mkdirSync(m.p("d"));
    fs.chmodSync(m.p("d"), 0o700);
    expect(fs.statSync(m.p("d")).mode & 0o7777).toBe(0o700);
    await unmountAt(m);
    const v = latest("sem-setattr/f.txt")!;
    expect([v.meta.mode, v.meta.uid, v.meta.gid, v.meta.size]).toEqual([0o600, 65534, 65534, 10]);
    expect(v.data).toEqual(Buffer.from("hello\0\0\0\0\0"));
    expect(nsFromStamp(v.meta.mtime)).toBe(finalMtime);
    // One version per change of a closed file: create, chmod, chown, 2 truncates, 3 time changes that
    // touch mtime. An atime-only change is not stored (meta keeps no atime): no version.
    expect(versions("sem-setattr/f.txt")).toBe(8);
    expect(nsFromStamp(latest("sem-setattr/g.txt")!.meta.mtime)).toBe(981173106_500_000_000n);
    expect(latest("sem-setattr/d/")!.meta.mode).toBe(0o700);
  }, 30_000);

  test("mkdir, rmdir (ENOTEMPTY, ENOTDIR), directory st_nlink = 2 + subdirectories, also on a fresh mount", async () => {
    const m = await mountAt("sem-dirs/");
    const rootLinks = fs.statSync(m.dir).nlink;
    fs.mkdirSync(m.p("d"), 0o750);
    let st = fs.statSync(m.p("d"));
    expect(st.isDirectory()).toBe(true);
    expect(st.mode & 0o7777).toBe(0o750 & ~process.umask());
    expect(st.nlink).toBe(2);
    expect(fs.statSync(m.dir).nlink).toBe(rootLinks + 1);
    fs.mkdirSync(m.p("d/a"));
    fs.mkdirSync(m.p("d/b"));
    fs.writeFileSync(m.p("d/f"), "x");
    expect(fs.statSync(m.p("d")).nlink).toBe(4);
    expect(sh(m.dir, "stat -c %h d").trim()).toBe("4");
    expect(code(() => fs.mkdirSync(m.p("d")))).toBe("EEXIST");
    expect(code(() => fs.rmdirSync(m.p("d")))).toBe("ENOTEMPTY");
    expect(code(() => fs.rmdirSync(m.p("d/f")))).toBe("ENOTDIR");
    expect(code(() => fs.unlinkSync(m.p("d/b")))).toBe("EISDIR");
    expect(code(() => fs.rmdirSync(m.p("d/zz")))).toBe("ENOENT");
    fs.rmdirSync(m.p("d/a"));
    expect(fs.statSync(m.p("d")).nlink).toBe(3);
    expect(fs.readdirSync(m.p("d")).sort()).toEqual(["b", "f"]);
    await unmountAt(m);
    expect(liveKeys("sem-dirs/")).toBe("sem-dirs/d/,sem-dirs/d/b/,sem-dirs/d/f");
    const marker = latest("sem-dirs/d/")!;
    expect(marker.data).toBeNull();
    expect([marker.meta.type, marker.meta.mode]).toEqual(["dir", 0o750 & ~process.umask()]);
    expect(latest("sem-dirs/d/a/")!.meta.deleted).toBe(true);
    // A fresh mount counts subdirectories it has not listed yet.
    const m2 = await mountAt("sem-dirs/");
    expect(fs.statSync(m2.p("d")).nlink).toBe(3);
    expect(fs.statSync(m2.p("d/b")).nlink).toBe(2);
    fs.rmdirSync(m2.p("d/b"));
    fs.unlinkSync(m2.p("d/f"));
    fs.rmdirSync(m2.p("d"));
    await unmountAt(m2);
    expect(liveKeys("sem-dirs/")).toBe("");
  }, 30_000);

  test("create/open: O_CREAT|O_EXCL → EEXIST, O_TRUNC, O_APPEND, O_RDONLY|O_CREAT", async () => {
    const m = await mountAt("sem-open/");
    const C = fs.constants;
    // O_EXCL
    close(open(m.p("excl"), C.O_CREAT | C.O_EXCL | C.O_WRONLY, 0o640));
    expect(fs.statSync(m.p("excl")).mode & 0o777).toBe(0o640 & ~process.umask());
    expect(code(() => open(m.p("excl"), C.O_CREAT | C.O_EXCL | C.O_WRONLY))).toBe("EEXIST");
    expect(code(() => open(m.p("nope"), C.O_RDONLY))).toBe("ENOENT");
    expect(code(() => open(m.dir, C.O_WRONLY))).toBe("EISDIR");
    // O_TRUNC
    fs.writeFileSync(m.p("trunc"), "0123456789");
    close(open(m.p("trunc"), C.O_WRONLY | C.O_TRUNC));
    expect(fs.statSync(m.p("trunc")).size).toBe(0);
    // O_APPEND: every write goes to the end, whatever the offset asked.
    fs.writeFileSync(m.p("app"), "abc");
    fs.appendFileSync(m.p("app"), "def");
    const fd = open(m.p("app"), C.O_WRONLY | C.O_APPEND);
    fs.writeSync(fd, "ghi", 0);
    close(fd);
    expect(fs.readFileSync(m.p("app"), "utf8")).toBe("abcdefghi");
    // O_RDONLY|O_CREAT makes an empty file; again on the existing file changes nothing.
    const r1 = open(m.p("rdc"), C.O_RDONLY | C.O_CREAT, 0o644);
    expect(fs.fstatSync(r1).size).toBe(0);
    close(r1);
    expect(fs.existsSync(m.p("rdc"))).toBe(true);
    fs.writeFileSync(m.p("rdc2"), "keep");
    close(open(m.p("rdc2"), C.O_RDONLY | C.O_CREAT));
    expect(fs.readFileSync(m.p("rdc2"), "utf8")).toBe("keep");
    await unmountAt(m);
    expect(versions("sem-open/excl")).toBe(1);
    expect(latest("sem-open/excl")!.data).toEqual(Buffer.alloc(0));
    expect(versions("sem-open/trunc")).toBe(2);
    expect(latest("sem-open/trunc")!.data).toEqual(Buffer.alloc(0));
    expect(latest("sem-open/trunc")!.meta.size).toBe(0);
    expect(versions("sem-open/app")).toBe(3);
    expect(body("sem-open/app")).toBe("abcdefghi");
    expect(versions("sem-open/rdc")).toBe(1);
    expect(latest("sem-open/rdc")!.meta.size).toBe(0);
    expect(versions("sem-open/rdc2")).toBe(1);
  }, 30_000);

  test("read and write at any offset; a write at 1 MiB into an empty file leaves a hole of zeros", async () => {
    const m = await mountAt("sem-rw/");
    fs.writeFileSync(m.p("hole.bin"), "");
    const fd = open(m.p("hole.bin"), "r+");
    expect(fs.writeSync(fd, Buffer.from("X"), 0, 1, 1 << 20)).toBe(1);
    expect(fs.fstatSync(fd).size).toBe((1 << 20) + 1);
    const head = Buffer.alloc(4096, 1);
    expect(fs.readSync(fd, head, 0, 4096, 12345)).toBe(4096);
    expect(head.equals(Buffer.alloc(4096))).toBe(true);
    close(fd);
    const whole = fs.readFileSync(m.p("hole.bin"));
    expect(whole.length).toBe((1 << 20) + 1);
    expect(whole.subarray(0, 1 << 20).equals(Buffer.alloc(1 << 20))).toBe(true);
    expect(whole.at(-1)).toBe("X".charCodeAt(0));
    expect(fs.statSync(m.p("hole.bin")).blocks).toBe(Math.ceil(((1 << 20) + 1) / 512));
    // Overwrites inside, past the end (a small hole), and reads at offsets.
    fs.writeFileSync(m.p("o.txt"), "0123456789");
    const g = open(m.p("o.txt"), "r+");
    fs.writeSync(g, "ab", 3);
    fs.writeSync(g, "Z", 12);
    const b = Buffer.alloc(5);
    expect(fs.readSync(g, b, 0, 5, 2)).toBe(5);
    expect(b.toString()).toBe("2ab56");
    expect(fs.readSync(g, b, 0, 5, 13)).toBe(0); // at EOF
    close(g);
    expect(fs.readFileSync(m.p("o.txt"))).toEqual(Buffer.from("012ab56789\0\0Z"));
    // SEEK_HOLE: no holes are reported (lseek is the kernel's generic one): the hole is at the end.
    const h = open(m.p("hole.bin"), "r");
    expect(py(`import os; fd = os.open(${JSON.stringify(m.p("hole.bin"))}, os.O_RDONLY); out([os.lseek(fd, 0, os.SEEK_DATA), os.lseek(fd, 0, os.SEEK_HOLE)])`)).toEqual([0, (1 << 20) + 1]);
    close(h);
    await unmountAt(m);
    const v = latest("sem-rw/hole.bin")!;
    expect(v.meta.size).toBe((1 << 20) + 1);
    expect(createHash("sha256").update(v.data!).digest("hex")).toBe(createHash("sha256").update(whole).digest("hex"));
    expect(v.meta.etag).toBe(createHash("sha256").update(whole).digest("hex"));
    expect(versions("sem-rw/hole.bin")).toBe(2); // the empty file, then the close after the write
    expect(body("sem-rw/o.txt")).toBe("012ab56789\0\0Z");
    expect(versions("sem-rw/o.txt")).toBe(2);
  }, 30_000);

  test("close: a changed file is exactly one new version, an unchanged one none; fsync is a version; fsyncdir works", async () => {
    const m = await mountAt("sem-close/");
    fs.writeFileSync(m.p("u.txt"), "unchanged");
    // Opened, read, closed: no version. Read-only, write-only, cat, stat: none either.
    let fd = open(m.p("u.txt"), "r+");
    fs.readSync(fd, Buffer.alloc(100), 0, 100, 0);
    close(fd);
    close(open(m.p("u.txt"), "r"));
    close(open(m.p("u.txt"), fs.constants.O_WRONLY));
    sh(m.dir, "cat u.txt > /dev/null; stat u.txt > /dev/null; ls -l > /dev/null");
    // O_TRUNC of a file that is already empty changes nothing.
    fs.writeFileSync(m.p("empty"), "");
    close(open(m.p("empty"), fs.constants.O_WRONLY | fs.constants.O_TRUNC));
    // Many writes, one close: one version.
    fd = open(m.p("many.txt"), "w");
    for (let i = 0; i < 100; i++) fs.writeSync(fd, `line ${i}\n`);
    close(fd);
    fd = open(m.p("u2.txt"), "w");
    fs.writeSync(fd, "first");
    close(fd);
    fd = open(m.p("u2.txt"), "r+");
    for (let i = 0; i < 50; i++) fs.writeSync(fd, "X", i * 3);
    close(fd);
    // A shell redirection (create, dup2, close the original, write, close): one version each.
    sh(m.dir, "echo hi > sh.txt; echo more >> sh.txt");
    // fsync makes the version; the close after it, with nothing new, makes none.
    fd = open(m.p("fs.txt"), "w");
    fs.writeSync(fd, "a");
    fs.fsyncSync(fd);
    close(fd);
    fd = open(m.p("fs2.txt"), "w");
    fs.writeSync(fd, "a");
    fs.fdatasyncSync(fd);
    fs.writeSync(fd, "b");
    close(fd);
    // ftruncate and writes through one descriptor: one version at close.
    fd = open(m.p("ft.txt"), "w");
    fs.writeSync(fd, "0123456789");
    fs.ftruncateSync(fd, 4);
    fs.writeSync(fd, "!", 4);
    close(fd);
    expect(fs.readFileSync(m.p("ft.txt"), "utf8")).toBe("0123!");
    // fsync of a directory.
    fs.mkdirSync(m.p("d"));
    const dfd = open(m.p("d"), "r");
    fs.fsyncSync(dfd);
    close(dfd);
    await unmountAt(m);
    expect(versions("sem-close/u.txt")).toBe(1);
    expect(versions("sem-close/empty")).toBe(1);
    expect(versions("sem-close/many.txt")).toBe(1);
    expect(body("sem-close/many.txt")).toBe(Array.from({ length: 100 }, (_, i) => `line ${i}\n`).join(""));
    expect(versions("sem-close/u2.txt")).toBe(2);
    expect(versions("sem-close/sh.txt")).toBe(2);
    expect(body("sem-close/sh.txt")).toBe("hi\nmore\n");
    expect(versions("sem-close/fs.txt")).toBe(1);
    expect(versions("sem-close/fs2.txt")).toBe(2);
    expect(body("sem-close/fs2.txt")).toBe("ab");
    expect(versions("sem-close/ft.txt")).toBe(1);
    expect(body("sem-close/ft.txt")).toBe("0123!");
  }, 30_000);

  test("unlink: an open file stays readable and writable until its last close, and closing it makes no version", async () => {
    const m = await mountAt("sem-unlink/");
    fs.writeFileSync(m.p("f.txt"), "keep me");
    const fd = open(m.p("f.txt"), "r+");
    const fd2 = open(m.p("f.txt"), "r");
    fs.unlinkSync(m.p("f.txt"));
    expect(code(() => fs.statSync(m.p("f.txt")))).toBe("ENOENT");
    expect(fs.readdirSync(m.dir)).toEqual([]);
    const b = Buffer.alloc(7);
    fs.readSync(fd, b, 0, 7, 0);
    expect(b.toString()).toBe("keep me");
    fs.writeSync(fd, "KEEP", 0);
    fs.readSync(fd2, b, 0, 7, 0);
    expect(b.toString()).toBe("KEEP me");
    expect(fs.fstatSync(fd).size).toBe(7);
    close(fd);
    fs.readSync(fd2, b, 0, 7, 0);
    expect(b.toString()).toBe("KEEP me");
    close(fd2);
    // A new file unlinked before its first close never reaches Postgres.
    const n = open(m.p("never.txt"), "w");
    fs.writeSync(n, "gone");
    fs.unlinkSync(m.p("never.txt"));
    fs.writeSync(n, " still");
    close(n);
    // The name is free again at once.
    fs.writeFileSync(m.p("f.txt"), "new");
    // A rename over an open file: the descriptor keeps the replaced content.
    fs.writeFileSync(m.p("old.txt"), "replaced");
    fs.writeFileSync(m.p("src.txt"), "winner");
    const o = open(m.p("old.txt"), "r");
    fs.renameSync(m.p("src.txt"), m.p("old.txt"));
    const ob = Buffer.alloc(8);
    fs.readSync(o, ob, 0, 8, 0);
    expect(ob.toString()).toBe("replaced");
    close(o);
    expect(fs.readFileSync(m.p("old.txt"), "utf8")).toBe("winner");
    expect(code(() => fs.unlinkSync(m.p("zz")))).toBe("ENOENT");
    await unmountAt(m);
    expect(versions("sem-unlink/never.txt")).toBe(0);
    expect(body("sem-unlink/old.txt")).toBe("winner");
    expect(versions("sem-unlink/old.txt")).toBe(2);
    // write, tombstone, the new file: the close of the unlinked one added nothing.
    const rows = q(`SELECT string_agg((meta->>'deleted') || ':' || COALESCE(convert_from(data, 'UTF8'), '-'), ',' ORDER BY (meta->>'version')::int) FROM pgfiles WHERE key = 'sem-unlink/f.txt'`);
    expect(rows).toBe("false:keep me,true:-,false:new");
  }, 30_000);

  test("rename: replaces a target atomically, RENAME_NOREPLACE, RENAME_EXCHANGE, errors", async () => {
    const m = await mountAt("sem-rename/");
    fs.writeFileSync(m.p("a"), "A");
    fs.writeFileSync(m.p("b"), "B");
    const aIno = fs.statSync(m.p("a")).ino;
    fs.renameSync(m.p("a"), m.p("b"));
    expect(fs.readFileSync(m.p("b"), "utf8")).toBe("A");
    expect(fs.statSync(m.p("b")).ino).toBe(aIno);
    expect(code(() => fs.statSync(m.p("a")))).toBe("ENOENT");
    // RENAME_NOREPLACE
    fs.writeFileSync(m.p("c"), "C");
    expect(py(`out(err(renameat2, ${JSON.stringify(m.p("c"))}, ${JSON.stringify(m.p("b"))}, 1))`)).toBe("EEXIST");
    expect([fs.readFileSync(m.p("b"), "utf8"), fs.readFileSync(m.p("c"), "utf8")]).toEqual(["A", "C"]);
    expect(py(`out(err(renameat2, ${JSON.stringify(m.p("c"))}, ${JSON.stringify(m.p("c2"))}, 1))`)).toBe("OK");
    expect(sh(m.dir, "mv -n b c2 || true; cat b c2")).toBe("AC");
    // RENAME_EXCHANGE, across directories: contents (and inodes) swap names.
    fs.mkdirSync(m.p("x"));
    fs.writeFileSync(m.p("x/one"), "ONE");
    fs.writeFileSync(m.p("two"), "TWO");
    const [i1, i2] = [fs.statSync(m.p("x/one")).ino, fs.statSync(m.p("two")).ino];
    expect(py(`out(err(renameat2, ${JSON.stringify(m.p("x/one"))}, ${JSON.stringify(m.p("two"))}, 2))`)).toBe("OK");
    expect([fs.readFileSync(m.p("x/one"), "utf8"), fs.readFileSync(m.p("two"), "utf8")]).toEqual(["TWO", "ONE"]);
    expect([fs.statSync(m.p("x/one")).ino, fs.statSync(m.p("two")).ino]).toEqual([i2, i1]);
    expect(py(`out(err(renameat2, ${JSON.stringify(m.p("two"))}, ${JSON.stringify(m.p("missing"))}, 2))`)).toBe("ENOENT");
    // Errors: a directory into itself, over a non-empty directory, file over directory and back.
    fs.mkdirSync(m.p("p/q"), { recursive: true });
    fs.mkdirSync(m.p("full"));
    fs.writeFileSync(m.p("full/f"), "f");
    fs.mkdirSync(m.p("empty"));
    expect(code(() => fs.renameSync(m.p("p"), m.p("p/q/r")))).toBe("EINVAL");
    expect(code(() => fs.renameSync(m.p("p"), m.p("full")))).toBe("ENOTEMPTY");
    expect(code(() => fs.renameSync(m.p("c2"), m.p("empty")))).toBe("EISDIR");
    expect(code(() => fs.renameSync(m.p("empty"), m.p("c2")))).toBe("ENOTDIR");
    expect(code(() => fs.renameSync(m.p("nope"), m.p("x2")))).toBe("ENOENT");
    fs.renameSync(m.p("p"), m.p("empty")); // over an empty directory: replaced
    expect(fs.readdirSync(m.p("empty"))).toEqual(["q"]);
    // Rename of a file open with unsaved writes: nothing is lost, the rest lands under the new name.
    const fd = open(m.p("w.txt"), "w");
    fs.writeSync(fd, "part one, ");
    fs.renameSync(m.p("w.txt"), m.p("w2.txt"));
    fs.writeSync(fd, "part two");
    close(fd);
    expect(fs.readFileSync(m.p("w2.txt"), "utf8")).toBe("part one, part two");
    await unmountAt(m);
    const P = "sem-rename/";
    expect(liveKeys(P)).toBe(["b", "c2", "empty/", "empty/q/", "full/", "full/f", "two", "w2.txt", "x/", "x/one"].map((k) => P + k).join(","));
    expect([body(P + "b"), body(P + "c2"), body(P + "x/one"), body(P + "two"), body(P + "w2.txt")]).toEqual(["A", "C", "TWO", "ONE", "part one, part two"]);
    expect(latest(P + "a")!.meta.deleted).toBe(true);
    expect(latest(P + "w.txt")!.meta.deleted).toBe(true);
    // The replaced file's key has a new latest version (no tombstone in between).
    expect(q(`SELECT string_agg(meta->>'deleted', ',' ORDER BY (meta->>'version')::int) FROM pgfiles WHERE key = '${P}b'`)).toBe("false,false");
  }, 30_000);

  test("rename of a directory moves every key below it, in one Postgres transaction, also when not yet listed", async () => {
    const m = await mountAt("sem-mvdir/");
    fs.mkdirSync(m.p("d/s/t"), { recursive: true });
    fs.writeFileSync(m.p("d/f1"), "one");
    fs.writeFileSync(m.p("d/s/f2"), "two");
    fs.symlinkSync("../f1", m.p("d/s/link"));
    await unmountAt(m);
    // A fresh mount: nothing below d/ is loaded when the rename comes.
    const m2 = await mountAt("sem-mvdir/");
    fs.renameSync(m2.p("d"), m2.p("e"));
    expect(code(() => fs.statSync(m2.p("d")))).toBe("ENOENT");
    expect(fs.readFileSync(m2.p("e/s/f2"), "utf8")).toBe("two");
    expect(fs.readFileSync(m2.p("e/s/link"), "utf8")).toBe("one");
    await unmountAt(m2);
    const P = "sem-mvdir/";
    expect(liveKeys(P)).toBe(["e/", "e/f1", "e/s/", "e/s/f2", "e/s/link", "e/s/t/"].map((k) => P + k).join(","));
    expect([body(P + "e/f1"), body(P + "e/s/f2")]).toEqual(["one", "two"]);
    expect(latest(P + "e/s/link")!.meta.target).toBe("../f1");
    for (const k of ["d/", "d/f1", "d/s/", "d/s/f2", "d/s/link", "d/s/t/"]) expect(latest(P + k)!.meta.deleted).toBe(true);
    // Every version of the move was committed by one transaction.
    const xids = q(`SELECT count(DISTINCT xmin::text) FROM pgfiles WHERE key LIKE '${P}e/%' OR (key LIKE '${P}d/%' AND meta->>'deleted' = 'true')`);
    expect(xids).toBe("1");
  }, 30_000);

  test("RENAME_EXCHANGE of directories, and of a directory with a file, swaps whole subtrees", async () => {
    const m = await mountAt("sem-xchg/");
    fs.mkdirSync(m.p("A/sub"), { recursive: true });
    fs.writeFileSync(m.p("A/f"), "a");
    fs.writeFileSync(m.p("A/x"), "ax");
    fs.mkdirSync(m.p("B"));
    fs.writeFileSync(m.p("B/g"), "b");
    fs.writeFileSync(m.p("B/x"), "bx");
    fs.writeFileSync(m.p("F"), "file");
    const xchg = (a: string, b: string) => py(`out(err(renameat2, ${JSON.stringify(m.p(a))}, ${JSON.stringify(m.p(b))}, 2))`);
    expect(xchg("A", "B")).toBe("OK");
    expect(fs.readdirSync(m.p("A")).sort()).toEqual(["g", "x"]);
    expect(fs.readdirSync(m.p("B")).sort()).toEqual(["f", "sub", "x"]);
    expect([fs.readFileSync(m.p("A/x"), "utf8"), fs.readFileSync(m.p("B/x"), "utf8")]).toEqual(["bx", "ax"]);
    expect(xchg("B", "F")).toBe("OK");
    expect(fs.readFileSync(m.p("B"), "utf8")).toBe("file");
    expect(fs.readdirSync(m.p("F")).sort()).toEqual(["f", "sub", "x"]);
    expect(fs.statSync(m.dir).nlink).toBe(4);
    expect(fs.statSync(m.p("F")).nlink).toBe(3);
    await unmountAt(m);
    const P = "sem-xchg/";
    expect(liveKeys(P)).toBe(["A/", "A/g", "A/x", "B", "F/", "F/f", "F/sub/", "F/x"].map((k) => P + k).join(","));
    expect([body(P + "A/x"), body(P + "F/x"), body(P + "B"), body(P + "F/f")]).toEqual(["bx", "ax", "file", "a"]);
  }, 30_000);

  test("the mount root's mode, owner and times are stored (a marker at the prefix's own key) and come back on the next mount", async () => {
    const P = "sem-root/";
    const m = await mountAt(P);
    fs.writeFileSync(m.p("f"), "x");
    fs.chmodSync(m.dir, 0o710);
    if (isRoot) fs.chownSync(m.dir, 65534, 65534);
    py(`utimens(${JSON.stringify(m.dir)}, 1_000_000_000_123_456_789, 1_100_000_000_987_654_321)`);
    const before = statNs(m.dir);
    expect(Number(before.mode) & 0o7777).toBe(0o710);
    expect(before.mtimeNs).toBe(1_100_000_000_987_654_321n);
    await unmountAt(m);
    const marker = latest(P)!;
    expect(marker.meta.type).toBe("dir");
    expect(marker.meta.mode).toBe(0o710);
    expect(marker.data).toBeNull();
    // A fresh mount (a new cache directory: from Postgres, not the journal) shows the same root.
    const again = await mountAt(P, { PGFILES_CACHE_DIR: fs.mkdtempSync(path.join(tmp, "cache-")) });
    const after = statNs(again.dir);
    expect(Number(after.mode) & 0o7777).toBe(0o710);
    expect(after.mtimeNs).toBe(1_100_000_000_987_654_321n);
    if (isRoot) expect([Number(after.uid), Number(after.gid)]).toEqual([65534, 65534]);
    expect(fs.readdirSync(again.dir)).toEqual(["f"]);
    await unmountAt(again);
    expect(liveKeys(P)).toBe(`${P},${P}f`);
  }, 30_000);

  test("symlink and readlink", async () => {
    const m = await mountAt("sem-link/");
    fs.writeFileSync(m.p("t.txt"), "target");
    fs.symlinkSync("t.txt", m.p("l"));
    fs.symlinkSync("no/such/place", m.p("dangling"));
    expect(fs.readlinkSync(m.p("l"))).toBe("t.txt");
    expect(fs.readFileSync(m.p("l"), "utf8")).toBe("target");
    const st = fs.lstatSync(m.p("l"));
    expect(st.isSymbolicLink()).toBe(true);
    expect(st.mode).toBe(0o120777);
    expect(st.size).toBe(5);
    expect(fs.readlinkSync(m.p("dangling"))).toBe("no/such/place");
    expect(code(() => fs.statSync(m.p("dangling")))).toBe("ENOENT");
    expect(code(() => fs.symlinkSync("x", m.p("l")))).toBe("EEXIST");
    expect(code(() => fs.readlinkSync(m.p("t.txt")))).toBe("EINVAL");
    await unmountAt(m);
    const v = latest("sem-link/l")!;
    expect([v.meta.type, v.meta.target, v.meta.size]).toEqual(["symlink", "t.txt", 0]);
    expect(versions("sem-link/l")).toBe(1);
  }, 30_000);

  test("statfs and access", async () => {
    const m = await mountAt("sem-statfs/");
    const s = fs.statfsSync(m.dir);
    expect(s.bsize).toBeGreaterThan(0);
    expect(s.blocks).toBeGreaterThan(0);
    expect(s.files).toBeGreaterThan(0);
    expect(sh(m.dir, "stat -f -c %l .").trim()).toBe("255");
    expect(py(`import os; out(os.statvfs(${JSON.stringify(m.dir)}).f_namemax)`)).toBe(255);
    fs.writeFileSync(m.p("f"), "x");
    fs.chmodSync(m.p("f"), 0o644);
    expect(code(() => fs.accessSync(m.p("f"), fs.constants.R_OK | fs.constants.W_OK))).toBe("OK");
    expect(code(() => fs.accessSync(m.p("f"), fs.constants.X_OK))).toBe("EACCES");
    expect(code(() => fs.accessSync(m.p("nope")))).toBe("ENOENT");
    await unmountAt(m);
  }, 30_000);

  test("user.* extended attributes are the version's meta tags; other namespaces are refused", async () => {
    const m = await mountAt("sem-xattr/");
    const f = JSON.stringify(m.p("f.txt"));
    fs.writeFileSync(m.p("f.txt"), "x");
    fs.mkdirSync(m.p("d"));
    const r = py(`
import os
f = ${f}
os.setxattr(f, "user.color", b"blue")
os.setxattr(f, "user.size", b"L")
os.setxattr(${JSON.stringify(m.p("d"))}, "user.owner", b"team")
res = {
  "get": os.getxattr(f, "user.color").decode(),
  "list": sorted(os.listxattr(f)),
  "create": err(os.setxattr, f, "user.color", b"red", os.XATTR_CREATE),
  "replace": err(os.setxattr, f, "user.nope", b"x", os.XATTR_REPLACE),
  "missing": err(os.getxattr, f, "user.nope"),
  "trusted": err(os.setxattr, f, "trusted.x", b"1"),  # ENOTSUP = EOPNOTSUPP (95)
  "binary": err(os.setxattr, f, "user.bin", b"\\xff\\xfe"),
}
os.setxattr(f, "user.color", b"green", os.XATTR_REPLACE)
os.removexattr(f, "user.size")
res["removeMissing"] = err(os.removexattr, f, "user.size")
res["after"] = sorted(os.listxattr(f))
res["dir"] = os.getxattr(${JSON.stringify(m.p("d"))}, "user.owner").decode()
out(res)`);
    expect(r).toEqual({
      get: "blue", list: ["user.color", "user.size"], create: "EEXIST", replace: "ENODATA", missing: "ENODATA",
      trusted: "ENOTSUP", binary: "EINVAL", removeMissing: "ENODATA", after: ["user.color"], dir: "team",
    });
    // Set on an open, changed file: stored with the content at close.
    const fd = open(m.p("g.txt"), "w");
    fs.writeSync(fd, "gg");
    py(`import os; os.setxattr(${JSON.stringify(m.p("g.txt"))}, "user.k", b"v")`);
    close(fd);
    await unmountAt(m);
    expect(latest("sem-xattr/f.txt")!.meta.tags).toEqual({ color: "green" });
    expect(body("sem-xattr/f.txt")).toBe("x");
    expect(latest("sem-xattr/d/")!.meta.tags).toEqual({ owner: "team" });
    expect(latest("sem-xattr/g.txt")!.meta.tags).toEqual({ k: "v" });
    expect(body("sem-xattr/g.txt")).toBe("gg");
    // They come back on the next mount.
    const m2 = await mountAt("sem-xattr/");
    expect(py(`import os; out(os.getxattr(${JSON.stringify(m2.p("f.txt"))}, "user.color").decode())`)).toBe("green");
    await unmountAt(m2);
  }, 30_000);

  test.skipIf(!isRoot)("permissions: another user gets EACCES on a 0600 file of root's and can create files in a 0777 directory", async () => {
    const m = await mountAt("sem-perm/");
    fs.writeFileSync(m.p("secret"), "s3cret");
    fs.chmodSync(m.p("secret"), 0o600);
    fs.writeFileSync(m.p("public"), "hello");
    fs.chmodSync(m.p("public"), 0o644);
    fs.mkdirSync(m.p("shared"));
    fs.chmodSync(m.p("shared"), 0o777);
    const r = py(`
import os
p = lambda x: os.path.join(${JSON.stringify(m.dir)}, x)
res = {
  "readSecret": err(lambda: open(p("secret")).read()),
  "writePublic": err(lambda: open(p("public"), "a")),
  "readPublic": open(p("public")).read(),
  "accessSecret": os.access(p("secret"), os.R_OK),
  "createInRoot": err(lambda: open(p("mine"), "w")),
  "chmodSecret": err(os.chmod, p("secret"), 0o666),
  "unlinkPublic": err(os.unlink, p("public")),
  "xattrSecret": err(os.setxattr, p("secret"), "user.a", b"b"),
}
with open(p("shared/mine.txt"), "w") as f:
    f.write("by nobody")
os.mkdir(p("shared/sub"))
st = os.stat(p("shared/mine.txt"))
res["owner"] = [st.st_uid, st.st_gid]
res["chmodOwn"] = err(os.chmod, p("shared/mine.txt"), 0o600)
out(res)`, "nobody");
    expect(r).toEqual({
      readSecret: "EACCES", writePublic: "EACCES", readPublic: "hello", accessSecret: false, createInRoot: "EACCES",
      chmodSecret: "EPERM", unlinkPublic: "EACCES", xattrSecret: "EACCES", owner: [65534, 65534], chmodOwn: "OK",
    });
    // Root still reads what nobody made.
    expect(fs.readFileSync(m.p("shared/mine.txt"), "utf8")).toBe("by nobody");
    await unmountAt(m);
    const v = latest("sem-perm/shared/mine.txt")!;
    expect([v.meta.uid, v.meta.gid, v.meta.mode]).toEqual([65534, 65534, 0o600]);
    expect(latest("sem-perm/shared/sub/")!.meta.uid).toBe(65534);
    expect(body("sem-perm/secret")).toBe("s3cret");
    expect(versions("sem-perm/mine")).toBe(0);
  }, 30_000);

  test("unsupported operations return their documented errno", async () => {
    const m = await mountAt("sem-unsup/");
    fs.writeFileSync(m.p("f"), "data");
    expect(code(() => fs.linkSync(m.p("f"), m.p("hard")))).toBe("EPERM");
    const r = py(`
import os, stat, fcntl
p = lambda x: os.path.join(${JSON.stringify(m.dir)}, x)
fd = os.open(p("f"), os.O_RDWR)
res = {
  "fifo": err(os.mkfifo, p("fifo")),
  "chr": err(os.mknod, p("chr"), stat.S_IFCHR | 0o600, os.makedev(1, 3)),
  "sock": err(os.mknod, p("sock"), stat.S_IFSOCK | 0o600),
  "reg": err(os.mknod, p("reg"), stat.S_IFREG | 0o640),
  "fallocate": err(fallocate, fd, 0, 4096),  # ENOTSUP = EOPNOTSUPP (95)
  "flock": err(fcntl.flock, fd, fcntl.LOCK_EX),
  "lockf": err(fcntl.lockf, fd, fcntl.LOCK_EX),
}
os.close(fd)
out(res)`);
    expect(r).toEqual({ fifo: "EPERM", chr: "EPERM", sock: "EPERM", reg: "OK", fallocate: "ENOTSUP", flock: "OK", lockf: "OK" });
    expect(fs.statSync(m.p("reg")).size).toBe(0);
    expect(fs.readdirSync(m.dir).sort()).toEqual(["f", "reg"]);
    await unmountAt(m);
    expect(liveKeys("sem-unsup/")).toBe("sem-unsup/f,sem-unsup/reg");
    expect(versions("sem-unsup/reg")).toBe(1);
    expect(latest("sem-unsup/reg")!.meta.mode).toBe(0o640 & ~process.umask());
  }, 30_000);

  test("readdir/readdirplus: a large directory is listed whole, in pages, with stable offsets while it changes", async () => {
    const N = 2500;
    const P = "sem-big/";
    q(`INSERT INTO pgfiles (key, meta, data)
       SELECT '${P}d/f' || lpad(i::text, 5, '0'),
              jsonb_build_object('deleted', false, 'type', 'file', 'size', length('body ' || i), 'mode', 420, 'uid', 0, 'gid', 0,
                                 'mtime', '2024-01-02T03:04:05Z', 'ctime', '2024-01-02T03:04:05Z', 'created', '2024-01-02T03:04:05Z'),
              convert_to('body ' || i, 'UTF8')
         FROM generate_series(1, ${N}) i;
       INSERT INTO pgfiles (key, meta, data)
       SELECT '${P}d/sub' || lpad(i::text, 2, '0') || '/x',
              jsonb_build_object('deleted', false, 'type', 'file', 'size', 1, 'mode', 420, 'uid', 0, 'gid', 0,
                                 'mtime', '2024-01-02T03:04:05Z', 'ctime', '2024-01-02T03:04:05Z', 'created', '2024-01-02T03:04:05Z'),
              convert_to('x', 'UTF8')
         FROM generate_series(1, 30) i;`);
    const m = await mountAt(P);
    const d = JSON.stringify(m.p("d"));
    const want = [...Array.from({ length: N }, (_, i) => `f${String(i + 1).padStart(5, "0")}`), ...Array.from({ length: 30 }, (_, i) => `sub${String(i + 1).padStart(2, "0")}`)].sort();
    // Plain listing (the kernel asks for readdirplus first, then plain readdir pages).
    expect(fs.readdirSync(m.p("d")).sort()).toEqual(want);
    // Implicit directories (keys below, no marker) count as subdirectories.
    expect(fs.statSync(m.p("d")).nlink).toBe(32);
    // With attributes (ls -l: readdirplus); inode numbers from readdir match stat.
    const long = sh(m.p("d"), "ls -lai --time-style=+%s . | tail -n +2");
    const lines = long.trim().split("\n");
    expect(lines.length).toBe(N + 30 + 2);
    const byName = new Map(lines.map((l) => { const f = l.trim().split(/\s+/); return [f.at(-1)!, f]; }));
    expect(byName.get("f00042")![5]).toBe(String("body 42".length));
    expect(byName.get("sub07")![1].startsWith("d")).toBe(true);
    expect(BigInt(byName.get("f01234")![0])).toBe(statNs(m.p("d/f01234")).ino);
    // Offsets: seekdir(d_off of entry i) resumes at entry i+1, in this stream and while entries come and go.
    const r = py(`
import os
d = Dir(${d})
first = [d.next() for _ in range(100)]
os.close(os.open(os.path.join(${d}, "new-during"), os.O_CREAT | os.O_WRONLY, 0o644))
os.unlink(os.path.join(${d}, first[10][0]))
os.unlink(os.path.join(${d}, "f02000"))
rest = d.all()
entries = first + rest
names = [e[0] for e in entries]
bad = []
for i in [0, 1, 57, 99, 100, 1000, 2000, len(entries) - 2]:
    d.seek(entries[i][1])
    nxt = d.next()
    if nxt is None or nxt[0] != names[i + 1]: bad.append([i, names[i + 1], nxt and nxt[0]])
d.seek(entries[-1][1])
end = d.next()
d.close()
again = [e[0] for e in Dir(${d}).all()]
out({"n": len(names), "unique": len(set(names)), "bad": bad, "end": end, "hasNew": "new-during" in names,
     "again": len(again), "againNew": "new-during" in again, "againGone": "f02000" in again})`);
    // The stream is a snapshot taken at opendir: all entries once, no new ones, offsets stable.
    expect(r).toEqual({ n: N + 30 + 2, unique: N + 30 + 2, bad: [], end: null, hasNew: false, again: N + 30 + 2 - 2 + 1, againNew: true, againGone: false });
    await unmountAt(m);
    expect(Number(q(`SELECT count(*) FROM pgfiles_head WHERE key LIKE '${P}d/%' AND NOT deleted`))).toBe(N + 30 - 2 + 1);
  }, 60_000);

  test("PGFILES_READ_ONLY=true: every write gets EROFS and nothing reaches Postgres", async () => {
    const P = "sem-ro/";
    q(seedSql(`${P}f.txt`, "read me") + seedSql(`${P}d/`, null, "dir") + seedSql(`${P}d/g.txt`, "g"));
    const before = q(`SELECT count(*) || ':' || md5(string_agg(id::text, ',' ORDER BY id)) FROM pgfiles WHERE key LIKE '${P}%'`);
    const m = await mountAt(P, { PGFILES_READ_ONLY: "true" });
    expect(fs.readFileSync(m.p("f.txt"), "utf8")).toBe("read me");
    expect(fs.readdirSync(m.dir).sort()).toEqual(["d", "f.txt"]);
    const f = m.p("f.txt");
    const C = fs.constants;
    const results = {
      create: code(() => open(m.p("new"), "w")),
      openWrite: code(() => open(f, C.O_WRONLY)),
      openTrunc: code(() => open(f, C.O_RDONLY | C.O_TRUNC)),
      mkdir: code(() => fs.mkdirSync(m.p("nd"))),
      unlink: code(() => fs.unlinkSync(f)),
      rmdir: code(() => fs.rmdirSync(m.p("d"))),
      rename: code(() => fs.renameSync(f, m.p("g"))),
      chmod: code(() => fs.chmodSync(f, 0o600)),
      chown: code(() => fs.chownSync(f, 1, 1)),
      truncate: code(() => fs.truncateSync(f, 1)),
      utimes: code(() => fs.utimesSync(f, 1, 1)),
      symlink: code(() => fs.symlinkSync("x", m.p("l"))),
      link: code(() => fs.linkSync(f, m.p("h"))),
      setxattr: py(`import os; out(err(os.setxattr, ${JSON.stringify(f)}, "user.a", b"b"))`),
      removexattr: py(`import os; out(err(os.removexattr, ${JSON.stringify(f)}, "user.a"))`),
      mknod: py(`import os; out(err(os.mkfifo, ${JSON.stringify(m.p("fifo"))}))`),
    };
    for (const [op, got] of Object.entries(results)) expect(`${op}: ${got}`).toBe(`${op}: EROFS`);
    // Reads stay fine.
    expect(fs.readFileSync(m.p("d/g.txt"), "utf8")).toBe("g");
    await unmountAt(m);
    expect(q(`SELECT count(*) || ':' || md5(string_agg(id::text, ',' ORDER BY id)) FROM pgfiles WHERE key LIKE '${P}%'`)).toBe(before);
  }, 30_000);

  test("no key outside PGFILES_PREFIX is ever read or written", async () => {
    const P = "scope/";
    q(seedSql(`${P}a.txt`, "inside") + seedSql("scope", "a key equal to the prefix without slash") + seedSql("scope-other/b", "b") +
      seedSql("scopex/c", "c") + seedSql("other/scope/d", "d") + seedSql("scop", "e"));
    const outside = () => q(`SELECT count(*) || ':' || md5(string_agg(id::text || key || meta::text, ',' ORDER BY id)) FROM pgfiles WHERE key NOT LIKE 'scope/%'`);
    const before = outside();
    const m = await mountAt(P);
    expect(fs.readdirSync(m.dir)).toEqual(["a.txt"]);
    // A busy session: every kind of write.
    fs.mkdirSync(m.p("scope-other"));
    fs.writeFileSync(m.p("scope-other/b"), "mine");
    fs.renameSync(m.p("a.txt"), m.p("b.txt"));
    fs.chmodSync(m.dir, 0o750);
    py(`import os; os.setxattr(${JSON.stringify(m.p("b.txt"))}, "user.t", b"v")`);
    fs.symlinkSync("../scopex/c", m.p("l"));
    fs.rmSync(m.p("scope-other"), { recursive: true });
    fs.writeFileSync(m.p("x"), "x");
    fs.unlinkSync(m.p("x"));
    await unmountAt(m);
    expect(outside()).toBe(before);
    // "scope/" itself is the root's marker (the chmod of the mount point): the prefix's own key, inside it.
    expect(liveKeys(P)).toBe("scope/,scope/b.txt,scope/l");
  }, 30_000);
});
