// Connection strings: the libpq keyword form (`host=... dbname=... password=...`)
// next to the URL form, and what part of a DSN names the table it writes.
import { PgfilesError } from "../errors";

/** True for `postgres://` / `postgresql://` URLs. */
export function isUrlDsn(dsn: string): boolean {
  return /^postgres(ql)?:\/\//i.test(dsn.trim());
}

/** Keywords of the libpq form that pgfiles understands. */
const KEYWORDS = new Set([
  "host", "hostaddr", "port", "dbname", "user", "password", "sslmode", "connect_timeout", "application_name", "options",
  "target_session_attrs",
]);

function urlNeeded(why: string): PgfilesError {
  return new PgfilesError(
    `The connection string ${why}; write it as a URL instead: postgres://user:password@host:5432/database.`,
    { exitCode: 2, errno: "EINVAL" },
  );
}

function badUrl(why: string): PgfilesError {
  return new PgfilesError(`The connection string ${why}; the form is postgres://user:password@host:5432/database.`, { exitCode: 2, errno: "EINVAL" });
}

/**
 * Parses a libpq keyword/value connection string by libpq's rules: `key = value`
 * pairs separated by whitespace; a value is 'single-quoted' (where \' and \\
 * are escapes) or runs to the next whitespace (where a backslash escapes the
 * next character). Messages never quote a value (one may be the password).
 */
export function parseKeywordDsn(dsn: string): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  const n = dsn.length;
  const space = (c: string) => c === " " || c === "\t" || c === "\n" || c === "\r" || c === "\f" || c === "\v";
  for (;;) {
    while (i < n && space(dsn[i])) i++;
    if (i >= n) break;
    const start = i;
    while (i < n && dsn[i] !== "=" && !space(dsn[i])) i++;
    const key = dsn.slice(start, i);
    while (i < n && space(dsn[i])) i++;
    if (dsn[i] !== "=" || !/^[A-Za-z_]+$/.test(key)) throw urlNeeded(`is neither a URL nor libpq keyword=value pairs (near ${JSON.stringify(key.slice(0, 40))})`);
    i++;
    while (i < n && space(dsn[i])) i++;
    let value = "";
    if (dsn[i] === "'") {
      i++;
      for (;;) {
        if (i >= n) throw urlNeeded(`has an unterminated quoted value for ${key}`);
        const c = dsn[i];
        if (c === "\\" && i + 1 < n) {
          value += dsn[i + 1];
          i += 2;
        } else if (c === "'") {
          i++;
          break;
        } else {
          value += c;
          i++;
        }
      }
    } else {
      while (i < n && !space(dsn[i])) {
        if (dsn[i] === "\\" && i + 1 < n) {
          value += dsn[i + 1];
          i += 2;
        } else value += dsn[i++];
      }
    }
    const k = key.toLowerCase();
    if (!KEYWORDS.has(k)) throw urlNeeded(`has the keyword ${JSON.stringify(key)}, which pgfiles does not take in keyword form`);
    out[k] = value;
  }
  return out;
}

/** The postgres.js options a keyword DSN stands for (a socket directory as host works too). */
export function keywordOptions(kv: Record<string, string>): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  const host = kv.hostaddr || kv.host;
  if (host) o.host = host;
  if (kv.port) {
    if (!/^\d+$/.test(kv.port)) throw urlNeeded("has a port that is not a number");
    o.port = Number(kv.port);
  }
  if (kv.dbname) o.database = kv.dbname;
  if (kv.user) o.username = kv.user;
  if (kv.password !== undefined) o.password = kv.password;
  if (kv.sslmode && kv.sslmode !== "disable") o.ssl = kv.sslmode;
  if (kv.target_session_attrs) o.target_session_attrs = kv.target_session_attrs;
  const connection: Record<string, string> = {};
  if (kv.options) connection.options = kv.options;
  if (kv.application_name) connection.application_name = kv.application_name;
  o.connection = connection;
  return o;
}

/**
 * The settings of a DSN that change which table an unqualified name means
 * (search_path, options such as `-csearch_path=other`), in a fixed order:
 * "" when it has none. Two DSNs that differ here write different tables.
 */
export function tableSelectors(dsn: string): string {
  let pairs: [string, string][] = [];
  if (isUrlDsn(dsn)) {
    try {
      pairs = [...new URL(dsn.trim()).searchParams].map(([k, v]) => [k.toLowerCase(), v]);
    } catch {
      return "";
    }
  } else {
    try {
      pairs = Object.entries(parseKeywordDsn(dsn));
    } catch {
      return "";
    }
  }
  const chosen = pairs.filter(([k]) => k === "search_path" || k === "options").sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return chosen.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&");
}

/** host:port/db of a DSN, for messages (never the password). */
export function dsnHost(dsn: string): string {
  if (isUrlDsn(dsn)) {
    try {
      const u = new URL(dsn.trim());
      return `${u.hostname || "localhost"}:${u.port || "5432"}${u.pathname}`;
    } catch {
      return "the configured server";
    }
  }
  try {
    const kv = parseKeywordDsn(dsn);
    return `${kv.hostaddr || kv.host || "localhost"}:${kv.port || "5432"}/${kv.dbname ?? kv.user ?? ""}`;
  } catch {
    return "the configured server";
  }
}

/** The password a DSN carries (as written and decoded), for scrubbing text; [] when none. */
export function dsnPasswords(dsn: string): string[] {
  const out = new Set<string>();
  if (isUrlDsn(dsn)) {
    const m = /^[a-z]+:\/\/([^@/?#]*:)?([^@]*)@/i.exec(dsn.trim());
    if (m?.[1] && m[2]) out.add(m[2]);
    try {
      const u = new URL(dsn.trim());
      if (u.password) {
        out.add(u.password);
        out.add(decodeURIComponent(u.password));
      }
      for (const [k, v] of u.searchParams) if (/password$/i.test(k) && v) out.add(v);
    } catch {}
  } else {
    try {
      const kv = parseKeywordDsn(dsn);
      if (kv.password) out.add(kv.password);
    } catch {}
  }
  return [...out].filter((p) => p.length > 0);
}

/** Text with every password of these DSNs replaced by ****. */
export function scrubPasswords(text: string, dsns: (string | undefined)[]): string {
  let t = text;
  for (const d of dsns) if (d) for (const p of dsnPasswords(d)) t = t.split(p).join("****");
  return t;
}

/** Refuses, in one sentence that never quotes the password, a DSN that cannot be used. */
export function checkDsn(dsn: string): string {
  if (isUrlDsn(dsn)) {
    let u: URL;
    try {
      u = new URL(dsn.trim());
    } catch {
      throw badUrl("is not a valid URL (does the password hold a character that must be percent-encoded, such as a space, @ or /?)");
    }
    try {
      decodeURIComponent(u.username);
      decodeURIComponent(u.password);
      decodeURIComponent(u.pathname);
      decodeURIComponent(u.search);
    } catch {
      throw badUrl("has a % that is not followed by two hex digits (write a % in the password as %25)");
    }
    return dsn;
  }
  if (/=/.test(dsn)) parseKeywordDsn(dsn);
  return dsn;
}
