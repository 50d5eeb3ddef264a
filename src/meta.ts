// The shape of `meta`, the JSON document stored with every version. This is a
// published format (docs/meta.md): SQL users, backups and analytics read it, so
// fields are only ever added, never renamed.

export type EntryType = "file" | "dir" | "symlink";

export interface Meta {
  /** Per-key version number, assigned by Postgres when the version is stored. */
  version?: number;
  /** True for a tombstone: the key was deleted in this version. */
  deleted: boolean;
  type: EntryType;
  /** Body length in bytes (0 for directories, symlinks and tombstones). */
  size: number;
  /** sha256 of the body, lowercase hex; absent for directories and tombstones. */
  etag?: string;
  content_type?: string;
  /** Permission bits (e.g. 420 = 0644), without the file type bits. */
  mode: number;
  uid: number;
  gid: number;
  /** RFC 3339 timestamps in UTC with up to nanosecond precision. */
  mtime: string;
  ctime: string;
  /** When this version was recorded. */
  created: string;
  /** Symlink target, for type "symlink". */
  target?: string;
  /** User tags (user.* extended attributes map here, without the "user." prefix). */
  tags?: Record<string, string>;
}

/** The largest body one bytea value can take in a row, rounded down to leave room for
 * the row's other columns: PostgreSQL refuses any single allocation above 1 GB - 1. */
export const MAX_FILE_SIZE = 1024 * 1024 * 1024 - 1024 * 1024; // 1023 MiB

const CONTENT_TYPES: Record<string, string> = {
  txt: "text/plain", md: "text/markdown", csv: "text/csv", tsv: "text/tab-separated-values",
  html: "text/html", htm: "text/html", css: "text/css", xml: "application/xml",
  js: "text/javascript", mjs: "text/javascript", cjs: "text/javascript", ts: "text/typescript",
  tsx: "text/typescript", jsx: "text/javascript", json: "application/json", jsonl: "application/jsonl",
  ndjson: "application/x-ndjson", yaml: "application/yaml", yml: "application/yaml", toml: "application/toml",
  py: "text/x-python", rb: "text/x-ruby", go: "text/x-go", rs: "text/x-rust", c: "text/x-c", h: "text/x-c",
  cpp: "text/x-c++", java: "text/x-java", sh: "application/x-sh", sql: "application/sql", log: "text/plain",
  ini: "text/plain", cfg: "text/plain", conf: "text/plain",
  png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", gif: "image/gif", webp: "image/webp",
  svg: "image/svg+xml", ico: "image/x-icon", pdf: "application/pdf", zip: "application/zip",
  gz: "application/gzip", tgz: "application/gzip", tar: "application/x-tar", bz2: "application/x-bzip2",
  xz: "application/x-xz", zst: "application/zstd", wasm: "application/wasm", mp3: "audio/mpeg",
  wav: "audio/wav", mp4: "video/mp4", webm: "video/webm", parquet: "application/vnd.apache.parquet",
};

export function contentTypeFor(name: string): string {
  const base = name.slice(name.lastIndexOf("/") + 1);
  const dot = base.lastIndexOf(".");
  if (dot <= 0) return "application/octet-stream";
  return CONTENT_TYPES[base.slice(dot + 1).toLowerCase()] ?? "application/octet-stream";
}

/** Now, in nanoseconds since the epoch (millisecond resolution). */
export function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

/** Current time as RFC 3339 with nanoseconds. */
export function nowStamp(): string {
  return stampFromNs(BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n));
}

export function stampFromNs(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  const frac = (ns % 1_000_000_000n).toString().padStart(9, "0");
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, `.${frac}Z`);
}

/** Nanoseconds since the epoch from an RFC 3339 stamp (any fraction length). */
export function nsFromStamp(stamp: string): bigint {
  const m = /^(.*?)(?:\.(\d+))?Z$/.exec(stamp);
  if (!m) return BigInt(Date.parse(stamp)) * 1_000_000n;
  const secs = BigInt(Date.parse(`${m[1]}Z`)) / 1000n;
  const frac = BigInt((m[2] ?? "").padEnd(9, "0").slice(0, 9) || "0");
  return secs * 1_000_000_000n + frac;
}

function owner() {
  return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
}

export function fileMeta(name: string, size: number, etag: string, extra: Partial<Meta> = {}): Meta {
  const now = nowStamp();
  return {
    deleted: false, type: "file", size, etag, content_type: contentTypeFor(name),
    mode: 0o644, ...owner(), mtime: now, ctime: now, created: now, ...extra,
  };
}

export function dirMeta(extra: Partial<Meta> = {}): Meta {
  const now = nowStamp();
  return { deleted: false, type: "dir", size: 0, mode: 0o755, ...owner(), mtime: now, ctime: now, created: now, ...extra };
}

export function tombstoneMeta(type: EntryType): Meta {
  const now = nowStamp();
  return { deleted: true, type, size: 0, mode: 0, ...owner(), mtime: now, ctime: now, created: now };
}

/** Fields a server-side copy (restore, copy, tag) takes from its source; everything
 * else comes from the new version's own meta. */
export const COPIED_FIELDS = ["type", "size", "etag", "content_type", "mode", "target", "tags"] as const;

export function parseMeta(text: string | object): Meta {
  return (typeof text === "string" ? JSON.parse(text) : text) as Meta;
}
