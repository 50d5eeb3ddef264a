// Reads and hard deletes against Postgres; schema set-up. With apply.ts, the
// only code that speaks SQL to Postgres.
import { likePrefix } from "../keys.ts";
import { SCHEMA_VERSION, schemaSql } from "./schema.ts";
import type { Sql } from "./connect.ts";

export interface StoredVersion {
  id: string;
  version: number;
  meta: string;
  /** Length of data in bytes (NULL data counts 0). */
  length: number;
}

export type InitResult =
  | { changed: false; version: number }
  | { changed: true; from: number | null; to: number; recreated: string[]; headsRebuilt: number };

/** Every object `init` makes, with the test that it is there (in the DSN's search_path). */
const SCHEMA_PARTS: [name: string, present: string][] = [
  ["table pgfiles", "to_regclass('pgfiles') IS NOT NULL"],
  ["table pgfiles_head", "to_regclass('pgfiles_head') IS NOT NULL"],
  ["table pgfiles_schema", "to_regclass('pgfiles_schema') IS NOT NULL"],
  ["index pgfiles_key_version", "to_regclass('pgfiles_key_version') IS NOT NULL"],
  ["index pgfiles_head_live", "to_regclass('pgfiles_head_live') IS NOT NULL"],
  ["index pgfiles_head_seq", "to_regclass('pgfiles_head_seq') IS NOT NULL"],
  ["sequence pgfiles_change_seq", "to_regclass('pgfiles_change_seq') IS NOT NULL"],
  ...["pgfiles_before_insert", "pgfiles_refresh_head", "pgfiles_notify", "pgfiles_after_delete"].map(
    (f): [string, string] => [`function ${f}`, `to_regproc('${f}') IS NOT NULL`],
  ),
  ...["pgfiles_before_insert", "pgfiles_after_delete", "pgfiles_notify"].map(
    (t): [string, string] => [`trigger ${t}`, `EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = '${t}' AND tgrelid = to_regclass('pgfiles'))`],
  ),
];

/** The parts of the schema that are missing (dropped by hand, or never made). */
export async function missingSchemaParts(sql: Sql): Promise<string[]> {
  const tests = SCHEMA_PARTS.map(([name, present]) => `CASE WHEN ${present} THEN NULL ELSE '${name}' END`).join(", ");
  const [r] = await sql.unsafe(`SELECT array_remove(ARRAY[${tests}]::text[], NULL) AS missing`);
  return r.missing as string[];
}

/** The schema version installed in the database, or null when there is none. */
export async function installedSchemaVersion(sql: Sql): Promise<number | null> {
  const [t] = await sql`SELECT to_regclass('pgfiles_schema') IS NOT NULL AS present`;
  if (!t.present) return null;
  const [r] = await sql`SELECT version FROM pgfiles_schema`;
  return r ? Number(r.version) : null;
}

export async function initSchema(sql: Sql): Promise<InitResult> {
  return await sql.begin(async (tx) => {
    // Serialise concurrent `pgfiles init` runs (transaction-scoped: PgBouncer-safe).
    await tx`SELECT pg_advisory_xact_lock(hashtext('pgfiles init'))`;
    const from = await installedSchemaVersion(tx as unknown as Sql);
    const missing = await missingSchemaParts(tx as unknown as Sql);
    if (from !== null && from >= SCHEMA_VERSION && missing.length === 0) return { changed: false as const, version: from };
    // Every statement is idempotent: what is there stays, what is missing is made.
    await tx.unsafe(schemaSql());
    let headsRebuilt = 0;
    if (missing.includes("table pgfiles_head") && !missing.includes("table pgfiles")) {
      // The head table was dropped under stored versions: one head row per key, from its newest version.
      const rows = await tx.unsafe(`INSERT INTO pgfiles_head (key, id, version, deleted, seq)
        SELECT DISTINCT ON (key COLLATE "C") key, id, (meta->>'version')::bigint,
               COALESCE((meta->>'deleted')::boolean, false), nextval('pgfiles_change_seq')
          FROM pgfiles
         ORDER BY key COLLATE "C", (meta->>'version')::bigint DESC
        ON CONFLICT (key) DO NOTHING`);
      headsRebuilt = rows.count;
    } else if (missing.includes("table pgfiles") && !missing.includes("table pgfiles_head")) {
      // The table of versions was dropped: its head rows point at nothing now.
      await tx.unsafe("DELETE FROM pgfiles_head");
    }
    return { changed: true as const, from, to: SCHEMA_VERSION, recreated: from === null && missing.includes("table pgfiles") ? [] : missing, headsRebuilt };
  });
}

/** Throws (42P01) when the schema was never created; cheap. */
export async function checkSchema(sql: Sql): Promise<void> {
  await sql`SELECT 1 FROM pgfiles_head LIMIT 0`;
}

export async function versions(sql: Sql, key: string): Promise<StoredVersion[]> {
  const rows = await sql`
    SELECT id::text AS id, (meta->>'version')::bigint AS version, meta::text AS meta, COALESCE(octet_length(data), 0)::bigint AS length
      FROM pgfiles WHERE key COLLATE "C" = ${key}
     ORDER BY (meta->>'version')::bigint`;
  return rows.map((r) => ({ id: r.id, version: Number(r.version), meta: r.meta, length: Number(r.length) }));
}

export async function versionOf(sql: Sql, key: string, version: number): Promise<StoredVersion | null> {
  const rows = await sql`
    SELECT id::text AS id, (meta->>'version')::bigint AS version, meta::text AS meta, COALESCE(octet_length(data), 0)::bigint AS length
      FROM pgfiles WHERE key COLLATE "C" = ${key} AND (meta->>'version')::bigint = ${version}`;
  const r = rows[0];
  return r ? { id: r.id, version: Number(r.version), meta: r.meta, length: Number(r.length) } : null;
}

/** The latest version of a key (a tombstone included), through the head table. */
export async function latest(sql: Sql, key: string): Promise<StoredVersion | null> {
  const rows = await sql`
    SELECT p.id::text AS id, h.version, p.meta::text AS meta, COALESCE(octet_length(p.data), 0)::bigint AS length
      FROM pgfiles_head h JOIN pgfiles p ON p.id = h.id
     WHERE h.key = ${key}`;
  const r = rows[0];
  return r ? { id: r.id, version: Number(r.version), meta: r.meta, length: Number(r.length) } : null;
}

/** A byte range of a stored body; with STORAGE EXTERNAL only the TOAST chunks
 * covering the range are read. */
export async function readRange(sql: Sql, id: string, offset: number, length: number): Promise<Uint8Array> {
  const [r] = await sql`SELECT substring(data FROM ${offset + 1} FOR ${length}) AS d FROM pgfiles WHERE id = ${id}::uuid`;
  return r?.d ?? new Uint8Array(0);
}

/** Hard-deletes every version of one key. Returns the ids removed. */
export async function purgeKey(sql: Sql, key: string): Promise<string[]> {
  const rows = await sql`DELETE FROM pgfiles WHERE key COLLATE "C" = ${key} RETURNING id::text AS id`;
  return rows.map((r) => r.id);
}

export async function countPrefix(sql: Sql, prefix: string): Promise<{ rows: number; keys: number }> {
  const [r] = await sql`
    SELECT COUNT(*)::bigint AS rows, COUNT(DISTINCT key)::bigint AS keys
      FROM pgfiles WHERE key COLLATE "C" LIKE ${likePrefix(prefix)}`;
  return { rows: Number(r.rows), keys: Number(r.keys) };
}

/** Hard-deletes every version of every key under prefix, in chunks (each its own
 * transaction) so a large subtree neither holds locks for long nor bloats memory. */
export async function purgePrefix(
  sql: Sql,
  prefix: string,
  onProgress: (deleted: number, ids: string[]) => void,
  chunk = 2000,
): Promise<number> {
  let total = 0;
  for (;;) {
    const rows = await sql`
      DELETE FROM pgfiles WHERE id IN (
        SELECT id FROM pgfiles WHERE key COLLATE "C" LIKE ${likePrefix(prefix)} LIMIT ${chunk})
      RETURNING id::text AS id`;
    if (rows.length === 0) return total;
    total += rows.length;
    onProgress(total, rows.map((r) => r.id));
  }
}

/** Where given version ids landed: id → key and version number (ids not stored are absent). */
export async function storedVersions(sql: Sql, ids: string[]): Promise<Map<string, { key: string; version: number }>> {
  const rows = await sql`
    SELECT id::text AS id, key, (meta->>'version')::bigint AS version FROM pgfiles WHERE id = ANY(${ids}::uuid[])`;
  return new Map(rows.map((r) => [r.id as string, { key: r.key as string, version: Number(r.version) }]));
}

export interface Child {
  /** The child's name (no slashes). */
  name: string;
  /** True for a directory: a marker key "dir/name/" or any live key below it. */
  dir: boolean;
  /** The file's (or the directory marker's) latest version, when the child has one. */
  id: string | null;
  meta: string | null;
  /** Resume point: pass it as `afterKey` to continue after this child. */
  resumeKey: string;
}

/** Immediate children of the directory `dir` ("" or a key ending in "/"), in
 * key order, after the child whose resumeKey is `afterKey`, at most `limit`.
 * Reads only the head table: a loose index scan that jumps over each child
 * directory's subtree, so a huge subtree below one child costs one probe. */
export async function listChildren(sql: Sql, dir: string, afterKey: string | null, limit: number): Promise<Child[]> {
  const pattern = likePrefix(dir);
  const n = dir.length; // characters, as substr() and position() count them
  // The smallest key after `k` that is not inside the child k belongs to:
  // past a child directory "dir/x/…" means >= "dir/x0" ('0' follows '/');
  // past a file "dir/x" means > "dir/x", i.e. >= "dir/x" || chr(1) (keys hold no NUL).
  const first = afterKey === null ? `${dir}` : skipPast(afterKey, n);
  const rows = await sql`
    WITH RECURSIVE walk(key, n) AS (
      (SELECT h.key, 1 FROM pgfiles_head h
        WHERE h.key >= ${first} AND h.key LIKE ${pattern} AND NOT h.deleted
        ORDER BY h.key LIMIT 1)
      UNION ALL
      SELECT (SELECT h.key FROM pgfiles_head h
               WHERE h.key >= (CASE WHEN position('/' IN substr(w.key, ${n} + 1)) > 0
                                    THEN substr(w.key, 1, ${n} + position('/' IN substr(w.key, ${n} + 1)) - 1) || '0'
                                    ELSE w.key || chr(1) END)
                 AND h.key LIKE ${pattern} AND NOT h.deleted
               ORDER BY h.key LIMIT 1), w.n + 1
        FROM walk w WHERE w.key IS NOT NULL AND w.n < ${limit}
    )
    SELECT w.key, p.id::text AS id, p.meta::text AS meta
      FROM walk w
      LEFT JOIN pgfiles_head h ON h.key = w.key
      LEFT JOIN pgfiles p ON p.id = h.id
     WHERE w.key IS NOT NULL
     ORDER BY w.n`;
  return rows.map((r) => {
    const key = r.key as string;
    const rest = key.slice(dir.length);
    const slash = rest.indexOf("/");
    const name = slash < 0 ? rest : rest.slice(0, slash);
    // A hit below the child (not its own marker) says only "a directory is here".
    const own = slash < 0 || slash === rest.length - 1;
    return { name, dir: slash >= 0, id: own ? (r.id as string) : null, meta: own ? (r.meta as string) : null, resumeKey: key };
  });
}

function skipPast(key: string, dirLength: number): string {
  const slash = key.indexOf("/", dirLength);
  return slash >= 0 ? `${key.slice(0, slash)}0` : `${key}\u0001`;
}
