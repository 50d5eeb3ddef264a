#!/usr/bin/env bun
// The pgfiles command line: parse, call, print. No logic of its own.
import { Command, CommanderError } from "commander";
import { ConfigError } from "../config/index.ts";
import { scrubPasswords } from "../config/dsn.ts";
import { PgfilesError } from "../errors.ts";
import { KeyError } from "../keys.ts";
import { registerBatch } from "./commands/batch.ts";
import { registerCache } from "./commands/cache.ts";
import { registerConfig } from "./commands/config.ts";
import { registerInit } from "./commands/init.ts";
import { registerMount } from "./commands/mount.ts";
import { registerPurge } from "./commands/purge.ts";
import { registerStatus } from "./commands/status.ts";
import { registerVersion } from "./commands/version.ts";
import { registerWhere } from "./commands/where.ts";
import { GLOBAL_FLAGS } from "./context.ts";
import { setInvocation } from "./reexec.ts";
import { VERSION } from "../version.ts";

export function buildProgram(): Command {
  const program = new Command("pgfiles")
    .description("A filesystem whose every file is a row in one PostgreSQL table.")
    .version(VERSION, "-V, --version", "print the version and the commit")
    .showHelpAfterError()
    .exitOverride();
  for (const [flag, , help] of GLOBAL_FLAGS) program.option(flag, help);
  registerInit(program);
  registerMount(program);
  registerWhere(program);
  registerStatus(program);
  registerVersion(program);
  registerPurge(program);
  registerBatch(program);
  registerCache(program);
  registerConfig(program);
  return program;
}

function isBrokenPipe(e: unknown): boolean {
  return (e as NodeJS.ErrnoException)?.code === "EPIPE";
}

export async function main(argv: string[]): Promise<number> {
  // A closed stdout is reported asynchronously too: leave quietly, non-zero, like other Unix tools.
  process.stdout.on("error", (e) => {
    if (isBrokenPipe(e)) process.exit(141);
  });
  const program = buildProgram();
  setInvocation(argv);
  try {
    await program.parseAsync(argv, { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version exit 0; usage errors were already printed by commander.
      return e.exitCode === 0 ? 0 : 2;
    }
    // A driver message may quote a connection string: never print its password.
    const dsns = [process.env.PGFILES_DSN, ...argv];
    const say = (text: string) => process.stderr.write(`pgfiles: ${scrubPasswords(text, dsns)}\n`);
    if (e instanceof ConfigError) {
      say(e.message);
      return 2;
    }
    if (e instanceof PgfilesError) {
      say(e.message);
      return e.exitCode;
    }
    if (e instanceof KeyError) {
      say(e.message);
      return 1;
    }
    // A reader that went away (`pgfiles status | head -1`): nothing more to say to it.
    if (isBrokenPipe(e)) return 141;
    // One sentence; the stack only when asked for (PGFILES_LOG_LEVEL=debug).
    const message = e instanceof Error ? e.message.split("\n")[0] : String(e);
    say(`unexpected error: ${message}${/[.!?]$/.test(message) ? "" : "."}`);
    if (process.env.PGFILES_LOG_LEVEL === "debug" && e instanceof Error && e.stack) process.stderr.write(`${scrubPasswords(e.stack, dsns)}\n`);
    return 1;
  }
}

if (import.meta.main) {
  const code = await main(process.argv.slice(2));
  process.exit(code);
}
