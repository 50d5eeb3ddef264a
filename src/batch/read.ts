// Reads a batch (stdin or a file) as bytes, in chunks, with limits checked
// while reading: a line longer than MAX_LINE_BYTES or an input larger than
// MAX_BATCH_BYTES is refused before it is held in memory, and a line that is
// not valid UTF-8 is refused by its number (the mount refuses such names too;
// decoding them leniently would store U+FFFD instead).
import fs from "node:fs";
import { BatchSyntaxError } from "./parse.ts";

/** One line of a batch (a `put`'s inline text or base64 included); larger bodies go through put-file. */
export const MAX_LINE_BYTES = 64 * 1024 * 1024;
/** A whole batch. */
export const MAX_BATCH_BYTES = 1024 * 1024 * 1024;

export class BatchInputError extends Error {}

/** fd: an open descriptor (0 for stdin). Returns the batch as text. */
export function readBatch(fd: number, limits = { line: MAX_LINE_BYTES, total: MAX_BATCH_BYTES }): string {
  const chunks: Buffer[] = [];
  let total = 0;
  let line = 1;
  let lineBytes = 0;
  const chunk = Buffer.allocUnsafe(1 << 20);
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(fd, chunk, 0, chunk.length, null);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EAGAIN") continue; // a non-blocking stdin: wait for more
      if (code === "EOF") break;
      throw e;
    }
    if (n === 0) break;
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      const end = nl === -1 || nl >= n ? n : nl;
      lineBytes += end - start;
      if (lineBytes > limits.line) {
        throw new BatchSyntaxError(line, `the line is longer than ${limits.line / 1048576} MiB; put larger bodies in a file and use put-file.`);
      }
      if (end === n) break;
      line++;
      lineBytes = 0;
      start = end + 1;
    }
    total += n;
    if (total > limits.total) throw new BatchInputError(`The batch is larger than ${limits.total / 1073741824} GiB; split it, or use put-file for large bodies.`);
    chunks.push(Buffer.from(chunk.subarray(0, n)));
  }
  const bytes = Buffer.concat(chunks);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    // Name the first line that does not decode.
    let ln = 1;
    let from = 0;
    const strict = new TextDecoder("utf-8", { fatal: true });
    for (;;) {
      const nl = bytes.indexOf(10, from);
      const to = nl === -1 ? bytes.length : nl;
      try {
        strict.decode(bytes.subarray(from, to));
      } catch {
        throw new BatchSyntaxError(ln, "the line is not valid UTF-8; names and text must be UTF-8 (use put-base64 or put-file for binary bodies).");
      }
      if (nl === -1) break;
      ln++;
      from = nl + 1;
    }
    throw new BatchSyntaxError(ln, "the batch is not valid UTF-8.");
  }
}
