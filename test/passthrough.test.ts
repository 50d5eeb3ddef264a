// Open files' reads and writes on both paths: FUSE passthrough (as root, the
// kernel reads and writes the staging file itself) and through the daemon
// (PGFILES_PASSTHROUGH=off, or any non-root mount). The same operations, the
// same bytes, the same versions in Postgres; `pgfiles status --json` says
// which path served them.
import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import fs from "node:fs";
import { run, type CliEnv } from "./harness/cli.ts";
import { canMount as haveFuse } from "./harness/fuse.ts";
import { mountFixture } from "./harness/mounts.ts";

const isRoot = process.getuid?.() === 0;
const fx = mountFixture("pgfiles-pt-");

const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
/** Every version of a key, oldest first: "version:size:sha256 of data". */
const history = (key: string) =>
  fx.pg
    .psql(`SELECT string_agg((meta->>'version') || ':' || (meta->>'size') || ':' || COALESCE(encode(sha256(data), 'hex'), '-'), ',' ORDER BY (meta->>'version')::int) FROM pgfiles WHERE key = ${lit(key)}`)
    .split(",")
    .filter(Boolean);

/** Bytes that differ at every offset, so a misplaced write shows. */
function pattern(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed * 7 + (i >> 10)) & 0xff;
  return b;
}

const modes = [
  { name: "passthrough (root)", env: {}, expectPassthrough: isRoot },
  { name: "through the daemon", env: { PGFILES_PASSTHROUGH: "off" }, expectPassthrough: false },
];

describe.skipIf(!haveFuse).each(modes)("open files, $name", (mode) => {
  const mountAt = (prefix: string) => fx.mount(prefix, mode.env);
  const unmountAt = fx.unmount;
  async function io(m: { dir: string; env: CliEnv }) {
    // Exit code 0 (all flushed) or 4 (versions pending) both carry the report.
    const r = await run(["status", "--json"], { ...m.env, PWD: m.dir }, undefined, m.dir);
    if (r.code !== 0 && r.code !== 4) throw new Error(`status exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout).io as { passthrough: boolean; passthroughOpens: number };
  }

  test("writes into a large existing file at any offset, seen by stat and a second reader while open, one version at close", async () => {
    const prefix = `pt-${mode.expectPassthrough ? "on" : "off"}-rw/`;
    const m = await mountAt(prefix);
    const size = 3 * 1024 * 1024 + 123; // beyond the in-memory limit: a staging file
    const expected = pattern(size, 1);
    fs.writeFileSync(m.p("big.bin"), expected);
    await Bun.sleep(50);
    const before = await io(m);

    const fd = fs.openSync(m.p("big.bin"), "r+");
    const patch = pattern(200_000, 2);
    fs.writeSync(fd, patch, 0, patch.length, 1_000_000);
    patch.copy(expected, 1_000_000);
    // Extend past the end: the gap reads as zeros.
    const tail = Buffer.from("tail");
    fs.writeSync(fd, tail, 0, tail.length, size + 4096);
    const grown = Buffer.concat([expected, Buffer.alloc(4096), tail]);
    expect(fs.fstatSync(fd).size).toBe(grown.length);
    expect(fs.statSync(m.p("big.bin")).size).toBe(grown.length);
    // A reader opened meanwhile sees the writer's bytes.
    expect(sha(fs.readFileSync(m.p("big.bin")))).toBe(sha(grown));
    const back = Buffer.alloc(patch.length);
    expect(fs.readSync(fd, back, 0, back.length, 1_000_000)).toBe(back.length);
    expect(back.equals(patch)).toBe(true);
    fs.closeSync(fd);

    const after = await io(m);
    expect(after.passthrough).toBe(mode.expectPassthrough);
    if (mode.expectPassthrough) expect(after.passthroughOpens).toBeGreaterThan(before.passthroughOpens);
    else expect(after.passthroughOpens).toBe(0);

    // Open for writing and close without writing: no version.
    fs.closeSync(fs.openSync(m.p("big.bin"), "r+"));
    // Truncate through an open descriptor, then write: one version with both.
    const fd2 = fs.openSync(m.p("big.bin"), "r+");
    fs.ftruncateSync(fd2, 500_000);
    fs.writeSync(fd2, Buffer.from("end"), 0, 3, 500_000);
    fs.closeSync(fd2);
    const final = Buffer.concat([grown.subarray(0, 500_000), Buffer.from("end")]);
    expect(sha(fs.readFileSync(m.p("big.bin")))).toBe(sha(final));
    await unmountAt(m);

    const h = history(`${prefix}big.bin`);
    expect(h).toEqual([`1:${size}:${sha(pattern(size, 1))}`, `2:${grown.length}:${sha(grown)}`, `3:${final.length}:${sha(final)}`]);
  }, 60_000);

  test("mtime follows writes while open, O_APPEND appends, and an unlinked open file stays usable without a version", async () => {
    const prefix = `pt-${mode.expectPassthrough ? "on" : "off"}-times/`;
    const m = await mountAt(prefix);
    const start = pattern(300_000, 3);
    fs.writeFileSync(m.p("log.bin"), start);
    fs.writeFileSync(m.p("gone.bin"), start);
    const t0 = fs.statSync(m.p("log.bin"), { bigint: true }).mtimeNs;
    await Bun.sleep(20);
    const fd = fs.openSync(m.p("log.bin"), "a");
    fs.writeSync(fd, "appended\n");
    const t1 = fs.fstatSync(fd, { bigint: true }).mtimeNs;
    expect(t1).toBeGreaterThan(t0);
    fs.closeSync(fd);
    expect(fs.readFileSync(m.p("log.bin")).subarray(start.length).toString()).toBe("appended\n");
    expect(fs.statSync(m.p("log.bin"), { bigint: true }).mtimeNs).toBe(t1);

    const g = fs.openSync(m.p("gone.bin"), "r+");
    fs.unlinkSync(m.p("gone.bin"));
    fs.writeSync(g, "X", 0);
    const b = Buffer.alloc(3);
    fs.readSync(g, b, 0, 3, 0);
    expect(b.toString("latin1")).toBe("X" + start.subarray(1, 3).toString("latin1"));
    fs.closeSync(g);
    expect(fs.existsSync(m.p("gone.bin"))).toBe(false);
    await unmountAt(m);

    const log = history(`${prefix}log.bin`);
    expect(log.length).toBe(2);
    expect(log[1]).toBe(`2:${start.length + 9}:${sha(Buffer.concat([start, Buffer.from("appended\n")]))}`);
    // gone.bin: the put, then the tombstone; the write after unlink made no version.
    expect(history(`${prefix}gone.bin`).map((v) => v.split(":")[0])).toEqual(["1", "2"]);
    expect(fx.pg.psql(`SELECT meta->>'deleted' FROM pgfiles WHERE key = ${lit(`${prefix}gone.bin`)} AND (meta->>'version')::int = 2`)).toBe("true");
  }, 60_000);
});
