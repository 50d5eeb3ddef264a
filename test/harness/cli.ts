// Runs the pgfiles CLI as a real subprocess (from source, or the compiled binary
// when PGFILES_TEST_BINARY is set), with an environment the test controls.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const ROOT = path.resolve(import.meta.dir, "../..");
const BUN = path.join(ROOT, "node_modules/.bin/bun");

export function cliCommand(): string[] {
  const bin = process.env.PGFILES_TEST_BINARY;
  return bin ? [bin] : [BUN, path.join(ROOT, "src/cli/main.ts")];
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliEnv {
  [name: string]: string | undefined;
}

/** A clean environment: no PGFILES_* from the caller, a private HOME and cache dir. */
export function cleanEnv(extra: CliEnv = {}): CliEnv {
  const env: CliEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("PGFILES_") && !k.startsWith("XDG_")) env[k] = v;
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "pgfiles-home-"));
  return { ...env, HOME: home, PGFILES_CACHE_DIR: path.join(home, "cache"), ...extra };
}

export async function run(args: string[], env: CliEnv, stdin?: string | Uint8Array, cwd?: string): Promise<CliResult> {
  const p = Bun.spawn({
    cmd: [...cliCommand(), ...args],
    cwd,
    env: env as Record<string, string>,
    stdin: stdin === undefined ? "ignore" : new Blob([stdin]),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

/** Like run, but fails the test with the output when the exit code is not `want`. */
export async function ok(args: string[], env: CliEnv, stdin?: string | Uint8Array, want = 0, cwd?: string): Promise<CliResult> {
  const r = await run(args, env, stdin, cwd);
  if (r.code !== want) {
    throw new Error(`pgfiles ${args.join(" ")} exited ${r.code}, expected ${want}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
  return r;
}
