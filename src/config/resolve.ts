// Resolves settings: CLI argument > environment variable > config file > default.

import { readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { isAbsolute, join, resolve as resolvePath } from "node:path";
import { parseDocument, isMap, isScalar } from "yaml";
import { KeyError, normalizePrefix } from "../keys";
import {
  ValueError,
  parseBoolean,
  parseDuration,
  parseInteger,
  parseLogLevel,
  parseSize,
  type LogLevel,
} from "./parse";

export type Source = "argument" | "environment" | "config file" | "default";

export interface Config {
  dsn?: string;
  poolSize: number;
  prefix: string;
  readOnly: boolean;
  cacheMaxSize: number;
  metadataTtlMs: number;
  logLevel: LogLevel;
  cacheDir: string;
  preparedStatements: boolean;
  strict: boolean;
  passthrough: boolean;
  logFile?: string;
}

export interface Resolved {
  config: Config;
  sources: Record<keyof Config, Source>;
  configFile: string;
  configFileFound: boolean;
}

export interface Setting {
  field: keyof Config;
  env: string;
  yaml: string;
  description: string;
}

export const SETTINGS: readonly Setting[] = [
  { field: "dsn", env: "PGFILES_DSN", yaml: "dsn", description: "PostgreSQL connection string; the only required setting" },
  { field: "poolSize", env: "PGFILES_POOL_SIZE", yaml: "pool_size", description: "Postgres connection pool size (1-1000)" },
  { field: "prefix", env: "PGFILES_PREFIX", yaml: "prefix", description: "key prefix that scopes every key (one agent, one prefix)" },
  { field: "readOnly", env: "PGFILES_READ_ONLY", yaml: "read_only", description: "reject all writes" },
  { field: "cacheMaxSize", env: "PGFILES_CACHE_MAX_SIZE", yaml: "cache_max_size", description: "local data cache cap" },
  { field: "metadataTtlMs", env: "PGFILES_CACHE_METADATA_TTL", yaml: "cache_metadata_ttl", description: "how long metadata is trusted (0 = no caching)" },
  { field: "logLevel", env: "PGFILES_LOG_LEVEL", yaml: "log_level", description: "debug, info, warn or error" },
  { field: "cacheDir", env: "PGFILES_CACHE_DIR", yaml: "cache_dir", description: "directory for the local journal and data cache" },
  { field: "preparedStatements", env: "PGFILES_PREPARED_STATEMENTS", yaml: "prepared_statements", description: "use prepared statements (set false for PgBouncer in transaction mode)" },
  { field: "strict", env: "PGFILES_STRICT", yaml: "strict", description: "close and fsync also wait for Postgres" },
  { field: "passthrough", env: "PGFILES_PASSTHROUGH", yaml: "passthrough", description: "Linux mounts as root: reads and writes of open files go from the kernel straight to their local file" },
  { field: "logFile", env: "PGFILES_LOG_FILE", yaml: "log_file", description: "log file path (logs go to stderr when unset)" },
];

export class ConfigError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

type Env = Record<string, string | undefined>;

const MAX_CONFIG_FILE_BYTES = 1024 * 1024;

const DEFAULTS: Partial<Record<keyof Config, string>> = {
  poolSize: "10",
  prefix: "",
  readOnly: "false",
  cacheMaxSize: "1GB",
  metadataTtlMs: "30s",
  logLevel: "warn",
  preparedStatements: "true",
  strict: "false",
  passthrough: "true",
};

function home(env: Env): string {
  const h = env.HOME;
  return h && isAbsolute(h) ? h : homedir();
}

/** Path of the config file: $XDG_CONFIG_HOME/pgfiles/config.yaml, else ~/.config/pgfiles/config.yaml. */
export function configFilePath(env: Env = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  const base = xdg && isAbsolute(xdg) ? xdg : join(home(env), ".config");
  return join(base, "pgfiles", "config.yaml");
}

/** Default cache directory: $XDG_CACHE_HOME/pgfiles, else ~/.cache/pgfiles. */
export function defaultCacheDir(env: Env = process.env): string {
  const xdg = env.XDG_CACHE_HOME;
  const base = xdg && isAbsolute(xdg) ? xdg : join(home(env), ".cache");
  return join(base, "pgfiles");
}

function normalizeName(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]/g, "");
}

/** Reads the config file into raw strings keyed by field. Missing file: found=false. */
function readConfigFile(file: string): { found: boolean; values: Partial<Record<keyof Config, string>> } {
  let text: string;
  try {
    // Settings fit in a few KiB: refuse a huge file before reading it.
    if (statSync(file).size > MAX_CONFIG_FILE_BYTES) {
      throw new ConfigError(`The config file ${file} is larger than ${MAX_CONFIG_FILE_BYTES / 1048576} MiB; it should hold only a few settings.`);
    }
    text = readFileSync(file, "utf8");
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return { found: false, values: {} };
    throw new ConfigError(`The config file ${file} cannot be read (${code ?? (e as Error).message}).`);
  }
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0) {
    const first = doc.errors[0].message.split("\n")[0];
    throw new ConfigError(`The config file ${file} is not valid YAML: ${first}`);
  }
  const values: Partial<Record<keyof Config, string>> = {};
  if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
    return { found: true, values }; // empty file
  }
  if (!isMap(doc.contents)) {
    throw new ConfigError(`The config file ${file} must be a mapping of settings such as "pool_size: 10", not a ${Array.isArray(doc.toJS()) ? "list" : "single value"}.`);
  }
  let data: Record<string, unknown>;
  try {
    // Aliases expand into copies: a few nested ones ("billion laughs") would take all memory.
    data = doc.toJS({ maxAliasCount: 100 }) as Record<string, unknown>;
  } catch (e) {
    throw new ConfigError(`The config file ${file} cannot be read as settings: ${(e as Error).message.split("\n")[0].replace(/\.$/, "")}.`);
  }
  for (const [key, value] of Object.entries(data)) {
    const setting = SETTINGS.find((s) => s.yaml === key);
    if (!setting) {
      const near = SETTINGS.find((s) => normalizeName(s.yaml) === normalizeName(key) || s.env === key);
      const hint = near ? `did you mean ${near.yaml}?` : `known keys are ${SETTINGS.map((s) => s.yaml).join(", ")}.`;
      throw new ConfigError(`The config file ${file} has an unknown key ${JSON.stringify(key)}; ${hint}`);
    }
    if (value === null || value === undefined) continue; // "key:" with no value means unset
    if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") {
      values[setting.field] = String(value);
    } else {
      throw new ConfigError(`${setting.yaml} in ${file} must be a single value, not a ${Array.isArray(value) ? "list" : "mapping"}.`);
    }
  }
  return { found: true, values };
}

function label(setting: Setting, source: Source, file: string): string {
  switch (source) {
    case "config file":
      return `${setting.yaml} in ${file}`;
    case "argument":
      return `The command-line value for ${setting.env}`;
    default:
      return setting.env;
  }
}

function expandHome(p: string, env: Env): string {
  return p === "~" || p.startsWith("~/") ? home(env) + p.slice(1) : p;
}

function nonEmpty(raw: string, accepted: string): string {
  if (raw.trim() === "") throw new ValueError(raw, "is empty", accepted);
  return raw;
}

function path(raw: string, env: Env, cwd: string, accepted: string): string {
  nonEmpty(raw, accepted);
  if (raw.includes("\0")) throw new ValueError(raw, "contains a NUL character", accepted);
  return resolvePath(cwd, expandHome(raw, env));
}

/** args: values from CLI flags keyed by Config field (raw strings); env defaults to process.env. */
export function resolveConfig(opts: {
  args?: Partial<Record<keyof Config, string>>;
  env?: Env;
  cwd?: string;
} = {}): Resolved {
  const env = opts.env ?? process.env;
  const args = opts.args ?? {};
  const cwd = opts.cwd ?? process.cwd();
  const configFile = configFilePath(env);
  const fromFile = readConfigFile(configFile);
  const defaults: Partial<Record<keyof Config, string>> = { ...DEFAULTS, cacheDir: defaultCacheDir(env) };

  const config = {} as Record<keyof Config, unknown>;
  const sources = {} as Record<keyof Config, Source>;

  for (const setting of SETTINGS) {
    const f = setting.field;
    let raw: string | undefined;
    let source: Source;
    if (args[f] !== undefined) {
      raw = args[f];
      source = "argument";
    } else if (env[setting.env] !== undefined) {
      raw = env[setting.env];
      source = "environment";
    } else if (fromFile.values[f] !== undefined) {
      raw = fromFile.values[f];
      source = "config file";
    } else {
      raw = defaults[f];
      source = "default";
    }
    sources[f] = source;
    if (raw === undefined) continue;
    try {
      config[f] = parseValue(f, raw, env, cwd);
    } catch (e) {
      const who = label(setting, source, configFile);
      if (e instanceof ValueError) {
        throw new ConfigError(`${who} is ${JSON.stringify(raw)}, which ${e.reason}; use ${e.accepted}.`);
      }
      if (e instanceof KeyError) {
        const reason = e.message.replace(/\.$/, "");
        const detail = reason.charAt(0).toLowerCase() + reason.slice(1);
        throw new ConfigError(`${who} is ${JSON.stringify(raw)}, which is not a valid key prefix: ${detail}; use a prefix such as agents/agent-7f3a/.`);
      }
      throw e;
    }
  }

  return { config: config as unknown as Config, sources, configFile, configFileFound: fromFile.found };
}

function parseValue(field: keyof Config, raw: string, env: Env, cwd: string): unknown {
  switch (field) {
    case "dsn":
      return nonEmpty(raw, "a connection string such as postgres://user@host/db");
    case "poolSize":
      return parseInteger(raw, 1, 1000, 10);
    case "prefix":
      return normalizePrefix(raw);
    case "readOnly":
    case "preparedStatements":
    case "strict":
    case "passthrough":
      return parseBoolean(raw);
    case "cacheMaxSize":
      return parseSize(raw);
    case "metadataTtlMs":
      return parseDuration(raw);
    case "logLevel":
      return parseLogLevel(raw);
    case "cacheDir":
      return path(raw, env, cwd, "a directory path such as ~/.cache/pgfiles");
    case "logFile":
      return path(raw, env, cwd, "a file path such as ~/pgfiles.log");
  }
}
