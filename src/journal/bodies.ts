// Bodies of versions: small ones inline in SQLite, large ones as files in blobs/.
// The threshold comes from measurements recorded in docs/storage.md.
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { PgfilesError } from "../errors.ts";
import { MAX_FILE_SIZE } from "../meta.ts";

/** Bodies up to this size live inline in the journal database. */
export const INLINE_MAX = 128 * 1024;
const CHUNK = 1024 * 1024;

/** A body ready to be recorded: either inline bytes or a file already in blobs/. */
export interface StagedBody {
  inline?: Uint8Array;
  file?: string;
  size: number;
  etag: string;
}

export function tooLarge(size: number, what: string): PgfilesError {
  return new PgfilesError(
    `${what} is ${size} bytes; the largest file pgfiles can store is ${MAX_FILE_SIZE} bytes (1023 MiB), because one PostgreSQL bytea value holds at most 1 GB.`,
    { errno: "EFBIG" },
  );
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export class BodyStore {
  constructor(readonly dir: string) {}

  pathOf(file: string): string {
    return path.join(this.dir, file);
  }

  /** Gives an existing body file a second name (a hard link: no copy); false when that is impossible. */
  link(file: string, as: string): boolean {
    try {
      fs.linkSync(this.pathOf(file), this.pathOf(as));
      return true;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === "EEXIST";
    }
  }

  /** Stages bytes held in memory. */
  fromBytes(id: string, bytes: Uint8Array, durable: boolean): StagedBody {
    if (bytes.length > MAX_FILE_SIZE) throw tooLarge(bytes.length, "The body");
    const etag = sha256Hex(bytes);
    if (bytes.length <= INLINE_MAX) return { inline: bytes, size: bytes.length, etag };
    const file = this.writeFile(id, (fd) => fs.writeSync(fd, bytes), durable);
    return { file, size: bytes.length, etag };
  }

  /** Stages a local file by streaming it into the journal (never whole in memory). */
  fromLocalFile(id: string, source: string, durable: boolean): StagedBody {
    let st: fs.Stats;
    try {
      st = fs.statSync(source);
    } catch {
      throw new PgfilesError(`Cannot read ${source}: no such file.`, { errno: "ENOENT" });
    }
    if (!st.isFile()) throw new PgfilesError(`${source} is not a regular file.`, { errno: "EINVAL" });
    if (st.size > MAX_FILE_SIZE) throw tooLarge(st.size, source);
    if (st.size <= INLINE_MAX) return this.fromBytes(id, fs.readFileSync(source), durable);
    const hash = createHash("sha256");
    let size = 0;
    const file = this.writeFile(
      id,
      (fd) => {
        const src = fs.openSync(source, "r");
        const buf = Buffer.allocUnsafe(CHUNK);
        try {
          for (;;) {
            const n = fs.readSync(src, buf, 0, CHUNK, null);
            if (n === 0) break;
            size += n;
            if (size > MAX_FILE_SIZE) throw tooLarge(size, source);
            hash.update(buf.subarray(0, n));
            fs.writeSync(fd, buf, 0, n);
          }
        } finally {
          fs.closeSync(src);
        }
      },
      durable,
    );
    return { file, size, etag: hash.digest("hex") };
  }

  /** Writes tmp-<id>, fsyncs when durable, renames to <id>: a body file that
   * exists under its final name is always complete. */
  private writeFile(id: string, fill: (fd: number) => void, durable: boolean): string {
    const tmp = this.pathOf(`tmp-${id}`);
    const fd = fs.openSync(tmp, "w", 0o600);
    try {
      fill(fd);
      if (durable) fs.fsyncSync(fd);
    } catch (e) {
      fs.closeSync(fd);
      fs.rmSync(tmp, { force: true });
      if ((e as NodeJS.ErrnoException).code === "ENOSPC") {
        throw new PgfilesError(`The cache directory's disk is full (${this.dir}); free space and try again.`, { errno: "ENOSPC", cause: e });
      }
      throw e;
    }
    fs.closeSync(fd);
    fs.renameSync(tmp, this.pathOf(id));
    if (durable) fsyncDir(this.dir);
    return id;
  }

  /** Reads a range of a body file. */
  readFileRange(file: string, offset: number, length: number): Buffer {
    const fd = fs.openSync(this.pathOf(file), "r");
    try {
      const buf = Buffer.allocUnsafe(length);
      const n = fs.readSync(fd, buf, 0, length, offset);
      return buf.subarray(0, n);
    } finally {
      fs.closeSync(fd);
    }
  }

  remove(file: string) {
    fs.rmSync(this.pathOf(file), { force: true });
  }

  /** Removes files nobody references any more: abandoned tmp-* files and bodies
   * whose row is gone (a crash between rename and commit). Only files older than
   * `graceMs` are touched, so a writer in another process is never raced. */
  collectGarbage(referenced: (file: string) => boolean, graceMs = 60 * 60 * 1000): number {
    let removed = 0;
    const cutoff = Date.now() - graceMs;
    for (const name of fs.readdirSync(this.dir)) {
      const p = this.pathOf(name);
      let st: fs.Stats;
      try {
        st = fs.statSync(p);
      } catch {
        continue;
      }
      if (st.mtimeMs > cutoff) continue;
      if (name.startsWith("tmp-") || !referenced(name)) {
        fs.rmSync(p, { force: true });
        removed++;
      }
    }
    return removed;
  }
}

/** fsync(2) of a file or directory by path. */
export function fsyncPath(p: string) {
  const fd = fs.openSync(p, "r");
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export function fsyncDir(dir: string) {
  fsyncPath(dir);
}
