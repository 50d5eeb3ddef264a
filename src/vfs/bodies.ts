// Where a version's body is, locally: pending in the journal (read-your-writes),
// else the data cache, else Postgres — fetched in 1 MiB ranges into the cache,
// so reads are served from local disk afterwards and memory stays flat.
import fs from "node:fs";
import type { Journal } from "../journal/journal.ts";
import type { Sql } from "../store/connect.ts";
import { readRange } from "../store/store.ts";
import { Errno, VfsError } from "./types.ts";

export type LocalBody = { bytes: Uint8Array } | { file: string };

const RANGE = 1024 * 1024;

export async function localBody(journal: Journal, sql: Sql | null, id: string, size: number): Promise<LocalBody> {
  const pending = journal.pendingById(id);
  // A pending version whose body file is gone was stored in Postgres already (the file is dropped only then,
  // on a full disk): read it like any flushed version.
  if (pending && !(pending.body_file && !fs.existsSync(journal.bodies.pathOf(pending.body_file)))) {
    if (pending.body_file) return { file: journal.bodies.pathOf(pending.body_file) };
    if (pending.body) return { bytes: pending.body };
    if (pending.op !== "copy") return { bytes: new Uint8Array(0) };
    // A pending copy (rename, chmod, restore) shows its source's body.
    if (pending.src_id) return localBody(journal, sql, pending.src_id, size);
    // A copy whose source is resolved in Postgres at flush: fall through to the store.
  }
  const cached = journal.cached(id);
  if (cached) return cached.file ? { file: journal.bodies.pathOf(cached.file) } : { bytes: cached.body ?? new Uint8Array(0) };
  if (!sql) throw new VfsError(Errno.EIO, "The file's content is not cached locally and PostgreSQL is unreachable.");
  if (size <= 128 * 1024) {
    const bytes = await readRange(sql, id, 0, Math.max(size, 1));
    if (bytes.length < size) throw short(id, bytes.length, size);
    journal.cachePut(id, { inline: bytes, size: bytes.length, etag: "" });
    return { bytes };
  }
  const tmp = journal.bodies.pathOf(`tmp-fetch-${id}-${process.pid}`);
  const fd = fs.openSync(tmp, "w", 0o600);
  try {
    let got = 0;
    for (let off = 0; off < size; off += RANGE) {
      const chunk = await readRange(sql, id, off, Math.min(RANGE, size - off));
      if (chunk.length === 0) break;
      fs.writeSync(fd, chunk, 0, chunk.length, off);
      got += chunk.length;
    }
    // Never a file that reads shorter than the size the mount shows: an error instead.
    if (got < size) throw short(id, got, size);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, journal.bodies.pathOf(id));
  journal.cachePut(id, { file: id, size, etag: "" });
  return { file: journal.bodies.pathOf(id) };
}

function short(id: string, got: number, size: number): VfsError {
  return new VfsError(Errno.EIO, `PostgreSQL has ${got} of the ${size} bytes of version ${id} (it was purged or replaced); the mount shows it until its next reload.`);
}
