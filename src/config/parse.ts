// Value parsers and formatters for settings: sizes, durations, booleans,
// integers, log levels. Parsers throw ValueError, which carries the reason and
// the accepted form separately so resolveConfig can name the setting.

export class ValueError extends Error {
  /** e.g. "is not a size" */
  readonly reason: string;
  /** e.g. "a number with a unit such as 512MiB or 1GB" */
  readonly accepted: string;
  constructor(text: string, reason: string, accepted: string) {
    super(`${JSON.stringify(text)} ${reason}; use ${accepted}.`);
    this.name = "ValueError";
    this.reason = reason;
    this.accepted = accepted;
  }
}

export const SIZE_FORM = "a number with a unit such as 512MiB or 1GB";
export const DURATION_FORM = "a number with a unit such as 250ms, 30s, 5m, 2h, 1d or 1m30s";
export const BOOLEAN_FORM = "true or false (also yes/no, on/off, 1/0)";
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  k: 2 ** 10,
  kib: 2 ** 10,
  m: 2 ** 20,
  mib: 2 ** 20,
  g: 2 ** 30,
  gib: 2 ** 30,
  t: 2 ** 40,
  tib: 2 ** 40,
};

/** Parses "512", "512B", "1KB" (1000), "1KiB"/"1K" (1024), "1.5GiB"... into bytes (floored). */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new ValueError(text, "is not a size", SIZE_FORM);
  const bytes = Math.floor(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes)) throw new ValueError(text, "is too large", SIZE_FORM);
  return bytes;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "250ms", "30s", "5m", "2h", "1d", "1m30s", or a bare number of seconds into milliseconds. */
export function parseDuration(text: string): number {
  const t = text.trim();
  let ms: number;
  if (/^(\d+(?:\.\d*)?|\.\d+)$/.test(t)) {
    ms = Number(t) * 1000;
  } else if (/^(?:(?:\d+(?:\.\d*)?|\.\d+)\s*(?:ms|s|m|h|d)\s*)+$/i.test(t)) {
    ms = 0;
    for (const part of t.matchAll(/(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)/gi)) {
      ms += Number(part[1]) * DURATION_UNITS[part[2].toLowerCase()];
    }
  } else {
    throw new ValueError(text, "is not a duration", DURATION_FORM);
  }
  ms = Math.round(ms);
  if (!Number.isSafeInteger(ms)) throw new ValueError(text, "is too long", DURATION_FORM);
  return ms;
}

const TRUE = new Set(["true", "1", "yes", "on"]);
const FALSE = new Set(["false", "0", "no", "off"]);

export function parseBoolean(text: string): boolean {
  const t = text.trim().toLowerCase();
  if (TRUE.has(t)) return true;
  if (FALSE.has(t)) return false;
  throw new ValueError(text, "is not a boolean", BOOLEAN_FORM);
}

export function parseInteger(text: string, min: number, max: number, example: number): number {
  const accepted = `a whole number from ${min} to ${max} such as ${example}`;
  const t = text.trim();
  if (!/^\d+$/.test(t)) throw new ValueError(text, "is not a whole number", accepted);
  const n = Number(t);
  if (n < min || n > max) throw new ValueError(text, "is out of range", accepted);
  return n;
}

export function parseLogLevel(text: string): LogLevel {
  const t = text.trim().toLowerCase();
  const level = LOG_LEVELS.find((l) => l === t);
  if (!level) throw new ValueError(text, "is not a log level", `one of ${LOG_LEVELS.join(", ")}`);
  return level;
}

const BIN = ["KiB", "MiB", "GiB", "TiB", "PiB"];
const DEC = ["KB", "MB", "GB", "TB", "PB"];

/** Human-readable size: exact units when possible ("1 GB", "512 MiB"), else one decimal ("117.7 MiB"). */
export function formatSize(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  const sign = bytes < 0 ? "-" : "";
  const b = Math.abs(Math.round(bytes));
  // The largest unit that shows the value exactly with at most one decimal.
  for (let i = BIN.length; i >= 1; i--) {
    for (const [unit, name] of [[1024 ** i, BIN[i - 1]], [1000 ** i, DEC[i - 1]]] as const) {
      if (b >= unit && ((b * 10) / unit) % 1 === 0) return `${sign}${b / unit} ${name}`;
    }
  }
  if (b < 1024) return `${sign}${b} B`;
  let i = 1;
  while (i < BIN.length && b >= 1024 ** (i + 1)) i++;
  const v = b / 1024 ** i;
  return `${sign}${v.toFixed(1).replace(/\.0$/, "")} ${BIN[i - 1]}`;
}

/** Human-readable duration that parseDuration reads back: "30s", "1m30s", "250ms", "0s". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  let rest = Math.round(Math.abs(ms));
  if (rest === 0) return "0s";
  let out = ms < 0 ? "-" : "";
  for (const [unit, size] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000], ["ms", 1]] as const) {
    if (rest >= size) {
      out += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return out;
}
