// `pgfiles config show`: the resolved settings with their sources, DSN masked.

import { formatDuration, formatSize } from "./parse";
import { SETTINGS, type Config, type Resolved } from "./resolve";

const MASK = "****";

/**
 * Masks the password in a DSN. URL form: postgres://user:secret@host/db ->
 * postgres://user:****@host/db, and any ?password= / sslpassword= query
 * parameter. Keyword form: "host=x password=secret" -> "host=x password=****".
 * When in doubt it masks more, never less.
 */
export function maskDsn(dsn: string): string {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(dsn);
  if (scheme) {
    // Query parameters first, so an "@" inside ?password=... is gone before
    // the user info is looked for.
    let rest = dsn.slice(scheme[0].length).replace(/([?&][^=&#]*password=)[^&#]*/gi, `$1${MASK}`);
    // The user info ends at the last "@": an unencoded "@", "/" or "?" in a
    // password must not let the secret escape the mask (an "@" elsewhere in
    // the query makes it mask too much, which is the safe side).
    const at = rest.lastIndexOf("@");
    if (at >= 0) {
      const userinfo = rest.slice(0, at);
      const colon = userinfo.indexOf(":");
      if (colon >= 0) rest = userinfo.slice(0, colon + 1) + MASK + rest.slice(at);
    }
    return scheme[0] + rest;
  }
  // libpq keyword/value form: values are 'single-quoted' (with \ escapes) or run to whitespace.
  return dsn.replace(/(\b\w*password\s*=\s*)('(?:[^'\\]|\\.)*(?:'|\\?$)|[^\s']\S*|(?=\s|$))/gi, `$1${MASK}`);
}

function display(field: keyof Config, value: unknown): { text: string; json: unknown } {
  if (value === undefined) return { text: "(not set)", json: null };
  switch (field) {
    case "dsn": {
      const masked = maskDsn(String(value));
      return { text: masked, json: masked };
    }
    case "cacheMaxSize":
      return { text: `${value} bytes (${formatSize(value as number)})`, json: value };
    case "metadataTtlMs":
      return { text: `${value} ms (${formatDuration(value as number)})`, json: value };
    case "prefix":
      return { text: value === "" ? '"" (whole table)' : JSON.stringify(value), json: value };
    default:
      return { text: String(value), json: value };
  }
}

/** Text for `pgfiles config show`, or a JSON object when json is true. The DSN password never appears. */
export function formatConfig(r: Resolved, json: boolean): string {
  if (json) {
    const settings: Record<string, { value: unknown; source: string }> = {};
    for (const s of SETTINGS) {
      settings[s.env] = { value: display(s.field, r.config[s.field]).json, source: r.sources[s.field] };
    }
    return JSON.stringify({ settings, configFile: r.configFile, configFileFound: r.configFileFound }, null, 2);
  }
  const width = Math.max(...SETTINGS.map((s) => s.env.length));
  const rows = SETTINGS.map((s) => ({
    env: s.env,
    value: display(s.field, r.config[s.field]).text,
    source: r.sources[s.field] === "config file" ? `config file ${r.configFile}` : r.sources[s.field],
  }));
  const vwidth = Math.min(60, Math.max(...rows.map((row) => row.value.length)));
  const lines = rows.map((row) => `${row.env.padEnd(width)}  ${row.value.padEnd(vwidth)}  (${row.source})`);
  lines.push(`config file: ${r.configFile}${r.configFileFound ? "" : " (not found)"}`);
  return lines.join("\n");
}
