// Whether this process can make FUSE mounts: root with /dev/fuse, or a normal
// user who can open /dev/fuse and has fusermount3. Tests that mount skip (and
// say why) otherwise; CI runs as root.
import fs from "node:fs";

function check(): string | null {
  if (!fs.existsSync("/dev/fuse")) return "/dev/fuse does not exist";
  try {
    fs.accessSync("/dev/fuse", fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    return "/dev/fuse is not readable and writable by this user";
  }
  if (process.getuid?.() !== 0 && Bun.which("fusermount3") === null) return "fusermount3 is not installed (Debian package fuse3)";
  return null;
}

export const cannotMount = check();
export const canMount = cannotMount === null;
if (cannotMount) console.warn(`FUSE mount tests are skipped: ${cannotMount}.`);
