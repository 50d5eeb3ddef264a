// Opening a journal: where it lives, pragmas, and schema migrations.
import { Database } from "bun:sqlite";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import m001 from "../../journal/migrations/001_initial.sql" with { type: "text" };
import m002 from "../../journal/migrations/002_running_totals.sql" with { type: "text" };
import m003 from "../../journal/migrations/003_nfs_handles.sql" with { type: "text" };
import { tableSelectors } from "../config/dsn.ts";
import { PgfilesError } from "../errors.ts";

/** Migrations in order; index + 1 is the user_version after applying it. */
const MIGRATIONS: string[] = [m001, m002, m003];
export const JOURNAL_VERSION = MIGRATIONS.length;

/** The table a DSN writes, without credentials: "user@host:port/db", then the
 * settings that choose the schema (search_path, options) when it has any, so
 * that two DSNs writing different tables never share a journal; a DSN without
 * them keeps the identity (and so the journal directory) it always had. */
export function databaseIdentity(dsn: string): string {
  const selectors = tableSelectors(dsn);
  return selectors ? `${databaseIdentityOf(dsn)}?${selectors}` : databaseIdentityOf(dsn);
}

function databaseIdentityOf(dsn: string): string {
  let url: URL;
  try {
    url = new URL(dsn);
  } catch {
    // libpq keyword form: host=... port=... dbname=... user=...
    const kv = Object.fromEntries(
      [...dsn.matchAll(/(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)/g)].map((m) => [m[1], m[2].replace(/^'|'$/g, "")]),
    );
    return `${kv.user ?? ""}@${kv.host ?? "localhost"}:${kv.port ?? "5432"}/${kv.dbname ?? kv.user ?? ""}`;
  }
  const db = decodeURIComponent(url.pathname.replace(/^\//, "")) || decodeURIComponent(url.username);
  return `${decodeURIComponent(url.username)}@${url.hostname || "localhost"}:${url.port || "5432"}/${db}`;
}

export function journalDir(cacheDir: string, dsn: string, prefix: string): string {
  const identity = databaseIdentity(dsn);
  const h = createHash("sha256").update(identity).update("\0").update(prefix).digest("hex").slice(0, 16);
  return path.join(cacheDir, "journals", h);
}

export function openDatabase(dir: string, identity: string, prefix: string): Database {
  try {
    fs.mkdirSync(path.join(dir, "blobs"), { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new PgfilesError(`Cannot create the journal directory ${dir}: ${(e as Error).message}`, { cause: e });
  }
  const db = new Database(path.join(dir, "journal.db"), { create: true, strict: true });
  db.exec("PRAGMA busy_timeout = 10000");
  db.exec("PRAGMA journal_mode = WAL");
  // NORMAL: a commit survives a crash of this process (the WAL is in the page
  // cache); durable commits switch to FULL for their transaction (see record()).
  db.exec("PRAGMA synchronous = NORMAL");
  db.exec("PRAGMA foreign_keys = ON");
  migrate(db, dir);
  const put = db.query("INSERT INTO info (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING");
  put.run("database", identity);
  put.run("prefix", prefix);
  return db;
}

function migrate(db: Database, dir: string) {
  const current = (db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
  if (current > MIGRATIONS.length) {
    throw new PgfilesError(
      `The journal in ${dir} was written by a newer pgfiles (format ${current}, this build knows ${MIGRATIONS.length}); upgrade pgfiles to use it.`,
      { exitCode: 2 },
    );
  }
  if (current === MIGRATIONS.length) return;
  // BEGIN IMMEDIATE so that two processes opening a new journal at once migrate it once.
  db.exec("BEGIN IMMEDIATE");
  try {
    const again = (db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
    for (let v = again; v < MIGRATIONS.length; v++) {
      db.exec(MIGRATIONS[v]);
      db.exec(`PRAGMA user_version = ${v + 1}`);
    }
    db.exec("COMMIT");
  } catch (e) {
    db.exec("ROLLBACK");
    throw e;
  }
}
