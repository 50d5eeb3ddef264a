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

export type InitResult = { changed: false; version: number } | { changed: true; from: number | null; to: number };

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
    if (from !== null && from >= SCHEMA_VERSION) return { changed: false as const, version: from };
    await tx.unsafe(schemaSql());
    return { changed: true as const, from, to: SCHEMA_VERSION };
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
