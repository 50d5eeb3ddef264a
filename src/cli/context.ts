// What every command needs: resolved settings, and on demand the journal, the
// Postgres pool and a flush of pending versions ("the next command delivers").
import type { Command } from "commander";
import path from "node:path";
import { findMount } from "../daemon/registry.ts";
import { checkDsn } from "../config/dsn.ts";
import { resolveConfig, type Config, type Resolved } from "../config/index.ts";
import { OfflineError, PgfilesError } from "../errors.ts";
import { Journal } from "../journal/journal.ts";
import { createLogger, type Logger } from "../log.ts";
import { connect, describe, dsnHost, type Sql } from "../store/connect.ts";
import { checkSchema } from "../store/store.ts";
import { Flusher, type FlushResult } from "../sync/flusher.ts";

/** Global flags → config fields (CLI argument beats environment beats file). */
export const GLOBAL_FLAGS: [flag: string, field: keyof Config, help: string][] = [
  ["--dsn <dsn>", "dsn", "PostgreSQL connection string (PGFILES_DSN; PGFILES_DSN or the config file keeps the password out of shell history and ps)"],
  ["--prefix <prefix>", "prefix", "key prefix (PGFILES_PREFIX)"],
  ["--pool-size <n>", "poolSize", "Postgres pool size (PGFILES_POOL_SIZE)"],
  ["--read-only [bool]", "readOnly", "reject all writes (PGFILES_READ_ONLY)"],
  ["--cache-dir <dir>", "cacheDir", "journal and cache directory (PGFILES_CACHE_DIR)"],
  ["--cache-max-size <size>", "cacheMaxSize", "data cache cap, e.g. 1GB (PGFILES_CACHE_MAX_SIZE)"],
  ["--cache-metadata-ttl <duration>", "metadataTtlMs", "metadata trust time, e.g. 30s (PGFILES_CACHE_METADATA_TTL)"],
  ["--log-level <level>", "logLevel", "debug, info, warn or error (PGFILES_LOG_LEVEL)"],
  ["--log-file <file>", "logFile", "write logs here instead of stderr (PGFILES_LOG_FILE)"],
  ["--prepared-statements <bool>", "preparedStatements", "false for PgBouncer in transaction mode (PGFILES_PREPARED_STATEMENTS)"],
  ["--strict [bool]", "strict", "close and fsync also wait for Postgres (PGFILES_STRICT)"],
];

/** The shell's logical cwd ($PWD): after a mount over it, process.cwd() still
 * resolves to the directory underneath, $PWD names the path the user sees. */
export function shellCwd(): string {
  return process.env.PWD && path.isAbsolute(process.env.PWD) ? process.env.PWD : process.cwd();
}

export function flagName(flag: string): string {
  return flag.split(" ")[0].slice(2).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

export class Context {
  readonly resolved: Resolved;
  readonly config: Config;
  readonly log: Logger;
  private _journal: Journal | null = null;
  private _sql: Sql | null = null;

  /** The mount the shell's cwd is in (or beneath), if any. */
  readonly mount: ReturnType<typeof findMount>;
  readonly cwd: string;

  constructor(program: Command, overrides: Partial<Record<keyof Config, string>> = {}, how: { mountAware?: boolean } = {}) {
    const opts = program.opts() as Record<string, string | boolean | undefined>;
    const args: Partial<Record<keyof Config, string>> = {};
    for (const [flag, field] of GLOBAL_FLAGS) {
      const v = opts[flagName(flag)];
      if (v !== undefined) args[field] = v === true ? "true" : String(v);
    }
    Object.assign(args, overrides);
    this.resolved = resolveConfig({ args });
    this.cwd = shellCwd();
    // `mount` itself must not inherit the prefix of a mount it is run from.
    this.mount = how.mountAware === false ? null : findMount(this.cwd);
    // Inside a mount, the mount's prefix is the one that counts (unless --prefix says otherwise).
    this.config = this.mount && args.prefix === undefined ? { ...this.resolved.config, prefix: this.mount.record.prefix } : this.resolved.config;
    this.log = createLogger(this.config.logLevel, this.config.logFile);
  }

  /** A path as the user gave it → a path relative to the prefix root. Inside a
   * mount, relative paths start at the cwd and absolute ones at the mount point;
   * elsewhere paths are relative to the prefix root. */
  prefixPath(p: string): string {
    if (!this.mount) return p;
    const rel = path.relative(this.mount.record.mountpoint, path.resolve(this.cwd, p));
    if (rel.startsWith("..") || path.isAbsolute(rel)) return p;
    return rel === "" ? "/" : rel + (p.endsWith("/") ? "/" : "");
  }

  /** Refuses a write in read-only mode, naming what would have written. */
  requireWritable(command: string, verb = "write") {
    if (this.config.readOnly) {
      throw new PgfilesError(`pgfiles is in read-only mode (PGFILES_READ_ONLY); ${command} would ${verb}.`, { errno: "EROFS" });
    }
  }

  get dsn(): string {
    if (!this.config.dsn) {
      throw new PgfilesError(
        "No database is configured; set PGFILES_DSN (or pass a DSN) to a connection string like postgres://user:password@host:5432/database.",
        { exitCode: 2, errno: "EINVAL" },
      );
    }
    return checkDsn(this.config.dsn);
  }

  get journal(): Journal {
    if (!this._journal) {
      this._journal = new Journal({
        cacheDir: this.config.cacheDir,
        dsn: this.dsn,
        prefix: this.config.prefix,
        cacheMaxSize: this.config.cacheMaxSize,
      });
      this._journal.collectGarbage();
    }
    return this._journal;
  }

  get sql(): Sql {
    if (!this._sql) {
      this._sql = connect({
        dsn: this.dsn,
        poolSize: this.config.poolSize,
        preparedStatements: this.config.preparedStatements,
        connectTimeout: 5,
      });
    }
    return this._sql;
  }

  /** The pool when Postgres answers and has the schema; null when it is
   * unreachable. A missing schema or a refused login is an error. */
  async online(): Promise<Sql | null> {
    try {
      await checkSchema(this.sql);
      return this.sql;
    } catch (e) {
      const err = describe(e, dsnHost(this.dsn));
      if (err instanceof OfflineError) {
        this.log.debug({ err: err.message }, "postgres unreachable");
        this.offlineReason = err.message;
        return null;
      }
      throw err;
    }
  }

  offlineReason: string | null = null;

  /** Delivers pending versions of this journal to Postgres. Never throws for an
   * unreachable server: it reports what stays queued. */
  async deliver(opts: { progress?: boolean } = {}): Promise<{ result: FlushResult | null; offline: string | null }> {
    const j = this.journal;
    if (j.pendingCounts().pending === 0) return { result: null, offline: null };
    const sql = await this.online();
    if (!sql) return { result: null, offline: this.offlineReason };
    // Held versions get one more try per command: once their cause is fixed
    // (a constraint dropped, a permission granted), any command delivers them.
    j.releaseHeld();
    const started = Date.now();
    let lastShown = 0;
    const flusher = new Flusher({
      journal: j,
      sql,
      dsn: this.dsn,
      log: this.log,
      onProgress: opts.progress
        ? (v, b) => {
            if (Date.now() - lastShown > 1000 && Date.now() - started > 1000) {
              lastShown = Date.now();
              process.stderr.write(`flushing: ${v} versions, ${(b / 1048576).toFixed(1)} MiB stored\n`);
            }
          }
        : undefined,
    });
    const upTo = j.lastSeq();
    try {
      const result = await flusher.flushAll();
      // A mount of this journal holds the flush lease (it flushes every 250 ms): wait, bounded, until it has
      // delivered what was recorded before this command, so that e.g. `restore f 1` right after two closes
      // finds version 1 in Postgres.
      if (flusher.state === "busy") await this.waitForOtherFlusher(upTo);
      return { result, offline: null };
    } catch (e) {
      if (e instanceof OfflineError) return { result: null, offline: e.message };
      throw e;
    }
  }

  private async waitForOtherFlusher(upToSeq: number, timeoutMs = 15_000) {
    const deadline = Date.now() + timeoutMs;
    while (this.journal.flowingUpTo(upToSeq) > 0 && Date.now() < deadline) await Bun.sleep(50);
  }

  async close() {
    this._journal?.close();
    this._journal = null;
    if (this._sql) await this._sql.end({ timeout: 5 });
    this._sql = null;
  }
}
