// The release build: four executables packed with their checksums and a
// Homebrew formula that names them. The Linux binary for this machine is run.
import { beforeAll, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { RELEASES_URL, renderFormula } from "../build/formula.ts";
import { verifyCodeSignature } from "../build/macho.ts";
import { archiveName, PLATFORMS } from "../build/release.ts";
import { hostPlatform, release, unpack, type BuiltRelease } from "./harness/release.ts";

const ROOT = path.resolve(import.meta.dir, "..");
let rel: BuiltRelease;
let tmp: string;

beforeAll(async () => {
  rel = await release();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pgfiles-release-test-"));
}, 300_000);

function sha256(file: string): string {
  return new Bun.CryptoHasher("sha256").update(fs.readFileSync(file)).digest("hex");
}

function rubyCheck(file: string): { code: number; out: string } {
  const r = Bun.spawnSync({ cmd: ["ruby", "-c", file], stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, out: r.stdout.toString() + r.stderr.toString() };
}

test("a release is four archives, a SHA256SUMS that matches them, VERSION, the installer and the formula", () => {
  const names = fs.readdirSync(rel.dir).sort();
  const archives = PLATFORMS.map((p) => archiveName(rel.version, p)).sort();
  expect(names).toEqual([...archives, "SHA256SUMS", "VERSION", "install.sh", "pgfiles.rb"].sort());
  expect(fs.readFileSync(path.join(rel.dir, "install.sh"))).toEqual(fs.readFileSync(path.join(ROOT, "install.sh")));
  const sums = fs.readFileSync(path.join(rel.dir, "SHA256SUMS"), "utf8");
  const lines = sums.trimEnd().split("\n");
  expect(lines.length).toBe(4);
  for (const a of archives) expect(lines).toContain(`${sha256(path.join(rel.dir, a))}  ${a}`);
  // sha256sum itself agrees with the file it is given.
  const check = Bun.spawnSync({ cmd: ["sha256sum", "-c", "SHA256SUMS"], cwd: rel.dir, stdout: "pipe", stderr: "pipe" });
  expect(check.stdout.toString().match(/: OK$/gm)?.length).toBe(4);
  expect(check.exitCode).toBe(0);
  expect(fs.readFileSync(path.join(rel.dir, "VERSION"), "utf8")).toBe(`${rel.version}\n`);
  // latest/ is this release.
  for (const n of names) expect(fs.readFileSync(path.join(rel.out, "latest", "download", n))).toEqual(fs.readFileSync(path.join(rel.dir, n)));
});

test("each archive holds one directory with an executable pgfiles for its platform, the README and the LICENSE", () => {
  for (const p of PLATFORMS) {
    const into = unpack(path.join(rel.dir, archiveName(rel.version, p)), path.join(tmp, `unpack-${p}`));
    const stem = `pgfiles-${rel.version}-${p}`;
    expect(fs.readdirSync(into)).toEqual([stem]);
    expect(fs.readdirSync(path.join(into, stem)).sort()).toEqual(["LICENSE", "README.md", "pgfiles"]);
    const bin = path.join(into, stem, "pgfiles");
    expect(fs.statSync(bin).mode & 0o777).toBe(0o755);
    expect(fs.readFileSync(path.join(into, stem, "README.md"))).toEqual(fs.readFileSync(path.join(ROOT, "README.md")));
    const bytes = fs.readFileSync(bin);
    if (p.startsWith("linux")) {
      expect(bytes.subarray(0, 4)).toEqual(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
      expect(bytes.readUInt16LE(18)).toBe(p === "linux-x64" ? 62 : 183);
    } else {
      // What macOS checks before it runs a binary: every page's hash in an intact signature.
      expect(bytes.readUInt32LE(0)).toBe(0xfeedfacf);
      expect(bytes.readUInt32LE(4)).toBe(p === "darwin-x64" ? 0x01000007 : 0x0100000c);
      const v = verifyCodeSignature(bytes);
      expect(v).toMatchObject({ ok: true });
    }
  }
});

test("the Linux binary for this machine prints the version and the commit it was built from", () => {
  const p = hostPlatform();
  const bin = path.join(tmp, `unpack-${p}`, `pgfiles-${rel.version}-${p}`, "pgfiles");
  if (!fs.existsSync(bin)) unpack(path.join(rel.dir, archiveName(rel.version, p)), path.join(tmp, `unpack-${p}`));
  const r = Bun.spawnSync({ cmd: [bin, "--version"], stdout: "pipe", stderr: "pipe", env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: tmp } });
  expect(r.exitCode).toBe(0);
  const head = Bun.spawnSync({ cmd: ["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"], stdout: "pipe" }).stdout.toString().trim();
  expect(r.stdout.toString()).toMatch(new RegExp(`^${rel.version.replace(/\./g, "\\.")} \\(${head}(-dirty)?\\)\\n$`));
});

test("the formula names each archive with its checksum and passes ruby -c", () => {
  const file = path.join(rel.dir, "pgfiles.rb");
  const rb = fs.readFileSync(file, "utf8");
  for (const p of PLATFORMS) {
    const a = archiveName(rel.version, p);
    expect(rb).toContain(`url "${RELEASES_URL}/download/v${rel.version}/${a}"\n      sha256 "${sha256(path.join(rel.dir, a))}"`);
  }
  expect(rb).toContain(`version "${rel.version}"`);
  expect(rb).toContain('shell_output("#{bin}/pgfiles --version")');
  expect(rb).toContain('system bin/"pgfiles", "config", "show"');
  expect(rb).toMatch(/caveats[\s\S]*no\s+macFUSE/);
  const r = rubyCheck(file);
  expect(r.out).toContain("Syntax OK");
  expect(r.code).toBe(0);
});

test("the formula in the repository is well-formed ruby with all four platforms", () => {
  const file = path.join(ROOT, "Formula", "pgfiles.rb");
  const r = rubyCheck(file);
  expect(r.out).toContain("Syntax OK");
  const rb = fs.readFileSync(file, "utf8");
  expect(rb.match(/sha256 "[0-9a-f]{64}"/g)?.length).toBe(4);
  for (const p of PLATFORMS) expect(rb).toMatch(new RegExp(`/pgfiles-[0-9][^"]*-${p}\\.tar\\.gz"`));
});

test("a formula is refused without all four archives or with a checksum that is not one", () => {
  const archives = PLATFORMS.map((p) => ({ platform: p, file: `x/${archiveName("1.0.0", p)}`, sha256: "a".repeat(64), binaryBytes: 1 }));
  expect(() => renderFormula({ version: "1.0.0", archives: archives.slice(1) })).toThrow(/no linux-x64 archive/);
  expect(() => renderFormula({ version: "1.0.0", archives: [{ ...archives[0], sha256: "zz" }, ...archives.slice(1)] })).toThrow(/not a sha256/);
  // A syntax error in the template would show here, not only in a release.
  const f = path.join(tmp, "t.rb");
  fs.writeFileSync(f, renderFormula({ version: "1.0.0", archives }));
  expect(rubyCheck(f).code).toBe(0);
});

test("install.sh downloads from the same place the formula points at", () => {
  const sh = fs.readFileSync(path.join(ROOT, "install.sh"), "utf8");
  expect(sh).toContain(`DEFAULT_BASE_URL="${RELEASES_URL}"`);
});
