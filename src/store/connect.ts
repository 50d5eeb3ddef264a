// The Postgres connection pool and the classification of its errors.
// The store keeps no session state across transactions (no session advisory
// locks, no temp tables, no SET outside a transaction), so it works through
// PgBouncer in transaction mode; `preparedStatements: false` is then required.
import postgres from "postgres";
import { dsnHost, isUrlDsn, keywordOptions, parseKeywordDsn } from "../config/dsn.ts";
import { OfflineError, PgfilesError, RejectedError } from "../errors.ts";

export type Sql = postgres.Sql<{}>;

export interface ConnectOptions {
  dsn: string;
  poolSize: number;
  preparedStatements: boolean;
  /** Seconds to wait for a connection before calling Postgres unreachable. */
  connectTimeout?: number;
}

export function connect(opts: ConnectOptions): Sql {
  if (!/^postgres(ql)?:\/\//i.test(opts.dsn) && !/=/.test(opts.dsn)) {
    throw new PgfilesError(
      "PGFILES_DSN is not a PostgreSQL connection string; use the form postgres://user:password@host:5432/database.",
      { exitCode: 2, errno: "EINVAL" },
    );
  }
  let sql: Sql;
  try {
    // The libpq keyword form is turned into postgres.js options (it takes URLs only).
    const keyword = isUrlDsn(opts.dsn) ? null : keywordOptions(parseKeywordDsn(opts.dsn));
    const settings = {
      max: opts.poolSize,
      prepare: opts.preparedStatements,
      connect_timeout: opts.connectTimeout ?? 10,
      // An idle mount holds no connection: fleets of sandboxes share one server.
      idle_timeout: 20,
      max_lifetime: 60 * 30,
      onnotice: () => {},
      connection: { application_name: "pgfiles" },
    };
    sql = keyword
      ? postgres({ ...settings, ...keyword, connection: { ...settings.connection, ...(keyword.connection as object) } })
      : postgres(opts.dsn, settings);
  } catch (e) {
    if (e instanceof PgfilesError) throw e;
    throw new PgfilesError(`PGFILES_DSN could not be parsed: ${(e as Error).message}.`, { exitCode: 2, errno: "EINVAL", cause: e });
  }
  return sql;
}

const TRANSIENT_NODE_CODES = new Set([
  "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "ENOTFOUND",
  "CONNECTION_CLOSED", "CONNECTION_ENDED", "CONNECTION_DESTROYED", "CONNECT_TIMEOUT", "ECONNABORTED",
]);

/** Postgres error codes after which the same request may succeed later. */
function transientSqlState(code: string): boolean {
  return (
    code.startsWith("08") || // connection exception
    code === "57P01" || code === "57P02" || code === "57P03" || // admin/crash shutdown, cannot connect now
    code === "53300" || code === "53000" || // too many connections, insufficient resources
    code === "40001" || code === "40P01" || // serialization failure, deadlock
    code === "55P03" || code === "57014" // lock not available, query canceled
  );
}

export function isTransient(e: unknown): boolean {
  const err = e as { code?: string; errno?: string; name?: string };
  if (err?.code && TRANSIENT_NODE_CODES.has(err.code)) return true;
  if (err?.errno && TRANSIENT_NODE_CODES.has(err.errno)) return true;
  if (err?.name === "PostgresError" && err.code) return transientSqlState(err.code);
  // Socket-level failures surface as plain Errors in some runtimes.
  return /connect|socket|closed|terminat|timeout/i.test(String((e as Error)?.message ?? ""));
}

export function isSchemaMissing(e: unknown): boolean {
  const err = e as { code?: string };
  return err?.code === "42P01" || err?.code === "42883"; // undefined table / function
}

/** The store cannot answer now: unreachable, or its schema was dropped under a mount. A mount serves
 * from the journal and cache then, as when offline, and its versions wait in the journal for `init`. */
export function isStoreUnavailable(e: unknown): boolean {
  return isTransient(e) || isSchemaMissing(e);
}

/** Turns a driver error into one sentence for the person. */
export function describe(e: unknown, dsnHost: string): PgfilesError {
  if (e instanceof PgfilesError) return e;
  const err = e as { code?: string; message?: string };
  if (isSchemaMissing(e)) {
    return new PgfilesError("The pgfiles schema is missing in this database; run `pgfiles init` once.", { exitCode: 2, cause: e });
  }
  if (err?.code === "28P01" || err?.code === "28000") {
    return new PgfilesError(`PostgreSQL at ${dsnHost} refused the login: ${err.message}.`, { exitCode: 2, cause: e });
  }
  if (err?.code === "3D000") {
    return new PgfilesError(`PostgreSQL at ${dsnHost} has no such database: ${err.message}.`, { exitCode: 2, cause: e });
  }
  if (isTransient(e)) {
    return new OfflineError(`PostgreSQL at ${dsnHost} is unreachable (${err?.code ?? err?.message ?? "no answer"}).`, e);
  }
  return new RejectedError(`PostgreSQL refused the request: ${err?.message ?? String(e)}${err?.code ? ` (${err.code})` : ""}.`, e);
}

export { dsnHost };
