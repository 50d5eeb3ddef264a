// Durability on a mount, by killing things: the daemon (kill -9) at random
// moments of a writing workload, PostgreSQL (immediate shutdown) while the
// journal drains, and Postgres away in the middle of a workload. The writer
// records a file only after fsync(file) and fsync(dir); every recorded file
// must come back byte for byte, from the warm cache, with the cache cleared,
// and in Postgres after the flush. Bounded here (a few rounds, seconds each);
// bench/crash.ts runs the long version by hand.
import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { cleanEnv, ok, run } from "./harness/cli.ts";
import { canMount as haveFuse } from "./harness/fuse.ts";
import { mountFixture } from "./harness/mounts.ts";

const fx = mountFixture("pgfiles-dur-");
const tmp = fx.tmp;
const PY = fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
// CI runs short versions; bench/durability.sh runs long ones (hundreds of rounds, a 10-minute outage).
const ROUNDS = Number(process.env.CRASH_ROUNDS ?? 4);
const OUTAGE_S = Number(process.env.OUTAGE_SECONDS ?? 0);


// The writer: files of 1 B to 400 KiB (inline and file bodies), each fsynced with its directory before it is
// appended (and fsynced) to a log outside the mount. It stops at the first error (the daemon is gone).
const WRITER = String.raw`
import hashlib, os, random, sys
mnt, log, tag = sys.argv[1], sys.argv[2], sys.argv[3]
d = os.path.join(mnt, "w")
os.makedirs(d, exist_ok=True)
lf = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
dfd = os.open(d, os.O_RDONLY)
i = 0
try:
    while True:
        name = "%s-%05d.bin" % (tag, i)
        data = os.urandom(random.choice([1, 100, 5000, 131072, 131073, 400000]))
        fd = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        os.fsync(dfd)
        os.write(lf, ("w/%s %s\n" % (name, hashlib.sha256(data).hexdigest())).encode())
        os.fsync(lf)
        i += 1
except OSError as e:
    sys.exit(0)
`;

function recorded(log: string): Map<string, string> {
  const out = new Map<string, string>();
  if (!fs.existsSync(log)) return out;
  for (const line of fs.readFileSync(log, "utf8").split("\n")) {
    const [name, sha] = line.split(" ");
    if (name && sha) out.set(name, sha);
  }
  return out;
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describe.skipIf(!haveFuse)("durability on a mount", () => {
  test("kill -9 of the daemon at random moments: every fsynced file is back, warm, with the cache cleared, and in Postgres", async () => {
    const prefix = "dur-kill/";
    const dir = fs.mkdtempSync(path.join(tmp, "mnt-"));
    const env = cleanEnv({ PGFILES_DSN: fx.pg.dsn, PGFILES_PREFIX: prefix, PGFILES_CACHE_DIR: fs.mkdtempSync(path.join(tmp, "cache-")) });
    const log = path.join(tmp, "kill.log");
    const writer = path.join(tmp, "writer.py");
    fs.writeFileSync(writer, WRITER);
    const rounds = ROUNDS;
    for (let round = 0; round < rounds; round++) {
      await ok(["mount", dir], env);
      fx.track(dir, env);
      const pid = Number(JSON.parse((await ok(["where", "--json"], { ...env, PWD: dir }, undefined, 0, dir)).stdout).mount.pid);
      const w = Bun.spawn({ cmd: [PY, writer, dir, log, `r${round}`], stdout: "ignore", stderr: "pipe" });
      await Bun.sleep(300 + Math.floor(Math.random() * 1200));
      process.kill(pid, "SIGKILL");
      await w.exited;
      // The stale mount is reclaimed by the next round's mount (or the verification mount below).
    }
    const files = recorded(log);
    expect(files.size).toBeGreaterThan(rounds); // the writer got somewhere each time

    const check = async (what: string) => {
      const bad: string[] = [];
      for (const [name, want] of files) {
        let got = "missing";
        try {
          got = sha(fs.readFileSync(path.join(dir, name)));
        } catch (e) {
          got = (e as NodeJS.ErrnoException).code ?? "error";
        }
        if (got !== want) bad.push(`${name}: ${got}`);
      }
      expect(`${what}: ${bad.length} of ${files.size} wrong ${bad.slice(0, 5).join(", ")}`).toBe(`${what}: 0 of ${files.size} wrong `);
    };
    await ok(["mount", dir], env);
    fx.track(dir, env);
    await check("warm cache");
    // Clearing the cache never drops what is pending; what was flushed comes from Postgres now.
    await ok(["cache", "clear"], { ...env, PWD: dir }, undefined, 0, dir);
    await ok(["unmount", dir], env);
    await ok(["mount", dir], env);
    await check("cache cleared");
    await ok(["unmount", dir], env);
    fx.forget(dir);

    const inPg = new Map<string, string>();
    for (const line of fx.pg.psql(`SELECT h.key || ' ' || encode(sha256(p.data), 'hex') FROM pgfiles_head h JOIN pgfiles p ON p.id = h.id WHERE h.key LIKE '${prefix}w/%' AND NOT h.deleted`).split("\n")) {
      const [key, s] = line.split(" ");
      if (key) inPg.set(key.slice(prefix.length), s);
    }
    const lost = [...files].filter(([name, s]) => inPg.get(name) !== s).map(([name]) => name);
    expect(lost).toEqual([]);
    console.log(`[crash] ${rounds} kill -9 rounds: ${files.size} files fsynced and recorded, ${files.size - lost.length} verified, ${lost.length} lost`);
  }, 120_000 + ROUNDS * 10_000);

  test.skipIf(process.getuid?.() !== 0)("a full cache disk: clean cached data goes first, then ENOSPC without losing anything closed, and writing works again once the journal drained", async () => {
    const prefix = "dur-full/";
    const cacheDir = fs.mkdtempSync(path.join(tmp, "tmpfs-"));
    const tm = Bun.spawnSync({ cmd: ["mount", "-t", "tmpfs", "-o", "size=40m,mode=0755", "tmpfs", cacheDir], stderr: "pipe" });
    expect(tm.exitCode).toBe(0);
    const dir = fs.mkdtempSync(path.join(tmp, "mnt-"));
    const env = cleanEnv({ PGFILES_DSN: fx.pg.dsn, PGFILES_PREFIX: prefix, PGFILES_CACHE_DIR: cacheDir, PGFILES_LOG_FILE: path.join(tmp, "full.log") });
    const files = new Map<string, Buffer>();
    const put = (name: string, size: number) => {
      const b = Buffer.alloc(size);
      for (let off = 0; off < size; off += 65536) b.set(crypto.getRandomValues(new Uint8Array(Math.min(65536, size - off))), off);
      fs.writeFileSync(path.join(dir, name), b);
      files.set(name, b);
    };
    const drained = async () => {
      for (let i = 0; i < 200; i++) {
        if ((await run(["status"], { ...env, PWD: dir }, undefined, dir)).code === 0) return;
        await Bun.sleep(100);
      }
      throw new Error("the journal did not drain");
    };
    let pgDown = false;
    try {
      await ok(["mount", dir], env);
      fx.track(dir, env);
      // 20 MiB of flushed, clean, cached bodies.
      for (let i = 0; i < 20; i++) put(`clean${i}.bin`, 1 << 20);
      await drained();
      // 24 MiB more only fit once clean data is evicted: no error for the writer.
      put("big.bin", 24 << 20);
      expect(fs.readFileSync(path.join(dir, "big.bin")).equals(files.get("big.bin")!)).toBe(true);
      await drained();
      // Postgres away: nothing becomes clean, so the disk fills with pending data until the writer gets ENOSPC.
      await fx.pg.stop();
      pgDown = true;
      let err = "";
      for (let i = 0; i < 80 && !err; i++) {
        try {
          put(`pending${i}.bin`, 1 << 20);
        } catch (e) {
          err = (e as NodeJS.ErrnoException).code ?? String(e);
        }
      }
      expect(err).toBe("ENOSPC");
      // Every closed file written meanwhile reads back (the one whose write or close failed is not in `files`).
      // Clean files evicted to make room come from Postgres, so they wait until it is back.
      const pendingNames = [...files.keys()].filter((n) => n.startsWith("pending"));
      expect(pendingNames.length).toBeGreaterThan(0);
      expect(pendingNames.filter((n) => !fs.readFileSync(path.join(dir, n)).equals(files.get(n)!))).toEqual([]);
      await fx.pg.start();
      pgDown = false;
      await drained();
      expect([...files.keys()].filter((n) => !fs.readFileSync(path.join(dir, n)).equals(files.get(n)!))).toEqual([]);
      put("after.bin", 1 << 20); // room again: the drained versions are clean now
      await ok(["unmount", dir], env);
      fx.forget(dir);
      const bad: string[] = [];
      for (const [name, b] of files) {
        if (!name.startsWith("pending") && !name.startsWith("after") && !name.startsWith("big")) continue;
        const got = fx.pg.psql(`SELECT encode(sha256(p.data), 'hex') FROM pgfiles_head h JOIN pgfiles p ON p.id = h.id WHERE h.key = '${prefix}${name}'`);
        if (got !== sha(b)) bad.push(name);
      }
      expect(bad).toEqual([]);
    } finally {
      if (pgDown) await fx.pg.start();
      Bun.spawnSync({ cmd: ["umount", "-l", dir], stderr: "ignore" });
      Bun.spawnSync({ cmd: ["umount", "-l", cacheDir], stderr: "ignore" });
      if (process.env.SHOW_LOG) console.log(fs.readFileSync(path.join(tmp, "full.log"), "utf8").slice(-3000));
    }
  }, 120_000);

  test("strict mode: close and fsync return only once the version is in Postgres", async () => {
    const prefix = "dur-strict/";
    const dir = fs.mkdtempSync(path.join(tmp, "mnt-"));
    const env = cleanEnv({ PGFILES_DSN: fx.pg.dsn, PGFILES_PREFIX: prefix, PGFILES_STRICT: "true" });
    await ok(["mount", dir], env);
    fx.track(dir, env);
    const inPg = (name: string) => fx.pg.psql(`SELECT count(*) || ':' || COALESCE(max(convert_from(p.data, 'UTF8')), '') FROM pgfiles_head h JOIN pgfiles p ON p.id = h.id WHERE h.key = '${prefix}${name}'`);
    for (let i = 0; i < 5; i++) {
      fs.writeFileSync(path.join(dir, `s${i}.txt`), `strict ${i}`);
      expect(inPg(`s${i}.txt`)).toBe(`1:strict ${i}`); // right after close, no waiting
    }
    const fd = fs.openSync(path.join(dir, "synced.txt"), "w");
    fs.writeSync(fd, "before fsync");
    fs.fsyncSync(fd);
    expect(inPg("synced.txt")).toBe("1:before fsync"); // still open
    fs.closeSync(fd);
    await ok(["unmount", dir], env);
    fx.forget(dir);
  }, 60_000);

  test("Postgres away in the middle of a workload: writes go on, status says offline and counts pending, and the journal drains on its own", async () => {
    const prefix = "dur-outage/";
    const dir = fs.mkdtempSync(path.join(tmp, "mnt-"));
    const env = cleanEnv({ PGFILES_DSN: fx.pg.dsn, PGFILES_PREFIX: prefix });
    await ok(["mount", dir], env);
    fx.track(dir, env);
    const files = new Map<string, Buffer>();
    let offlineMs = 0;
    let writeMs = 0; // time spent inside write() only (the long version's writer pauses between bursts)
    const write = (n: number) => {
      const t = performance.now();
      for (let i = 0; i < n; i++) {
        const name = `f${files.size}.bin`;
        const b = Buffer.from(crypto.getRandomValues(new Uint8Array(1 + ((files.size * 7919) % 200_000))));
        fs.writeFileSync(path.join(dir, name), b);
        files.set(name, b);
      }
      writeMs += performance.now() - t;
    };
    write(30);
    // A 48 MiB file takes the flusher about a second to send: crash Postgres in the middle of that batch.
    const big = Buffer.alloc(48 << 20, 7);
    fs.writeFileSync(path.join(dir, "big.bin"), big);
    files.set("big.bin", big);
    await Bun.sleep(400);
    writeMs = 0;
    write(30);
    const onlineMs = writeMs / 30;
    await fx.pg.stop("immediate"); // a crash, in the middle of the flusher's batch
    try {
      const t0 = Date.now();
      writeMs = 0;
      const n0 = files.size;
      write(60);
      // The long version keeps an agent-like writer going for the whole outage.
      while (Date.now() - t0 < OUTAGE_S * 1000) {
        write(10);
        await Bun.sleep(500); // ~20 files (~2 MiB) a second: an agent, not a load test
      }
      offlineMs = writeMs / (files.size - n0);
      fs.mkdirSync(path.join(dir, "sub"));
      fs.renameSync(path.join(dir, "f0.bin"), path.join(dir, "sub/moved.bin"));
      files.set("sub/moved.bin", files.get("f0.bin")!);
      files.delete("f0.bin");
      let st: any = null;
      for (let i = 0; i < 40; i++) {
        const r = await run(["status", "--json"], { ...env, PWD: dir }, undefined, dir);
        st = JSON.parse(r.stdout);
        if (r.code === 3) break;
        await Bun.sleep(250);
      }
      expect(st.postgres.online).toBe(false);
      expect(st.pending.versions).toBeGreaterThan(0);
      for (const [name, b] of files) expect(fs.readFileSync(path.join(dir, name)).equals(b)).toBe(true);
    } finally {
      await fx.pg.start();
    }
    // No command needed: the mount notices and drains.
    let code = -1;
    for (let i = 0; i < 120 && code !== 0; i++) {
      await Bun.sleep(250);
      code = (await run(["status"], { ...env, PWD: dir }, undefined, dir)).code;
    }
    expect(code).toBe(0);
    const stored = new Map<string, string>();
    for (const line of fx.pg.psql(`SELECT h.key || ' ' || encode(sha256(p.data), 'hex') FROM pgfiles_head h JOIN pgfiles p ON p.id = h.id WHERE h.key LIKE '${prefix}%' AND NOT h.deleted AND p.data IS NOT NULL`).split("\n")) {
      const [key, s] = line.split(" ");
      if (key) stored.set(key.slice(prefix.length), s);
    }
    const wrong = [...files].filter(([name, b]) => stored.get(name) !== sha(b)).map(([name]) => name);
    expect(wrong).toEqual([]);
    expect(fx.pg.psql(`SELECT deleted FROM pgfiles_head WHERE key = '${prefix}f0.bin'`)).toBe("t");
    await ok(["unmount", dir], env);
    fx.forget(dir);
    console.log(
      `[outage] Postgres crashed mid-flush and away ${Math.max(OUTAGE_S, 1)}+ s: ${files.size} files written (${onlineMs.toFixed(2)} ms per file online, ${offlineMs.toFixed(2)} ms offline), all verified in Postgres after the journal drained by itself`,
    );
  }, 120_000 + OUTAGE_S * 2000);
});
