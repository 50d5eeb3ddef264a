// Issue 12, "Privilege": played as the attacker. A row anyone with INSERT on the table can write (mode 04755,
// uid 0, the bytes of /usr/bin/id) must not make `nobody` root; writes, truncates and chowns by an unprivileged
// caller drop setuid/setgid as Linux does (pjdfstest chmod/12.t's steps), on FUSE and on NFS.
import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { Journal } from "../src/journal/journal.ts";
import { createLogger } from "../src/log.ts";
import { decodeMountres3, MOUNT_PROGRAM, MOUNT_V3 } from "../src/nfs/mount-xdr.ts";
import * as X from "../src/nfs/nfs3-xdr.ts";
import type { RpcReply } from "../src/nfs/rpc.ts";
import { startNfsServer } from "../src/nfs/server.ts";
import { connect } from "../src/store/connect.ts";
import { PgVfs } from "../src/vfs/vfs.ts";
import { cleanEnv, ok, run } from "./harness/cli.ts";
import { cannotMount } from "./harness/fuse.ts";
import { mountFixture } from "./harness/mounts.ts";
import { connectRaw, type Cred, type RawClient } from "./harness/nfs-raw.ts";

const isRoot = process.getuid?.() === 0;
const haveRunuser = Bun.which("runuser") !== null;
// The attacks need a second local user (runuser -u nobody) and a mount others may use (root's allow_other).
const skipReason = cannotMount ?? (!isRoot ? "not root (allow_other and runuser need it)" : !haveRunuser ? "runuser is missing" : null);
if (skipReason) console.warn(`trust-privilege mount tests are skipped: ${skipReason}.`);

const fx = mountFixture("pgfiles-trust-priv-");
fs.chmodSync(fx.tmp, 0o755); // nobody must reach the mount points below it

const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;

function sh(cmd: string[], cwd = "/"): { code: number; out: string; err: string } {
  const r = Bun.spawnSync({ cmd, cwd, stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? -1, out: r.stdout.toString(), err: r.stderr.toString() };
}
const asNobody = (cmd: string[], cwd = "/") => sh(["runuser", "-u", "nobody", "--", ...cmd], cwd);
const modeOf = (p: string) => (fs.statSync(p).mode & 0o7777).toString(8);

/** The mount table's entry for `dir`: its per-mount options (field 6 of /proc/self/mountinfo). */
function mountOptionsOf(dir: string): string[] {
  const line = fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n").find((l) => l.split(" ")[4] === dir);
  if (!line) throw new Error(`${dir} is not in /proc/self/mountinfo`);
  return line.split(" ")[5].split(",");
}

/** A hostile row, as any login with INSERT could write it: meta claims whatever it likes. */
function plant(key: string, meta: Record<string, unknown>, dataHex: string | null) {
  const m = { deleted: false, mtime: "2024-01-02T03:04:05Z", ctime: "2024-01-02T03:04:05Z", created: "2024-01-02T03:04:05Z", ...meta };
  fx.pg.psql(`INSERT INTO pgfiles (key, meta, data) VALUES (${lit(key)}, ${lit(JSON.stringify(m))}::jsonb, ${dataHex === null ? "NULL" : `decode('${dataHex}', 'hex')`})`);
}

function plantSetuidId(prefix: string) {
  const id = fs.readFileSync("/usr/bin/id");
  plant(`${prefix}id`, { type: "file", size: id.length, mode: 0o104755, uid: 0, gid: 0 }, id.toString("hex"));
}

describe.skipIf(skipReason !== null)("privilege: a hostile row cannot make nobody root", () => {
  test("a setuid-root row (mode 0o104755, uid 0, the bytes of /usr/bin/id) runs as nobody; the mount is nosuid,nodev", async () => {
    plantSetuidId("priv-suid/");
    const m = await fx.mount("priv-suid/");
    expect(modeOf(m.p("id"))).toBe("4755"); // it does look setuid-root...
    expect(fs.statSync(m.p("id")).uid).toBe(0);
    const r = asNobody([m.p("id")]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("uid=65534");
    expect(r.out).not.toContain("euid=0"); // ...but grants nothing
    const opts = mountOptionsOf(m.dir);
    expect(opts).toContain("nosuid");
    expect(opts).toContain("nodev");
  }, 60_000);

  test("root's explicit --suid honours the bit (that is what it is for), and mountinfo shows no nosuid/nodev with --suid --dev", async () => {
    plantSetuidId("priv-suid-on/");
    const dir = fx.tempDir("mnt-");
    const env = cleanEnv({ PGFILES_DSN: fx.pg.dsn, PGFILES_PREFIX: "priv-suid-on/" });
    await ok(["mount", "--suid", "--dev", dir], env);
    fx.track(dir, env);
    const opts = mountOptionsOf(dir);
    expect(opts).not.toContain("nosuid");
    expect(opts).not.toContain("nodev");
    expect(asNobody([path.join(dir, "id")]).out).toContain("euid=0");
    await ok(["unmount", dir], env);
    fx.forget(dir);
  }, 60_000);

  test("a planted character-device row is no device: the vfs shows it as a regular file, and the mount is nodev anyway", async () => {
    plant("priv-dev/mem", { type: "char", size: 0, mode: 0o20666, uid: 0, gid: 0, rdev: 0x0101 }, null);
    const m = await fx.mount("priv-dev/");
    let st: fs.Stats | null = null;
    try {
      st = fs.lstatSync(m.p("mem"));
    } catch {
      // Not shown at all is as good.
    }
    if (st) {
      expect(st.isCharacterDevice()).toBe(false);
      expect(st.isBlockDevice()).toBe(false);
      expect(st.rdev).toBe(0);
    }
    expect(mountOptionsOf(m.dir)).toContain("nodev");
  }, 60_000);

  test("--suid and --dev: root only, FUSE only, one sentence and exit 2 otherwise", async () => {
    const dir = fx.tempDir("mnt-");
    fs.chmodSync(dir, 0o777);
    const home = fx.tempDir("home-");
    fs.chmodSync(home, 0o777);
    const env = cleanEnv({ PGFILES_DSN: fx.pg.dsn, PGFILES_PREFIX: "priv-flags/", HOME: home, PGFILES_CACHE_DIR: path.join(home, "cache") });
    const cli = (await import("./harness/cli.ts")).cliCommand();
    for (const flag of ["--suid", "--dev"]) {
      const r = sh(["runuser", "-u", "nobody", "--", "env", ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...cli, "mount", flag, dir]);
      expect(r.code).toBe(2);
      expect(r.err.trim()).toBe(`pgfiles: ${flag} may only be given by root; without it the mount is nosuid,nodev.`);
    }
    const nfs = await run(["mount", "--suid", "--backend", "nfs", dir], env);
    expect(nfs.code).toBe(2);
    expect(nfs.stderr.trim()).toBe("pgfiles: --suid applies to FUSE mounts only; NFS mounts are always nosuid,nodev.");
    expect(mountOptionsOf.bind(null, dir)).toThrow(); // nothing was mounted
  }, 60_000);

  test("a non-root mount (fusermount3) is nosuid,nodev too", async () => {
    // fusermount3 opens /dev/fuse as the calling user: skip (saying so) where nobody may not.
    if (asNobody(["test", "-r", "/dev/fuse", "-a", "-w", "/dev/fuse"]).code !== 0) {
      console.warn("skipped: nobody cannot open /dev/fuse here, so fusermount3 cannot mount for it");
      return;
    }
    const dir = fx.tempDir("mnt-");
    fs.chownSync(dir, 65534, 65534);
    const home = fx.tempDir("home-");
    fs.chownSync(home, 65534, 65534);
    const env = cleanEnv({ PGFILES_DSN: fx.pg.dsn, PGFILES_PREFIX: "priv-user/", HOME: home, PGFILES_CACHE_DIR: path.join(home, "cache") });
    const cli = (await import("./harness/cli.ts")).cliCommand();
    const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    const r = sh(["runuser", "-u", "nobody", "--", "env", ...envArgs, ...cli, "mount", dir]);
    expect(r.code).toBe(0);
    fx.track(dir, env);
    const opts = mountOptionsOf(dir);
    expect(opts).toContain("nosuid");
    expect(opts).toContain("nodev");
    sh(["runuser", "-u", "nobody", "--", "env", ...envArgs, ...cli, "unmount", dir]);
    fx.forget(dir);
  }, 60_000);
});

describe.skipIf(skipReason !== null)("privilege: unprivileged writes, truncates and chowns drop setuid/setgid (FUSE)", () => {
  for (const passthrough of ["true", "false"]) {
    test(`pjdfstest chmod/12.t's steps: root makes 04777/02777/06777 files in a 0777 directory, nobody writes, mode is 0777 (passthrough ${passthrough})`, async () => {
      const m = await fx.mount(`priv-12-${passthrough}/`, { PGFILES_PASSTHROUGH: passthrough });
      const d = m.p("d");
      fs.mkdirSync(d);
      fs.chmodSync(d, 0o777);
      for (const mode of [0o4777, 0o2777, 0o6777]) {
        const f = path.join(d, "f");
        fs.writeFileSync(f, "");
        fs.chmodSync(f, mode);
        expect(modeOf(f)).toBe(mode.toString(8));
        // open O_WRONLY, write, fstat on the same descriptor, as 12.t does; then stat by path.
        const r = asNobody(["python3", "-c", `import os\nfd = os.open(${JSON.stringify(f)}, os.O_WRONLY)\nos.write(fd, b"x")\nprint(oct(os.fstat(fd).st_mode & 0o7777))`]);
        expect(r.err).toBe("");
        expect(r.out.trim()).toBe("0o777");
        expect(modeOf(f)).toBe("777");
        fs.unlinkSync(f);
        // The shell's way: an append.
        fs.writeFileSync(f, "");
        fs.chmodSync(f, mode);
        expect(asNobody(["sh", "-c", "printf x >> f"], d).code).toBe(0);
        expect(modeOf(f)).toBe("777");
        fs.unlinkSync(f);
      }
      // What reached Postgres is the cleared mode too.
      fs.writeFileSync(path.join(d, "g"), "");
      fs.chmodSync(path.join(d, "g"), 0o6777);
      expect(asNobody(["sh", "-c", "printf y >> g"], d).code).toBe(0);
      await fx.unmount(m);
      const meta = JSON.parse(fx.pg.psql(`SELECT meta FROM pgfiles WHERE key = 'priv-12-${passthrough}/d/g' ORDER BY (meta->>'version')::bigint DESC LIMIT 1`));
      expect((meta.mode & 0o7777).toString(8)).toBe("777");
    }, 90_000);
  }

  test("root's own write keeps the bits (it has CAP_FSETID); truncate and O_TRUNC by nobody drop them", async () => {
    const m = await fx.mount("priv-trunc/");
    const d = m.p("d");
    fs.mkdirSync(d);
    fs.chmodSync(d, 0o777);
    const f = path.join(d, "f");
    fs.writeFileSync(f, "hello\n");
    fs.chmodSync(f, 0o6777);
    fs.appendFileSync(f, "root\n");
    expect(modeOf(f)).toBe("6777");
    expect(asNobody(["truncate", "-s", "3", f]).code).toBe(0);
    expect(modeOf(f)).toBe("777");
    expect(fs.statSync(f).size).toBe(3);
    fs.chmodSync(f, 0o4777);
    expect(asNobody(["sh", "-c", ": > f"], d).code).toBe(0); // open(O_TRUNC)
    expect(modeOf(f)).toBe("777");
    expect(fs.statSync(f).size).toBe(0);
    // setgid without group-execute marks mandatory locking, not privilege: kept for a caller in the group.
    fs.chmodSync(f, 0o2767);
    fs.chownSync(f, 0, 65534);
    fs.chmodSync(f, 0o2767);
    expect(asNobody(["sh", "-c", "printf x >> f"], d).code).toBe(0);
    expect(modeOf(f)).toBe("2767");
  }, 60_000);

  test("chown: of a file drops setuid (and setgid with group-execute), even by root; a directory keeps its setgid, also when written into", async () => {
    const m = await fx.mount("priv-chown/");
    const f = m.p("f");
    fs.writeFileSync(f, "x");
    fs.chmodSync(f, 0o6755);
    fs.chownSync(f, 65534, 65534);
    expect(modeOf(f)).toBe("755");
    fs.chmodSync(f, 0o2745); // setgid, no group-execute: root (CAP_FSETID) keeps it
    fs.chownSync(f, 0, 0);
    expect(modeOf(f)).toBe("2745");
    // pjdfstest chown/00.t: the owner (nobody) gives the file to a group it is in: 06555 -> 0555.
    fs.chownSync(f, 65534, 0);
    fs.chmodSync(f, 0o6555);
    expect(asNobody(["chgrp", "nogroup", f]).code).toBe(0);
    expect(modeOf(f)).toBe("555");
    // A setgid directory: writes below it and a chown of it keep the bit.
    const d = m.p("shared");
    fs.mkdirSync(d);
    fs.chmodSync(d, 0o2777);
    expect(asNobody(["sh", "-c", "printf a > a && printf b >> a && truncate -s 1 a"], d).code).toBe(0);
    expect(modeOf(d)).toBe("2777");
    fs.chownSync(d, 65534, 65534);
    expect(modeOf(d)).toBe("2777");
  }, 60_000);

  test("with --suid, nobody's write to a setuid-root copy of id, then running it at once, gives no euid 0", async () => {
    const dir = fx.tempDir("mnt-");
    const env = cleanEnv({ PGFILES_DSN: fx.pg.dsn, PGFILES_PREFIX: "priv-exec/" });
    await ok(["mount", "--suid", dir], env);
    fx.track(dir, env);
    const d = path.join(dir, "d");
    fs.mkdirSync(d);
    fs.chmodSync(d, 0o777);
    for (let i = 0; i < 3; i++) {
      const f = path.join(d, `id${i}`);
      fs.copyFileSync("/usr/bin/id", f);
      fs.chmodSync(f, 0o4777);
      expect(asNobody([f]).out).toContain("euid=0"); // setuid-root as long as nobody has not touched it
      const r = asNobody(["sh", "-c", `printf '\\0' >> ${f} && ${f}`]);
      expect(r.code).toBe(0);
      expect(r.out).not.toContain("euid=0");
      expect(modeOf(f)).toBe("777");
    }
    await ok(["unmount", dir], env);
    fx.forget(dir);
  }, 60_000);

  test("passthrough: a big file made setuid while it is open loses the bit when nobody writes through the kernel", async () => {
    const m = await fx.mount("priv-pt/", { PGFILES_PASSTHROUGH: "true" });
    const f = m.p("big");
    fs.writeFileSync(f, Buffer.alloc(300_000, 7)); // over 128 KiB: an open for writing gets passthrough
    fs.chmodSync(f, 0o777);
    const fd = fs.openSync(f, "r+");
    try {
      fs.writeSync(fd, "a", 0);
      fs.fchmodSync(fd, 0o4777);
      expect(modeOf(f)).toBe("4777");
      const r = asNobody(["python3", "-c", `import os\nfd = os.open(${JSON.stringify(f)}, os.O_WRONLY)\nos.pwrite(fd, b"zz", 10)\nos.close(fd)`]);
      expect(r.err).toBe("");
      expect(modeOf(f)).toBe("777");
    } finally {
      fs.closeSync(fd);
    }
    expect(modeOf(f)).toBe("777");
  }, 60_000);
});

// ---- NFS: the server decides by the caller's AUTH_SYS uid ----

const OWNER = 1000;
const EXPORT = `/pgfiles-${"ab".repeat(16)}`;

function success(r: RpcReply) {
  if (r.kind !== "success") throw new Error(`RPC ${r.kind} ${JSON.stringify(r)}`);
  return r.results;
}

describe("privilege: NFS WRITE, SETATTR size and chown by the owner drop setuid/setgid; root's WRITE keeps them", () => {
  test("raw NFSv3 calls as uid 1000 and as root", async () => {
    const prefix = "priv-nfs/";
    const log = createLogger("error");
    const journal = new Journal({ cacheDir: fx.tempDir("nfs-cache-"), dsn: fx.pg.dsn, prefix, cacheMaxSize: 1 << 30 });
    const sql = connect({ dsn: fx.pg.dsn, poolSize: 2, preparedStatements: true, connectTimeout: 5 });
    const vfs = new PgVfs({ journal, sql: () => sql, prefix, readOnly: false, metadataTtlMs: 1000, log });
    await vfs.loadRoot();
    const server = await startNfsServer({ vfs, journal, port: 0, exportPath: EXPORT, ownerUid: OWNER, log });
    const owner: Cred = { flavor: "sys", uid: OWNER, gid: OWNER };
    const root: Cred = { flavor: "sys", uid: 0, gid: 0 };
    let c: RawClient | undefined;
    try {
      c = await connectRaw(server.port, owner);
      const rc = c;
      const m = decodeMountres3(success(await rc.call(MOUNT_PROGRAM, MOUNT_V3, 1, (w) => w.string(EXPORT))));
      if (!("fhandle" in m)) throw new Error("MNT failed");
      const top = Buffer.from(m.fhandle);
      const mode = async (fh: Buffer) => {
        const r = success(await rc.call(X.NFS_PROGRAM, 3, X.NFSPROC3_GETATTR, (w) => X.encodeNfsFh3(w, fh)));
        expect(r.uint32()).toBe(X.NFS3_OK);
        return (X.decodeFattr3(r).mode & 0o7777).toString(8);
      };
      const setattr = async (fh: Buffer, s: X.Sattr3, cred?: Cred) => {
        const r = success(await rc.call(X.NFS_PROGRAM, 3, X.NFSPROC3_SETATTR, (w) => {
          X.encodeNfsFh3(w, fh);
          X.encodeSattr3(w, s);
          w.bool(false);
        }, cred));
        expect(r.uint32()).toBe(X.NFS3_OK);
      };
      const write = async (fh: Buffer, cred?: Cred) => {
        const r = success(await rc.call(X.NFS_PROGRAM, 3, X.NFSPROC3_WRITE, (w) => {
          X.encodeNfsFh3(w, fh);
          w.uint64(0n);
          w.uint32(1);
          w.uint32(2); // FILE_SYNC
          w.opaque(Buffer.from("x"));
        }, cred));
        expect(r.uint32()).toBe(X.NFS3_OK);
      };
      const r = success(await rc.call(X.NFS_PROGRAM, 3, X.NFSPROC3_CREATE, (w) => {
        X.encodeDiropargs3(w, { dir: top, name: "f" });
        w.uint32(0);
        X.encodeSattr3(w, { mode: 0o644 });
      }));
      expect(r.uint32()).toBe(X.NFS3_OK);
      const fh = Buffer.from(X.decodePostOpFh3(r)!);

      await setattr(fh, { mode: 0o6777 });
      await write(fh, root);
      expect(await mode(fh)).toBe("6777"); // root may keep them
      await write(fh);
      expect(await mode(fh)).toBe("777");
      await setattr(fh, { mode: 0o4777 });
      await setattr(fh, { size: 0n });
      expect(await mode(fh)).toBe("777");
      await setattr(fh, { mode: 0o6755 });
      await setattr(fh, { gid: OWNER }, root);
      expect(await mode(fh)).toBe("755");
    } finally {
      c?.close();
      await server.close();
      await sql.end({ timeout: 2 });
      journal.close();
    }
  }, 60_000);
});
