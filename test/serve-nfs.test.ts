// `pgfiles serve-nfs` and `pgfiles mount --backend nfs` through the CLI, with
// Debian's libnfs-utils (an NFSv3 client in user space) as the other end.
import { afterAll, beforeAll, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { cleanEnv, cliCommand, ok, run, type CliEnv } from "./harness/cli.ts";
import { startCluster, type Cluster } from "./harness/postgres.ts";
import { serveNfs, type Serving } from "./harness/serve-nfs.ts";

let pg: Cluster;
let tmp: string;
const children: ReturnType<typeof Bun.spawn>[] = [];
const haveLibnfs = Bun.which("nfs-cp") !== null && Bun.which("nfs-cat") !== null;

beforeAll(async () => {
  pg = await startCluster();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pgfiles-serve-nfs-"));
  await ok(["init"], cleanEnv({ PGFILES_DSN: pg.dsn }));
});
afterAll(async () => {
  for (const c of children) c.kill("SIGKILL");
  await pg?.destroy();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

async function serve(env: CliEnv) {
  const s = await serveNfs(env);
  children.push(s.child);
  return s;
}

function nfsUrl(s: Serving, file: string, extra = ""): string {
  return `nfs://127.0.0.1${s.exportPath}/${file}?version=3&nfsport=${s.port}&mountport=${s.port}${extra}`;
}

test.skipIf(!haveLibnfs)("serve-nfs: a file copied in with nfs-cp reads back byte for byte, is a version in Postgres after SIGTERM, and a stranger's uid is refused", async () => {
  const env = cleanEnv({ PGFILES_DSN: pg.dsn, PGFILES_PREFIX: "served/" });
  const { info, child } = await serve(env);
  expect(info.host).toBe("127.0.0.1");
  expect(info.exportPath).toMatch(/^\/pgfiles-[0-9a-f]{32}$/);
  const src = path.join(tmp, "in.bin");
  const body = Buffer.from(crypto.getRandomValues(new Uint8Array(3 * 1048576 + 123)));
  fs.writeFileSync(src, body);
  const cp = Bun.spawnSync({ cmd: ["nfs-cp", src, nfsUrl(info, "copied.bin")], stdout: "pipe", stderr: "pipe" });
  expect(cp.stderr.toString()).toBe("");
  expect(cp.exitCode).toBe(0);
  const cat = Bun.spawnSync({ cmd: ["nfs-cat", nfsUrl(info, "copied.bin")], stdout: "pipe", stderr: "pipe" });
  expect(cat.exitCode).toBe(0);
  expect(Buffer.from(cat.stdout).equals(body)).toBe(true);
  // Another local user's credentials (AUTH_SYS uid 4242) get nothing.
  const stranger = Bun.spawnSync({ cmd: ["nfs-cat", nfsUrl(info, "copied.bin", "&uid=4242&gid=4242")], stdout: "pipe", stderr: "pipe" });
  expect(stranger.exitCode).not.toBe(0);
  expect(stranger.stdout.length).toBe(0);
  // A wrong export path is refused too.
  const wrong = Bun.spawnSync({ cmd: ["nfs-cat", nfsUrl({ ...info, exportPath: "/pgfiles-00000000000000000000000000000000" }, "copied.bin")], stdout: "pipe", stderr: "pipe" });
  expect(wrong.exitCode).not.toBe(0);
  child.kill("SIGTERM");
  expect(await child.exited).toBe(0);
  expect(pg.psql("SELECT encode(sha256(data), 'hex') FROM pgfiles WHERE key = 'served/copied.bin' AND NOT coalesce((meta->>'deleted')::boolean, false)")).toBe(
    new Bun.CryptoHasher("sha256").update(body).digest("hex"),
  );
}, 60_000);

test("mount --backend nfs on a kernel without an NFS client, and an unknown backend, are refused in one sentence", async () => {
  const env = cleanEnv({ PGFILES_DSN: pg.dsn, PGFILES_PREFIX: "nfsmount/" });
  const dir = fs.mkdtempSync(path.join(tmp, "mnt-"));
  const bad = await run(["mount", "--backend", "smb", dir], env);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toBe('pgfiles: --backend must be fuse or nfs, not "smb".\n');
  const hasNfsClient = /\tnfs$/m.test(fs.readFileSync("/proc/filesystems", "utf8"));
  if (hasNfsClient) return; // this kernel could mount it: nothing to refuse here
  const r = await run(["mount", "--backend", "nfs", dir], env);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain("This Linux kernel has no NFS client");
  expect(r.stderr).toContain("pgfiles serve-nfs");
  expect(fs.readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(dir);
}, 60_000);
