// The product: `pgfiles mount`, ordinary tools in the directory, `pgfiles
// unmount`, and the bytes in Postgres. Real kernel, real FUSE, real Postgres.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { cleanEnv, ok, run, type CliEnv } from "./harness/cli.ts";
import { startCluster, type Cluster } from "./harness/postgres.ts";

import { canMount as haveFuse } from "./harness/fuse.ts";
let pg: Cluster;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pgfiles-mount-"));
const mounted = new Set<string>();

beforeAll(async () => {
  pg = await startCluster();
  await ok(["init"], cleanEnv({ PGFILES_DSN: pg.dsn }));
});
afterEach(() => {
  // A failed test must not leave its mount behind.
  for (const m of mounted) {
    Bun.spawnSync({ cmd: ["umount", "-l", m], stderr: "ignore" });
    mounted.delete(m);
  }
});
afterAll(async () => {
  await pg?.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function mountAt(prefix: string, extra: CliEnv = {}) {
  const dir = fs.mkdtempSync(path.join(tmp, "mnt-"));
  const env = cleanEnv({ PGFILES_DSN: pg.dsn, PGFILES_PREFIX: prefix, ...extra });
  const r = await ok(["mount", dir], env);
  mounted.add(dir);
  return { dir, env, r };
}

async function unmountAt(dir: string, env: CliEnv, want = 0) {
  const r = await ok(["unmount", dir], env, undefined, want);
  mounted.delete(dir);
  return r;
}

function sh(cwd: string, script: string) {
  const r = Bun.spawnSync({ cmd: ["bash", "-euo", "pipefail", "-c", script], cwd, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`script failed (${r.exitCode}): ${script}\n${r.stderr.toString()}`);
  return r.stdout.toString();
}

const q = (s: string) => pg.psql(s);

describe.skipIf(!haveFuse)("mount", () => {
  test("the spec's quick start works verbatim and the rows are in Postgres", async () => {
    const prefix = `agents/${crypto.randomUUID()}/`;
    const dir = fs.mkdtempSync(path.join(tmp, "qs-"));
    const env = cleanEnv({ PGFILES_DSN: pg.dsn, PGFILES_PREFIX: prefix });
    // `pgfiles mount .` from a shell whose cwd is the directory to mount.
    const r = await ok(["mount", "."], { ...env, PWD: dir }, undefined, 0, dir);
    mounted.add(dir);
    expect(r.stderr).toContain("cd .");
    const out = sh(dir, `cd . && cd "${dir}" && mkdir output && echo '{"status":"done"}' > output/result.json && cat output/result.json`);
    expect(out).toBe('{"status":"done"}\n');
    await unmountAt(dir, env);
    // One version per closed file; the body exactly what echo wrote (newline shown as \n).
    expect(q(`SELECT string_agg(key || '|' || (meta->>'version') || '|' || COALESCE(replace(convert_from(data, 'UTF8'), E'\\n', '\\n'), 'NULL'), ';' ORDER BY key) FROM pgfiles WHERE key LIKE '${prefix}%'`)).toBe(
      `${prefix}output/|1|NULL;${prefix}output/result.json|1|{"status":"done"}\\n`,
    );
  }, 60_000);

  test("files written, renamed and deleted with ordinary tools become the right versions", async () => {
    const { dir, env } = await mountAt("ops/");
    sh(dir, `
      printf 'one' > a.txt
      printf 'two' >> a.txt
      mkdir -p d/e
      printf 'deep' > d/e/f.txt
      ln -s a.txt link
      mv a.txt b.txt
      python3 - <<'EOF'
import os
with open("tmp.json", "w") as f:
    f.write('{"saved": true}')
    f.flush(); os.fsync(f.fileno())
os.replace("tmp.json", "config.json")
EOF
      rm d/e/f.txt
      truncate -s 2 b.txt
    `);
    expect(sh(dir, "cat b.txt; echo; readlink link; ls -1 | sort | tr '\\n' ' '")).toBe("on\na.txt\nb.txt config.json d link ");
    expect(fs.readdirSync(path.join(dir, "d/e"))).toEqual([]);
    await unmountAt(dir, env);
    const live = q(`SELECT string_agg(h.key, ',' ORDER BY h.key) FROM pgfiles_head h WHERE h.key LIKE 'ops/%' AND NOT h.deleted`);
    expect(live).toBe("ops/b.txt,ops/config.json,ops/d/,ops/d/e/,ops/link");
    expect(q(`SELECT convert_from(p.data, 'UTF8') FROM pgfiles_head h JOIN pgfiles p ON p.id = h.id WHERE h.key = 'ops/b.txt'`)).toBe("on");
    expect(q(`SELECT convert_from(p.data, 'UTF8') FROM pgfiles_head h JOIN pgfiles p ON p.id = h.id WHERE h.key = 'ops/config.json'`)).toBe('{"saved": true}');
  }, 60_000);

  test("a second mount of the prefix after unmount shows the same tree and bytes", async () => {
    const a = await mountAt("again/");
    const bytes = crypto.getRandomValues(new Uint8Array(3 * 1024 * 1024));
    fs.mkdirSync(path.join(a.dir, "x/y"), { recursive: true });
    fs.writeFileSync(path.join(a.dir, "x/y/blob.bin"), bytes);
    await unmountAt(a.dir, a.env);
    const b = await mountAt("again/");
    const got = fs.readFileSync(path.join(b.dir, "x/y/blob.bin"));
    expect(createHash("sha256").update(got).digest("hex")).toBe(createHash("sha256").update(bytes).digest("hex"));
    await unmountAt(b.dir, b.env);
  }, 60_000);

  test("mount refuses a missing path, a file, and a path already mounted, each with one sentence", async () => {
    const env = cleanEnv({ PGFILES_DSN: pg.dsn, PGFILES_PREFIX: "refuse/" });
    const missing = await run(["mount", path.join(tmp, "nope")], env);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("no such directory");
    const file = path.join(tmp, "afile");
    fs.writeFileSync(file, "x");
    const notDir = await run(["mount", file], env);
    expect(notDir.stderr).toContain("not a directory");
    const { dir } = await mountAt("refuse/");
    const twice = await run(["mount", dir], env);
    expect(twice.code).not.toBe(0);
    expect(twice.stderr).toContain("already mounted");
    await unmountAt(dir, env);
  }, 60_000);

  test("git init, add, commit, status, branch and checkout work in the mount", async () => {
    const { dir, env } = await mountAt("git/");
    const out = sh(dir, `
      export GIT_AUTHOR_NAME=a GIT_AUTHOR_EMAIL=a@example.invalid GIT_COMMITTER_NAME=a GIT_COMMITTER_EMAIL=a@example.invalid
      git init -q -b main repo && cd repo
      printf 'one\n' > a.txt && mkdir -p src && printf 'x = 1\n' > src/m.py
      git add -A && git commit -qm first
      git checkout -qb feature
      printf 'two\n' >> a.txt && git commit -qam second
      git checkout -q main
      cat a.txt
      git status --porcelain
      git log --oneline --all | wc -l
      git branch --list | tr -d ' *' | tr '\n' ,
      git fsck --no-progress 2>&1 | grep -v '^Checking' || true
    `);
    expect(out).toBe("one\n2\nfeature,main,");
    await unmountAt(dir, env);
    expect(q(`SELECT count(*) > 10 FROM pgfiles_head WHERE key LIKE 'git/repo/.git/objects/%' AND NOT deleted`)).toBe("t");
  }, 90_000);

  test("tar x of a tree with symlinks, tar c back, cp -a in and out, find, du and rm -rf agree with a local disk", async () => {
    const { dir, env } = await mountAt("tar/");
    const local = fs.mkdtempSync(path.join(tmp, "local-"));
    sh(local, `
      mkdir -p src/a/b src/c
      for i in $(seq 1 50); do printf "file $i %0.s-" $(seq 1 $i) > src/a/f$i.txt; done
      head -c 2000000 /dev/urandom > src/c/big.bin
      ln -s ../../c/big.bin src/a/b/link
      ln -s a/f1.txt src/rel
      chmod 600 src/a/f2.txt
      tar cf tree.tar -C src .
    `);
    sh(dir, `mkdir x && tar xf ${local}/tree.tar -C x && tar cf ${local}/back.tar -C x . && cp -a ${local}/src y`);
    sh(local, `mkdir back && tar xf back.tar -C back && diff -r src back && cp -a ${dir}/y out && diff -r src out`);
    const list = (d: string) => sh(d, "find . -printf '%y %m %s %p\\n' | sort");
    expect(list(path.join(dir, "x"))).toBe(list(path.join(local, "src")));
    expect(sh(dir, "readlink x/a/b/link")).toBe("../../c/big.bin\n");
    expect(Number(sh(dir, "du -sk y | cut -f1"))).toBeGreaterThan(1900);
    sh(dir, "rm -rf x y");
    expect(fs.readdirSync(dir)).toEqual([]);
    await unmountAt(dir, env);
    expect(q(`SELECT count(*) FROM pgfiles_head WHERE key LIKE 'tar/%' AND NOT deleted`)).toBe("0");
  }, 90_000);

  test("two processes writing and reading one file see each other's writes", async () => {
    const { dir, env } = await mountAt("two/");
    const script = `
      import fs from "node:fs";
      const fd = fs.openSync(process.argv[2], "r+");
      fs.writeSync(fd, Buffer.from(process.argv[3]), 0, process.argv[3].length, Number(process.argv[4]));
      fs.closeSync(fd);
    `;
    fs.writeFileSync(path.join(tmp, "w.mjs"), script);
    const f = path.join(dir, "shared.txt");
    fs.writeFileSync(f, "..........");
    const held = fs.openSync(f, "r+");
    const bun = path.resolve(import.meta.dir, "../node_modules/.bin/bun");
    expect(Bun.spawnSync({ cmd: [bun, path.join(tmp, "w.mjs"), f, "AAA", "0"] }).exitCode).toBe(0);
    expect(Bun.spawnSync({ cmd: [bun, path.join(tmp, "w.mjs"), f, "BBB", "7"] }).exitCode).toBe(0);
    const buf = Buffer.alloc(10);
    fs.readSync(held, buf, 0, 10, 0);
    expect(buf.toString()).toBe("AAA....BBB");
    fs.closeSync(held);
    expect(fs.readFileSync(f, "utf8")).toBe("AAA....BBB");
    await unmountAt(dir, env);
    expect(q(`SELECT convert_from(p.data, 'UTF8') FROM pgfiles_head h JOIN pgfiles p ON p.id = h.id WHERE h.key = 'two/shared.txt'`)).toBe("AAA....BBB");
  }, 60_000);

  test("status from inside the mount: pending versions, then flushed ones with a flush rate, the kernel session's counters and the daemon's pid", async () => {
    const { dir, env } = await mountAt("rate/");
    for (let i = 0; i < 40; i++) fs.writeFileSync(path.join(dir, `f${i}`), `file ${i}`);
    let st: any = null;
    for (let i = 0; i < 50; i++) {
      const r = await run(["status", "--json"], { ...env, PWD: dir }, undefined, dir);
      st = JSON.parse(r.stdout);
      if (r.code === 0 && st.flushRate.windowSec >= 1) break;
      await Bun.sleep(200);
    }
    expect(st.pending.versions).toBe(0);
    expect(st.flushed.versions).toBeGreaterThanOrEqual(40);
    expect(st.flushRate.versionsPerSec).toBeGreaterThan(0);
    expect(st.io.requests).toBeGreaterThan(40);
    const text = (await ok(["status"], { ...env, PWD: dir }, undefined, 0, dir)).stdout;
    expect(text).toMatch(/rate: +[\d.]+ versions\/s/);
    expect(text).toMatch(/io: +\d+ kernel requests/);
    // The daemon serving the mount is the program under test: the compiled
    // binary when test/run.sh points PGFILES_TEST_BINARY at it, else Bun.
    const exe = fs.readlinkSync(`/proc/${st.pid}/exe`);
    const bin = process.env.PGFILES_TEST_BINARY;
    expect(exe).toBe(fs.realpathSync(bin ?? path.resolve(import.meta.dir, "../node_modules/.bin/bun")));
    await unmountAt(dir, env);
  }, 60_000);

  test("kill -9 of the daemon: the stale mount is reclaimed by the next mount and every closed file is there", async () => {
    const { dir, env } = await mountAt("crash/");
    const files = new Map<string, Buffer>();
    for (let i = 0; i < 20; i++) {
      const b = Buffer.from(crypto.getRandomValues(new Uint8Array(i * 10_000 + 1)));
      fs.writeFileSync(path.join(dir, `f${i}.bin`), b);
      files.set(`f${i}.bin`, b);
    }
    // Exit 4: versions still pending (the flusher runs once a second) — the point of this test.
    const rec = JSON.parse((await run(["status", "--json"], { ...env, PWD: dir }, undefined, dir)).stdout);
    expect(rec.mount).toBe(fs.realpathSync(dir));
    const pid = Number(JSON.parse((await ok(["where", "--json"], { ...env, PWD: dir }, undefined, 0, dir)).stdout).mount.pid);
    process.kill(pid, "SIGKILL");
    await Bun.sleep(300);
    let err = "";
    try {
      fs.readdirSync(dir);
    } catch (e) {
      err = (e as NodeJS.ErrnoException).code ?? "";
    }
    expect(err).toBe("ENOTCONN");
    // The next mount reclaims the dead mount point and serves the same journal.
    const again = await ok(["mount", dir], env);
    expect(again.stderr).toContain("stale");
    for (const [name, b] of files) expect(fs.readFileSync(path.join(dir, name)).equals(b)).toBe(true);
    await unmountAt(dir, env);
    expect(q(`SELECT count(*) FROM pgfiles_head WHERE key LIKE 'crash/%' AND NOT deleted`)).toBe("20");
  }, 60_000);

  test("unmount with Postgres away keeps the journal, says how many versions stay queued, and the next mount delivers them", async () => {
    const { dir, env } = await mountAt("away/");
    await pg.stop();
    try {
      fs.writeFileSync(path.join(dir, "queued.txt"), "written while Postgres was away");
      // Not everything is in Postgres: exit 3 (unreachable), so an orchestrator does not delete the sandbox.
      const r = await unmountAt(dir, env, 3);
      expect(r.stdout).toMatch(/1 version stays queued/);
    } finally {
      await pg.start();
    }
    const again = await mountAt("away/", { PGFILES_CACHE_DIR: env.PGFILES_CACHE_DIR! });
    expect(fs.readFileSync(path.join(again.dir, "queued.txt"), "utf8")).toBe("written while Postgres was away");
    await unmountAt(again.dir, again.env);
    expect(q(`SELECT convert_from(p.data, 'UTF8') FROM pgfiles_head h JOIN pgfiles p ON p.id = h.id WHERE h.key = 'away/queued.txt'`)).toBe("written while Postgres was away");
  }, 90_000);

  test("inside a mount, version, restore and purge take paths relative to the cwd", async () => {
    const { dir, env } = await mountAt("rel/");
    sh(dir, "mkdir sub && printf one > sub/f.txt && printf two > sub/f.txt");
    const sub = path.join(dir, "sub");
    // A different PGFILES_PREFIX in the environment does not matter inside the mount.
    const inside = { ...env, PGFILES_PREFIX: "elsewhere/", PWD: sub };
    const v = JSON.parse((await ok(["version", "f.txt", "--json"], inside, undefined, 0, sub)).stdout);
    expect(v.key).toBe("rel/sub/f.txt");
    await ok(["unmount", dir], env);
    mounted.delete(dir);
    expect(q(`SELECT count(*) FROM pgfiles WHERE key = 'rel/sub/f.txt'`)).toBe("2");
  }, 60_000);
});
