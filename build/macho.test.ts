// build/macho.ts against the real macOS binaries `bun build --compile` makes for pgfiles.
// The Mach-O and signature fields are read here with a few lines of our own (not through
// macho.ts), and cross-checked against references that do not come from this module: the
// page hashes in Bun's own linker-style arm64 signature and in the Developer ID signature
// Apple's codesign made for Bun's x64 runtime, and llvm-objdump's reading of the load commands.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { signAdHoc, verifyCodeSignature } from "./macho.ts";

const ROOT = path.resolve(import.meta.dir, "..");
const BUN = path.join(ROOT, "node_modules/.bin/bun");
const PAGE = 4096;

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest();

/** The load-command fields the signature depends on, read independently of macho.ts. */
function layout(f: Buffer) {
  const segments: Record<string, { cmdOffset: number; fileoff: number; filesize: number; vmsize: number }> = {};
  let sig = { cmdOffset: 0, dataoff: 0, datasize: 0 };
  let off = 32;
  for (let i = 0; i < f.readUInt32LE(16); i++) {
    const cmd = f.readUInt32LE(off);
    if (cmd === 0x19) {
      const name = f.subarray(off + 8, off + 24).toString("latin1").replace(/\0+$/, "");
      segments[name] = { cmdOffset: off, vmsize: Number(f.readBigUInt64LE(off + 32)), fileoff: Number(f.readBigUInt64LE(off + 40)), filesize: Number(f.readBigUInt64LE(off + 48)) };
    }
    if (cmd === 0x1d) sig = { cmdOffset: off, dataoff: f.readUInt32LE(off + 8), datasize: f.readUInt32LE(off + 12) };
    off += f.readUInt32LE(off + 4);
  }
  return { filetype: f.readUInt32LE(12), segments, sig };
}

/** The SuperBlob's slots and the primary CodeDirectory's fields, read independently of macho.ts. */
function signature(f: Buffer) {
  const { dataoff, datasize } = layout(f).sig;
  const sb = f.subarray(dataoff, dataoff + datasize);
  const blobs = new Map<number, Buffer>();
  for (let i = 0; i < sb.readUInt32BE(8); i++) {
    const o = sb.readUInt32BE(16 + 8 * i);
    blobs.set(sb.readUInt32BE(12 + 8 * i), sb.subarray(o, o + sb.readUInt32BE(o + 4)));
  }
  const cd = blobs.get(0)!;
  const hashOffset = cd.readUInt32BE(16);
  const identOffset = cd.readUInt32BE(20);
  const nCodeSlots = cd.readUInt32BE(28);
  const hashSize = cd[36];
  return {
    superBlob: { magic: sb.readUInt32BE(0), length: sb.readUInt32BE(4), slots: [...blobs.keys()], padding: sb.subarray(sb.readUInt32BE(4)) },
    blobs,
    cd: {
      magic: cd.readUInt32BE(0), version: cd.readUInt32BE(8), flags: cd.readUInt32BE(12), hashOffset, identOffset,
      nSpecialSlots: cd.readUInt32BE(24), nCodeSlots, codeLimit: cd.readUInt32BE(32), hashSize, hashType: cd[37], platform: cd[38], pageSize: cd[39],
      teamOffset: cd.readUInt32BE(48), codeLimit64: cd.readBigUInt64BE(56),
      execSegBase: cd.readBigUInt64BE(64), execSegLimit: cd.readBigUInt64BE(72), execSegFlags: cd.readBigUInt64BE(80),
      identifier: cd.subarray(identOffset, cd.indexOf(0, identOffset)).toString(),
    },
    special: (n: number) => cd.subarray(hashOffset - n * hashSize, hashOffset - (n - 1) * hashSize),
    page: (i: number) => cd.subarray(hashOffset + i * hashSize, hashOffset + (i + 1) * hashSize),
  };
}

/**
 * A minimal MH_EXECUTE with __TEXT (`pages` pages of patterned bytes), __LINKEDIT and an
 * empty LC_CODE_SIGNATURE at its end: small enough to mutate thousands of times.
 */
function tinyMachO(pages: number): Buffer {
  const textSize = pages * PAGE;
  const linkeditOff = textSize;
  const dataoff = linkeditOff + 16;
  const f = Buffer.alloc(dataoff);
  for (let i = 200; i < textSize; i++) f[i] = (i * 31) & 0xff;
  f.writeUInt32LE(0xfeedfacf, 0);
  f.writeUInt32LE(0x01000007, 4); // x86_64
  f.writeUInt32LE(3, 8);
  f.writeUInt32LE(2, 12); // MH_EXECUTE
  f.writeUInt32LE(3, 16);
  f.writeUInt32LE(72 + 72 + 16, 20);
  const segment = (at: number, name: string, vmaddr: number, fileoff: number, filesize: number) => {
    f.writeUInt32LE(0x19, at);
    f.writeUInt32LE(72, at + 4);
    f.fill(0, at + 8, at + 24);
    f.write(name, at + 8, "latin1");
    f.writeBigUInt64LE(BigInt(vmaddr), at + 24);
    f.writeBigUInt64LE(BigInt(Math.ceil(filesize / 16384) * 16384), at + 32);
    f.writeBigUInt64LE(BigInt(fileoff), at + 40);
    f.writeBigUInt64LE(BigInt(filesize), at + 48);
    f.writeUInt32LE(0, at + 56 + 8); // nsects
  };
  segment(32, "__TEXT", 0x100000000, 0, textSize);
  segment(104, "__LINKEDIT", 0x100000000 + textSize, linkeditOff, dataoff - linkeditOff);
  f.writeUInt32LE(0x1d, 176);
  f.writeUInt32LE(16, 180);
  f.writeUInt32LE(dataoff, 184);
  f.writeUInt32LE(0, 188);
  return f;
}

/** A seeded generator, so a failing mutation can be replayed. */
function rng(seed: number) {
  return () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 2 ** 32;
  };
}

let dir: string;
const built: Record<"arm64" | "x64", Buffer> = {} as never;
const signed: Record<"arm64" | "x64", Buffer> = {} as never;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgfiles-macho-"));
  for (const arch of ["arm64", "x64"] as const) {
    const outfile = path.join(dir, `pgfiles-darwin-${arch}`);
    const r = Bun.spawnSync([BUN, "build", "--compile", "--minify", "src/cli/main.ts", "--target", `bun-darwin-${arch}`, "--outfile", outfile], { cwd: ROOT });
    if (r.exitCode !== 0) throw new Error(`bun build --compile for darwin-${arch} failed:\n${r.stderr.toString()}`);
    built[arch] = fs.readFileSync(outfile);
    signed[arch] = signAdHoc(built[arch], "pgfiles");
  }
}, 180_000);

afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe("verifyCodeSignature on what bun build --compile makes", () => {
  test("the darwin-arm64 binary verifies as it is: Bun gives it an ad-hoc signature", () => {
    const r = verifyCodeSignature(built.arm64);
    expect(r).toEqual({ ok: true, pages: Math.ceil(layout(built.arm64).sig.dataoff / PAGE), adhoc: true });
  });

  test("the darwin-x64 binary does not: it keeps the runtime's signature from before the app was injected", () => {
    const r = verifyCodeSignature(built.x64);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain("changed after it was signed");
    // The old signature is the runtime's Developer ID one, not ad hoc.
    expect(signature(built.x64).cd.flags & 0x2).toBe(0);
  });
});

describe("signAdHoc", () => {
  for (const arch of ["arm64", "x64"] as const) {
    test(`the re-signed darwin-${arch} binary verifies`, () => {
      expect(verifyCodeSignature(signed[arch])).toEqual({ ok: true, pages: Math.ceil(layout(built[arch]).sig.dataoff / PAGE), adhoc: true });
    });

    test(`darwin-${arch}: load commands agree with each other and with the file`, () => {
      const before = layout(built[arch]);
      const after = layout(signed[arch]);
      const linkedit = after.segments.__LINKEDIT;
      expect(after.sig.dataoff).toBe(before.sig.dataoff);
      expect(after.sig.datasize % 16).toBe(0);
      expect(after.sig.dataoff + after.sig.datasize).toBe(signed[arch].length);
      expect(linkedit.fileoff).toBe(before.segments.__LINKEDIT.fileoff);
      expect(linkedit.fileoff + linkedit.filesize).toBe(signed[arch].length); // __LINKEDIT ends at end of file
      expect(linkedit.vmsize % 16384).toBe(0);
      expect(linkedit.vmsize).toBeGreaterThanOrEqual(linkedit.filesize);
      expect(linkedit.vmsize - linkedit.filesize).toBeLessThan(16384);
      // Every other segment lies before the signature, untouched.
      for (const [name, s] of Object.entries(after.segments)) {
        if (name === "__LINKEDIT") continue;
        expect(s).toEqual(before.segments[name]);
        expect(s.fileoff + s.filesize).toBeLessThanOrEqual(after.sig.dataoff);
      }
    });

    test(`darwin-${arch}: everything before the signature is the input, but for the three patched fields`, () => {
      const before = layout(built[arch]);
      const { dataoff } = before.sig;
      const patched = [
        [before.sig.cmdOffset + 12, 4], // LC_CODE_SIGNATURE datasize
        [before.segments.__LINKEDIT.cmdOffset + 32, 8], // __LINKEDIT vmsize
        [before.segments.__LINKEDIT.cmdOffset + 48, 8], // __LINKEDIT filesize
      ] as const;
      const out = Buffer.from(signed[arch].subarray(0, dataoff));
      const input = Buffer.from(built[arch].subarray(0, dataoff));
      for (const [at, len] of patched) {
        out.fill(0, at, at + len);
        input.fill(0, at, at + len);
      }
      expect(out.equals(input)).toBe(true);
    });

    test(`darwin-${arch}: the signature has codesign's ad-hoc layout`, () => {
      const { sig, segments, filetype } = layout(signed[arch]);
      const s = signature(signed[arch]);
      expect(s.superBlob.magic).toBe(0xfade0cc0);
      expect(s.superBlob.slots).toEqual([0, 2, 0x10000]);
      expect(s.superBlob.padding.every((b) => b === 0)).toBe(true);
      expect(s.superBlob.padding.length).toBeLessThan(16);
      expect(s.cd).toEqual({
        magic: 0xfade0c02, version: 0x20400, flags: 0x2, hashOffset: 88 + "pgfiles\0".length + 2 * 32, identOffset: 88,
        nSpecialSlots: 2, nCodeSlots: Math.ceil(sig.dataoff / PAGE), codeLimit: sig.dataoff, hashSize: 32, hashType: 2, platform: 0, pageSize: 12,
        teamOffset: 0, codeLimit64: 0n,
        execSegBase: BigInt(segments.__TEXT.fileoff), execSegLimit: BigInt(segments.__TEXT.filesize), execSegFlags: filetype === 2 ? 1n : 0n,
        identifier: "pgfiles",
      });
      expect(filetype).toBe(2); // MH_EXECUTE, so CS_EXECSEG_MAIN_BINARY above
      expect(s.cd.hashOffset + s.cd.nCodeSlots * 32).toBe(s.blobs.get(0)!.length);
      const requirements = s.blobs.get(2)!;
      expect(requirements.toString("hex")).toBe("fade0c010000000c00000000");
      // The hash every ad-hoc signature from codesign shows as "-2=9879…" in `codesign -dvvvvvv`.
      expect(s.special(2).toString("hex")).toBe("987920904eab650e75788c054aa0b0524e6a80bfc71aa32df8d237a61743f986");
      expect(s.special(2).equals(sha256(requirements))).toBe(true);
      expect(s.special(1).every((b) => b === 0)).toBe(true); // no Info.plist bound
      expect(s.blobs.get(0x10000)!.toString("hex")).toBe("fade0b0100000008"); // no CMS signature
    });
  }

  test("our page hashes equal those in Bun's own arm64 signature, except page 0 whose load commands we changed", () => {
    const theirs = signature(built.arm64);
    const ours = signature(signed.arm64);
    expect(ours.cd.nCodeSlots).toBe(theirs.cd.nCodeSlots);
    expect(ours.page(0).equals(theirs.page(0))).toBe(false);
    let differ = 0;
    for (let i = 1; i < ours.cd.nCodeSlots; i++) if (!ours.page(i).equals(theirs.page(i))) differ++;
    expect(differ).toBe(0);
    const { execSegBase, execSegLimit, execSegFlags, codeLimit, pageSize, hashType, version } = theirs.cd;
    expect({ execSegBase, execSegLimit, execSegFlags, codeLimit, pageSize, hashType, version }).toEqual({
      execSegBase: ours.cd.execSegBase, execSegLimit: ours.cd.execSegLimit, execSegFlags: ours.cd.execSegFlags,
      codeLimit: ours.cd.codeLimit, pageSize: ours.cd.pageSize, hashType: ours.cd.hashType, version: ours.cd.version,
    });
  });

  test("our x64 page hashes equal those Apple's codesign made for every page Bun left as it was", () => {
    const apple = signature(built.x64);
    const ours = signature(signed.x64);
    expect(apple.cd.hashType).toBe(2);
    expect(apple.cd.pageSize).toBe(12);
    let unchanged = 0;
    for (let i = 1; i < apple.cd.nCodeSlots; i++) {
      const start = i * PAGE;
      const page = built.x64.subarray(start, Math.min(start + PAGE, apple.cd.codeLimit));
      if (page.length < PAGE || !sha256(page).equals(apple.page(i))) continue; // changed by Bun since Apple signed it
      unchanged++;
      if (!ours.page(i).equals(apple.page(i))) throw new Error(`page ${i}: our hash differs from Apple's`);
    }
    expect(unchanged).toBeGreaterThan(apple.cd.nCodeSlots * 0.99);
    // Apple's execSeg for this runtime is __TEXT's file range, as ours is.
    expect(ours.cd.execSegBase).toBe(apple.cd.execSegBase);
    expect(ours.cd.execSegLimit).toBe(apple.cd.execSegLimit);
    expect(ours.cd.execSegFlags).toBe(apple.cd.execSegFlags);
  });

  test("signing is deterministic and signing again changes nothing", () => {
    expect(signAdHoc(built.x64, "pgfiles").equals(signed.x64)).toBe(true);
    expect(signAdHoc(signed.x64, "pgfiles").equals(signed.x64)).toBe(true);
  });

  test("a small synthetic executable signs and verifies, and its last page is hashed only up to the signature", () => {
    const tiny = tinyMachO(3);
    const out = signAdHoc(tiny, "tiny");
    expect(verifyCodeSignature(out)).toEqual({ ok: true, pages: 4, adhoc: true }); // 3 pages + 16 bytes of __LINKEDIT
    const s = signature(out);
    expect(s.page(3).equals(sha256(out.subarray(3 * PAGE, 3 * PAGE + 16)))).toBe(true);
  });

  test("it refuses what it cannot sign, with a message", () => {
    expect(() => signAdHoc(Buffer.alloc(10), "x")).toThrow(/too short/);
    expect(() => signAdHoc(Buffer.from("cafebabe00000002" + "00".repeat(40), "hex"), "x")).toThrow(/fat/);
    const unsigned = tinyMachO(1);
    unsigned.writeUInt32LE(0x26, 176); // LC_FUNCTION_STARTS in place of LC_CODE_SIGNATURE
    expect(() => signAdHoc(unsigned, "x")).toThrow(/no LC_CODE_SIGNATURE/);
    expect(() => signAdHoc(tinyMachO(1), "")).toThrow(/identifier/);
    expect(() => signAdHoc(tinyMachO(1), "a\0b")).toThrow(/identifier/);
  });
});

describe("verifyCodeSignature on damaged input", () => {
  test("one flipped byte in a code page fails, naming that page", () => {
    const f = Buffer.from(signed.x64);
    f[1000 * PAGE + 123] ^= 0x01;
    const r = verifyCodeSignature(f);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toStartWith(`page 1000 (file bytes ${1000 * PAGE}-${1001 * PAGE - 1})`);
  });

  test("a flipped byte in the last, partial page fails, naming it", () => {
    const f = Buffer.from(signed.arm64);
    const { dataoff } = layout(f).sig;
    f[dataoff - 1] ^= 0x80;
    const r = verifyCodeSignature(f);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toStartWith(`page ${Math.ceil(dataoff / PAGE) - 1} `);
  });

  test("a changed load command (page 0) fails, naming page 0", () => {
    const f = Buffer.from(signed.x64);
    f[28] ^= 0x01; // mach_header_64.reserved
    const r = verifyCodeSignature(f);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toStartWith("page 0 ");
  });

  test("a changed requirements blob fails, naming its slot", () => {
    const f = Buffer.from(signed.x64);
    signature(f).blobs.get(2)![11] ^= 0x01; // the requirements' count (the blob is a view into f)
    const r = verifyCodeSignature(f);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain("slot 2 (requirements)");
  });

  test("truncated and garbage input gives ok:false with a reason, never a throw", () => {
    const { dataoff } = layout(signed.x64).sig;
    const cases: [string, Buffer, RegExp][] = [
      ["empty", Buffer.alloc(0), /too short/],
      ["10 bytes", signed.x64.subarray(0, 10), /too short/],
      ["header only", signed.x64.subarray(0, 32), /load commands/],
      ["cut inside the load commands", signed.x64.subarray(0, 1000), /load commands/],
      ["cut inside the code", signed.x64.subarray(0, dataoff - 5000), /past the end/],
      ["cut inside the signature", signed.x64.subarray(0, dataoff + 100), /past the end/],
      ["zeros", Buffer.alloc(8192), /not a Mach-O/],
      ["ELF", Buffer.concat([Buffer.from("7f454c46020101", "hex"), Buffer.alloc(100)]), /not a Mach-O/],
      ["fat", Buffer.concat([Buffer.from("cafebabe00000002", "hex"), Buffer.alloc(100)]), /fat/],
      ["32-bit", Buffer.concat([Buffer.from("cefaedfe", "hex"), Buffer.alloc(100)]), /32-bit/],
      ["big-endian", Buffer.concat([Buffer.from("feedfacf", "hex"), Buffer.alloc(100)]), /big-endian/],
      ["unsigned", tinyMachO(1), /SuperBlob/],
    ];
    const random = rng(7);
    const noise = Buffer.alloc(65536);
    for (let i = 0; i < noise.length; i++) noise[i] = Math.floor(random() * 256);
    cases.push(["random bytes", noise, /not a Mach-O/]);
    for (const [name, input, reason] of cases) {
      const r = verifyCodeSignature(input);
      if (r.ok) throw new Error(`${name}: verified`);
      expect(r.reason, name).toMatch(reason);
    }
  });

  test("3,000 random corruptions of the header, load commands and signature never throw", () => {
    const good = signAdHoc(tinyMachO(3), "tiny");
    const { dataoff } = layout(good).sig;
    const regions = [
      [0, 192], // header and load commands
      [dataoff, dataoff + 36], // SuperBlob header and index
      [dataoff + 36, dataoff + 36 + 160], // CodeDirectory header, identifier, special slots
      [good.length - 24, good.length], // requirements and CMS wrapper
    ];
    const random = rng(12345);
    let failed = 0;
    for (let i = 0; i < 3000; i++) {
      const f = Buffer.from(good);
      const [lo, hi] = regions[i % regions.length];
      const at = lo + Math.floor(random() * (hi - lo));
      // Half single-bit flips, half large values where 32-bit lengths and offsets live.
      if (i % 2 === 0) f[at] ^= 1 << Math.floor(random() * 8);
      else f.writeUInt32BE(Math.floor(random() * 2 ** 32), Math.min(at, f.length - 4));
      const r = verifyCodeSignature(f);
      if (!r.ok) {
        failed++;
        expect(typeof r.reason).toBe("string");
        expect(r.reason.length).toBeGreaterThan(10);
        // Every bound is checked before it is read: the last-resort catch in verifyCodeSignature never fires.
        expect(r.reason).not.toContain("could not be read");
      }
    }
    // Some bytes are not checked (e.g. padding after the load commands, spare fields); most are.
    expect(failed).toBeGreaterThan(1500);
  });
});

describe("cross-checks with tools outside this module", () => {
  const objdump = Bun.which("llvm-objdump") ?? Bun.which("llvm-objdump-14");
  // llvm-objdump comes with Debian's llvm package, which .ci/run does not install.
  test.skipIf(!objdump)("llvm-objdump reads the re-signed x64 load commands as we do", () => {
    const file = path.join(dir, "pgfiles-darwin-x64.signed");
    fs.writeFileSync(file, signed.x64);
    const r = Bun.spawnSync([objdump!, "--macho", "--private-headers", file]);
    expect(r.exitCode).toBe(0);
    const text = r.stdout.toString();
    const sig = /cmd LC_CODE_SIGNATURE\s+cmdsize \d+\s+dataoff (\d+)\s+datasize (\d+)/.exec(text);
    const linkedit = /segname __LINKEDIT\s+vmaddr 0x[0-9a-f]+\s+vmsize 0x([0-9a-f]+)\s+fileoff (\d+)\s+filesize (\d+)/.exec(text);
    expect(sig).not.toBeNull();
    expect(linkedit).not.toBeNull();
    const [dataoff, datasize] = [Number(sig![1]), Number(sig![2])];
    const [vmsize, fileoff, filesize] = [parseInt(linkedit![1], 16), Number(linkedit![2]), Number(linkedit![3])];
    expect(dataoff + datasize).toBe(signed.x64.length);
    expect(fileoff + filesize).toBe(signed.x64.length);
    expect(vmsize).toBe(Math.ceil(filesize / 16384) * 16384);
    expect(signature(signed.x64).cd.codeLimit).toBe(dataoff);
  });

  const fileCmd = Bun.which("file");
  test.skipIf(!fileCmd)("file(1) still sees a 64-bit x86_64 Mach-O executable", () => {
    const file = path.join(dir, "pgfiles-darwin-x64.signed");
    fs.writeFileSync(file, signed.x64);
    const r = Bun.spawnSync([fileCmd!, "-b", file]);
    expect(r.stdout.toString()).toStartWith("Mach-O 64-bit x86_64 executable");
  });
});
