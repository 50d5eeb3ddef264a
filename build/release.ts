// Builds a release: one executable per platform, each packed as
// pgfiles-<version>-<os>-<arch>.tar.gz, plus SHA256SUMS, VERSION and the
// Homebrew formula, laid out like the project's release downloads so that
// install.sh can be pointed at the output directory served over HTTP:
//
//   OUT/download/v<version>/{pgfiles-<version>-<os>-<arch>.tar.gz, SHA256SUMS, VERSION, install.sh, pgfiles.rb}
//   OUT/latest/download/    (the same files: this build is the newest)
//
//   bun build/release.ts [--out DIR] [--version V] [--targets linux-x64,darwin-arm64] [--formula]
//
// --formula also rewrites Formula/pgfiles.rb in the repository with this
// build's urls and checksums. Darwin binaries are cross-compiled here; the
// x64 one gets a fresh ad-hoc signature (see build/macho.ts), and both are
// checked page by page before they are packed.
import { $ } from "bun";
import fs from "node:fs";
import path from "node:path";
import { buildInfo, compileBinary, ROOT, type BuildInfo } from "./compile.ts";
import { renderFormula } from "./formula.ts";
import { signAdHoc, verifyCodeSignature } from "./macho.ts";

export const PLATFORMS = ["linux-x64", "linux-arm64", "darwin-x64", "darwin-arm64"] as const;
export type Platform = (typeof PLATFORMS)[number];

export function archiveName(version: string, platform: Platform): string {
  return `pgfiles-${version}-${platform}.tar.gz`;
}

export interface Release {
  version: string;
  commit: string;
  /** OUT/download/v<version> */
  dir: string;
  archives: { platform: Platform; file: string; sha256: string; binaryBytes: number }[];
}

const ELF_MACHINE: Record<string, number> = { x64: 62, arm64: 183 };

/**
 * The Bun target for a platform. x64 uses Bun's baseline (Nehalem) build: the
 * default x64 one needs AVX2 and dies with "Illegal instruction" on older CPUs
 * and on VMs with conservative CPU models, which is where sandboxes run.
 */
export function bunTarget(platform: Platform): string {
  return platform.endsWith("-x64") ? `bun-${platform}-baseline` : `bun-${platform}`;
}

/** Refuses a binary that is not what its platform name says (wrong format, architecture or signature). */
function checkBinary(platform: Platform, bytes: Buffer): void {
  const [os, arch] = platform.split("-");
  if (os === "linux") {
    if (bytes.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${platform}: not an ELF file`);
    const machine = bytes.readUInt16LE(18);
    if (machine !== ELF_MACHINE[arch]) throw new Error(`${platform}: ELF machine ${machine}, expected ${ELF_MACHINE[arch]}`);
  } else {
    const v = verifyCodeSignature(bytes);
    if (!v.ok) throw new Error(`${platform}: the code signature does not hold: ${v.reason}`);
  }
}

async function buildOne(platform: Platform, info: BuildInfo, work: string, dir: string, mtime: string): Promise<Release["archives"][number]> {
  const stem = `pgfiles-${info.version}-${platform}`;
  const stage = path.join(work, stem);
  fs.mkdirSync(stage, { recursive: true });
  const bin = path.join(stage, "pgfiles");
  await compileBinary(bunTarget(platform), bin, info);
  let bytes = fs.readFileSync(bin);
  // Bun signs darwin-arm64 output itself but leaves darwin-x64 with the runtime's
  // original signature, which no longer matches the pages Bun rewrote.
  if (platform.startsWith("darwin") && !verifyCodeSignature(bytes).ok) {
    bytes = signAdHoc(bytes, "pgfiles");
    fs.writeFileSync(bin, bytes);
  }
  checkBinary(platform, bytes);
  fs.chmodSync(bin, 0o755);
  fs.copyFileSync(path.join(ROOT, "README.md"), path.join(stage, "README.md"));
  fs.copyFileSync(path.join(ROOT, "LICENSE"), path.join(stage, "LICENSE"));
  const file = path.join(dir, `${stem}.tar.gz`);
  // Owner, modes, order and times fixed, and gzip without a name or time (and
  // deaf to a GZIP variable), so the archive depends on its contents only.
  await $`tar --sort=name --owner=0 --group=0 --numeric-owner --mode=u=rwX,go=rX --mtime=@${mtime} -C ${work} -cf - ${stem} | env -u GZIP gzip -9n > ${file}`.quiet();
  const sha256 = new Bun.CryptoHasher("sha256").update(fs.readFileSync(file)).digest("hex");
  return { platform, file, sha256, binaryBytes: bytes.length };
}

export async function buildRelease(opts: { out: string; version?: string; platforms?: readonly Platform[] }): Promise<Release> {
  const info = await buildInfo();
  if (opts.version) info.version = opts.version;
  if (!/^[0-9][0-9A-Za-z.+-]*$/.test(info.version)) throw new Error(`"${info.version}" is not a version (expected e.g. 0.1.0)`);
  const dir = path.join(opts.out, "download", `v${info.version}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const work = fs.mkdtempSync(path.join(opts.out, ".work-"));
  try {
    const archives: Release["archives"] = [];
    // Every file in every archive gets the commit's time.
    const mtime = (await $`git -C ${ROOT} log -1 --format=%ct`.nothrow().quiet()).stdout.toString().trim() || "0";
    // One at a time: each compile holds a ~100 MiB executable in memory.
    for (const platform of opts.platforms ?? PLATFORMS) archives.push(await buildOne(platform, info, work, dir, mtime));
    const sums = archives.map((a) => `${a.sha256}  ${path.basename(a.file)}\n`).sort().join("");
    fs.writeFileSync(path.join(dir, "SHA256SUMS"), sums);
    fs.writeFileSync(path.join(dir, "VERSION"), `${info.version}\n`);
    // The installer is a release asset too: its documented url is latest/download/install.sh.
    fs.copyFileSync(path.join(ROOT, "install.sh"), path.join(dir, "install.sh"));
    const release: Release = { version: info.version, commit: info.commit, dir, archives };
    if (archives.length === PLATFORMS.length) fs.writeFileSync(path.join(dir, "pgfiles.rb"), renderFormula(release));
    const latest = path.join(opts.out, "latest", "download");
    fs.rmSync(latest, { recursive: true, force: true });
    fs.mkdirSync(latest, { recursive: true });
    for (const name of fs.readdirSync(dir)) fs.linkSync(path.join(dir, name), path.join(latest, name));
    return release;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  let out = path.join(ROOT, "dist", "release");
  let version: string | undefined;
  let platforms: Platform[] | undefined;
  let formula = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--out") out = path.resolve(args[++i] ?? "");
    else if (a === "--version") version = args[++i];
    else if (a === "--targets") {
      platforms = (args[++i] ?? "").split(",").filter(Boolean) as Platform[];
      const bad = platforms.filter((p) => !PLATFORMS.includes(p));
      if (bad.length) {
        console.error(`unknown target ${bad.join(", ")}; the targets are ${PLATFORMS.join(", ")}`);
        process.exit(2);
      }
    } else if (a === "--formula") formula = true;
    else {
      console.error(`unknown argument ${a}; usage: bun build/release.ts [--out DIR] [--version V] [--targets ${PLATFORMS.join(",")}] [--formula]`);
      process.exit(2);
    }
  }
  const t0 = performance.now();
  let release: Release;
  try {
    release = await buildRelease({ out, version, platforms });
  } catch (e) {
    console.error((e as Error).message);
    process.exit(1);
  }
  for (const a of release.archives) {
    console.log(`${path.relative(process.cwd(), a.file)}  ${(fs.statSync(a.file).size / 1048576).toFixed(1)} MiB (binary ${(a.binaryBytes / 1048576).toFixed(1)} MiB)  ${a.sha256}`);
  }
  if (formula) {
    if (release.archives.length !== PLATFORMS.length) {
      console.error("--formula needs all four targets");
      process.exit(2);
    }
    fs.writeFileSync(path.join(ROOT, "Formula", "pgfiles.rb"), renderFormula(release));
    console.log("Formula/pgfiles.rb updated");
  }
  console.log(`release ${release.version} (${release.commit}) in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${path.relative(process.cwd(), release.dir)}`);
}
