import { test, expect, describe, beforeEach, afterEach } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ConfigError,
  SETTINGS,
  formatConfig,
  formatDuration,
  formatSize,
  maskDsn,
  parseDuration,
  parseSize,
  resolveConfig,
  type Config,
} from "./index";

let home: string;

beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), "pgfiles-config-test-"));
});
afterEach(() => {
  rmSync(home, { recursive: true, force: true });
});

/** Writes ~/.config/pgfiles/config.yaml under the temp HOME and returns its path. */
function writeConfig(text: string, base = join(home, ".config")): string {
  const dir = join(base, "pgfiles");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "config.yaml");
  writeFileSync(file, text);
  return file;
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error("expected a ConfigError, but nothing was thrown");
}

describe("resolveConfig defaults", () => {
  test("with no file and an empty env every setting has its default", () => {
    const r = resolveConfig({ env: { HOME: home }, cwd: "/" });
    expect(r.config).toEqual({
      poolSize: 10,
      prefix: "",
      readOnly: false,
      cacheMaxSize: 1_000_000_000,
      metadataTtlMs: 30_000,
      logLevel: "warn",
      cacheDir: join(home, ".cache", "pgfiles"),
      preparedStatements: true,
      strict: false,
      passthrough: true,
    } as Config);
    expect(r.config.dsn).toBeUndefined();
    expect(r.config.logFile).toBeUndefined();
    for (const s of SETTINGS) expect(r.sources[s.field]).toBe("default");
    expect(r.configFile).toBe(join(home, ".config", "pgfiles", "config.yaml"));
    expect(r.configFileFound).toBe(false);
  });

  test("XDG_CACHE_HOME sets the default cache dir when absolute, and is ignored when relative", () => {
    const xdg = join(home, "xdgcache");
    expect(resolveConfig({ env: { HOME: home, XDG_CACHE_HOME: xdg } }).config.cacheDir).toBe(join(xdg, "pgfiles"));
    expect(resolveConfig({ env: { HOME: home, XDG_CACHE_HOME: "rel" } }).config.cacheDir).toBe(join(home, ".cache", "pgfiles"));
  });

  test("an empty config file is fine", () => {
    writeConfig("");
    const r = resolveConfig({ env: { HOME: home } });
    expect(r.configFileFound).toBe(true);
    expect(r.config.poolSize).toBe(10);
  });
});

describe("resolveConfig precedence", () => {
  test("argument beats environment beats config file beats default, per setting", () => {
    const file = writeConfig("pool_size: 3\nlog_level: info\ncache_max_size: 2GB\ncache_metadata_ttl: 5s\n");
    const r = resolveConfig({
      args: { poolSize: "1" },
      env: { HOME: home, PGFILES_POOL_SIZE: "2", PGFILES_LOG_LEVEL: "debug", PGFILES_CACHE_MAX_SIZE: "3GB" },
    });
    expect(r.configFile).toBe(file);
    expect(r.configFileFound).toBe(true);
    expect(r.config.poolSize).toBe(1);
    expect(r.sources.poolSize).toBe("argument");
    expect(r.config.logLevel).toBe("debug");
    expect(r.sources.logLevel).toBe("environment");
    expect(r.config.cacheMaxSize).toBe(3_000_000_000);
    expect(r.sources.cacheMaxSize).toBe("environment");
    expect(r.config.metadataTtlMs).toBe(5000);
    expect(r.sources.metadataTtlMs).toBe("config file");
    expect(r.config.readOnly).toBe(false);
    expect(r.sources.readOnly).toBe("default");
  });

  test("environment beats config file for the DSN, argument beats both", () => {
    writeConfig("dsn: postgres://file/db\n");
    expect(resolveConfig({ env: { HOME: home } }).config.dsn).toBe("postgres://file/db");
    expect(resolveConfig({ env: { HOME: home, PGFILES_DSN: "postgres://env/db" } }).config.dsn).toBe("postgres://env/db");
    const r = resolveConfig({ args: { dsn: "postgres://arg/db" }, env: { HOME: home, PGFILES_DSN: "postgres://env/db" } });
    expect(r.config.dsn).toBe("postgres://arg/db");
    expect(r.sources.dsn).toBe("argument");
  });

  test("an explicitly empty PGFILES_PREFIX overrides the config file's prefix", () => {
    writeConfig("prefix: agents/a\n");
    expect(resolveConfig({ env: { HOME: home } }).config.prefix).toBe("agents/a/");
    const r = resolveConfig({ env: { HOME: home, PGFILES_PREFIX: "" } });
    expect(r.config.prefix).toBe("");
    expect(r.sources.prefix).toBe("environment");
  });

  test("every setting can come from each of env and file", () => {
    const env: Record<string, string> = { HOME: home };
    const yaml: string[] = [];
    const values: Record<string, string> = {
      dsn: "postgres://u@h/db",
      poolSize: "7",
      prefix: "p/q",
      readOnly: "yes",
      cacheMaxSize: "1KiB",
      metadataTtlMs: "0",
      logLevel: "error",
      cacheDir: "/var/tmp/pgf",
      preparedStatements: "off",
      strict: "1",
      passthrough: "off",
      logFile: "/tmp/pgfiles.log",
    };
    for (const s of SETTINGS) {
      env[s.env] = values[s.field];
      yaml.push(`${s.yaml}: ${JSON.stringify(values[s.field])}`);
    }
    const expected: Config = {
      dsn: "postgres://u@h/db",
      poolSize: 7,
      prefix: "p/q/",
      readOnly: true,
      cacheMaxSize: 1024,
      metadataTtlMs: 0,
      logLevel: "error",
      cacheDir: "/var/tmp/pgf",
      preparedStatements: false,
      strict: true,
      passthrough: false,
      logFile: "/tmp/pgfiles.log",
    };
    const fromEnv = resolveConfig({ env });
    expect(fromEnv.config).toEqual(expected);
    for (const s of SETTINGS) expect(fromEnv.sources[s.field]).toBe("environment");

    writeConfig(yaml.join("\n") + "\n");
    const fromFile = resolveConfig({ env: { HOME: home } });
    expect(fromFile.config).toEqual(expected);
    for (const s of SETTINGS) expect(fromFile.sources[s.field]).toBe("config file");
  });

  test("YAML-native booleans and numbers are accepted", () => {
    writeConfig("read_only: true\nprepared_statements: false\npool_size: 25\ncache_max_size: 4096\ncache_metadata_ttl: 2\n");
    const c = resolveConfig({ env: { HOME: home } }).config;
    expect(c.readOnly).toBe(true);
    expect(c.preparedStatements).toBe(false);
    expect(c.poolSize).toBe(25);
    expect(c.cacheMaxSize).toBe(4096);
    expect(c.metadataTtlMs).toBe(2000);
  });

  test("a key with no value in the file leaves the setting unset", () => {
    writeConfig("dsn:\npool_size:\n");
    const r = resolveConfig({ env: { HOME: home } });
    expect(r.config.dsn).toBeUndefined();
    expect(r.config.poolSize).toBe(10);
    expect(r.sources.poolSize).toBe("default");
  });

  test("relative cache dir and log file resolve against cwd, ~ against HOME", () => {
    const r = resolveConfig({ env: { HOME: home, PGFILES_CACHE_DIR: "cache", PGFILES_LOG_FILE: "~/x.log" }, cwd: "/srv/work" });
    expect(r.config.cacheDir).toBe("/srv/work/cache");
    expect(r.config.logFile).toBe(join(home, "x.log"));
  });
});

describe("config file location", () => {
  test("XDG_CONFIG_HOME is honoured when absolute and the HOME file is then ignored", () => {
    writeConfig("pool_size: 3\n");
    const xdg = join(home, "xdg");
    const file = writeConfig("pool_size: 4\n", xdg);
    const r = resolveConfig({ env: { HOME: home, XDG_CONFIG_HOME: xdg } });
    expect(r.configFile).toBe(file);
    expect(r.config.poolSize).toBe(4);
    expect(r.sources.poolSize).toBe("config file");
  });

  test("a relative XDG_CONFIG_HOME is ignored", () => {
    writeConfig("pool_size: 3\n");
    const r = resolveConfig({ env: { HOME: home, XDG_CONFIG_HOME: "relative/dir" } });
    expect(r.configFile).toBe(join(home, ".config", "pgfiles", "config.yaml"));
    expect(r.config.poolSize).toBe(3);
  });
});

describe("config file errors", () => {
  test("invalid YAML names the file", () => {
    const file = writeConfig("pool_size: [1, 2\nprefix: : :\n");
    const e = configError(() => resolveConfig({ env: { HOME: home } }));
    expect(e.exitCode).toBe(2);
    expect(e.message).toContain(file);
    expect(e.message).toContain("not valid YAML");
  });

  test("a file that is not a mapping names the file", () => {
    const file = writeConfig("- a\n- b\n");
    const e = configError(() => resolveConfig({ env: { HOME: home } }));
    expect(e.message).toContain(file);
    expect(e.message).toContain("mapping");
    writeConfig("just a string\n");
    expect(configError(() => resolveConfig({ env: { HOME: home } })).message).toContain(file);
  });

  test("an unknown key names the file and the key, and suggests the right spelling", () => {
    const file = writeConfig("poolSize: 3\n");
    const e = configError(() => resolveConfig({ env: { HOME: home } }));
    expect(e.message).toContain(file);
    expect(e.message).toContain('"poolSize"');
    expect(e.message).toContain("pool_size");
    const e2 = configError(() => (writeConfig("colour: blue\n"), resolveConfig({ env: { HOME: home } })));
    expect(e2.message).toContain('"colour"');
  });

  test("a list as a setting's value is rejected", () => {
    const file = writeConfig("prefix: [a, b]\n");
    const e = configError(() => resolveConfig({ env: { HOME: home } }));
    expect(e.message).toContain("prefix in " + file);
  });

  test("a bad value from the file says which file", () => {
    const file = writeConfig("cache_max_size: 12XB\n");
    const e = configError(() => resolveConfig({ env: { HOME: home } }));
    expect(e.message).toBe(`cache_max_size in ${file} is "12XB", which is not a size; use a number with a unit such as 512MiB or 1GB.`);
  });
});

describe("bad values give ConfigError (exit code 2) naming setting, value and accepted form", () => {
  const cases: [string, string, string][] = [
    ["PGFILES_POOL_SIZE", "0", "1 to 1000"],
    ["PGFILES_POOL_SIZE", "1001", "1 to 1000"],
    ["PGFILES_POOL_SIZE", "ten", "such as 10"],
    ["PGFILES_POOL_SIZE", "2.5", "whole number"],
    ["PGFILES_POOL_SIZE", "-3", "whole number"],
    ["PGFILES_PREFIX", "/agents/x", "agents/agent-7f3a/"],
    ["PGFILES_PREFIX", "agents//x", "agents/agent-7f3a/"],
    ["PGFILES_PREFIX", "agents/../x", "agents/agent-7f3a/"],
    ["PGFILES_READ_ONLY", "maybe", "true or false"],
    ["PGFILES_CACHE_MAX_SIZE", "12XB", "512MiB or 1GB"],
    ["PGFILES_CACHE_MAX_SIZE", "-1GB", "512MiB or 1GB"],
    ["PGFILES_CACHE_METADATA_TTL", "soon", "30s"],
    ["PGFILES_CACHE_METADATA_TTL", "-5s", "30s"],
    ["PGFILES_LOG_LEVEL", "verbose", "debug, info, warn, error"],
    ["PGFILES_CACHE_DIR", "", "directory path"],
    ["PGFILES_PREPARED_STATEMENTS", "nope", "true or false"],
    ["PGFILES_STRICT", "2", "true or false"],
    ["PGFILES_LOG_FILE", "", "file path"],
    ["PGFILES_DSN", "", "postgres://"],
  ];
  for (const [name, value, form] of cases) {
    test(`${name}=${JSON.stringify(value)}`, () => {
      const e = configError(() => resolveConfig({ env: { HOME: home, [name]: value } }));
      expect(e.exitCode).toBe(2);
      expect(e.message.startsWith(name + " is ")).toBe(true);
      expect(e.message).toContain(JSON.stringify(value));
      expect(e.message).toContain(form);
    });
  }

  test("the exact message for a bad size in the environment", () => {
    const e = configError(() => resolveConfig({ env: { HOME: home, PGFILES_CACHE_MAX_SIZE: "12XB" } }));
    expect(e.message).toBe('PGFILES_CACHE_MAX_SIZE is "12XB", which is not a size; use a number with a unit such as 512MiB or 1GB.');
  });

  test("a bad argument says it came from the command line", () => {
    const e = configError(() => resolveConfig({ args: { poolSize: "0" }, env: { HOME: home } }));
    expect(e.message).toContain("command-line");
    expect(e.message).toContain("PGFILES_POOL_SIZE");
    expect(e.message).toContain('"0"');
  });

  test("a bad value that is overridden by a higher source is not an error", () => {
    writeConfig("pool_size: 0\n");
    expect(resolveConfig({ env: { HOME: home, PGFILES_POOL_SIZE: "5" } }).config.poolSize).toBe(5);
  });
});

describe("parseSize", () => {
  const table: [string, number][] = [
    ["0", 0],
    ["512", 512],
    ["512B", 512],
    ["512 b", 512],
    ["1KB", 1000],
    ["1kb", 1000],
    ["1MB", 1_000_000],
    ["1GB", 1_000_000_000],
    ["1TB", 1_000_000_000_000],
    ["1KiB", 1024],
    ["1kib", 1024],
    ["1MiB", 1024 ** 2],
    ["1GiB", 1024 ** 3],
    ["1TiB", 1024 ** 4],
    ["1K", 1024],
    ["1M", 1024 ** 2],
    ["1G", 1024 ** 3],
    ["1g", 1024 ** 3],
    ["1.5GiB", 1.5 * 1024 ** 3],
    ["1.5 KB", 1500],
    ["0.3KiB", 307],
    [" 2 MiB ", 2 * 1024 ** 2],
  ];
  for (const [text, bytes] of table) {
    test(`${JSON.stringify(text)} is ${bytes} bytes`, () => expect(parseSize(text)).toBe(bytes));
  }
  test("rejects garbage, negatives and unknown units with the accepted form", () => {
    for (const bad of ["", "GB", "-1", "-1GB", "1XB", "1 2GB", "1e3", "one GB", "1GB!", "1.2.3MB", "99999999999TiB"]) {
      expect(() => parseSize(bad)).toThrow(/such as 512MiB or 1GB/);
    }
  });
});

describe("parseDuration", () => {
  const table: [string, number][] = [
    ["0", 0],
    ["250ms", 250],
    ["30s", 30_000],
    ["5m", 300_000],
    ["2h", 7_200_000],
    ["1d", 86_400_000],
    ["30", 30_000],
    ["1.5", 1500],
    ["1m30s", 90_000],
    ["1h 1m 1s 1ms", 3_661_001],
    ["0s", 0],
    ["1.5s", 1500],
    ["2H", 7_200_000],
  ];
  for (const [text, ms] of table) {
    test(`${JSON.stringify(text)} is ${ms} ms`, () => expect(parseDuration(text)).toBe(ms));
  }
  test("rejects garbage and negatives with the accepted form", () => {
    for (const bad of ["", "-5s", "-1", "soon", "5 minutes", "5x", "s", "1m30", "30s!", "1w"]) {
      expect(() => parseDuration(bad)).toThrow(/such as 250ms, 30s/);
    }
  });
});

describe("formatSize and formatDuration", () => {
  test("formatSize prefers exact units and falls back to one decimal", () => {
    expect(formatSize(0)).toBe("0 B");
    expect(formatSize(512)).toBe("512 B");
    expect(formatSize(1000)).toBe("1 KB");
    expect(formatSize(1024)).toBe("1 KiB");
    expect(formatSize(1_000_000_000)).toBe("1 GB");
    expect(formatSize(512 * 1024 ** 2)).toBe("512 MiB");
    expect(formatSize(1.5 * 1024 ** 3)).toBe("1.5 GiB");
    expect(formatSize(123_456_789)).toBe("117.7 MiB");
    expect(formatSize(1500)).toBe("1.5 KB");
  });

  test("formatDuration output parses back to the same milliseconds", () => {
    expect(formatDuration(0)).toBe("0s");
    expect(formatDuration(250)).toBe("250ms");
    expect(formatDuration(30_000)).toBe("30s");
    expect(formatDuration(90_000)).toBe("1m30s");
    expect(formatDuration(86_400_000)).toBe("1d");
    for (const ms of [0, 1, 999, 1000, 61_001, 3_661_001, 90_061_000]) {
      expect(parseDuration(formatDuration(ms))).toBe(ms);
    }
  });
});

describe("maskDsn", () => {
  test("masks the password in URL form", () => {
    expect(maskDsn("postgres://user:secret@host/db")).toBe("postgres://user:****@host/db");
    expect(maskDsn("postgresql://user:secret@host:5432/db?sslmode=require")).toBe(
      "postgresql://user:****@host:5432/db?sslmode=require",
    );
  });

  test("masks passwords with special characters, encoded or not", () => {
    expect(maskDsn("postgres://u:p%40ss%2Fw0rd@h/db")).toBe("postgres://u:****@h/db");
    const raw = "postgres://u:p@ss/w?rd:x@h/db";
    const masked = maskDsn(raw);
    expect(masked).toBe("postgres://u:****@h/db");
    expect(masked).not.toContain("ss/w");
  });

  test("masks password query parameters", () => {
    expect(maskDsn("postgres://u@h/db?sslmode=require&password=secret&x=1")).toBe(
      "postgres://u@h/db?sslmode=require&password=****&x=1",
    );
    expect(maskDsn("postgres:///db?host=/run/pg&password=secret")).toBe("postgres:///db?host=/run/pg&password=****");
    expect(maskDsn("postgres://u@h/db?sslpassword=secret")).toBe("postgres://u@h/db?sslpassword=****");
    expect(maskDsn("postgres://u:pw@h/db?password=se@cret")).toBe("postgres://u:****@h/db?password=****");
  });

  test("an unrelated @ in the query masks too much rather than too little", () => {
    const masked = maskDsn("postgres://u:secret@h/db?application_name=a@b");
    expect(masked).not.toContain("secret");
    expect(masked.startsWith("postgres://u:****@")).toBe(true);
  });

  test("masks passwords in libpq keyword form, quoted or not", () => {
    expect(maskDsn("host=x password=secret dbname=d")).toBe("host=x password=**** dbname=d");
    expect(maskDsn("host=x password = secret")).toBe("host=x password = ****");
    expect(maskDsn("host=x password='se cret \\' x' dbname=d")).toBe("host=x password=**** dbname=d");
    expect(maskDsn("PASSWORD=secret host=x")).toBe("PASSWORD=**** host=x");
    expect(maskDsn("host=x password='unterminated secret")).toBe("host=x password=****");
  });

  test("leaves a DSN without a password alone", () => {
    for (const dsn of ["postgres://user@host/db", "postgres://host/db", "postgres:///db", "host=x user=y dbname=z"]) {
      expect(maskDsn(dsn)).toBe(dsn);
    }
  });
});

describe("formatConfig", () => {
  const secret = "s3cr3t-P@ss";
  const dsn = `postgres://agent:${encodeURIComponent(secret)}@db.internal:5432/app?password=${secret}`;

  test("text shows every setting with its source and never the password", () => {
    const file = writeConfig("log_level: info\n");
    const r = resolveConfig({ env: { HOME: home, PGFILES_DSN: dsn }, args: { poolSize: "4" } });
    const text = formatConfig(r, false);
    expect(text).not.toContain(secret);
    expect(text).not.toContain(encodeURIComponent(secret));
    for (const s of SETTINGS) expect(text).toContain(s.env);
    expect(text).toContain("postgres://agent:****@db.internal:5432/app");
    expect(text).toMatch(/PGFILES_DSN .*\(environment\)/);
    expect(text).toMatch(/PGFILES_POOL_SIZE +4 .*\(argument\)/);
    expect(text).toMatch(new RegExp(`PGFILES_LOG_LEVEL +info .*\\(config file ${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\)`));
    expect(text).toMatch(/PGFILES_CACHE_MAX_SIZE +1000000000 bytes \(1 GB\) .*\(default\)/);
    expect(text).toMatch(/PGFILES_CACHE_METADATA_TTL +30000 ms \(30s\)/);
  });

  test("JSON has the same shape per setting and never the password", () => {
    const r = resolveConfig({ env: { HOME: home, PGFILES_DSN: `host=db password=${secret} dbname=app` } });
    const out = formatConfig(r, true);
    expect(out).not.toContain(secret);
    const parsed = JSON.parse(out);
    expect(parsed.configFile).toBe(r.configFile);
    expect(parsed.settings.PGFILES_DSN).toEqual({ value: "host=db password=**** dbname=app", source: "environment" });
    expect(parsed.settings.PGFILES_POOL_SIZE).toEqual({ value: 10, source: "default" });
    expect(parsed.settings.PGFILES_LOG_FILE).toEqual({ value: null, source: "default" });
    expect(Object.keys(parsed.settings)).toEqual(SETTINGS.map((s) => s.env));
  });
});
