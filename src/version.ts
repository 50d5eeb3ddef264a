// The version and commit, filled in by build/ for release binaries.
declare const PGFILES_VERSION: string | undefined;
declare const PGFILES_COMMIT: string | undefined;

export const VERSION = `${typeof PGFILES_VERSION === "string" ? PGFILES_VERSION : "0.1.0-dev"} (${
  typeof PGFILES_COMMIT === "string" ? PGFILES_COMMIT : "source"
})`;
