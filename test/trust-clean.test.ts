// "Clean" only when it is: versions Postgres refuses are retried by the running
// daemon once the cause is fixed, and `unmount` and `status` never exit 0 while
// a version of the mount is not in Postgres. Played with a role whose INSERT
// grant is revoked while it is mounted.
import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { cleanEnv, ok, run } from "./harness/cli.ts";
import { canMount } from "./harness/fuse.ts";
import { mountFixture } from "./harness/mounts.ts";

const fx = mountFixture("pgfiles-clean-");

function agentDsn(): string {
  return `postgres://agent:agent-pw@127.0.0.1:${fx.pg.port}/postgres`;
}

function setUpAgentRole() {
  fx.pg.psql(`DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'agent') THEN CREATE ROLE agent LOGIN PASSWORD 'agent-pw'; END IF; END $$;
    GRANT USAGE ON SCHEMA public TO agent;
    GRANT ALL ON ALL TABLES IN SCHEMA public TO agent;
    GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO agent;`);
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 20_000) {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(100);
  }
}

const rows = (key: string) => fx.pg.psql(`SELECT count(*) FROM pgfiles WHERE key = '${key}'`);

describe.skipIf(!canMount)("refused versions on a mount", () => {
  test("a revoked INSERT holds the version (status exits 5 with the reason); after GRANT the daemon delivers it with no command run", async () => {
    setUpAgentRole();
    const m = await fx.mount("held/", { PGFILES_DSN: agentDsn() });
    fx.pg.psql("REVOKE INSERT ON pgfiles FROM agent");
    try {
      fs.writeFileSync(m.p("a.txt"), "held until granted");
      let st = await run(["status", "--json"], { ...m.env, PWD: m.dir }, undefined, m.dir);
      await until("the version to be held", async () => {
        st = await run(["status", "--json"], { ...m.env, PWD: m.dir }, undefined, m.dir);
        return st.code === 5;
      });
      const s = JSON.parse(st.stdout);
      expect(s.pending.held[0].key).toBe("held/a.txt");
      expect(s.pending.held[0].reason).toContain("permission denied");
      const text = await run(["status"], { ...m.env, PWD: m.dir }, undefined, m.dir);
      expect(text.stdout).toContain("held:     held/a.txt: PostgreSQL refused the request: permission denied");
    } finally {
      fx.pg.psql("GRANT INSERT ON pgfiles TO agent");
    }
    // No command runs now: the daemon itself tries again (capped backoff, 2 s first).
    await until("the daemon to deliver the held version", () => rows("held/a.txt") === "1", 30_000);
    expect(fx.pg.psql("SELECT convert_from(data, 'UTF8') FROM pgfiles WHERE key = 'held/a.txt'")).toBe("held until granted");
    await fx.unmount(m);
  }, 90_000);

  test("unmount with a held version exits 5, says Postgres refused it and why, and leaves it in the journal for the next command", async () => {
    setUpAgentRole();
    const m = await fx.mount("held2/", { PGFILES_DSN: agentDsn() });
    fx.pg.psql("REVOKE INSERT ON pgfiles FROM agent");
    let granted = false;
    try {
      fs.writeFileSync(m.p("b.txt"), "not in Postgres yet");
      await until("the version to be held", async () => (await run(["status"], { ...m.env, PWD: m.dir }, undefined, m.dir)).code === 5);
      const r = await ok(["unmount", m.dir], m.env, undefined, 5);
      fx.forget(m.dir);
      expect(r.stdout).toContain("PostgreSQL refused 1 version");
      expect(r.stdout).toContain("permission denied");
      expect(r.stdout).not.toContain("unreachable");
      expect(rows("held2/b.txt")).toBe("0");
      // Outside the mount, status says the same and exits 5 too.
      const st = await run(["status"], { ...m.env });
      expect(st.code).toBe(5);
      fx.pg.psql("GRANT INSERT ON pgfiles TO agent");
      granted = true;
      // Any command delivers it once the cause is fixed.
      await ok(["status"], m.env);
      expect(fx.pg.psql("SELECT convert_from(data, 'UTF8') FROM pgfiles WHERE key = 'held2/b.txt'")).toBe("not in Postgres yet");
    } finally {
      if (!granted) fx.pg.psql("GRANT INSERT ON pgfiles TO agent");
    }
  }, 90_000);

  test("unmount with everything in Postgres exits 0", async () => {
    const m = await fx.mount("clean/");
    fs.writeFileSync(m.p("c.txt"), "flushed");
    const r = await ok(["unmount", m.dir], m.env, undefined, 0);
    fx.forget(m.dir);
    expect(r.stdout).toContain("everything is in PostgreSQL");
    expect(rows("clean/c.txt")).toBe("1");
    void path;
    void cleanEnv;
  }, 60_000);
});

describe("a schema damaged under a running system", () => {
  test("init recreates a dropped head table and trigger (heads rebuilt from the stored versions), where it used to say nothing changed", async () => {
    const env = cleanEnv({ PGFILES_DSN: fx.pg.dsn, PGFILES_PREFIX: "damaged/" });
    await ok(["batch"], env, "put a.txt one\nput a.txt two\nput b.txt x\ndelete b.txt\n");
    fx.pg.psql("DROP TRIGGER pgfiles_notify ON pgfiles; DROP TABLE pgfiles_head CASCADE");
    const r = await ok(["init"], env);
    expect(r.stdout).toContain("Recreated what was missing");
    expect(r.stdout).toContain("table pgfiles_head");
    expect(r.stdout).toContain("trigger pgfiles_notify");
    expect(fx.pg.psql("SELECT key || ':' || version || ':' || deleted FROM pgfiles_head WHERE key LIKE 'damaged/%' ORDER BY key")).toBe("damaged/a.txt:2:false\ndamaged/b.txt:2:true");
    const v = await ok(["version", "a.txt"], env);
    expect(v.stdout).toMatch(/\b2\b/);
    // Whole again: a second init changes nothing, and writes get the next version.
    expect((await ok(["init"], env)).stdout).toContain("nothing changed");
    await ok(["batch"], env, "put a.txt three\n");
    expect(fx.pg.psql("SELECT version FROM pgfiles_head WHERE key = 'damaged/a.txt'")).toBe("3");
  }, 60_000);

  test.skipIf(!canMount)("a table dropped while mounted: versions stay in the journal, status says the schema is missing, init recreates it and they arrive", async () => {
    const m = await fx.mount("dropped/");
    fx.pg.psql("DROP TABLE pgfiles CASCADE");
    try {
      fs.writeFileSync(m.p("after.txt"), "written after the drop");
      let st = await run(["status"], { ...m.env, PWD: m.dir }, undefined, m.dir);
      await until("status to say the schema is missing", async () => {
        st = await run(["status"], { ...m.env, PWD: m.dir }, undefined, m.dir);
        return st.stdout.includes("schema is missing");
      });
      expect(st.code).toBe(4);
      expect(st.stdout).toContain("pending:  1 versions");
    } finally {
      const r = await ok(["init"], cleanEnv({ PGFILES_DSN: fx.pg.dsn }));
      expect(r.stdout).toContain("table pgfiles");
    }
    await until("the version to arrive", () => rows("dropped/after.txt") === "1", 45_000);
    expect(fx.pg.psql("SELECT convert_from(data, 'UTF8') FROM pgfiles WHERE key = 'dropped/after.txt'")).toBe("written after the drop");
    await fx.unmount(m);
  }, 90_000);
});

const isRoot = process.getuid?.() === 0;

describe.skipIf(!canMount || !isRoot)("a close that fails on a full cache disk (root: the cache is a 40 MiB tmpfs)", () => {
  test("its body is removed at once: the disk is free again, the file shows its last version, and the next write works", async () => {
    const cache = fx.tempDir("tmpfs-");
    const m0 = Bun.spawnSync({ cmd: ["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", cache] });
    expect(m0.exitCode).toBe(0);
    const used = () => {
      const s = fs.statfsSync(cache);
      return (s.blocks - s.bfree) * s.bsize;
    };
    try {
      const m = await fx.mount("full/", { PGFILES_CACHE_DIR: cache });
      const old = Buffer.alloc(1 << 20, 7);
      fs.writeFileSync(m.p("old.bin"), old);
      await until("old.bin to reach Postgres", () => rows("full/old.bin") === "1");
      const baseline = used();
      const big = Buffer.alloc(60 << 20, 1);
      // A new file and an overwrite, each larger than the disk: the write or the close fails with ENOSPC.
      for (const name of ["new.bin", "old.bin"]) {
        let code = "";
        try {
          fs.writeFileSync(m.p(name), big);
        } catch (e) {
          code = (e as NodeJS.ErrnoException).code ?? String(e);
        }
        expect(code).toBe("ENOSPC");
        // Nothing of the failed version stays on the cache disk (it stayed until a start-up an hour later);
        // the kernel sends the last close's RELEASE just after close(2) returns.
        await until(`the cache disk to be free again after ${name}`, () => used() < baseline + (4 << 20), 3000).catch(() => {});
        expect(used()).toBeLessThan(baseline + (4 << 20));
      }
      // Each shows its last recorded version, byte for byte: the new file empty, the old one as it was
      // (once the kernel's attribute cache, 1 s, has let go of the size the failed writer saw).
      await Bun.sleep(1200);
      expect(fs.statSync(m.p("new.bin")).size).toBe(0);
      expect(fs.statSync(m.p("old.bin")).size).toBe(old.length);
      expect(fs.readFileSync(m.p("old.bin")).equals(old)).toBe(true);
      // Room for the next write, which becomes a version as usual.
      const next = Buffer.alloc(5 << 20, 3);
      fs.writeFileSync(m.p("next.bin"), next);
      expect(fs.readFileSync(m.p("next.bin")).equals(next)).toBe(true);
      await fx.unmount(m);
      expect(fx.pg.psql("SELECT length(data) FROM pgfiles WHERE key = 'full/next.bin'")).toBe(String(next.length));
      expect(fx.pg.psql("SELECT count(*) FROM pgfiles WHERE key = 'full/old.bin'")).toBe("1");
    } finally {
      Bun.spawnSync({ cmd: ["umount", "-l", cache] });
    }
  }, 120_000);
});
