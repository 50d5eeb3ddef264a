// The release the packaging tests check: the one test/run.sh built before the
// tests (PGFILES_RELEASE_DIR), or one built here on first use.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { buildRelease, PLATFORMS, type Platform } from "../../build/release.ts";

export interface BuiltRelease {
  /** The output directory: download/v<version>/… and latest/download/… */
  out: string;
  version: string;
  /** download/v<version> */
  dir: string;
}

let built: Promise<BuiltRelease> | undefined;

export function release(): Promise<BuiltRelease> {
  built ??= (async () => {
    let out = process.env.PGFILES_RELEASE_DIR;
    if (!out) {
      out = fs.mkdtempSync(path.join(os.tmpdir(), "pgfiles-release-"));
      await buildRelease({ out });
    }
    const version = fs.readFileSync(path.join(out, "latest", "download", "VERSION"), "utf8").trim();
    return { out, version, dir: path.join(out, "download", `v${version}`) };
  })();
  return built;
}

export function hostPlatform(): Platform {
  const p = `${process.platform}-${process.arch === "arm64" ? "arm64" : "x64"}` as Platform;
  if (!PLATFORMS.includes(p)) throw new Error(`no release target for ${process.platform}-${process.arch}`);
  return p;
}

/** Unpacks one archive into a fresh directory and returns that directory. */
export function unpack(archive: string, into: string): string {
  fs.mkdirSync(into, { recursive: true });
  const r = Bun.spawnSync({ cmd: ["tar", "-xzf", archive, "-C", into], stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`tar -xzf ${archive}: ${r.stderr.toString()}`);
  return into;
}
