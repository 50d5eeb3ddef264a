// Logs: pino with a synchronous destination (no worker-thread transports, which a
// compiled single binary cannot load), to stderr or PGFILES_LOG_FILE.
// Never log a password or a file's contents: callers log keys, sizes and errors.
import pino, { type Logger } from "pino";
import { PgfilesError } from "./errors.ts";

export type { Logger };

export function createLogger(level: string, file?: string): Logger {
  let sonic: ReturnType<typeof pino.destination>;
  try {
    sonic = pino.destination({ dest: file ?? 2, sync: true, mkdir: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === "EISDIR" ? "it is a directory" : code === "EACCES" ? "permission is denied" : (code ?? (e as Error).message);
    throw new PgfilesError(`The log file ${file} cannot be opened for writing (${why}); set PGFILES_LOG_FILE to a file path such as ~/pgfiles.log.`, { exitCode: 2 });
  }
  // A log line must never take a request down with it: on a full disk (the daemon's log often sits in the
  // cache directory that just filled up) or a closed stderr the line is dropped, not thrown at the caller,
  // which may be in the middle of answering the kernel.
  const dest = {
    write(line: string): boolean {
      try {
        return sonic.write(line);
      } catch {
        return true;
      }
    },
  };
  return pino(
    {
      level,
      base: { pid: process.pid },
      redact: { paths: ["dsn", "password", "*.password", "body", "data"], censor: "****" },
    },
    dest,
  );
}
