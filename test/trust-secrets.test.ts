// Issue 12 "Trust", the secrets part, played by the attacker where there is one:
// - the runtime directory (mount records, control sockets) planted by another
//   local user (`nobody`): a symlink over it, or a directory with a forged record;
// - the cache directory and daemon.log are private (0700, 0600);
// - a DSN password never shows in an error, a log line, or /proc/PID/cmdline of
//   a long-running process (serve-nfs, mount --foreground);
// - the journal is per target table: DSNs that differ in search_path/options
//   never share one, DSNs that differ in password or parameter order do;
// - libpq keyword DSNs work.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { dsnPasswords, parseKeywordDsn, tableSelectors } from "../src/config/dsn.ts";
import { databaseIdentity, journalDir } from "../src/journal/open.ts";
import { cleanEnv, cliCommand, ok, run, type CliEnv } from "./harness/cli.ts";
import { canMount, cannotMount } from "./harness/fuse.ts";
import { startCluster, type Cluster } from "./harness/postgres.ts";

setDefaultTimeout(120_000);

const isRoot = process.getuid?.() === 0;
const haveRunuser = Bun.which("runuser") !== null;
const asNobody = isRoot && haveRunuser;
if (!asNobody) console.warn(`Runtime-directory attack tests are skipped: ${isRoot ? "runuser is not installed" : "they need root (to run the attacker as nobody)"}.`);

const SECRET = "S3cr3tPw-xyzzy";
let pg: Cluster;
let tmp: string;
const children: ReturnType<typeof Bun.spawn>[] = [];

beforeAll(async () => {
  pg = await startCluster();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pgfiles-trust-secrets-"));
  fs.chmodSync(tmp, 0o755);
  await ok(["init"], cleanEnv({ PGFILES_DSN: pg.dsn }));
  // A role that logs in with a password (the cluster trusts everyone else).
  pg.psql(`CREATE ROLE secretuser LOGIN PASSWORD '${SECRET}' SUPERUSER`);
  const hba = path.join(pg.dir, "pg_hba.conf");
  fs.writeFileSync(hba, `host all secretuser 127.0.0.1/32 scram-sha-256\n${fs.readFileSync(hba, "utf8")}`);
  pg.psql("SELECT pg_reload_conf()");
}, 120_000);
afterAll(async () => {
  for (const c of children) c.kill("SIGKILL");
  await pg?.destroy();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** The DSN of secretuser, with its password. */
const secretDsn = (db = "postgres", extra = "") => `postgres://secretuser:${SECRET}@127.0.0.1:${pg.port}/${db}${extra}`;

function nobody(cmd: string[]) {
  const r = Bun.spawnSync({ cmd: ["runuser", "-u", "nobody", "--", ...cmd], stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`as nobody: ${cmd.join(" ")}: ${r.stderr.toString()}`);
}

const recordId = (mountpoint: string) => createHash("sha256").update(mountpoint).digest("hex").slice(0, 16);

/** A fresh base for the runtime directory, world-writable and sticky like /tmp. */
function runtimeBase(name: string): string {
  const base = path.join(tmp, name);
  fs.mkdirSync(base);
  fs.chmodSync(base, 0o1777);
  return base;
}

describe("the runtime directory", () => {
  test("is created 0700, and a loose one of our own is refused in one sentence", async () => {
    const base = runtimeBase("rt-own");
    const env = cleanEnv({ PGFILES_DSN: pg.dsn, XDG_RUNTIME_DIR: base });
    await ok(["status"], env);
    const dir = path.join(base, `pgfiles-${process.getuid?.() ?? 0}`);
    expect(fs.lstatSync(dir).mode & 0o7777).toBe(0o700);
    fs.chmodSync(dir, 0o755);
    const r = await run(["status"], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`pgfiles: The pgfiles runtime directory ${dir} is mode 0755, not 0700, so another user may control it; remove it (rm -r ${JSON.stringify(dir)}) and run the command again.\n`);
  });

  test.skipIf(!asNobody)("attack: a symlink planted by nobody at the runtime-dir path; root's mount and status refuse, root's file is unchanged", async () => {
    const base = runtimeBase("rt-symlink");
    const dir = path.join(base, "pgfiles-0");
    const mnt = fs.mkdtempSync(path.join(tmp, "mnt-"));
    const mountpoint = fs.realpathSync(mnt);
    // Root's private directory, holding a 0600 file where the record of that mount would go.
    const victim = fs.mkdtempSync(path.join(tmp, "victim-"));
    const victimFile = path.join(victim, `${recordId(mountpoint)}.json`);
    fs.writeFileSync(victimFile, "root's secret\n", { mode: 0o600 });
    nobody(["ln", "-s", victim, dir]);
    expect(fs.lstatSync(dir).isSymbolicLink()).toBe(true);
    const env = cleanEnv({ PGFILES_DSN: pg.dsn, XDG_RUNTIME_DIR: base });
    try {
      for (const args of [["mount", mountpoint], ["status"]]) {
        const r = await run(args, env);
        expect(r.code).toBe(2);
        expect(r.stderr).toBe(`pgfiles: The pgfiles runtime directory ${dir} is a symbolic link, so another user may control it; remove it (rm -r ${JSON.stringify(dir)}) and run the command again.\n`);
      }
      expect(fs.readFileSync(victimFile, "utf8")).toBe("root's secret\n");
      expect(fs.statSync(victimFile).mode & 0o777).toBe(0o600);
      expect(fs.readdirSync(victim)).toEqual([path.basename(victimFile)]);
      // Nothing was mounted there.
      expect(fs.readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(` ${mountpoint} `);
    } finally {
      // Without the fix the mount went ahead (its record over root's file): undo it.
      Bun.spawnSync(["umount", "-l", mountpoint]);
      try {
        process.kill((JSON.parse(fs.readFileSync(victimFile, "utf8")) as { pid: number }).pid, "SIGKILL");
      } catch {}
    }
  });

  test.skipIf(!asNobody)("attack: a runtime dir planted by nobody with a forged record; root's batch inside that path does not adopt its prefix", async () => {
    const base = runtimeBase("rt-forged");
    const dir = path.join(base, "pgfiles-0");
    const inside = fs.realpathSync(fs.mkdtempSync(path.join(tmp, "forged-mount-")));
    const forged = {
      pid: process.pid, // alive
      mountpoint: inside,
      socket: path.join(dir, `${recordId(inside)}.sock`),
      prefix: "victim-agent/",
      journal: "/nowhere",
      backend: "fuse",
      startedAt: Date.now(),
      state: "ready",
    };
    const recordFile = path.join(tmp, "forged.json");
    fs.writeFileSync(recordFile, JSON.stringify(forged));
    fs.chmodSync(recordFile, 0o644);
    nobody(["mkdir", "-m", "0700", dir]);
    nobody(["cp", recordFile, path.join(dir, `${recordId(inside)}.json`)]);
    const env = cleanEnv({ PGFILES_DSN: pg.dsn, XDG_RUNTIME_DIR: base, PWD: inside, PGFILES_PREFIX: "root-own/" });
    const r = await run(["batch"], env, 'put planted.txt "root wrote this"\n', inside);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`pgfiles: The pgfiles runtime directory ${dir} is owned by uid 65534, not by uid 0, so another user may control it; remove it (rm -r ${JSON.stringify(dir)}) and run the command again.\n`);
    expect(pg.psql("SELECT count(*) FROM pgfiles WHERE key LIKE '%planted.txt'")).toBe("0");
  });

  test.skipIf(!asNobody)("a record file not owned by us is ignored even in our own directory", async () => {
    const base = runtimeBase("rt-foreign-record");
    const env = cleanEnv({ PGFILES_DSN: pg.dsn, XDG_RUNTIME_DIR: base, PGFILES_PREFIX: "mine/" });
    await ok(["status"], env); // creates our directory
    const dir = path.join(base, "pgfiles-0");
    const inside = fs.realpathSync(fs.mkdtempSync(path.join(tmp, "foreign-")));
    const rec = path.join(dir, `${recordId(inside)}.json`);
    fs.writeFileSync(rec, JSON.stringify({ pid: process.pid, mountpoint: inside, socket: "/x", prefix: "victim-agent/", journal: "/x", backend: "fuse", startedAt: Date.now(), state: "ready" }));
    fs.chownSync(rec, 65534, 65534); // as if it had got there
    const r = await ok(["batch"], { ...env, PWD: inside }, 'put foreign.txt "x"\n', 0, inside);
    expect(r.stdout).toContain("put     foreign.txt  version 1");
    expect(pg.psql("SELECT string_agg(key, ',') FROM pgfiles WHERE key LIKE '%foreign.txt'")).toBe("mine/foreign.txt");
  });
});

describe("the cache directory and daemon.log", () => {
  test.skipIf(!canMount)(`are created 0700 and 0600, and an existing 0644 log is made 0600${canMount ? "" : ` (skipped: ${cannotMount})`}`, async () => {
    const env = cleanEnv({ PGFILES_DSN: secretDsn(), PGFILES_PREFIX: "cache-perm/", XDG_RUNTIME_DIR: runtimeBase("rt-cache") });
    const cache = env.PGFILES_CACHE_DIR!;
    const mnt = fs.mkdtempSync(path.join(tmp, "mnt-cache-"));
    try {
      await ok(["mount", mnt], env);
      expect(fs.statSync(cache).mode & 0o777).toBe(0o700);
      expect(fs.statSync(path.join(cache, "daemon.log")).mode & 0o777).toBe(0o600);
      for (const d of fs.readdirSync(path.join(cache, "journals"))) expect(fs.statSync(path.join(cache, "journals", d)).mode & 0o777).toBe(0o700);
      fs.writeFileSync(path.join(mnt, "listed.txt"), "x");
      // No process on the machine carries the password in its argv, and the log does not have it either.
      for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
        let cmdline = "";
        try {
          cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
        } catch {}
        expect(cmdline).not.toContain(SECRET);
      }
      expect(fs.readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(SECRET);
      await ok(["unmount", mnt], env);
      fs.chmodSync(path.join(cache, "daemon.log"), 0o644);
      await ok(["mount", mnt], env);
      expect(fs.statSync(path.join(cache, "daemon.log")).mode & 0o777).toBe(0o600);
      await ok(["unmount", mnt], env);
      expect(fs.readFileSync(path.join(cache, "daemon.log"), "utf8")).not.toContain(SECRET);
    } finally {
      Bun.spawnSync(["umount", "-l", mnt]);
    }
  });
});

describe("a DSN password", () => {
  test("mount with a DSN and no directory says the directory is missing, DSN masked", async () => {
    for (const dsn of [`postgres://u:${SECRET}@db.example/app`, `host=db.example password=${SECRET} dbname=app`]) {
      const r = await run(["mount", dsn], cleanEnv());
      expect(r.code).toBe(2);
      expect(r.stderr).not.toContain(SECRET);
      expect(r.stderr).toContain("but no directory");
      expect(r.stderr).toContain(dsn.startsWith("postgres") ? "postgres://u:****@db.example/app" : "password=****");
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
  });

  test("--help of mount, serve-nfs and the program says PGFILES_DSN or the config file keeps it out of shell history and ps", async () => {
    for (const args of [["mount", "--help"], ["serve-nfs", "--help"], ["--help"]]) {
      const r = await ok(args, cleanEnv());
      expect(r.stdout.replace(/\s+/g, " ")).toContain("PGFILES_DSN or the config file keeps the password out of shell history and ps");
    }
  });

  async function serveNfs(args: string[], env: CliEnv) {
    const child = Bun.spawn({ cmd: [...cliCommand(), ...args], env: env as Record<string, string>, stdout: "pipe", stderr: "pipe" });
    children.push(child);
    const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
    let text = "";
    const deadline = Date.now() + 20_000;
    while (!text.includes("\n") && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`serve-nfs exited: ${await new Response(child.stderr as ReadableStream).text()}`);
      text += new TextDecoder().decode(value);
    }
    reader.releaseLock();
    return { child, info: JSON.parse(text.split("\n")[0]) as { pid: number; port: number } };
  }

  for (const how of ["positional", "--dsn", "--dsn="] as const) {
    test(`serve-nfs given the DSN as ${how} serves with no password in /proc/PID/cmdline; signals and exit code pass through`, async () => {
      const env = cleanEnv({ PGFILES_PREFIX: "argv/" });
      const dsn = secretDsn();
      const args = how === "positional" ? ["serve-nfs", "--json", dsn] : how === "--dsn" ? ["--dsn", dsn, "serve-nfs", "--json"] : [`--dsn=${dsn}`, "serve-nfs", "--json"];
      const { child, info } = await serveNfs(args, env);
      expect(info.pid).toBe(child.pid); // the same process, exec'd
      const cmdline = fs.readFileSync(`/proc/${info.pid}/cmdline`, "utf8");
      expect(cmdline).toContain("serve-nfs");
      expect(cmdline).not.toContain(SECRET);
      expect(cmdline).not.toContain("secretuser");
      child.kill("SIGTERM");
      expect(await child.exited).toBe(0);
      expect(await new Response(child.stderr as ReadableStream).text()).not.toContain(SECRET);
    });
  }

  test.skipIf(!canMount)(`mount --foreground DSN DIR serves with no password in /proc/PID/cmdline${canMount ? "" : ` (skipped: ${cannotMount})`}`, async () => {
    const env = cleanEnv({ PGFILES_PREFIX: "fg/", XDG_RUNTIME_DIR: runtimeBase("rt-fg") });
    const mnt = fs.realpathSync(fs.mkdtempSync(path.join(tmp, "mnt-fg-")));
    const child = Bun.spawn({ cmd: [...cliCommand(), "mount", "--foreground", secretDsn(), mnt], env: env as Record<string, string>, stdout: "pipe", stderr: "pipe" });
    children.push(child);
    try {
      const deadline = Date.now() + 20_000;
      while (!fs.readFileSync("/proc/self/mountinfo", "utf8").includes(` ${mnt} `) && Date.now() < deadline) await Bun.sleep(50);
      fs.writeFileSync(path.join(mnt, "hello.txt"), "hello\n");
      const cmdline = fs.readFileSync(`/proc/${child.pid}/cmdline`, "utf8");
      expect(cmdline).toContain("--foreground");
      expect(cmdline).not.toContain(SECRET);
      expect(fs.readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(SECRET);
      await ok(["unmount", mnt], { ...env, PGFILES_DSN: secretDsn() });
      expect(await child.exited).toBe(0);
      const [stdout, stderr] = [await new Response(child.stdout as ReadableStream).text(), await new Response(child.stderr as ReadableStream).text()];
      expect(stdout + stderr).not.toContain(SECRET);
      expect(pg.psql("SELECT encode(p.data, 'escape') FROM pgfiles_head h JOIN pgfiles p ON p.id = h.id WHERE h.key = 'fg/hello.txt'")).toBe("hello");
    } finally {
      Bun.spawnSync(["umount", "-l", mnt]);
    }
  });

  const failures: [string, () => string][] = [
    ["a wrong password", () => `postgres://secretuser:${SECRET}-wrong@127.0.0.1:${pg.port}/postgres`],
    ["an unreachable host", () => `postgres://secretuser:${SECRET}@127.0.0.1:1/postgres`],
    ["a database that does not exist", () => secretDsn("no_such_db")],
    ["a wrong password, keyword form", () => `host=127.0.0.1 port=${pg.port} dbname=postgres user=secretuser password='${SECRET}-wrong'`],
    ["an unparsable URL", () => `postgres://secretuser:${SECRET}@127.0.0.1:${pg.port}/postgres%zz`],
  ];
  for (const [what, dsn] of failures) {
    test(`${what}: stderr and the log file never contain the password`, async () => {
      const log = path.join(fs.mkdtempSync(path.join(tmp, "log-")), "pgfiles.log");
      for (const args of [["--dsn", dsn(), "status"], ["--dsn", dsn(), "init"], ["--dsn", dsn(), "batch"]]) {
        const env = cleanEnv({ PGFILES_LOG_FILE: log, PGFILES_LOG_LEVEL: "debug", PGFILES_PREFIX: "fail/" });
        const r = await run(args, env, 'put x.txt "x"\n');
        expect(r.stderr + r.stdout).not.toContain(SECRET);
        expect(r.stderr).not.toContain("    at "); // no stack trace
        if (args[2] !== "batch") expect(r.code).not.toBe(0);
        const viaEnv = await run(args.slice(2), { ...env, PGFILES_DSN: dsn() }, 'put x.txt "x"\n');
        expect(viaEnv.stderr + viaEnv.stdout).not.toContain(SECRET);
      }
      if (fs.existsSync(log)) expect(fs.readFileSync(log, "utf8")).not.toContain(SECRET);
    });
  }

  test("an unparsable URL is refused in one sentence", async () => {
    const r = await run(["status"], cleanEnv({ PGFILES_DSN: `postgres://u:${SECRET}%zz@127.0.0.1/db` }));
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("pgfiles: The connection string has a % that is not followed by two hex digits (write a % in the password as %25); the form is postgres://user:password@host:5432/database.\n");
  });
});

describe("the journal is per target table", () => {
  test("identity: a plain DSN keeps its old identity; search_path/options make another; password and order do not", () => {
    expect(databaseIdentity("postgres://u:pw@h/db")).toBe("u@h:5432/db");
    expect(databaseIdentity("postgres://u:pw@h:6543/db?sslmode=require&application_name=x")).toBe("u@h:6543/db");
    expect(databaseIdentity("host=h user=u dbname=db password=x")).toBe("u@h:5432/db");
    expect(journalDir("/c", "postgres://u:pw@h/db", "p/")).toBe(journalDir("/c", "postgres://u@h:5432/db", "p/"));
    const a = "postgres://u:pw@h/db?search_path=a&sslmode=require";
    expect(databaseIdentity(a)).toBe("u@h:5432/db?search_path=a");
    expect(journalDir("/c", a, "p/")).not.toBe(journalDir("/c", "postgres://u:pw@h/db?search_path=b", "p/"));
    expect(journalDir("/c", a, "p/")).not.toBe(journalDir("/c", "postgres://u:pw@h/db", "p/"));
    expect(journalDir("/c", a, "p/")).toBe(journalDir("/c", "postgres://u:other@h/db?sslmode=require&search_path=a", "p/"));
    const o = "postgres://u@h/db?options=-csearch_path%3Dother&application_name=z";
    expect(journalDir("/c", o, "p/")).toBe(journalDir("/c", "postgres://u:x@h/db?application_name=y&options=-csearch_path%3Dother", "p/"));
    expect(journalDir("/c", o, "p/")).not.toBe(journalDir("/c", "postgres://u@h/db?options=-csearch_path%3Dthird", "p/"));
    expect(tableSelectors("host=h options='-c search_path=a' dbname=d")).toBe("options=-c%20search_path%3Da");
  });

  test("a file queued through one schema's DSN while Postgres is down is delivered into that schema only", async () => {
    const c = await startCluster();
    try {
      c.psql("CREATE SCHEMA a; CREATE SCHEMA b");
      const dsnA = `${c.dsn}?options=-csearch_path%3Da`;
      const dsnB = `${c.dsn}?options=-csearch_path%3Db`;
      const home = cleanEnv({ PGFILES_PREFIX: "shared/" });
      await ok(["init"], { ...home, PGFILES_DSN: dsnA });
      await ok(["init"], { ...home, PGFILES_DSN: dsnB });
      expect(c.psql("SELECT string_agg(schemaname, ',' ORDER BY schemaname) FROM pg_tables WHERE tablename = 'pgfiles'")).toBe("a,b");
      await c.stop();
      const queued = await run(["batch"], { ...home, PGFILES_DSN: dsnA }, 'put only-a.txt "for schema a"\n');
      expect(queued.stdout).toContain("Queued 1 operation");
      await c.start();
      // A command through B delivers B's journal (nothing) and must not touch A's queue.
      await ok(["status"], { ...home, PGFILES_DSN: dsnB });
      await ok(["status"], { ...home, PGFILES_DSN: `${c.dsn}?options=-csearch_path%3Db&application_name=other` });
      expect(c.psql("SELECT count(*) FROM b.pgfiles")).toBe("0");
      expect(c.psql("SELECT count(*) FROM a.pgfiles")).toBe("0");
      await ok(["status"], { ...home, PGFILES_DSN: `${c.dsn.replace("pgfiles@", "pgfiles:any@")}?application_name=x&options=-csearch_path%3Da` });
      expect(c.psql("SELECT string_agg(key || '=' || encode(data, 'escape'), ',') FROM a.pgfiles")).toBe("shared/only-a.txt=for schema a");
      expect(c.psql("SELECT count(*) FROM b.pgfiles")).toBe("0");
    } finally {
      await c.destroy();
    }
  });
});

describe("libpq keyword DSNs", () => {
  test("parse by libpq's rules: quotes, backslash escapes, spaces around =", () => {
    expect(parseKeywordDsn(`host=h port = 5433 dbname='my db' user=u password='it\\'s \\\\ x'`)).toEqual({ host: "h", port: "5433", dbname: "my db", user: "u", password: "it's \\ x" });
    expect(parseKeywordDsn("password=a\\ b host=h")).toEqual({ password: "a b", host: "h" });
    expect(() => parseKeywordDsn("host=h password='open")).toThrow("has an unterminated quoted value for password; write it as a URL instead");
    expect(() => parseKeywordDsn("host=h sslcert=/x")).toThrow('has the keyword "sslcert", which pgfiles does not take in keyword form; write it as a URL instead');
    expect(dsnPasswords("host=h password='a b'")).toEqual(["a b"]);
  });

  test("work end to end: init, batch, status, with a quoted password", async () => {
    const pw = "it's a \\secret";
    pg.psql(`CREATE ROLE kwuser LOGIN PASSWORD 'it''s a \\secret' SUPERUSER`);
    const hba = path.join(pg.dir, "pg_hba.conf");
    fs.writeFileSync(hba, `host all kwuser 127.0.0.1/32 scram-sha-256\n${fs.readFileSync(hba, "utf8")}`);
    pg.psql("SELECT pg_reload_conf()");
    const quoted = pw.replace(/\\/g, "\\\\").replace(/'/g, "\\'");
    const dsn = `host=127.0.0.1 port=${pg.port} dbname=postgres user=kwuser password='${quoted}' application_name=kwtest`;
    const env = cleanEnv({ PGFILES_DSN: dsn, PGFILES_PREFIX: "kw/" });
    await ok(["init"], env);
    const r = await ok(["batch"], env, 'put k.txt "keyword"\n');
    expect(r.stdout).toContain("put     k.txt  version 1");
    expect(pg.psql("SELECT encode(p.data, 'escape') FROM pgfiles_head h JOIN pgfiles p ON p.id = h.id WHERE h.key = 'kw/k.txt'")).toBe("keyword");
    const wrong = await run(["status"], { ...env, PGFILES_DSN: dsn.replace("secret", "wrong") });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain("refused the login");
    const bad = await run(["status"], { ...env, PGFILES_DSN: "host=127.0.0.1 sslcert=/x" });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('pgfiles: The connection string has the keyword "sslcert", which pgfiles does not take in keyword form; write it as a URL instead: postgres://user:password@host:5432/database.\n');
  });
});

