// install.sh against a local HTTP server that serves built release archives
// the way the project's release downloads are laid out.
import { afterAll, beforeAll, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { buildRelease, archiveName } from "../build/release.ts";
import { hostPlatform, release, unpack, type BuiltRelease } from "./harness/release.ts";

const ROOT = path.resolve(import.meta.dir, "..");
const SCRIPT = path.join(ROOT, "install.sh");
const PIN = "0.0.9-pin";
const isRoot = process.getuid?.() === 0;

let rel: BuiltRelease;
let tmp: string;
let server: ReturnType<typeof Bun.serve>;
/** site name → a directory laid out like RELEASES_URL */
const sites = new Map<string, string>();
let hostBinary: Buffer<ArrayBuffer>;

function site(name: string, build: (dir: string) => void): string {
  const dir = path.join(tmp, "sites", name);
  if (!sites.has(name)) {
    fs.mkdirSync(dir, { recursive: true });
    build(dir);
    sites.set(name, dir);
  }
  return `http://127.0.0.1:${server.port}/${name}`;
}

beforeAll(async () => {
  rel = await release();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pgfiles-install-"));
  fs.chmodSync(tmp, 0o755);
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const [, name, ...rest] = new URL(req.url).pathname.split("/");
      const root = sites.get(name);
      if (!root || rest.some((s) => s === ".." || s === "")) return new Response("not found", { status: 404 });
      const file = path.join(root, ...rest);
      return fs.existsSync(file) && fs.statSync(file).isFile() ? new Response(Bun.file(file)) : new Response("not found", { status: 404 });
    },
  });
  // The pinned version is an older release beside the latest one.
  const older = path.join(tmp, "older");
  await buildRelease({ out: older, version: PIN, platforms: [hostPlatform()] });
  const p = hostPlatform();
  hostBinary = fs.readFileSync(path.join(unpack(path.join(rel.dir, archiveName(rel.version, p)), path.join(tmp, "expected")), `pgfiles-${rel.version}-${p}`, "pgfiles"));
}, 300_000);

afterAll(() => {
  server?.stop(true);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** A site with the latest release and the pinned older one. */
function releasesSite(): string {
  return site("releases", (dir) => {
    fs.mkdirSync(path.join(dir, "download"));
    fs.symlinkSync(rel.dir, path.join(dir, "download", `v${rel.version}`));
    fs.symlinkSync(path.join(tmp, "older", "download", `v${PIN}`), path.join(dir, "download", `v${PIN}`));
    fs.symlinkSync(path.join(rel.out, "latest"), path.join(dir, "latest"));
  });
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs install.sh as `curl … | sh -s -- args` does: the script on standard input. */
async function install(args: string[], env: Record<string, string>, asUser?: string, script: Uint8Array = fs.readFileSync(SCRIPT)): Promise<Result> {
  const base = { PATH: "/usr/local/bin:/usr/bin:/bin", ...env };
  const envArgs = Object.entries(base).map(([k, v]) => `${k}=${v}`);
  const cmd = asUser
    ? ["runuser", "-u", asUser, "--", "env", "-i", ...envArgs, "sh", "-s", "--", ...args]
    : ["env", "-i", ...envArgs, "sh", "-s", "--", ...args];
  // Not spawnSync: the HTTP server the script downloads from runs on this event loop.
  const p = Bun.spawn({ cmd, stdin: new Blob([script]), stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

function home(name: string): string {
  const h = path.join(tmp, "home", name);
  fs.mkdirSync(h, { recursive: true });
  return h;
}

function versionOf(bin: string): string {
  return Bun.spawnSync({ cmd: [bin, "--version"], stdout: "pipe", env: { PATH: "/usr/bin:/bin" } }).stdout.toString().trim();
}

test("a clean install, a re-install, a pinned version and an upgrade", async () => {
  const url = releasesSite();
  const h = home("clean");
  const dir = path.join(h, "bin");
  const env = { HOME: h, PGFILES_INSTALL_DIR: dir };

  const first = await install(["--base-url", url], env);
  expect(first.stderr).toBe("");
  expect(first.code).toBe(0);
  const dest = path.join(dir, "pgfiles");
  expect(fs.readFileSync(dest)).toEqual(hostBinary);
  expect(fs.statSync(dest).mode & 0o777).toBe(0o755);
  expect(versionOf(dest)).toStartWith(`${rel.version} (`);
  expect(first.stdout).toContain(`installed pgfiles ${rel.version} to ${dest}`);
  expect(first.stdout).toContain(`${dir} is not on your PATH. Add it with:`);
  expect(first.stdout).toContain(`echo 'export PATH="${dir}:$PATH"' >> "${h}/.profile" && . "${h}/.profile"`);

  const inode = fs.statSync(dest).ino;
  const again = await install(["--base-url", url], env);
  expect(again.code).toBe(0);
  expect(again.stdout).toContain(`pgfiles ${rel.version} is already installed at ${dest}`);
  expect(fs.statSync(dest).ino).toBe(inode);
  expect(fs.readdirSync(dir)).toEqual(["pgfiles"]);

  const pinned = await install(["--version", PIN, "--base-url", url], env);
  expect(pinned.stderr).toBe("");
  expect(pinned.code).toBe(0);
  expect(versionOf(dest)).toStartWith(`${PIN} (`);
  // The same pin through the environment, as a sandbox image would set it.
  const pinnedEnv = await install([], { ...env, PGFILES_INSTALL_VERSION: `v${PIN}`, PGFILES_INSTALL_BASE_URL: url });
  expect(pinnedEnv.stdout).toContain(`pgfiles ${PIN} is already installed`);

  const upgrade = await install(["--base-url", url], env);
  expect(upgrade.code).toBe(0);
  expect(versionOf(dest)).toStartWith(`${rel.version} (`);
  expect(fs.readdirSync(dir)).toEqual(["pgfiles"]);
}, 120_000);

/** The release's SHA256SUMS with this machine's archive changed by one bit. */
function tamperedSite(): string {
  const name = archiveName(rel.version, hostPlatform());
  return site("tampered", (dir) => {
    const v = path.join(dir, "download", `v${rel.version}`);
    fs.mkdirSync(v, { recursive: true });
    fs.copyFileSync(path.join(rel.dir, "SHA256SUMS"), path.join(v, "SHA256SUMS"));
    const bytes = fs.readFileSync(path.join(rel.dir, name));
    bytes[bytes.length >> 1] ^= 0x01;
    fs.writeFileSync(path.join(v, name), bytes);
  });
}

test("a download of the script cut short runs none of it: nothing is fetched or installed, wherever it was cut", async () => {
  const url = releasesSite();
  const lines = fs.readFileSync(SCRIPT, "utf8").split("\n");
  const h = home("cut");
  const dir = path.join(h, "bin");
  // Every 10th line, and the last few before the final `main "$@"`.
  const cuts = [...lines.keys()].filter((i) => i % 10 === 0 || i > lines.length - 5).filter((i) => i < lines.length - 2);
  for (const n of cuts) {
    const r = await install(["--base-url", url], { HOME: h, PGFILES_INSTALL_DIR: dir }, undefined, Buffer.from(lines.slice(0, n).join("\n") + "\n"));
    expect({ n, out: r.stdout }).toEqual({ n, out: "" });
    expect(fs.existsSync(dir)).toBe(false);
  }
}, 120_000);

test("a tampered archive is refused and the installed binary stays as it was", async () => {
  const name = archiveName(rel.version, hostPlatform());
  const url = tamperedSite();
  const h = home("tampered");
  const dir = path.join(h, "bin");
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, "pgfiles"), "#!/bin/sh\necho the old one\n", { mode: 0o755 });
  const r = await install(["--version", rel.version, "--base-url", url], { HOME: h, PGFILES_INSTALL_DIR: dir });
  expect(r.code).not.toBe(0);
  expect(r.stderr).toContain(`checksum mismatch for ${name}`);
  expect(r.stderr).toContain("nothing was installed");
  expect(fs.readFileSync(path.join(dir, "pgfiles"), "utf8")).toBe("#!/bin/sh\necho the old one\n");
  expect(fs.readdirSync(dir)).toEqual(["pgfiles"]);
});

test("a version that was never released, and an archive missing from SHA256SUMS, are refused in one sentence", async () => {
  const url = releasesSite();
  const h = home("missing");
  const r = await install(["--version", "9.9.9", "--base-url", url], { HOME: h, PGFILES_INSTALL_DIR: path.join(h, "bin") });
  expect(r.code).toBe(1);
  expect(r.stderr).toBe(`pgfiles install: could not download ${url}/download/v9.9.9/SHA256SUMS (is 9.9.9 a released version?).\n`);
  expect(fs.existsSync(path.join(h, "bin", "pgfiles"))).toBe(false);

  const p = hostPlatform();
  const url2 = site("nosum", (dir) => {
    const v = path.join(dir, "download", `v${rel.version}`);
    fs.mkdirSync(v, { recursive: true });
    fs.writeFileSync(path.join(v, "SHA256SUMS"), fs.readFileSync(path.join(rel.dir, "SHA256SUMS"), "utf8").split("\n").filter((l) => !l.includes(p)).join("\n"));
    fs.symlinkSync(path.join(rel.dir, archiveName(rel.version, p)), path.join(v, archiveName(rel.version, p)));
  });
  const r2 = await install(["--version", rel.version, "--base-url", url2], { HOME: h, PGFILES_INSTALL_DIR: path.join(h, "bin") });
  expect(r2.code).toBe(1);
  expect(r2.stderr).toContain(`SHA256SUMS of ${rel.version} has no line for ${archiveName(rel.version, p)}; nothing was installed.`);
  const r3 = await install(["--version", "latest; rm -rf /", "--base-url", url], { HOME: h });
  expect(r3.code).toBe(1);
  expect(r3.stderr).toContain("is not a version");
});

/** A directory of commands for PATH: the real ones named, plus scripts given as text. */
function toolDir(name: string, real: string[], scripts: Record<string, string> = {}): string {
  const dir = path.join(tmp, "tools", name);
  fs.mkdirSync(dir, { recursive: true });
  for (const t of real) {
    const where = Bun.which(t, { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" });
    if (where) fs.symlinkSync(where, path.join(dir, t));
  }
  for (const [t, text] of Object.entries(scripts)) fs.writeFileSync(path.join(dir, t), `#!/bin/sh\n${text}\n`, { mode: 0o755 });
  fs.chmodSync(path.join(tmp, "tools"), 0o755);
  return dir;
}

const BASIC = ["sh", "env", "uname", "curl", "awk", "tar", "gzip", "mkdir", "cp", "chmod", "mv", "rm", "cmp", "cut", "tr", "sha256sum", "mktemp", "id", "ls", "sed", "cat", "apt-get"];

test("as a user who cannot write /usr/local/bin: ~/.local/bin, the PATH line, and the FUSE fixes when fusermount3 is missing", async () => {
  const url = releasesSite();
  const user = isRoot ? "nobody" : undefined;
  const h = home("user");
  if (isRoot) Bun.spawnSync({ cmd: ["chown", "-R", "nobody", h] });
  const tools = toolDir("no-fusermount", BASIC);
  const r = await install(["--base-url", url], { HOME: h, PATH: tools, SHELL: "/bin/bash" }, user);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  const dest = path.join(h, ".local", "bin", "pgfiles");
  expect(fs.readFileSync(dest)).toEqual(hostBinary);
  expect(r.stdout).toContain(`echo 'export PATH="${h}/.local/bin:$PATH"' >> "${h}/.bashrc" && . "${h}/.bashrc"`);
  if (fs.existsSync("/dev/fuse")) {
    expect(r.stdout).toContain("warning: fusermount3 is missing, and a non-root mount needs it. Fix:\npgfiles install:   sudo apt-get update && sudo apt-get install -y fuse3\n");
    const rw = Bun.spawnSync({ cmd: [...(user ? ["runuser", "-u", user, "--"] : []), "sh", "-c", "test -r /dev/fuse && test -w /dev/fuse"] }).exitCode === 0;
    if (!rw) expect(r.stdout).toContain("sudo chmod 0666 /dev/fuse");
    else expect(r.stdout).not.toContain("chmod 0666");
  } else {
    expect(r.stdout).toContain("warning: /dev/fuse is missing");
  }
}, 60_000);

test("without curl and sha256sum it downloads with wget and checks with openssl, and still refuses a tampered archive", async () => {
  const url = releasesSite();
  const h = home("wget");
  const tools = toolDir("wget", [...BASIC.filter((t) => t !== "curl" && t !== "sha256sum"), "wget", "openssl"]);
  const dir = path.join(h, "bin");
  const r = await install(["--base-url", url], { HOME: h, PATH: tools, PGFILES_INSTALL_DIR: dir });
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  expect(fs.readFileSync(path.join(dir, "pgfiles"))).toEqual(hostBinary);
  const bad = await install(["--version", rel.version, "--base-url", tamperedSite()], { HOME: h, PATH: tools, PGFILES_INSTALL_DIR: dir });
  expect(bad.code).toBe(1);
  expect(bad.stderr).toContain("checksum mismatch");
  expect(fs.readFileSync(path.join(dir, "pgfiles"))).toEqual(hostBinary);
});

test("the build for the machine uname names is the one downloaded: a Mac on arm64 gets darwin-arm64", async () => {
  const url = releasesSite();
  const h = home("mac");
  const tools = toolDir("mac", BASIC.filter((t) => t !== "uname"), {
    uname: 'case "$1" in -s) echo Darwin ;; -m) echo arm64 ;; esac',
    sysctl: "exit 1",
    xattr: "exit 0",
  });
  const dir = path.join(h, "bin");
  const r = await install(["--base-url", url], { HOME: h, PATH: tools, PGFILES_INSTALL_DIR: dir });
  // It cannot run here, and says so; it was the verified darwin-arm64 archive.
  expect(r.code).toBe(1);
  expect(r.stdout).toContain(`downloading ${archiveName(rel.version, "darwin-arm64")}`);
  // The archive's checksum held (else it would say so), and it is tried before it replaces anything.
  expect(r.stderr).toContain("the downloaded pgfiles does not run on this machine, so nothing was installed");
  expect(fs.readdirSync(dir)).toEqual([]);
});

test("an unsupported system or processor is refused in one sentence", async () => {
  const h = home("bsd");
  const bsd = toolDir("bsd", BASIC.filter((t) => t !== "uname"), { uname: 'case "$1" in -s) echo FreeBSD ;; -m) echo amd64 ;; esac' });
  const r = await install(["--base-url", "http://127.0.0.1:1"], { HOME: h, PATH: bsd });
  expect(r.code).toBe(1);
  expect(r.stderr).toBe("pgfiles install: pgfiles is built for Linux and macOS only; this machine runs FreeBSD.\n");
  const riscv = toolDir("riscv", BASIC.filter((t) => t !== "uname"), { uname: 'case "$1" in -s) echo Linux ;; -m) echo riscv64 ;; esac' });
  const r2 = await install([], { HOME: h, PATH: riscv });
  expect(r2.stderr).toBe("pgfiles install: pgfiles is built for x86_64 and arm64 only; this machine is riscv64.\n");
  const r3 = await install(["--frobnicate"], { HOME: h });
  expect(r3.code).toBe(1);
  expect(r3.stderr).toContain("unknown option --frobnicate");
});
