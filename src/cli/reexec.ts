// Keeping a DSN given on the command line out of `ps`: a long-running command
// (serve-nfs, mount --foreground) replaces itself (execve, same pid, same stdio,
// same signals and exit code) with the same command minus the DSN, which it
// hands over in PGFILES_DSN instead (readable only by the same user and root).
import { dlopen, FFIType, ptr } from "bun:ffi";

let invocation: string[] = [];

/** The arguments main() was called with (what the user typed after `pgfiles`). */
export function setInvocation(argv: string[]) {
  invocation = [...argv];
}

/** The arguments without the DSN: `--dsn X`, `--dsn=X`, and the positional `dsnArg`. */
export function argvWithoutDsn(argv: string[], dsns: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--dsn" && i + 1 < argv.length) {
      i++;
      continue;
    }
    if (a.startsWith("--dsn=")) continue;
    if (dsns.includes(a)) continue;
    out.push(a);
  }
  return out;
}

/** The command that runs this very program (compiled binary, or bun + script). */
export function selfCommand(): string[] {
  const main = Bun.main;
  return main.startsWith("/$bunfs") || main.startsWith("B:/~BUN") ? [process.execPath] : [process.execPath, main];
}

/**
 * When a DSN was given in argv, execs this program again without it and with
 * PGFILES_DSN set; returns (and the command goes on as it is) when the DSN did
 * not come from argv or exec is not possible here.
 */
export function dropDsnFromArgv(dsn: string, positional: string | undefined) {
  const fromArgv = invocation.some((a) => a === "--dsn" || a.startsWith("--dsn=")) || (positional !== undefined && invocation.includes(positional));
  if (!fromArgv || process.platform === "win32") return;
  const args = argvWithoutDsn(invocation, positional === undefined ? [] : [positional]);
  const cmd = [...selfCommand(), ...args];
  const env = { ...process.env, PGFILES_DSN: dsn } as Record<string, string | undefined>;
  let libc;
  try {
    libc = dlopen(process.platform === "darwin" ? "libSystem.B.dylib" : "libc.so.6", {
      execve: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    });
  } catch {
    return;
  }
  const keep: Buffer[] = [];
  const cstr = (s: string) => {
    const b = Buffer.from(`${s}\0`);
    keep.push(b);
    return b;
  };
  const list = (items: string[]) => {
    const a = new BigUint64Array(items.length + 1);
    items.forEach((s, i) => (a[i] = BigInt(ptr(cstr(s)))));
    return a;
  };
  const argvC = list(cmd);
  const envC = list(Object.entries(env).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`));
  libc.symbols.execve(cstr(cmd[0]), argvC, envC);
  // Only reached when execve failed: go on serving with the DSN in argv.
  libc.close();
}
