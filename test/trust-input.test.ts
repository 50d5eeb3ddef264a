// Hostile input to the CLI, played by the attacker: each gets one sentence and a
// non-zero exit (or nothing, for a closed stdout), never a stack trace, never
// a silently changed name, and never memory in proportion to a huge input.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { cleanEnv, cliCommand, ok, run } from "./harness/cli.ts";
import { startCluster, type Cluster } from "./harness/postgres.ts";
import { serveNfs } from "./harness/serve-nfs.ts";

let pg: Cluster;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pgfiles-input-"));
beforeAll(async () => {
  pg = await startCluster();
  await ok(["init"], cleanEnv({ PGFILES_DSN: pg.dsn }));
});
afterAll(async () => {
  await pg?.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** One line on stderr, "pgfiles: ...", no stack frames. */
function oneSentence(stderr: string) {
  const lines = stderr.trim().split("\n");
  expect(lines.length).toBe(1);
  expect(lines[0]).toStartWith("pgfiles: ");
  expect(stderr).not.toMatch(/\n\s+at /);
}

describe("batch input", () => {
  test("a path that is not valid UTF-8 is refused by its line number and nothing is written (it was stored as U+FFFD)", async () => {
    const env = cleanEnv({ PGFILES_DSN: pg.dsn, PGFILES_PREFIX: "utf8/" });
    const input = Buffer.concat([Buffer.from("put ok.txt hi\nput bad"), Buffer.from([0xff, 0xfe]), Buffer.from(".txt hi\n")]);
    const r = await run(["batch"], env, input);
    expect(r.code).toBe(2);
    oneSentence(r.stderr);
    expect(r.stderr).toContain("line 2: the line is not valid UTF-8");
    expect(pg.psql("SELECT count(*) FROM pgfiles WHERE key LIKE 'utf8/%'")).toBe("0");
  });

  test("valid UTF-8 names and text go through byte for byte", async () => {
    const env = cleanEnv({ PGFILES_DSN: pg.dsn, PGFILES_PREFIX: "utf8ok/" });
    await ok(["batch"], env, 'put "été/naïve ☃.txt" "crème brûlée ☕"\n');
    expect(pg.psql("SELECT key || '=' || convert_from(data, 'UTF8') FROM pgfiles WHERE key LIKE 'utf8ok/%'")).toBe("utf8ok/été/naïve ☃.txt=crème brûlée ☕");
  });

  test("a 2 GiB line is refused before it is read into memory", async () => {
    const f = path.join(tmp, "huge.batch");
    fs.writeFileSync(f, "put a.txt ");
    fs.truncateSync(f, 2 * 1024 ** 3); // sparse: costs no disk
    const env = cleanEnv({ PGFILES_DSN: pg.dsn, PGFILES_PREFIX: "huge/" });
    const p = Bun.spawn({ cmd: ["/usr/bin/time", "-f", "maxrss=%M", ...cliCommand(), "batch", "-f", f], env: env as Record<string, string>, stdout: "pipe", stderr: "pipe" });
    const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
    fs.rmSync(f);
    expect(code).toBe(2);
    expect(stderr).toContain("line 1: the line is longer than 64 MiB");
    const rssKiB = Number(/maxrss=(\d+)/.exec(stderr)?.[1]);
    // Today's reader holds at most one line (64 MiB) plus the runtime: far below the 2 GiB it used to take.
    expect(rssKiB).toBeLessThan(400 * 1024);
    expect(pg.psql("SELECT count(*) FROM pgfiles WHERE key LIKE 'huge/%'")).toBe("0");
  }, 60_000);
});

describe("settings and output", () => {
  test("PGFILES_LOG_FILE naming a directory is one sentence, exit 2", async () => {
    const r = await run(["status"], cleanEnv({ PGFILES_DSN: pg.dsn, PGFILES_LOG_FILE: tmp }));
    expect(r.code).toBe(2);
    oneSentence(r.stderr);
    expect(r.stderr).toContain("cannot be opened for writing (it is a directory)");
  });

  test("a YAML alias bomb in config.yaml is refused without expanding it", async () => {
    const xdg = fs.mkdtempSync(path.join(tmp, "xdg-"));
    fs.mkdirSync(path.join(xdg, "pgfiles"));
    const lines = ["a: &a [x,x,x,x,x,x,x,x,x,x]"];
    let prev = "a";
    for (let i = 1; i <= 9; i++) {
      lines.push(`b${i}: &b${i} [${Array(10).fill(`*${prev}`).join(",")}]`);
      prev = `b${i}`;
    }
    fs.writeFileSync(path.join(xdg, "pgfiles", "config.yaml"), lines.join("\n") + "\n");
    const r = await run(["config", "show"], cleanEnv({ XDG_CONFIG_HOME: xdg }));
    expect(r.code).toBe(2);
    oneSentence(r.stderr);
    expect(r.stderr).toContain("cannot be read as settings");
  }, 30_000);

  test("a config.yaml that is a directory, or of 100 MB, is one sentence", async () => {
    const xdg = fs.mkdtempSync(path.join(tmp, "xdg-"));
    fs.mkdirSync(path.join(xdg, "pgfiles", "config.yaml"), { recursive: true });
    let r = await run(["config", "show"], cleanEnv({ XDG_CONFIG_HOME: xdg }));
    expect(r.code).toBe(2);
    oneSentence(r.stderr);
    const big = fs.mkdtempSync(path.join(tmp, "xdg-"));
    fs.mkdirSync(path.join(big, "pgfiles"));
    fs.writeFileSync(path.join(big, "pgfiles", "config.yaml"), "prefix: a/\n");
    fs.truncateSync(path.join(big, "pgfiles", "config.yaml"), 100 * 1024 * 1024);
    r = await run(["config", "show"], cleanEnv({ XDG_CONFIG_HOME: big }));
    expect(r.code).toBe(2);
    oneSentence(r.stderr);
    expect(r.stderr).toContain("larger than 1 MiB");
  });

  test("a closed stdout (| head -1) ends quietly with a non-zero exit, no stack trace", async () => {
    // Enough output to outlast the pipe buffer after the reader left.
    const env = cleanEnv({ PGFILES_DSN: pg.dsn, PGFILES_PREFIX: "epipe/" });
    const cli = cliCommand().map((a) => `'${a}'`).join(" ");
    // A command whose output is long: the reader leaves after one byte.
    const q = Bun.spawn({ cmd: ["bash", "-c", `${cli} batch --json <<< "$(printf 'put h%d.txt x\\n' $(seq 1 2000))" | head -c 1 >/dev/null; echo "rc=\${PIPESTATUS[0]}"`], env: env as Record<string, string>, stdout: "pipe", stderr: "pipe" });
    const [out2, err2] = await Promise.all([new Response(q.stdout).text(), new Response(q.stderr).text(), q.exited]);
    expect(err2).not.toMatch(/\n\s+at /);
    expect(err2).not.toContain("unexpected error");
    expect(out2).toMatch(/^rc=141\n$/);
  }, 60_000);
});

describe("the NFS server under a connection flood", () => {
  const NFS_PROGRAM = 100003;

  const rssKiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);

  test("400 connections from a flooder: at most 64 stay open, the owner's client keeps working, memory stays flat, idle ones are closed", async () => {
    const { connectRaw } = await import("./harness/nfs-raw.ts");
    const net = await import("node:net");
    const env = cleanEnv({ PGFILES_DSN: pg.dsn, PGFILES_PREFIX: "flood/", PGFILES_NFS_IDLE_MS: "3000" });
    const { child, info } = await serveNfs(env);
    const flood: import("node:net").Socket[] = [];
    try {
      const uid = process.getuid?.() ?? 0;
      const owner = await connectRaw(info.port, { flavor: "sys", uid, gid: 0 });
      expect((await owner.call(NFS_PROGRAM, 3, 0)).kind).toBe("success");
      const before = rssKiB(info.pid);
      // The flooder: 400 connections that never send a call (bounded; each waits for its connect).
      let closedByServer = 0;
      for (let i = 0; i < 400; i++) {
        const s = net.connect({ host: "127.0.0.1", port: info.port });
        s.on("error", () => {});
        s.on("close", () => closedByServer++);
        flood.push(s);
        await new Promise<void>((resolve) => {
          s.once("connect", () => resolve());
          s.once("close", () => resolve());
        });
      }
      await Bun.sleep(300);
      const open = flood.filter((s) => !s.destroyed && s.readyState === "open").length;
      expect(open).toBeLessThanOrEqual(64);
      expect(closedByServer).toBeGreaterThanOrEqual(400 - 64);
      // The owner's connection, which made a call, was not the one to go.
      expect(owner.isClosed()).toBe(false);
      expect((await owner.call(NFS_PROGRAM, 3, 0)).kind).toBe("success");
      expect(rssKiB(info.pid) - before).toBeLessThan(100 * 1024);
      // Connections that never made a call are closed after a short time.
      const deadline = Date.now() + 10_000;
      while (flood.some((s) => !s.destroyed && s.readyState === "open") && Date.now() < deadline) await Bun.sleep(100);
      expect(flood.filter((s) => !s.destroyed && s.readyState === "open").length).toBe(0);
      // A new client still gets in and is served.
      const late = await connectRaw(info.port, { flavor: "sys", uid, gid: 0 });
      expect((await late.call(NFS_PROGRAM, 3, 0)).kind).toBe("success");
      late.close();
      // An idle connection (the owner's, which made calls) is closed after PGFILES_NFS_IDLE_MS.
      await Promise.race([owner.closed, Bun.sleep(8_000)]);
      expect(owner.isClosed()).toBe(true);
    } finally {
      for (const s of flood) s.destroy();
      child.kill("SIGTERM");
      await child.exited;
    }
  }, 90_000);
});
