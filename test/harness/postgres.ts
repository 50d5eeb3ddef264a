// A throwaway PostgreSQL cluster for tests: initdb into a temp dir, a free port,
// 127.0.0.1 only, run as `nobody` when we are root (initdb refuses root).
// Every cluster is registered so that it is stopped even when a test fails or
// the test process exits early.
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

export interface Cluster {
  dir: string;
  port: number;
  /** Superuser DSN over TCP on 127.0.0.1. */
  dsn: string;
  /** Starts a stopped cluster again (same port, same data). */
  start(): Promise<void>;
  /** Stops the server: "fast" waits for clients to be dropped, "immediate" is a crash. */
  stop(mode?: "fast" | "immediate"): Promise<void>;
  /** Runs SQL through psql and returns its unaligned output. */
  psql(sql: string, db?: string): string;
  /** Stops the server and removes its directory. */
  destroy(): Promise<void>;
}

const live = new Set<Cluster>();
let exitHookInstalled = false;

export function pgBinDir(): string {
  const fromEnv = process.env.PGFILES_TEST_PGBIN;
  if (fromEnv) return fromEnv;
  const root = "/usr/lib/postgresql";
  if (fs.existsSync(root)) {
    const versions = fs.readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) if (fs.existsSync(path.join(root, v, "bin", "initdb"))) return path.join(root, v, "bin");
  }
  for (const p of (process.env.PATH ?? "").split(":")) {
    if (p && fs.existsSync(path.join(p, "initdb"))) return fs.realpathSync(p);
  }
  throw new Error("PostgreSQL server binaries (initdb, pg_ctl) were not found; install Debian's postgresql package.");
}

export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

const isRoot = process.getuid?.() === 0;
const RUN_AS = "nobody";

/** Runs a command as the cluster's owner (nobody when we are root). */
export function asOwner(cmd: string[], opts: { cwd?: string } = {}) {
  const full = isRoot ? ["runuser", "-u", RUN_AS, "--", ...cmd] : cmd;
  const r = Bun.spawnSync({ cmd: full, cwd: opts.cwd ?? "/", stdout: "pipe", stderr: "pipe", env: { ...process.env, LC_ALL: "C" } });
  return { code: r.exitCode ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

function chownToOwner(p: string) {
  if (!isRoot) return;
  const r = Bun.spawnSync({ cmd: ["chown", "-R", `${RUN_AS}:`, p] });
  if (r.exitCode !== 0) throw new Error(`chown ${p} failed: ${r.stderr.toString()}`);
}

export async function startCluster(opts: { settings?: Record<string, string> } = {}): Promise<Cluster> {
  const bin = pgBinDir();
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "pgfiles-pg-"));
  fs.chmodSync(base, 0o755);
  const dir = path.join(base, "data");
  const sock = path.join(base, "sock");
  fs.mkdirSync(sock);
  chownToOwner(base);
  const init = asOwner([path.join(bin, "initdb"), "-D", dir, "-U", "pgfiles", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"]);
  if (init.code !== 0) throw new Error(`initdb failed: ${init.stderr}`);
  const port = await freePort();
  const settings: Record<string, string> = {
    listen_addresses: "'127.0.0.1'",
    port: String(port),
    unix_socket_directories: `'${sock}'`,
    max_connections: "100",
    shared_buffers: "128MB",
    fsync: "on",
    log_min_messages: "warning",
    ...opts.settings,
  };
  fs.appendFileSync(path.join(dir, "postgresql.conf"), Object.entries(settings).map(([k, v]) => `${k} = ${v}\n`).join(""));
  const logFile = path.join(base, "server.log");

  const cluster: Cluster = {
    dir,
    port,
    dsn: `postgres://pgfiles@127.0.0.1:${port}/postgres`,
    async start() {
      const r = asOwner([path.join(bin, "pg_ctl"), "-D", dir, "-l", logFile, "-w", "-t", "60", "start"]);
      if (r.code !== 0) throw new Error(`pg_ctl start failed: ${r.stderr}${safeRead(logFile)}`);
      live.add(cluster);
    },
    async stop(mode = "fast") {
      const r = asOwner([path.join(bin, "pg_ctl"), "-D", dir, "-m", mode, "-w", "-t", "60", "stop"]);
      if (r.code !== 0 && !/not running|No such file|does not exist/i.test(r.stderr)) {
        throw new Error(`pg_ctl stop failed: ${r.stderr}`);
      }
    },
    psql(sql: string, db = "postgres") {
      const r = Bun.spawnSync({
        cmd: [path.join(bin, "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", String(port), "-U", "pgfiles", "-d", db, "-c", sql],
        stdout: "pipe",
        stderr: "pipe",
      });
      if (r.exitCode !== 0) throw new Error(`psql failed: ${r.stderr.toString()}`);
      return r.stdout.toString().trimEnd();
    },
    async destroy() {
      try {
        await cluster.stop("immediate");
      } finally {
        live.delete(cluster);
        fs.rmSync(base, { recursive: true, force: true });
      }
    },
  };
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // Last resort: a test process that dies between start and destroy still stops its clusters.
    process.on("exit", () => {
      for (const c of live) {
        asOwner([path.join(bin, "pg_ctl"), "-D", c.dir, "-m", "immediate", "-w", "stop"]);
        fs.rmSync(path.dirname(c.dir), { recursive: true, force: true });
      }
    });
  }
  await cluster.start();
  return cluster;
}

function safeRead(p: string): string {
  try {
    return fs.readFileSync(p, "utf8");
  } catch {
    return "";
  }
}
