// PostgreSQL's binary COPY format for rows of pgfiles (id uuid, key text, meta jsonb, data bytea).
// COPY lets a body stream from disk into the server in chunks, so a 1 GiB file
// never sits whole in our memory.

export const COPY_HEADER = Buffer.concat([Buffer.from("PGCOPY\n\xff\r\n\0", "latin1"), Buffer.alloc(8)]);
export const COPY_TRAILER = Buffer.from([0xff, 0xff]);

export function uuidBytes(id: string): Buffer {
  const hex = id.replace(/-/g, "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new Error(`not a UUID: ${id}`);
  return Buffer.from(hex, "hex");
}

/** Everything of one row up to (and including) the length word of `data`; the
 * body itself follows as raw bytes. dataLength -1 means NULL. */
export function rowPrefix(id: string, key: string, metaJson: string, dataLength: number): Buffer {
  const k = Buffer.from(key, "utf8");
  const m = Buffer.from(metaJson, "utf8");
  const out = Buffer.allocUnsafe(2 + 4 + 16 + 4 + k.length + 4 + 1 + m.length + 4);
  let o = out.writeInt16BE(4, 0);
  o = out.writeInt32BE(16, o);
  o += uuidBytes(id).copy(out, o);
  o = out.writeInt32BE(k.length, o);
  o += k.copy(out, o);
  o = out.writeInt32BE(m.length + 1, o);
  o = out.writeUInt8(1, o); // jsonb binary format version
  o += m.copy(out, o);
  out.writeInt32BE(dataLength, o);
  return out;
}
