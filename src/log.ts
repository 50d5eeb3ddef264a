// Logs: pino with a synchronous destination (no worker-thread transports, which a
// compiled single binary cannot load), to stderr or PGFILES_LOG_FILE.
// Never log a password or a file's contents: callers log keys, sizes and errors.
import pino, { type Logger } from "pino";

export type { Logger };

export function createLogger(level: string, file?: string): Logger {
  const dest = pino.destination({ dest: file ?? 2, sync: true, mkdir: true });
  return pino(
    {
      level,
      base: { pid: process.pid },
      redact: { paths: ["dsn", "password", "*.password", "body", "data"], censor: "****" },
    },
    dest,
  );
}
