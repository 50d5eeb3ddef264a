// The set-up a mount test file needs: a PostgreSQL cluster with the schema, a
// temp directory, and mounts that are taken down after every test, also when it
// fails. Call mountFixture() at the top level of a test file: it registers the
// beforeAll/afterEach/afterAll hooks itself.
import { afterAll, afterEach, beforeAll } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { cleanEnv, ok, type CliEnv } from "./cli.ts";
import { startCluster, type Cluster } from "./postgres.ts";

export interface MountedDir {
  dir: string;
  env: CliEnv;
  /** A path inside the mount. */
  p(name: string): string;
}

export interface MountFixture {
  /** The cluster (set once beforeAll ran). */
  readonly pg: Cluster;
  readonly tmp: string;
  /** A fresh directory under tmp. */
  tempDir(prefix: string): string;
  /** `pgfiles mount` of a new directory on `prefix`, with extra settings. */
  mount(prefix: string, extra?: CliEnv): Promise<MountedDir>;
  /** `pgfiles unmount`, expecting success. */
  unmount(m: { dir: string; env: CliEnv }): Promise<void>;
  /** A mount the test made itself: taken down after the test unless forgotten. */
  track(dir: string, env: CliEnv): void;
  forget(dir: string): void;
}

export function mountFixture(name: string): MountFixture {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), name));
  const mounted = new Map<string, CliEnv>();
  let cluster: Cluster | undefined;
  beforeAll(async () => {
    cluster = await startCluster();
    await ok(["init"], cleanEnv({ PGFILES_DSN: cluster.dsn }));
  });
  afterEach(() => {
    for (const dir of mounted.keys()) Bun.spawnSync({ cmd: ["umount", "-l", dir], stderr: "ignore" });
    mounted.clear();
  });
  afterAll(async () => {
    await cluster?.destroy();
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  const fx: MountFixture = {
    get pg() {
      if (!cluster) throw new Error("the cluster is not started yet (use fx.pg inside tests)");
      return cluster;
    },
    tmp,
    tempDir: (prefix) => fs.mkdtempSync(path.join(tmp, prefix)),
    async mount(prefix, extra = {}) {
      const dir = fx.tempDir("mnt-");
      const env = cleanEnv({ PGFILES_DSN: fx.pg.dsn, PGFILES_PREFIX: prefix, ...extra });
      await ok(["mount", dir], env);
      mounted.set(dir, env);
      return { dir, env, p: (n: string) => path.join(dir, n) };
    },
    async unmount(m) {
      await ok(["unmount", m.dir], m.env);
      mounted.delete(m.dir);
    },
    track: (dir, env) => void mounted.set(dir, env),
    forget: (dir) => void mounted.delete(dir),
  };
  return fx;
}
