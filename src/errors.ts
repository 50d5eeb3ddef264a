// Errors carry an exit code (for the CLI), an errno (for the kernel, later) and
// one sentence for the person who caused them.

export type Errno = "EINVAL" | "ENOENT" | "EEXIST" | "EFBIG" | "ENOSPC" | "EROFS" | "EIO" | "ENAMETOOLONG" | "EACCES" | "ENOTEMPTY" | "EISDIR" | "ENOTDIR";

export class PgfilesError extends Error {
  readonly exitCode: number;
  readonly errno: Errno;
  constructor(message: string, opts: { exitCode?: number; errno?: Errno; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "PgfilesError";
    this.exitCode = opts.exitCode ?? 1;
    this.errno = opts.errno ?? "EIO";
  }
}

/** Postgres could not be reached (or dropped the connection): retry later, keep the journal. */
export class OfflineError extends PgfilesError {
  constructor(message: string, cause?: unknown) {
    super(message, { exitCode: 3, errno: "EIO", cause });
    this.name = "OfflineError";
  }
}

/** Postgres refused a particular version for good (too large, permission, constraint). */
export class RejectedError extends PgfilesError {
  constructor(message: string, cause?: unknown) {
    super(message, { exitCode: 1, errno: "EIO", cause });
    this.name = "RejectedError";
  }
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
