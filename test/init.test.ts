// `pgfiles init`: the contract's table exactly, plus indexes and triggers that make
// it fast and safe; idempotent; --print for DBAs.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startCluster, type Cluster } from "./harness/postgres.ts";
import { cleanEnv, ok, run } from "./harness/cli.ts";

let pg: Cluster;
beforeAll(async () => {
  pg = await startCluster();
});
afterAll(async () => {
  await pg?.destroy();
});

function db(name: string, collation?: string): string {
  pg.psql(`CREATE DATABASE ${name}${collation ? ` TEMPLATE template0 LC_COLLATE '${collation}' LC_CTYPE '${collation}'` : ""}`);
  return pg.dsn.replace(/\/postgres$/, `/${name}`);
}

describe("pgfiles init", () => {
  test("creates the contract's four columns exactly, and says so", async () => {
    const dsn = db("init_exact");
    const r = await ok(["init", dsn], cleanEnv());
    expect(r.stdout).toContain("Created the pgfiles schema (version 1)");
    const cols = pg.psql(
      "SELECT column_name || ' ' || data_type || ' ' || is_nullable || ' ' || COALESCE(column_default, '-') FROM information_schema.columns WHERE table_name = 'pgfiles' ORDER BY ordinal_position",
      "init_exact",
    );
    expect(cols.split("\n")).toEqual([
      "id uuid NO gen_random_uuid()",
      "key text NO -",
      "meta jsonb NO '{}'::jsonb",
      "data bytea YES -",
    ]);
    expect(pg.psql("SELECT indexdef FROM pg_indexes WHERE indexname = 'pgfiles_pkey'", "init_exact")).toContain("(id)");
  });

  test("a second run changes nothing and says so", async () => {
    const dsn = db("init_twice");
    await ok(["init", dsn], cleanEnv());
    const before = pg.psql("SELECT md5(string_agg(p.proname || p.prosrc, ',' ORDER BY p.proname)) FROM pg_proc p WHERE p.proname LIKE 'pgfiles%'", "init_twice");
    const xmin = pg.psql("SELECT xmin FROM pg_proc WHERE proname = 'pgfiles_before_insert'", "init_twice");
    const r = await ok(["init"], cleanEnv({ PGFILES_DSN: dsn }));
    expect(r.stdout).toContain("already at version 1; nothing changed");
    expect(pg.psql("SELECT md5(string_agg(p.proname || p.prosrc, ',' ORDER BY p.proname)) FROM pg_proc p WHERE p.proname LIKE 'pgfiles%'", "init_twice")).toBe(before);
    // Not even rewritten: the function row is the same tuple.
    expect(pg.psql("SELECT xmin FROM pg_proc WHERE proname = 'pgfiles_before_insert'", "init_twice")).toBe(xmin);
  });

  test("--print writes SQL that a DBA can apply, after which init has nothing to do", async () => {
    const r = await ok(["init", "--print"], cleanEnv());
    expect(r.stdout).toContain("CREATE TABLE IF NOT EXISTS pgfiles");
    const dsn = db("init_print");
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "sql-")), "schema.sql");
    fs.writeFileSync(file, r.stdout);
    fs.chmodSync(path.dirname(file), 0o755);
    fs.chmodSync(file, 0o644);
    const p = Bun.spawnSync({ cmd: ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-q", "-f", file, dsn], stderr: "pipe", stdout: "pipe" });
    expect(p.exitCode).toBe(0);
    // Applying it twice is harmless too.
    expect(Bun.spawnSync({ cmd: ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-q", "-f", file, dsn], stderr: "pipe" }).exitCode).toBe(0);
    const again = await ok(["init", dsn], cleanEnv());
    expect(again.stdout).toContain("nothing changed");
  });

  test("commands against a database without the schema say to run init", async () => {
    const dsn = db("init_missing");
    const r = await run(["version", "a.txt"], cleanEnv({ PGFILES_DSN: dsn }));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("run `pgfiles init`");
  });

  test("no DSN, a malformed DSN and an unreachable server each get one clear sentence", async () => {
    const none = await run(["init"], cleanEnv());
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("No database is configured");
    const bad = await run(["init", "not a dsn"], cleanEnv());
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("not a PostgreSQL connection string");
    const down = await run(["init", "postgres://nobody@127.0.0.1:1/none"], cleanEnv());
    expect(down.code).toBe(3);
    expect(down.stderr).toContain("unreachable");
    for (const r of [none, bad, down]) expect(r.stderr.trim().split("\n").length).toBe(1);
  });

  test("lookups and prefix scans use indexes, whatever the database collation", async () => {
    // C.UTF-8 is not "C" to PostgreSQL: a plain LIKE could not use a default-collation index here.
    const dsn = db("init_plans", "C.UTF-8");
    await ok(["init", dsn], cleanEnv());
    // 20k versions of 2k keys so the planner has a reason to prefer indexes.
    pg.psql(
      `INSERT INTO pgfiles (key, meta, data)
         SELECT 'agents/' || (i % 2000) || '/file.txt', '{}'::jsonb, 'x'::bytea FROM generate_series(1, 20000) i;
       ANALYZE pgfiles; ANALYZE pgfiles_head;`,
      "init_plans",
    );
    const plan = (q: string) => pg.psql(`EXPLAIN ${q}`, "init_plans");
    // Latest version through the head table: never touches old versions.
    expect(plan(`SELECT p.meta FROM pgfiles_head h JOIN pgfiles p ON p.id = h.id WHERE h.key = 'agents/5/file.txt'`)).toMatch(/Index Scan using pgfiles_head_pkey/);
    // A prefix scan with an escaped LIKE pattern uses the C-collated key index.
    const prefixPlan = plan(`SELECT id FROM pgfiles WHERE key COLLATE "C" LIKE 'agents/1\\_2/%'`);
    expect(prefixPlan).toMatch(/Index Cond: .*key.* >= 'agents\/1_2\/'/);
    expect(prefixPlan).toMatch(/pgfiles_key_version/);
    // The versions of one key, in order, from the same index.
    expect(plan(`SELECT id FROM pgfiles WHERE key COLLATE "C" = 'agents/5/file.txt' ORDER BY (meta->>'version')::bigint`)).toMatch(/Index (Only )?Scan (using|on) pgfiles_key_version/);
    // Versions were assigned per key by the trigger: 10 each, 1..10.
    expect(pg.psql(`SELECT min((meta->>'version')::int) || '-' || max((meta->>'version')::int) || '-' || count(*) FROM pgfiles WHERE key = 'agents/5/file.txt'`, "init_plans")).toBe("1-10-10");
  });

  test("no two rows can ever hold the same version of one key", async () => {
    const dsn = db("init_unique");
    await ok(["init", dsn], cleanEnv());
    pg.psql(`INSERT INTO pgfiles (key) VALUES ('k')`, "init_unique");
    pg.psql(`ALTER TABLE pgfiles DISABLE TRIGGER pgfiles_before_insert`, "init_unique");
    // Even bypassing the trigger, the unique index refuses a second version 1.
    expect(() => pg.psql(`INSERT INTO pgfiles (key, meta) VALUES ('k', '{"version": 1}')`, "init_unique")).toThrow(/duplicate key/);
  });
});
