// Stores a batch of journal versions in one Postgres transaction.
// Puts and deletes stream through binary COPY; copies (restore, copy, tag) are
// INSERT … SELECT so their bodies never leave the server. The trigger assigns
// meta.version and skips ids already stored, so a retried batch is harmless.
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

/** Returns id → stored meta (with its version) for every row of the batch. */
export async function applyBatch(sql: Sql, rows: BatchRow[]): Promise<Map<string, { version: number; meta: string }>> {
  return await sql.begin(async (tx) => {
    let i = 0;
    while (i < rows.length) {
      if (rows[i].op === "copy") {
        await insertCopy(tx as unknown as Sql, rows[i]);
        i++;
        continue;
      }
      let j = i;
      while (j < rows.length && rows[j].op !== "copy") j++;
      await copyRows(tx as unknown as Sql, rows.slice(i, j));
      i = j;
    }
    const ids = rows.map((r) => r.id);
    const stored = await tx`
      SELECT id::text AS id, meta::text AS meta, (meta->>'version')::bigint AS version
        FROM pgfiles WHERE id = ANY(${ids}::uuid[])`;
    const out = new Map<string, { version: number; meta: string }>();
    for (const s of stored) out.set(s.id, { version: Number(s.version), meta: s.meta });
    for (const r of rows) {
      if (!out.has(r.id)) {
        const src = r.src_id ? `version ${r.src_id}` : `${r.src_version ? `version ${r.src_version}` : "the latest version"} of ${r.src_key}`;
        throw new RejectedError(`Cannot copy into ${r.key}: ${src} does not exist (or is deleted) in PostgreSQL.`);
      }
    }
    return out;
  });
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

async function insertCopy(tx: Sql, r: BatchRow) {
  // New meta: the source's, minus its version, overlaid with this version's own
  // fields; tags merge (a null tag value removes the tag).
  const source = r.src_id
    ? tx`s.id = ${r.src_id}::uuid`
    : r.src_version !== null
      ? tx`s.key COLLATE "C" = ${r.src_key} AND (s.meta->>'version')::bigint = ${r.src_version}`
      : tx`s.id = (SELECT h.id FROM pgfiles_head h WHERE h.key = ${r.src_key})`;
  await tx`
    INSERT INTO pgfiles (id, key, meta, data)
    SELECT ${r.id}::uuid, ${r.key},
           (s.meta - 'version' - 'tags') || (m.o - 'tags')
             || CASE WHEN m.tags = '{}'::jsonb THEN '{}'::jsonb ELSE jsonb_build_object('tags', m.tags) END,
           s.data
      FROM pgfiles s,
           LATERAL (SELECT o, jsonb_strip_nulls(COALESCE(s.meta->'tags', '{}') || COALESCE(o->'tags', '{}')) AS tags
                      FROM (SELECT ${r.meta}::text::jsonb AS o) x) m
     WHERE ${source} AND NOT COALESCE((s.meta->>'deleted')::boolean, false)`;
}
