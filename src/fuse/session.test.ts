// The FUSE frontend on real mounts: an in-memory Vfs is mounted in a temp dir
// and driven with ordinary tools (in child processes) and async node fs.
// This process serves the mount, so it never touches the mount synchronously:
// a blocking syscall here would wait for a reply only this thread can send.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { MemoryVfs } from "../../test/fixtures/memory-vfs.ts";
import { Errno } from "../vfs/types.ts";
import { abortConnection, connectionAt, mount, MountError, mountState, mountsAt, unmount, type Mounted } from "./mount.ts";
import { startSession, type Session } from "./session.ts";

const BUN = process.execPath;
const SRC = path.resolve(import.meta.dir, "..");
const FIXTURES = path.resolve(import.meta.dir, "../../test/fixtures");
const haveFuse = fs.existsSync("/dev/fuse");
const isRoot = process.getuid?.() === 0;
if (!haveFuse) console.warn("session.test.ts: /dev/fuse is absent here; the FUSE mount tests are skipped.");
else if (!isRoot) console.warn("session.test.ts: these tests mount with mount(8) and need root; skipped.");
const suite = haveFuse && isRoot ? describe : describe.skip;

type Ran = { code: number; stdout: string; stderr: string };
/** Runs a command in a child process (never blocking this thread, which serves the mount). */
async function run(cmd: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<Ran> {
  const p = Bun.spawn(cmd, { cwd: opts.cwd, env: opts.env ?? process.env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}
/**
 * A shell script run inside `dir`. The cd happens in the shell, never through
 * Bun.spawn's cwd: Bun's spawn suspends the calling thread until the child
 * has exec'd (vfork), and a child's chdir into our own mount then waits for a
 * GETATTR reply that only the suspended thread could send.
 */
const sh = (script: string, dir?: string) => run(["bash", "-c", dir ? `cd "$0" && ${script}` : script, ...(dir ? [dir] : [])]);

/** Unmounts whatever we left at `mp`, however stuck it is. */
async function forceCleanup(mp: string) {
  for (let i = 0; i < 4 && mountsAt(mp).some((m) => m.fstype.startsWith("fuse")); i++) {
    const conn = connectionAt(mp);
    if ((await run(["umount", "-l", mp])).code === 0) continue;
    if (conn !== undefined) {
      // Aborting needs fusectl; mount it for this moment if the system has not.
      const mounted = !fs.existsSync("/sys/fs/fuse/connections/" + conn) && (await run(["mount", "-t", "fusectl", "none", "/sys/fs/fuse/connections"])).code === 0;
      abortConnection(conn);
      if (mounted) await run(["umount", "/sys/fs/fuse/connections"]);
    }
  }
}

async function ending(s: Session, ms = 5000) {
  const done = await Promise.race([s.done.then(() => true), Bun.sleep(ms).then(() => false)]);
  await s.stop();
  return done;
}

const base = fs.mkdtempSync(path.join(os.tmpdir(), "pgfiles-fuse-"));
fs.chmodSync(base, 0o755);
afterAll(() => fs.rmSync(base, { recursive: true, force: true }));

/** A child script importing our modules by absolute path. */
function script(name: string, body: string): string {
  const file = path.join(base, name);
  const header = [
    `import { mount, unmount } from ${JSON.stringify(path.join(SRC, "fuse/mount.ts"))};`,
    `import { startSession } from ${JSON.stringify(path.join(SRC, "fuse/session.ts"))};`,
    `import { MemoryVfs } from ${JSON.stringify(path.join(FIXTURES, "memory-vfs.ts"))};`,
    `import fs from "node:fs"; import path from "node:path";`,
    `import { dlopen, FFIType, ptr, read as peek } from "bun:ffi";`,
  ].join("\n");
  fs.writeFileSync(file, header + "\n" + body);
  fs.chmodSync(file, 0o644);
  return file;
}

suite("a mounted in-memory filesystem", () => {
  const mnt = path.join(base, "mnt");
  const vfs = new MemoryVfs();
  const warnings: string[] = [];
  const log = { warn: (...a: unknown[]) => warnings.push(JSON.stringify(a)), error: (...a: unknown[]) => warnings.push(JSON.stringify(a)), debug: () => {} };
  let m: Mounted;
  let s: Session;
  const at = (...p: string[]) => path.join(mnt, ...p);

  beforeAll(async () => {
    fs.mkdirSync(mnt);
    fs.writeFileSync(path.join(mnt, "hidden-by-the-mount"), "x");
    m = await mount(mnt);
    s = startSession({ fd: m.fd, vfs, log });
  });
  afterAll(async () => {
    try {
      if (s) {
        await unmount(mnt);
        await ending(s);
      }
    } finally {
      await forceCleanup(mnt);
    }
    expect(mountsAt(mnt)).toEqual([]);
  });

  test("reports a non-empty mount point and hides its files", async () => {
    expect(m.nonEmpty).toBe(true);
    expect(m.via).toBe("mount");
    expect(await fs.promises.readdir(mnt)).toEqual([]);
    // The mount table names it as ours (the NFS frontend finds its mounts by source the same way).
    expect(mountsAt(mnt).at(-1)).toMatchObject({ fstype: "fuse.pgfiles", source: "pgfiles" });
  });

  test("mkdir -p, write and read files", async () => {
    const r = await sh(`mkdir -p a/b/c && echo hello > a/b/c/f.txt && cat a/b/c/f.txt`, mnt);
    expect(r).toMatchObject({ code: 0, stdout: "hello\n" });
    await fs.promises.writeFile(at("a", "g.txt"), "from node");
    expect(await fs.promises.readFile(at("a", "g.txt"), "utf8")).toBe("from node");
    const st = await fs.promises.stat(at("a", "b"));
    expect(st.isDirectory()).toBe(true);
  });

  test("a 5 MiB file comes back byte for byte", async () => {
    const data = Buffer.from(crypto.getRandomValues(new Uint8Array(5 << 20)));
    const local = path.join(base, "big.bin");
    fs.writeFileSync(local, data);
    await fs.promises.writeFile(at("big.bin"), data);
    expect((await fs.promises.stat(at("big.bin"))).size).toBe(data.length);
    expect(Buffer.compare(await fs.promises.readFile(at("big.bin")), data)).toBe(0);
    // Through cp and cmp too: other processes, the kernel's page cache dropped by O_DIRECT-free paths.
    expect((await sh(`cp ${local} big2.bin && cmp ${local} big2.bin && cmp big.bin big2.bin`, mnt)).code).toBe(0);
  }, 20_000);

  test("append and truncate", async () => {
    await fs.promises.writeFile(at("log.txt"), "one\n");
    await fs.promises.appendFile(at("log.txt"), "two\n");
    expect((await sh(`echo three >> log.txt && cat log.txt`, mnt)).stdout).toBe("one\ntwo\nthree\n");
    expect((await sh(`truncate -s 4 log.txt && cat log.txt && truncate -s 10 log.txt && stat -c %s log.txt`, mnt)).stdout).toBe("one\n10\n");
    const h = await fs.promises.open(at("log.txt"), "r+");
    await h.truncate(2);
    await h.close();
    expect(await fs.promises.readFile(at("log.txt"), "utf8")).toBe("on");
    // O_TRUNC on open
    await fs.promises.writeFile(at("log.txt"), "new");
    expect(await fs.promises.readFile(at("log.txt"), "utf8")).toBe("new");
  });

  test("rename, over an existing file, and mv -n refuses to replace", async () => {
    await fs.promises.writeFile(at("r1"), "first");
    await fs.promises.writeFile(at("r2"), "second");
    await fs.promises.rename(at("r1"), at("r3"));
    await expect(fs.promises.stat(at("r1"))).rejects.toMatchObject({ code: "ENOENT" });
    await fs.promises.rename(at("r3"), at("r2"));
    expect(await fs.promises.readFile(at("r2"), "utf8")).toBe("first");
    await fs.promises.writeFile(at("r4"), "fourth");
    // coreutils' mv -n uses renameat2(RENAME_NOREPLACE): the vfs says EEXIST and nothing moves.
    expect((await sh(`mv -n r4 r2; cat r2 r4`, mnt)).stdout).toBe("firstfourth");
    await fs.promises.mkdir(at("rd"));
    await fs.promises.rename(at("r4"), at("rd", "r4"));
    expect(await fs.promises.readFile(at("rd", "r4"), "utf8")).toBe("fourth");
  });

  test("symlinks and readlink", async () => {
    expect((await sh(`ln -s a/b/c/f.txt link && readlink link && cat link`, mnt)).stdout).toBe("a/b/c/f.txt\nhello\n");
    expect(await fs.promises.readlink(at("link"))).toBe("a/b/c/f.txt");
    expect((await fs.promises.lstat(at("link"))).isSymbolicLink()).toBe(true);
  });

  test("ls -la of 2,000 entries lists every name exactly once (paged readdir and readdirplus)", async () => {
    expect((await sh(`mkdir many && cd many && touch $(seq -f 'file-with-a-longer-name-%05g' 1 2000)`, mnt)).code).toBe(0);
    const r = await sh(`ls -la many`, mnt);
    expect(r.code).toBe(0);
    const names = r.stdout.split("\n").filter((l) => l.includes("file-with")).map((l) => l.split(" ").at(-1)!);
    expect(names.length).toBe(2000);
    expect(new Set(names).size).toBe(2000);
    const viaNode = await fs.promises.readdir(at("many"));
    expect(viaNode.length).toBe(2000);
    expect(vfs.calls.get("readdirplus") ?? 0).toBeGreaterThan(1);
  }, 20_000);

  test("xattrs: set, get (size query, ERANGE), list, create/replace flags, remove; renameat2 exchange", async () => {
    await fs.promises.writeFile(at("x.txt"), "x");
    await fs.promises.writeFile(at("y.txt"), "y");
    const file = script(
      "xattr.ts",
      `
      const L = dlopen("libc.so.6", {
        setxattr: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
        getxattr: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
        listxattr: { args: [FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
        removexattr: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
        renameat2: { args: [FFIType.i32, FFIType.ptr, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
        __errno_location: { args: [], returns: FFIType.ptr },
      }).symbols;
      const err = () => peek.i32(L.__errno_location(), 0);
      const c = (s) => Buffer.from(s + "\\0");
      const f = c(process.argv[2]);
      const out = {};
      const r = (v) => (Number(v) < 0 ? -err() : Number(v));
      out.set = r(L.setxattr(f, c("user.color"), Buffer.from("blue"), 4, 0));
      out.createAgain = r(L.setxattr(f, c("user.color"), Buffer.from("red"), 3, 1));
      out.replaceMissing = r(L.setxattr(f, c("user.none"), Buffer.from("x"), 1, 2));
      out.sizeQuery = r(L.getxattr(f, c("user.color"), null, 0));
      const small = Buffer.alloc(2);
      out.tooSmall = r(L.getxattr(f, c("user.color"), small, 2));
      const big = Buffer.alloc(64);
      const n = r(L.getxattr(f, c("user.color"), big, 64));
      out.value = big.subarray(0, Math.max(n, 0)).toString();
      r(L.setxattr(f, c("user.size"), Buffer.from("L"), 1, 0));
      out.listSize = r(L.listxattr(f, null, 0));
      const lb = Buffer.alloc(128);
      const ln = r(L.listxattr(f, lb, 128));
      out.list = lb.subarray(0, Math.max(ln, 0)).toString().split("\\0").filter(Boolean).sort();
      out.listTooSmall = r(L.listxattr(f, Buffer.alloc(3), 3));
      out.remove = r(L.removexattr(f, c("user.color")));
      out.afterRemove = r(L.getxattr(f, c("user.color"), big, 64));
      out.exchange = r(L.renameat2(-100, c(process.argv[3]), -100, c(process.argv[4]), 2));
      console.log(JSON.stringify(out));
      `,
    );
    const r = await run([BUN, file, at("x.txt"), at("x.txt"), at("y.txt")]);
    expect(r.stderr).toBe("");
    expect(JSON.parse(r.stdout)).toEqual({
      set: 0,
      createAgain: -Errno.EEXIST,
      replaceMissing: -Errno.ENODATA,
      sizeQuery: 4,
      tooSmall: -Errno.ERANGE,
      value: "blue",
      listSize: "user.color\0user.size\0".length,
      list: ["user.color", "user.size"],
      listTooSmall: -Errno.ERANGE,
      remove: 0,
      afterRemove: -Errno.ENODATA,
      exchange: 0,
    });
    expect(await fs.promises.readFile(at("x.txt"), "utf8")).toBe("y");
    expect(await fs.promises.readFile(at("y.txt"), "utf8")).toBe("x");
  }, 15_000);

  test("statfs through df", async () => {
    const r = await run(["df", "-P", "-B", "4096", mnt]);
    expect(r.code).toBe(0);
    const cols = r.stdout.trim().split("\n")[1].split(/\s+/);
    expect(cols[0]).toBe("pgfiles");
    expect(Number(cols[1])).toBe(1 << 20);
  });

  test("hard links are refused with EPERM", async () => {
    await fs.promises.writeFile(at("orig"), "o");
    const r = await sh(`ln orig hard`, mnt);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("Operation not permitted");
    await expect(fs.promises.link(at("orig"), at("hard2"))).rejects.toMatchObject({ code: "EPERM" });
  });

  test("mknod makes regular files and refuses devices and fifos", async () => {
    expect((await sh(`mkfifo fifo`, mnt)).code).not.toBe(0);
    const file = script("mknod.ts", `
      const L = dlopen("libc.so.6", { mknod: { args: [FFIType.ptr, FFIType.u32, FFIType.u64], returns: FFIType.i32 }, __errno_location: { args: [], returns: FFIType.ptr } }).symbols;
      const rc = L.mknod(Buffer.from(process.argv[2] + "\\0"), 0o100644, 0);
      console.log(rc === 0 ? 0 : -peek.i32(L.__errno_location(), 0));`);
    expect((await run([BUN, file, at("plain")])).stdout.trim()).toBe("0");
    expect((await fs.promises.stat(at("plain"))).isFile()).toBe(true);
  });

  test("chmod, chown and utimes reach setattr (incl. UTIME_NOW)", async () => {
    await fs.promises.writeFile(at("attrs"), "a");
    await fs.promises.chmod(at("attrs"), 0o600);
    await fs.promises.chown(at("attrs"), 123, 456);
    await fs.promises.utimes(at("attrs"), new Date(1_000_000_000_000), new Date(1_500_000_000_000));
    const st = await fs.promises.stat(at("attrs"));
    expect(st.mode & 0o7777).toBe(0o600);
    expect([st.uid, st.gid]).toEqual([123, 456]);
    expect(st.mtimeMs).toBe(1_500_000_000_000);
    expect(st.atimeMs).toBe(1_000_000_000_000);
    const touched = Number((await sh(`touch attrs && stat -c %Y attrs`, mnt)).stdout.trim());
    expect(Math.abs(touched - Date.now() / 1000)).toBeLessThan(3);
  });

  test("errors: a VfsError keeps its errno; any other exception is EIO and a log line", async () => {
    await expect(fs.promises.readFile(at("nope"))).rejects.toMatchObject({ code: "ENOENT" });
    await expect(fs.promises.rmdir(at("a"))).rejects.toMatchObject({ code: "ENOTEMPTY" });
    vfs.explodeOn = "mkdir";
    await expect(fs.promises.mkdir(at("boom"))).rejects.toMatchObject({ code: "EIO" });
    expect(warnings.some((w) => w.includes("exploded on purpose"))).toBe(true);
  });

  test("survives 10,000 stats", async () => {
    const file = script(
      "stats.ts",
      `const dir = process.argv[2]; const names = fs.readdirSync(dir); const t = performance.now();
       for (let i = 0; i < 10000; i++) fs.statSync(path.join(dir, names[i % names.length]));
       console.log(Math.round(10000 / ((performance.now() - t) / 1000)));`,
    );
    const r = await run([BUN, file, at("many")]);
    expect(r.code).toBe(0);
    expect(Number(r.stdout)).toBeGreaterThan(0);
    expect((await sh(`cat a/b/c/f.txt`, mnt)).stdout).toBe("hello\n");
  }, 20_000);

  test("rm -rf removes a whole tree", async () => {
    expect((await sh(`rm -rf many a rd && ls`, mnt)).code).toBe(0);
    const left = await fs.promises.readdir(mnt);
    expect(left).not.toContain("many");
    expect(left).not.toContain("a");
    // The kernel gave back references (FORGET/BATCH_FORGET), never more than it was handed.
    expect(vfs.calls.get("forget") ?? 0).toBeGreaterThan(0);
    expect(vfs.overForgets).toBe(0);
  }, 20_000);

  test("refuses a missing path, a file, and a live mount, with one sentence each", async () => {
    await expect(mount(path.join(base, "absent"))).rejects.toMatchObject({ name: "MountError", code: "ENOENT" });
    fs.writeFileSync(path.join(base, "plain-file"), "");
    await expect(mount(path.join(base, "plain-file"))).rejects.toMatchObject({ code: "ENOTDIR" });
    const e = await mount(mnt).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(MountError);
    expect((e as MountError).code).toBe("EBUSY");
    expect((e as MountError).message).toContain("already mounted");
  });

  test("no warning was logged except the one provoked", () => {
    expect(warnings.filter((w) => !w.includes("exploded on purpose"))).toEqual([]);
  });
});

suite("session options", () => {
  test("invalidations reach the kernel's caches", async () => {
    const mnt = path.join(base, "inval");
    fs.mkdirSync(mnt);
    const vfs = new MemoryVfs();
    const at = (...p: string[]) => path.join(mnt, ...p);
    let s: Session | undefined;
    try {
      // Long TTLs: without an invalidation the kernel would keep what it has for a minute.
      const m = await mount(mnt);
      s = startSession({ fd: m.fd, vfs, entryTtlMs: 60_000, attrTtlMs: 60_000 });
      await fs.promises.writeFile(at("inv.txt"), "12345");
      expect((await fs.promises.stat(at("inv.txt"))).size).toBe(5);
      // Change it behind the kernel's back: it still sees the old size...
      const ino = (await vfs.lookup(1n, "inv.txt")).ino;
      vfs.forget(ino, 1); // that lookup was ours, not the kernel's
      await vfs.write(ino, 0n, 5, new Uint8Array(5));
      expect((await fs.promises.stat(at("inv.txt"))).size).toBe(5);
      // ...until we tell it.
      await s.invalidateInode(ino);
      expect((await fs.promises.stat(at("inv.txt"))).size).toBe(10);
      await vfs.unlink(1n, "inv.txt");
      expect((await fs.promises.stat(at("inv.txt"))).size).toBe(10);
      await s.invalidateEntry(1n, "inv.txt");
      await expect(fs.promises.stat(at("inv.txt"))).rejects.toMatchObject({ code: "ENOENT" });
      // A negative entry is cached too, and dropped the same way.
      await vfs.create(1n, "inv.txt", 0o644, 1, { uid: 0, gid: 0, pid: 0 });
      await expect(fs.promises.stat(at("inv.txt"))).rejects.toMatchObject({ code: "ENOENT" });
      await s.invalidateEntry(1n, "inv.txt");
      expect((await fs.promises.stat(at("inv.txt"))).size).toBe(0);
    } finally {
      await unmount(mnt).catch(() => {});
      if (s) await ending(s);
      await forceCleanup(mnt);
    }
  }, 15_000);

  test("without readdirplus and with writeback cache, files still round-trip", async () => {
    const mnt = path.join(base, "opts");
    fs.mkdirSync(mnt);
    const vfs = new MemoryVfs();
    let s: Session | undefined;
    try {
      const m = await mount(mnt);
      s = startSession({ fd: m.fd, vfs, readers: 1, readdirPlus: false, writebackCache: true, entryTtlMs: 0, attrTtlMs: 0 });
      expect((await sh(`mkdir d && for i in 1 2 3; do echo $i > d/f$i; done; echo more >> d/f1; ls d | wc -l; cat d/f1`, mnt)).stdout).toBe("3\n1\nmore\n");
      expect(vfs.calls.get("readdir") ?? 0).toBeGreaterThan(0);
      expect(vfs.calls.get("readdirplus") ?? 0).toBe(0);
    } finally {
      await unmount(mnt).catch(() => {});
      if (s) await ending(s);
      await forceCleanup(mnt);
    }
  }, 15_000);
});

suite("a dead mount", () => {
  test("kill -9 of the daemon leaves ENOTCONN, and the next mount reclaims it", async () => {
    const mnt = path.join(base, "stale");
    fs.mkdirSync(mnt);
    const file = script("daemon.ts", `const m = await mount(process.argv[2]); startSession({ fd: m.fd, vfs: new MemoryVfs() }); console.log("ready"); setInterval(() => {}, 1000);`);
    const child = Bun.spawn([BUN, file, mnt], { stdout: "pipe", stderr: "inherit" });
    let s: Session | undefined;
    try {
      const reader = child.stdout.getReader();
      const first = await reader.read();
      expect(new TextDecoder().decode(first.value)).toContain("ready");
      child.kill(9);
      await child.exited;
      await expect(fs.promises.stat(mnt)).rejects.toMatchObject({ code: "ENOTCONN" });
      expect(await mountState(mnt)).toBe("stale");
      const m = await mount(mnt);
      expect(m.reclaimed).toBe(true);
      s = startSession({ fd: m.fd, vfs: new MemoryVfs() });
      expect(await mountState(mnt)).toBe("alive");
      await fs.promises.writeFile(path.join(mnt, "alive"), "yes");
      expect(await fs.promises.readFile(path.join(mnt, "alive"), "utf8")).toBe("yes");
      expect(await unmount(mnt)).toBe("unmounted");
      expect(await ending(s)).toBe(true);
    } finally {
      child.kill(9);
      await forceCleanup(mnt);
    }
    expect(mountsAt(mnt)).toEqual([]);
  }, 20_000);
});

suite("a normal user", () => {
  test("mounts through fusermount3 and unmounts with fusermount3 -u", async () => {
    const dir = path.join(base, "user");
    fs.mkdirSync(path.join(dir, "mnt"), { recursive: true });
    fs.chownSync(dir, 65534, 65534);
    fs.chownSync(path.join(dir, "mnt"), 65534, 65534);
    const file = script(
      "user.ts",
      `const mnt = process.argv[2];
      const m = await mount(mnt);
      const s = startSession({ fd: m.fd, vfs: new MemoryVfs({ uid: process.getuid(), gid: process.getgid() }) });
      await fs.promises.mkdir(path.join(mnt, "d"));
      await fs.promises.writeFile(path.join(mnt, "d", "f"), "as nobody");
      const back = await fs.promises.readFile(path.join(mnt, "d", "f"), "utf8");
      const st = await fs.promises.stat(path.join(mnt, "d", "f"));
      const how = await unmount(mnt);
      await s.done;
      console.log(JSON.stringify({ via: m.via, back, uid: st.uid, how }));
      process.exit(0);`,
    );
    // fusermount3 opens /dev/fuse with the user's own rights; here it is often root-only (0600).
    const mode = fs.statSync("/dev/fuse").mode & 0o777;
    if ((mode & 0o006) !== 0o006) fs.chmodSync("/dev/fuse", 0o666);
    try {
      const r = await run(["runuser", "-u", "nobody", "--", BUN, file, path.join(dir, "mnt")], { cwd: dir, env: { ...process.env, HOME: dir, TMPDIR: dir } });
      expect(r.stderr).toBe("");
      expect(JSON.parse(r.stdout)).toEqual({ via: "fusermount3", back: "as nobody", uid: 65534, how: "unmounted" });
    } finally {
      if ((mode & 0o006) !== 0o006) fs.chmodSync("/dev/fuse", mode);
      await forceCleanup(path.join(dir, "mnt"));
    }
    expect(mountsAt(path.join(dir, "mnt"))).toEqual([]);
  }, 20_000);
});

