// A throwaway PgBouncer (Debian's /usr/sbin/pgbouncer) in pool_mode=transaction in
// front of a test cluster, on 127.0.0.1 and a free port. It is a child process of
// the test (not daemonised) so we always hold its PID; it runs as `nobody` when we
// are root (pgbouncer refuses root) via its own `-u nobody`, so the PID we hold is
// pgbouncer itself. Every bouncer is registered so that it is killed even when a
// test fails or the test process exits early.
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { freePort, pgBinDir, type Cluster } from "./postgres.ts";

export interface Bouncer {
  port: number;
  /** Same user/db as the cluster, but through pgbouncer. */
  dsn: string;
  /** DSN of the admin console (database `pgbouncer`; simple query protocol only). */
  adminDsn: string;
  /** Runs an admin console command (e.g. "SHOW POOLS") through psql; unaligned output, "|"-separated. */
  admin(command: string): string;
  /** The pgbouncer log so far. */
  log(): string;
  /** Terminates pgbouncer (SIGTERM, then SIGKILL after 5 s) and removes its temp dir. Idempotent. */
  stop(): Promise<void>;
}

export interface BouncerOptions {
  /** Server connections per user/db pair; default 10. */
  poolSize?: number;
  /** Extra or overriding [pgbouncer] settings, written verbatim (`key = value`). */
  settings?: Record<string, string>;
}

const isRoot = process.getuid?.() === 0;
const RUN_AS = "nobody";
const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

export function pgbouncerBin(): string {
  const fromEnv = process.env.PGFILES_TEST_PGBOUNCER;
  if (fromEnv) return fromEnv;
  for (const p of ["/usr/sbin/pgbouncer", ...(process.env.PATH ?? "").split(":").filter(Boolean).map((d) => path.join(d, "pgbouncer"))]) {
    if (fs.existsSync(p)) return p;
  }
  throw new Error("pgbouncer was not found; install Debian's pgbouncer package (apt-get install pgbouncer).");
}

interface LiveBouncer {
  pid: number;
  dir: string;
}
const live = new Set<LiveBouncer>();
let exitHookInstalled = false;

function safeRead(p: string): string {
  try {
    return fs.readFileSync(p, "utf8");
  } catch {
    return "";
  }
}

function tryConnect(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port });
    const done = (ok: boolean) => {
      clearTimeout(t);
      s.removeAllListeners();
      s.on("error", () => {});
      s.destroy();
      resolve(ok);
    };
    const t = setTimeout(() => done(false), timeoutMs);
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

export async function startBouncer(cluster: Cluster, opts: BouncerOptions = {}): Promise<Bouncer> {
  const bin = pgbouncerBin();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgfiles-bouncer-"));
  fs.chmodSync(dir, 0o755);
  const port = await freePort();
  const logFile = path.join(dir, "pgbouncer.log");
  const pidFile = path.join(dir, "pgbouncer.pid");
  const authFile = path.join(dir, "userlist.txt");
  const iniFile = path.join(dir, "pgbouncer.ini");

  fs.writeFileSync(authFile, `"pgfiles" ""\n`);
  const settings: Record<string, string> = {
    listen_addr: "127.0.0.1",
    listen_port: String(port),
    unix_socket_dir: "",
    auth_type: "trust",
    auth_file: authFile,
    admin_users: "pgfiles",
    stats_users: "pgfiles",
    pool_mode: "transaction",
    max_client_conn: "200",
    default_pool_size: String(opts.poolSize ?? 10),
    min_pool_size: "0",
    reserve_pool_size: "0",
    max_db_connections: "0",
    // Sent by psql/JDBC-style clients; pgbouncer rejects unknown startup parameters otherwise.
    ignore_startup_parameters: "extra_float_digits",
    logfile: logFile,
    pidfile: pidFile,
    server_login_retry: "1",
    ...opts.settings,
  };
  const ini =
    "[databases]\n" +
    // Fallback: any database name goes to the same-named database on the cluster.
    `* = host=127.0.0.1 port=${cluster.port}\n` +
    "\n[pgbouncer]\n" +
    Object.entries(settings)
      .map(([k, v]) => `${k} = ${v}\n`)
      .join("");
  fs.writeFileSync(iniFile, ini);
  if (isRoot) {
    const r = Bun.spawnSync({ cmd: ["chown", "-R", `${RUN_AS}:`, dir] });
    if (r.exitCode !== 0) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw new Error(`chown ${dir} failed: ${r.stderr.toString()}`);
    }
  }

  // Not -q: errors before the logfile is opened (e.g. a bad setting) only go to stderr.
  const stderrFile = path.join(dir, "stderr.log");
  const cmd = [bin, ...(isRoot ? ["-u", RUN_AS] : []), iniFile];
  const child = Bun.spawn({
    cmd,
    cwd: dir,
    stdin: "ignore",
    stdout: "ignore",
    stderr: Bun.file(stderrFile),
    env: { ...process.env, LC_ALL: "C" },
  });
  const entry: LiveBouncer = { pid: child.pid, dir };
  live.add(entry);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // Last resort: a test process that dies between start and stop still kills its bouncers.
    process.on("exit", () => {
      for (const b of live) {
        try {
          process.kill(b.pid, "SIGKILL");
        } catch {}
        fs.rmSync(b.dir, { recursive: true, force: true });
      }
    });
  }
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try {
      if (child.exitCode === null && child.signalCode === null) {
        try {
          child.kill("SIGTERM");
        } catch {}
        const timer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch {}
        }, STOP_TIMEOUT_MS);
        try {
          await child.exited;
        } finally {
          clearTimeout(timer);
        }
      }
    } finally {
      live.delete(entry);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const out = safeRead(stderrFile) || safeRead(logFile);
      await stop();
      throw new Error(`pgbouncer exited during startup (code ${child.exitCode}, signal ${child.signalCode}):\n${out}`);
    }
    if (await tryConnect(port, 500)) break;
    if (Date.now() > deadline) {
      const out = safeRead(stderrFile) || safeRead(logFile);
      await stop();
      throw new Error(`pgbouncer did not accept connections on 127.0.0.1:${port} within ${START_TIMEOUT_MS} ms:\n${out}`);
    }
    await Bun.sleep(50);
  }

  const psql = path.join(pgBinDir(), "psql");
  return {
    port,
    dsn: `postgres://pgfiles@127.0.0.1:${port}/postgres`,
    adminDsn: `postgres://pgfiles@127.0.0.1:${port}/pgbouncer`,
    admin(command: string) {
      const r = Bun.spawnSync({
        cmd: [psql, "-X", "-A", "-t", "-h", "127.0.0.1", "-p", String(port), "-U", "pgfiles", "-d", "pgbouncer", "-c", command],
        stdout: "pipe",
        stderr: "pipe",
        env: { ...process.env, PGCONNECT_TIMEOUT: "5" },
        timeout: 10_000,
      });
      if (r.exitCode !== 0) throw new Error(`pgbouncer admin "${command}" failed: ${r.stderr.toString()}`);
      return r.stdout.toString().trimEnd();
    },
    log: () => safeRead(logFile),
    stop,
  };
}
