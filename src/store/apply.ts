// Stores a batch of journal versions in one Postgres transaction.
// Puts and deletes stream through binary COPY; copies (restore, copy, tag) are
// INSERT … SELECT so their bodies never leave the server. Versions are numbered
// here under the keys' head-row locks, and ids already stored are skipped, so a
// retried batch is harmless.
import fs from "node:fs";
import { RejectedError } from "../errors.ts";
import type { Sql } from "./connect.ts";
import { COPY_HEADER, COPY_TRAILER, rowPrefix } from "./copy-format.ts";

export interface BatchRow {
  id: string;
  key: string;
  op: "put" | "delete" | "copy";
  meta: string;
  body: Uint8Array | null;
  /** Absolute path of the body file, for large puts. */
  bodyPath: string | null;
  size: number;
  /** Directory markers and symlinks store NULL data; files (even empty) bytea. */
  dataNull: boolean;
  src_id: string | null;
  src_key: string | null;
  src_version: number | null;
}

const CHUNK = 1024 * 1024;

const NO_ID = "00000000-0000-0000-0000-000000000000";

/** Returns id → stored meta (with its version) for every row of the batch.
 *
 * Versions are assigned here, set-based, rather than by the per-row trigger:
 * lock the head rows of every key in the batch (in key order, so two flushers
 * cannot deadlock on each other's order), skip ids already stored (a retried
 * batch), number the rest per key in batch order, insert, move the heads. The
 * transaction-local setting pgfiles.versions_assigned makes the trigger stand
 * aside for these rows only. */
export async function applyBatch(sql: Sql, rows: BatchRow[]): Promise<Map<string, { version: number; meta: string }>> {
  return await sql.begin(async (txx) => {
    const tx = txx as unknown as Sql;
    await tx`SELECT set_config('pgfiles.versions_assigned', 'on', true)`;
    const keys = [...new Set(rows.map((r) => r.key))].sort(byteOrder);
    await tx`
      INSERT INTO pgfiles_head (key, id, version, deleted, seq)
      SELECT k, ${NO_ID}::uuid, 0, true, 0 FROM unnest(${keys}::text[]) AS k ORDER BY k
      ON CONFLICT (key) DO NOTHING`;
    const heads = await tx`SELECT key, version FROM pgfiles_head WHERE key = ANY(${keys}::text[]) ORDER BY key FOR UPDATE`;
    const current = new Map<string, number>(heads.map((h) => [h.key as string, Number(h.version)]));
    // Under the locks, a stored id is final: skip it, keep its version.
    const already = await tx`
      SELECT id::text AS id, meta::text AS meta, (meta->>'version')::bigint AS version
        FROM pgfiles WHERE id = ANY(${rows.map((r) => r.id)}::uuid[])`;
    const out = new Map<string, { version: number; meta: string }>();
    for (const a of already) out.set(a.id, { version: Number(a.version), meta: a.meta });
    const fresh: (BatchRow & { version: number })[] = [];
    for (const r of rows) {
      if (out.has(r.id)) continue;
      const version = (current.get(r.key) ?? 0) + 1;
      current.set(r.key, version);
      const meta = JSON.stringify({ ...JSON.parse(r.meta), version });
      fresh.push({ ...r, meta, version });
    }
    let i = 0;
    while (i < fresh.length) {
      if (fresh[i].op === "copy") {
        const inserted = await insertCopy(tx, fresh[i]);
        if (!inserted) {
          const r = fresh[i];
          const src = r.src_id ? `version ${r.src_id}` : `${r.src_version ? `version ${r.src_version}` : "the latest version"} of ${r.src_key}`;
          throw new RejectedError(`Cannot copy into ${r.key}: ${src} does not exist (or is deleted) in PostgreSQL.`);
        }
        out.set(fresh[i].id, { version: fresh[i].version, meta: inserted });
        i++;
        continue;
      }
      let j = i;
      while (j < fresh.length && fresh[j].op !== "copy") j++;
      await copyRows(tx, fresh.slice(i, j));
      for (const r of fresh.slice(i, j)) out.set(r.id, { version: r.version, meta: r.meta });
      i = j;
    }
    // Each key's head moves to its newest version of this batch.
    const last = new Map<string, BatchRow & { version: number }>();
    for (const r of fresh) last.set(r.key, r);
    if (last.size > 0) {
      const l = [...last.values()];
      await tx`
        UPDATE pgfiles_head h
           SET id = u.id, version = u.version, deleted = u.deleted, seq = nextval('pgfiles_change_seq')
          FROM unnest(${l.map((r) => r.key)}::text[], ${l.map((r) => r.id)}::uuid[], ${l.map((r) => String(r.version))}::text[]::bigint[],
                      ${l.map((r) => (r.op === "delete" || (r.op === "put" && JSON.parse(r.meta).deleted === true) ? "t" : "f"))}::text[]::boolean[])
               AS u(key, id, version, deleted)
         WHERE h.key = u.key`;
    }
    return out;
  });
}

/** Byte order of UTF-8, which is the C collation's order. */
function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

async function copyRows(tx: Sql, rows: BatchRow[]) {
  const w = await tx`COPY pgfiles (id, key, meta, data) FROM STDIN WITH (FORMAT binary)`.writable();
  const done = new Promise<void>((resolve, reject) => {
    w.once("finish", resolve);
    w.once("error", reject);
  });
  // Surface a server error while we are still writing instead of writing into a dead stream.
  let failed: unknown = null;
  w.once("error", (e: unknown) => (failed = e));
  const write = async (buf: Uint8Array) => {
    if (failed) throw failed;
    if (!w.write(buf)) {
      await new Promise<void>((resolve, reject) => {
        const onErr = (e: unknown) => reject(e);
        w.once("drain", () => {
          w.off("error", onErr);
          resolve();
        });
        w.once("error", onErr);
      });
    }
  };
  let pending: Buffer[] = [COPY_HEADER];
  let pendingBytes = COPY_HEADER.length;
  const flushSmall = async () => {
    if (pending.length === 0) return;
    const b = Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    await write(b);
  };
  for (const r of rows) {
    if (r.op === "delete" || r.dataNull) {
      const p = rowPrefix(r.id, r.key, r.meta, -1);
      pending.push(p);
      pendingBytes += p.length;
    } else if (r.bodyPath === null) {
      const body = r.body ?? new Uint8Array(0);
      const p = rowPrefix(r.id, r.key, r.meta, body.length);
      pending.push(p, Buffer.from(body.buffer, body.byteOffset, body.byteLength));
      pendingBytes += p.length + body.length;
    } else {
      pending.push(rowPrefix(r.id, r.key, r.meta, r.size));
      pendingBytes += pending[pending.length - 1].length;
      await flushSmall();
      await streamFile(r.bodyPath, r.size, write);
    }
    if (pendingBytes >= CHUNK) await flushSmall();
  }
  pending.push(COPY_TRAILER);
  pendingBytes += COPY_TRAILER.length;
  await flushSmall();
  w.end();
  await done;
}

async function streamFile(path: string, size: number, write: (b: Uint8Array) => Promise<void>) {
  const fh = await fs.promises.open(path, "r");
  try {
    let left = size;
    while (left > 0) {
      // A fresh buffer per chunk: the socket may still hold the previous one.
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, left));
      const { bytesRead } = await fh.read(buf, 0, buf.length, size - left);
      if (bytesRead === 0) throw new RejectedError(`The journal body file ${path} is shorter than recorded (${size} bytes).`);
      await write(buf.subarray(0, bytesRead));
      left -= bytesRead;
    }
  } finally {
    await fh.close();
  }
}

/** INSERT … SELECT from the source version; returns the stored meta, or null when
 * the source does not exist (or is a deletion). */
async function insertCopy(tx: Sql, r: BatchRow & { version: number }): Promise<string | null> {
  // New meta: the source's, overlaid with this version's own fields; tags merge
  // (a null tag value removes the tag).
  const source = r.src_id
    ? tx`s.id = ${r.src_id}::uuid`
    : r.src_version !== null
      ? tx`s.key COLLATE "C" = ${r.src_key} AND (s.meta->>'version')::bigint = ${r.src_version}`
      : tx`s.id = (SELECT h.id FROM pgfiles_head h WHERE h.key = ${r.src_key})`;
  const rows = await tx`
    INSERT INTO pgfiles (id, key, meta, data)
    SELECT ${r.id}::uuid, ${r.key},
           (s.meta - 'tags') || (m.o - 'tags')
             || CASE WHEN m.tags = '{}'::jsonb THEN '{}'::jsonb ELSE jsonb_build_object('tags', m.tags) END,
           s.data
      FROM pgfiles s,
           LATERAL (SELECT o, jsonb_strip_nulls(COALESCE(s.meta->'tags', '{}') || COALESCE(o->'tags', '{}')) AS tags
                      FROM (SELECT ${r.meta}::text::jsonb AS o) x) m
     WHERE ${source} AND NOT COALESCE((s.meta->>'deleted')::boolean, false)
    RETURNING meta::text AS meta`;
  return rows.length ? (rows[0].meta as string) : null;
}
