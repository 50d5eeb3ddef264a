// The compiled single binary (what users install) does the same as the sources:
// build it with `npm run build`'s script and drive a real round trip through it.
import { afterAll, beforeAll, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startCluster, type Cluster } from "./harness/postgres.ts";

const ROOT = path.resolve(import.meta.dir, "..");
let pg: Cluster;
let bin: string;
let home: string;

beforeAll(async () => {
  pg = await startCluster();
  home = fs.mkdtempSync(path.join(os.tmpdir(), "pgfiles-bin-"));
  const out = path.join(home, "dist");
  // Compile into a private directory so a developer's dist/ is left alone.
  const p = Bun.spawnSync({
    cmd: [path.join(ROOT, "node_modules/.bin/bun"), "build", "--compile", "--minify", path.join(ROOT, "src/cli/main.ts"), "--outfile", path.join(out, "pgfiles")],
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
  });
  if (p.exitCode !== 0) throw new Error(`bun build --compile failed: ${p.stderr.toString()}`);
  bin = path.join(out, "pgfiles");
});
afterAll(async () => {
  await pg?.destroy();
  if (home) fs.rmSync(home, { recursive: true, force: true });
});

function pgfiles(args: string[], stdin?: string) {
  const r = Bun.spawnSync({
    cmd: [bin, ...args],
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, PGFILES_DSN: pg.dsn, PGFILES_PREFIX: "bin/", PGFILES_CACHE_DIR: path.join(home, "cache") },
    stdin: stdin === undefined ? "ignore" : Buffer.from(stdin),
    stdout: "pipe",
    stderr: "pipe",
  });
  return { code: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

test("the compiled binary runs init, batch, version and restore against real PostgreSQL", () => {
  expect(pgfiles(["--version"]).stdout).toMatch(/^\d+\.\d+\.\d+/);
  expect(pgfiles(["init"]).code).toBe(0);
  const b = pgfiles(["batch"], 'put notes/a.md "# one"\nput notes/a.md "# two"\n');
  expect(b.stderr).toBe("");
  expect(b.code).toBe(0);
  expect(b.stdout).toContain("version 2");
  const r = pgfiles(["restore", "notes/a.md", "1"]);
  expect(r.stdout).toContain("it is now version 3");
  const v = JSON.parse(pgfiles(["version", "notes/a.md", "--json"]).stdout);
  expect(v.versions.map((x: { version: number }) => x.version)).toEqual([1, 2, 3]);
  expect(pg.psql("SELECT convert_from(data, 'UTF8') FROM pgfiles WHERE key = 'bin/notes/a.md' AND meta->>'version' = '3'")).toBe("# one");
}, 60_000);
