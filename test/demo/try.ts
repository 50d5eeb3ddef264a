// `npm run try`: pgfiles for real, in one command. Uses PGFILES_DSN when set;
// otherwise starts a throwaway local PostgreSQL (Debian's server), and removes
// it at the end. Prints every command it runs and what it printed.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { cleanEnv, run } from "../harness/cli.ts";

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
let cluster: Cluster | null = null;
let dsn = process.env.PGFILES_DSN;
const work = fs.mkdtempSync(path.join(os.tmpdir(), "pgfiles-try-"));
/** The demo mount, once made: unmounted in the end whatever happened. */
let mountpoint: string | null = null;
fs.chmodSync(work, 0o755);

async function main() {
  if (!dsn) {
    console.log(bold("PGFILES_DSN is not set: starting a throwaway PostgreSQL on 127.0.0.1 …"));
    try {
      cluster = await startCluster();
    } catch (e) {
      console.error(`Could not start PostgreSQL: ${(e as Error).message}`);
      console.error("Install Debian's server (sudo apt-get install postgresql) or set PGFILES_DSN to a database you own.");
      process.exitCode = 1;
      return;
    }
    dsn = cluster.dsn;
  }
  const prefix = `demo/${crypto.randomUUID().slice(0, 8)}/`;
  const env = cleanEnv({ PGFILES_DSN: dsn, PGFILES_PREFIX: prefix, PGFILES_CACHE_DIR: path.join(work, "cache") });
  console.log(`database: ${dsn.replace(/:[^:@/]*@/, ":****@")}\nprefix:   ${prefix}\n`);

  const step = async (label: string, args: string[], stdin?: string, cwd?: string, okCodes = [0]) => {
    console.log(bold(`$ ${label}`));
    if (stdin) console.log(stdin.trimEnd().replace(/^/gm, "  > "));
    const r = await run(args, cwd ? { ...env, PWD: cwd } : env, stdin, cwd);
    process.stdout.write(r.stdout);
    if (r.stderr) process.stdout.write(r.stderr);
    console.log();
    if (!okCodes.includes(r.code)) throw new Error(`pgfiles ${args[0]} exited with ${r.code}`);
  };

  await step("pgfiles init", ["init"]);

  const mnt = path.join(work, "demo");
  mountpoint = mnt;
  fs.mkdirSync(mnt);
  const canMount = fs.existsSync("/dev/fuse") && process.platform === "linux";
  if (canMount) {
    await step(`pgfiles mount ${mnt}`, ["mount", mnt]);
    const shell = (label: string, script: string) => {
      console.log(bold(`$ ${label}`));
      const p = Bun.spawnSync({ cmd: ["bash", "-c", script], cwd: mnt, stdout: "pipe", stderr: "pipe" });
      process.stdout.write(p.stdout.toString() + p.stderr.toString());
      console.log();
      if (p.exitCode !== 0) throw new Error(`${label} failed`);
    };
    shell(
      `mkdir output && echo '{"status":"done"}' > output/result.json && cat output/result.json`,
      `mkdir output && echo '{"status":"done"}' > output/result.json && cat output/result.json`,
    );
    shell(`echo '# Notes' > notes.md && echo 'second line' >> notes.md && mv notes.md README.md && ls -la`, `echo '# Notes' > notes.md && echo 'second line' >> notes.md && mv notes.md README.md && ls -la`);
    // Exit 4 says versions are still on their way to Postgres (the flusher sends them a moment later).
    await step("pgfiles status       # from inside the mount: the daemon answers", ["status"], undefined, mnt, [0, 4]);
    await step(`pgfiles unmount ${mnt}       # flush, unmount; the files live on in Postgres`, ["unmount", mnt]);
    await step("pgfiles version README.md", ["version", "README.md"]);
  } else {
    console.log("(no /dev/fuse here: showing the same with `pgfiles batch` instead of a mount)\n");
  }
  await step(
    "pgfiles batch        # atomic: every line or none",
    ["batch"],
    `put output/result.json "{\\"status\\":\\"reviewed\\"}"\ntag output/result.json reviewed=yes\n`,
  );
  await step("pgfiles version output/result.json", ["version", "output/result.json"]);
  await step("pgfiles restore output/result.json 1", ["restore", "output/result.json", "1"]);
  await step("pgfiles status", ["status"]);

  const sql = `SELECT key, meta->>'version' AS version, meta->>'deleted' AS deleted, meta->'tags' AS tags, convert_from(data, 'UTF8') AS body
  FROM pgfiles WHERE key LIKE '${prefix}%' ORDER BY key, (meta->>'version')::int;`;
  console.log(bold("$ psql -c \"SELECT key, version, deleted, tags, body FROM pgfiles …\""));
  const p = Bun.spawnSync({ cmd: ["psql", "-X", "-P", "pager=off", "-c", sql, dsn!], stdout: "pipe", stderr: "pipe" });
  process.stdout.write(p.stdout.toString() || p.stderr.toString());
  console.log("Every write is a row; the latest non-deleted version of a key is the file.");
}

try {
  await main();
} catch (e) {
  console.error((e as Error).message);
  process.exitCode = 1;
} finally {
  // (main() may have set it; TypeScript cannot see that across the await.)
  const started = cluster as Cluster | null;
  // A demo that failed half-way may leave its mount behind: take it down before removing anything.
  if (mountpoint && fs.existsSync("/proc/self/mountinfo") && fs.readFileSync("/proc/self/mountinfo", "utf8").includes(` ${mountpoint} `)) {
    Bun.spawnSync({ cmd: ["umount", "-l", mountpoint], stderr: "ignore" });
  }
  if (started) await started.destroy();
  fs.rmSync(work, { recursive: true, force: true });
}
