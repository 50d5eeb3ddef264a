// Start-up of the compiled binary: its size, `pgfiles --version`, and
// `pgfiles mount` until the mount is live (the command returns only then),
// next to the same commands run from source under Bun.
//
//   node_modules/.bin/bun bench/startup.ts [BINARY]     # as root; default dist/pgfiles (npm run build)
//
// RUNS=20 runs of each; reports min / median / p90 in milliseconds.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startCluster } from "../test/harness/postgres.ts";

const ROOT = path.resolve(import.meta.dir, "..");
const BINARY = path.resolve(process.argv[2] ?? path.join(ROOT, "dist/pgfiles"));
const RUNS = Number(process.env.RUNS ?? 20);
if (!fs.existsSync(BINARY)) {
  console.error(`${BINARY} does not exist: run npm run build first, or name a binary`);
  process.exit(2);
}
const SOURCE = [path.join(ROOT, "node_modules/.bin/bun"), path.join(ROOT, "src/cli/main.ts")];

function stats(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return `min ${s[0].toFixed(0)}  median ${at(0.5).toFixed(0)}  p90 ${at(0.9).toFixed(0)} ms`;
}

function timed(cmd: string[], env: Record<string, string>): number {
  const t0 = performance.now();
  const r = Bun.spawnSync({ cmd, env, stdout: "pipe", stderr: "pipe" });
  const ms = performance.now() - t0;
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")} exited ${r.exitCode}: ${r.stderr.toString()}`);
  return ms;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pgfiles-startup-"));
fs.chmodSync(tmp, 0o755);
const pg = await startCluster();
try {
  console.log(`binary ${path.relative(ROOT, BINARY) || BINARY}: ${(fs.statSync(BINARY).size / 1048576).toFixed(1)} MiB; ${RUNS} runs each; load ${os.loadavg()[0].toFixed(1)}`);
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: tmp, PGFILES_DSN: pg.dsn, PGFILES_CACHE_DIR: path.join(tmp, "cache") };
  timed([BINARY, "init"], env);
  for (const [name, cmd] of [["binary", [BINARY]], ["source", SOURCE]] as const) {
    timed([...cmd, "--version"], env); // warm the page cache
    const version: number[] = [];
    for (let i = 0; i < RUNS; i++) version.push(timed([...cmd, "--version"], env));
    console.log(`${name.padEnd(7)} --version        ${stats(version)}`);
    const mount: number[] = [];
    const unmount: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const dir = fs.mkdtempSync(path.join(tmp, "mnt-"));
      const e = { ...env, PGFILES_PREFIX: `startup/${name}/${i}/` };
      try {
        mount.push(timed([...cmd, "mount", dir], e));
        if (!fs.statSync(dir).isDirectory()) throw new Error("mount is not live");
        unmount.push(timed([...cmd, "unmount", dir], e));
      } finally {
        Bun.spawnSync({ cmd: ["umount", "-l", dir], stderr: "ignore" });
      }
    }
    console.log(`${name.padEnd(7)} mount until live ${stats(mount)}`);
    console.log(`${name.padEnd(7)} unmount          ${stats(unmount)}`);
  }
} finally {
  await pg.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
}
