// The bytes of one open file, wherever they are: in memory while small, in a
// private staging file once large, or shared read-only with the journal's or
// the cache's own body (memory or file) until the first write.
//
// Small files never touch the disk between open and close: the agent workload
// creates thousands of 1 KiB files, and a staging file per create cost an
// open, a write, a read-back and an unlink (~170 µs of the daemon's time each,
// docs/benchmarks.md). The journal stores bodies up to INLINE_MAX inline, so a
// body that fits stays in memory until it is recorded.
import { createHash, type Hash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fsyncDir, INLINE_MAX } from "../journal/bodies.ts";

/** Private content up to this size is kept in memory; beyond it, in a staging file. */
export const MEMORY_MAX = INLINE_MAX;

export class Content {
  /** Memory mode: the backing buffer (private: grows; shared: the body itself) and the used length. */
  private buf: Uint8Array | null;
  private len: number;
  /** File mode: an open fd and its path (-1 / "" in memory mode). */
  private fd = -1;
  private filePath = "";
  /** Shared with the journal or cache: read-only, never removed by us. */
  private sharedFlag: boolean;
  /** sha256 of bytes [0, hashed) while every write so far continued where the last one ended (a file written
   * front to back, as most are): the version's etag without reading the file again. null once broken. */
  private hasher: Hash | null = null;
  private hashed = 0;

  private constructor(
    /** Where this content goes if it has to become a private file. */
    private readonly stagingPath: string,
    buf: Uint8Array | null,
    len: number,
    shared: boolean,
  ) {
    this.buf = buf;
    this.len = len;
    this.sharedFlag = shared;
  }

  /** Empty private content (a new file, or an O_TRUNC open). */
  static empty(stagingPath: string): Content {
    const c = new Content(stagingPath, new Uint8Array(0), 0, false);
    c.hasher = createHash("sha256");
    return c;
  }

  /** Read-only view of a body held in memory (the journal's or the cache's). */
  static sharedBytes(stagingPath: string, bytes: Uint8Array): Content {
    return new Content(stagingPath, bytes, bytes.length, true);
  }

  /** Read-only use of a body file (the journal's or the cache's). */
  static sharedFile(stagingPath: string, file: string): Content {
    const c = new Content(stagingPath, null, 0, true);
    c.fd = fs.openSync(file, "r");
    c.filePath = file;
    return c;
  }

  /** Private content copied from a body, in memory when small. */
  static copyOf(stagingPath: string, body: { bytes: Uint8Array } | { file: string }, size: number): Content {
    if ("bytes" in body) {
      const c = Content.empty(stagingPath);
      c.write(0, body.bytes);
      return c;
    }
    if (size <= MEMORY_MAX) {
      const bytes = fs.readFileSync(body.file);
      if (bytes.length <= MEMORY_MAX) return Content.copyOf(stagingPath, { bytes }, bytes.length);
    }
    fs.copyFileSync(body.file, stagingPath);
    const c = new Content(stagingPath, null, 0, false);
    c.fd = fs.openSync(stagingPath, "r+");
    c.filePath = stagingPath;
    return c;
  }

  /** Private content copied from an open file descriptor (in memory when small). */
  private static copyOfFd(stagingPath: string, from: number): Content {
    const size = fs.fstatSync(from).size;
    if (size <= MEMORY_MAX) {
      const bytes = Buffer.allocUnsafe(size);
      let n = 0;
      while (n < size) {
        const r = fs.readSync(from, bytes, n, size - n, n);
        if (r === 0) break;
        n += r;
      }
      return Content.copyOf(stagingPath, { bytes: bytes.subarray(0, n) }, n);
    }
    const to = fs.openSync(stagingPath, "w+", 0o600);
    try {
      copyFd(from, to);
    } catch (e) {
      fs.closeSync(to);
      throw e;
    }
    const c = new Content(stagingPath, null, 0, false);
    c.fd = to;
    c.filePath = stagingPath;
    return c;
  }

  get shared(): boolean {
    return this.sharedFlag;
  }

  /** The whole content when it is in memory (for recording it inline), else null. */
  get bytes(): Uint8Array | null {
    return this.buf ? this.buf.subarray(0, this.len) : null;
  }

  /** The file holding the content, when it is in one. */
  get file(): string | null {
    return this.fd >= 0 ? this.filePath : null;
  }

  /** The open fd of the file holding the content (-1 in memory). */
  get descriptor(): number {
    return this.fd;
  }

  size(): number {
    return this.buf ? this.len : fs.fstatSync(this.fd).size;
  }

  read(offset: number, size: number): Uint8Array {
    if (this.buf) return this.buf.subarray(Math.min(offset, this.len), Math.min(offset + size, this.len));
    const out = Buffer.allocUnsafe(size);
    const n = fs.readSync(this.fd, out, 0, size, offset);
    return out.subarray(0, n);
  }

  /** Writes at any offset (a gap reads as zeros); private content only. */
  write(offset: number, data: Uint8Array): number {
    if (this.sharedFlag) throw new Error("write to shared content: privatize first");
    const end = offset + data.length;
    let n: number;
    try {
      if (this.buf && end > MEMORY_MAX) this.spill();
      if (!this.buf) n = fs.writeSync(this.fd, data, 0, data.length, offset);
      else {
        this.reserve(end);
        this.buf.set(data, offset);
        if (end > this.len) this.len = end;
        n = data.length;
      }
    } catch (e) {
      this.hasher = null; // what reached the file is unknown now
      throw e;
    }
    // The running hash follows what was written, front to back only.
    if (this.hasher && offset === this.hashed) {
      this.hasher.update(n === data.length ? data : data.subarray(0, n));
      this.hashed += n;
    } else if (this.hasher && n > 0) this.hasher = null;
    return n;
  }

  truncate(size: number) {
    if (this.sharedFlag) throw new Error("truncate of shared content: privatize first");
    if (size === 0) {
      this.hasher = createHash("sha256");
      this.hashed = 0;
    } else if (size !== this.hashed) this.hasher = null;
    if (this.buf && size > MEMORY_MAX) this.spill();
    if (!this.buf) {
      fs.ftruncateSync(this.fd, size);
      return;
    }
    if (size < this.len) this.buf.fill(0, size, this.len); // a later extension must read zeros
    else this.reserve(size);
    this.len = size;
  }

  /** Shared → private: a copy the writer may change (memory when small). */
  privatize() {
    if (!this.sharedFlag) return;
    if (this.buf) {
      const bytes = this.buf.subarray(0, this.len);
      this.buf = new Uint8Array(0);
      this.len = 0;
      this.sharedFlag = false;
      this.write(0, bytes);
      return;
    }
    // Copied through our fd, not the path: the journal may have evicted or removed that file meanwhile, and
    // the open fd still holds its bytes. The bytes stay the same, and so does a running hash.
    const from = this.fd;
    const c = Content.copyOfFd(this.stagingPath, from);
    fs.closeSync(from);
    this.buf = c.buf;
    this.len = c.len;
    this.fd = c.fd;
    this.filePath = c.filePath;
    this.sharedFlag = false;
  }

  /** Makes private content live in its staging file (large content, or a frontend that needs a file). */
  spill() {
    if (!this.buf || this.sharedFlag) return;
    fs.writeFileSync(this.stagingPath, this.buf.subarray(0, this.len), { mode: 0o600 });
    this.fd = fs.openSync(this.stagingPath, "r+");
    this.filePath = this.stagingPath;
    this.buf = null;
    this.len = 0;
  }

  /** sha256 (hex) of the content when the writes so far allow knowing it without reading it, else null. */
  knownSha256(size: number): string | null {
    return this.hasher && this.hashed === size ? this.hasher.copy().digest("hex") : null;
  }

  /**
   * Gives a private staging file to the journal as a version's body file
   * (`dest`, in the journal's blobs/ on the same filesystem): a rename, not a
   * copy. The content then reads from there, shared, and the next write makes
   * a private copy again. Durable: the file and the directory entry are
   * fsynced. False when the content is not a private file (nothing done).
   */
  handOver(dest: string, durable: boolean): boolean {
    if (this.sharedFlag || this.fd < 0) return false;
    if (durable) fs.fsyncSync(this.fd);
    fs.renameSync(this.filePath, dest);
    if (durable) fsyncDir(path.dirname(dest));
    this.filePath = dest;
    this.sharedFlag = true;
    return true;
  }

  /** Undoes handOver when the version could not be recorded after all (a full disk): the file is our
   * private staging file again, removed at the last close, so it never lingers unreferenced in blobs/. */
  takeBack() {
    if (!this.sharedFlag || this.fd < 0 || this.filePath === this.stagingPath) return;
    fs.renameSync(this.filePath, this.stagingPath);
    this.filePath = this.stagingPath;
    this.sharedFlag = false;
  }

  /** Writes the whole content to a new file `dest`, reading through our own descriptor (the path of a shared
   * body may be gone: the journal evicts or removes its files while we hold them open). */
  copyTo(dest: string) {
    if (this.buf) {
      fs.writeFileSync(dest, this.buf.subarray(0, this.len), { mode: 0o600 });
      return;
    }
    const to = fs.openSync(dest, "w", 0o600);
    try {
      copyFd(this.fd, to);
    } finally {
      fs.closeSync(to);
    }
  }

  /** Closes the file and removes it when it is our private staging file. */
  close() {
    if (this.fd >= 0) {
      fs.closeSync(this.fd);
      if (!this.sharedFlag) fs.rmSync(this.filePath, { force: true });
    }
    this.fd = -1;
    this.buf = null;
    this.len = 0;
  }

  /** Grows the private buffer to hold `size` bytes (zero-filled), doubling to keep appends cheap. */
  private reserve(size: number) {
    const buf = this.buf!;
    if (size <= buf.length) return;
    const next = new Uint8Array(Math.min(MEMORY_MAX, Math.max(size, buf.length * 2, 4096)));
    next.set(buf.subarray(0, this.len));
    this.buf = next;
  }
}

/** Copies everything readable from `from` (from offset 0) into `to` at the same offsets, 1 MiB at a time. */
function copyFd(from: number, to: number) {
  const chunk = Buffer.allocUnsafe(1 << 20);
  for (let pos = 0; ; ) {
    const r = fs.readSync(from, chunk, 0, chunk.length, pos);
    if (r === 0) break;
    fs.writeSync(to, chunk, 0, r, pos);
    pos += r;
  }
}
