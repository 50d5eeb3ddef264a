// Two mounts of one prefix (two cache directories, as two sandboxes would have)
// on one Postgres: what one closes the other sees soon after, through
// LISTEN/NOTIFY (the metadata TTL of 30 s is far longer than these tests wait),
// and two writers of one key keep every version.
import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import { canMount as haveFuse } from "./harness/fuse.ts";
import { mountFixture } from "./harness/mounts.ts";

const fx = mountFixture("pgfiles-two-");
/** Each mount with its own cache directory, as two sandboxes would have. */
const mountAt = (prefix: string) => fx.mount(prefix, { PGFILES_CACHE_DIR: fx.tempDir("cache-") });
const unmountAt = fx.unmount;

/** Polls `check` until it returns true; returns the milliseconds it took, or fails after `limitMs`. */
async function until(what: string, check: () => boolean, limitMs = 5000): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    let good = false;
    try {
      good = check();
    } catch {
      good = false;
    }
    if (good) return Date.now() - t0;
    if (Date.now() - t0 > limitMs) throw new Error(`${what}: not seen within ${limitMs} ms`);
    await Bun.sleep(25);
  }
}

const read = (p: string) => fs.readFileSync(p, "utf8");

describe.skipIf(!haveFuse)("two mounts of one prefix", () => {
  test("a file closed on A shows on B (lookup, listing, content); a change and a delete on A reach B's cached entries and pages", async () => {
    const a = await mountAt("two-see/");
    const b = await mountAt("two-see/");
    fs.writeFileSync(a.p("old.txt"), "version 1");
    fs.mkdirSync(a.p("d"));
    await until("old.txt on B", () => read(b.p("old.txt")) === "version 1");
    // B has now cached: the root listing, old.txt's pages and attributes, and "no such name" for new.txt.
    expect(fs.readdirSync(b.dir).sort()).toEqual(["d", "old.txt"]);
    expect(fs.existsSync(b.p("new.txt"))).toBe(false);
    expect(fs.existsSync(b.p("d/inner.txt"))).toBe(false);

    fs.writeFileSync(a.p("new.txt"), "from A");
    fs.writeFileSync(a.p("d/inner.txt"), "inside");
    const seen = await until("new.txt on B", () => read(b.p("new.txt")) === "from A");
    expect(fs.readdirSync(b.dir).sort()).toEqual(["d", "new.txt", "old.txt"]);
    await until("d/inner.txt on B", () => read(b.p("d/inner.txt")) === "inside");

    fs.writeFileSync(a.p("old.txt"), "version 2, longer");
    await until("old.txt's new content on B", () => read(b.p("old.txt")) === "version 2, longer");
    expect(fs.statSync(b.p("old.txt")).size).toBe(17);

    fs.unlinkSync(a.p("new.txt"));
    await until("new.txt gone on B", () => !fs.existsSync(b.p("new.txt")));
    expect(fs.readdirSync(b.dir).sort()).toEqual(["d", "old.txt"]);

    // And the other way round.
    fs.writeFileSync(b.p("from-b.txt"), "hello A");
    await until("from-b.txt on A", () => read(a.p("from-b.txt")) === "hello A");
    await unmountAt(a);
    await unmountAt(b);
    console.log(`[two mounts] new file visible on the other mount after ${seen} ms`);
  }, 60_000);

  test("a directory removed by A while a shell on B sits in it: B's writes there fail instead of landing elsewhere", async () => {
    const a = await mountAt("two-gone/");
    const b = await mountAt("two-gone/");
    fs.mkdirSync(a.p("x"));
    fs.writeFileSync(a.p("x/in.txt"), "in x");
    fs.writeFileSync(a.p("top.txt"), "at the root");
    await until("x/in.txt on B", () => read(b.p("x/in.txt")) === "in x");
    // A shell on B whose cwd is x/ (the kernel keeps x's inode), waiting for a line on stdin.
    const sh = Bun.spawn({
      cmd: ["bash", "-c", `cd ${JSON.stringify(b.p("x"))} && read go && { echo new > f.txt; echo "write=$?"; rm -f top.txt; echo "rm=$?"; ls; echo "ls=$?"; } 2>/dev/null`],
      stdin: "pipe",
      stdout: "pipe",
    });
    await Bun.sleep(200);
    fs.rmSync(a.p("x"), { recursive: true });
    await until("x gone on B", () => !fs.existsSync(b.p("x")));
    sh.stdin.write("go\n");
    sh.stdin.end();
    const out = await new Response(sh.stdout).text();
    await sh.exited;
    expect(out).toContain("write=1");
    // Nothing happened at the root in x's name.
    expect(fs.readdirSync(b.dir).sort()).toEqual(["top.txt"]);
    expect(read(b.p("top.txt"))).toBe("at the root");
    await unmountAt(a);
    await unmountAt(b);
    expect(fx.pg.psql(`SELECT string_agg(key, ',' ORDER BY key) FROM pgfiles_head WHERE key LIKE 'two-gone/%' AND NOT deleted`)).toBe("two-gone/top.txt");
  }, 60_000);

  test("both mounts writing one key at once keep every version, numbered in flush order, and both end on the latest", async () => {
    const a = await mountAt("two-race/");
    const b = await mountAt("two-race/");
    const N = 15;
    const writer = (m: { p: (n: string) => string }, who: string) =>
      (async () => {
        for (let i = 0; i < N; i++) {
          fs.writeFileSync(m.p("shared.txt"), `${who} ${i}`);
          await Bun.sleep(7);
        }
      })();
    await Promise.all([writer(a, "A"), writer(b, "B")]);
    await unmountAt(a);
    await unmountAt(b);
    const rows = fx.pg
      .psql(`SELECT string_agg((meta->>'version') || '=' || convert_from(data, 'UTF8'), ',' ORDER BY (meta->>'version')::int) FROM pgfiles WHERE key = 'two-race/shared.txt'`)
      .split(",");
    // Every close became a version; numbers 1..2N without a gap; each writer's own versions in its order.
    expect(rows.length).toBe(2 * N);
    expect(rows.map((r) => Number(r.split("=")[0]))).toEqual(Array.from({ length: 2 * N }, (_, i) => i + 1));
    const bodies = rows.map((r) => r.split("=")[1]);
    for (const who of ["A", "B"]) expect(bodies.filter((x) => x.startsWith(who))).toEqual(Array.from({ length: N }, (_, i) => `${who} ${i}`));
    // The latest version wins, on a fresh mount too.
    const c = await mountAt("two-race/");
    expect(read(c.p("shared.txt"))).toBe(bodies[bodies.length - 1]);
    await unmountAt(c);
  }, 60_000);
});
