// Checks and writes the embedded code signature of a thin 64-bit Mach-O executable.
//
// Why this exists: `bun build --compile --target bun-darwin-x64` (Bun 1.4.5), run on
// Linux, injects the application into a copy of Bun's runtime *after* that runtime was
// signed with Bun's Developer ID, and leaves the old signature in place. Its page hashes
// no longer match the pages, so macOS may kill the binary at exec. (The darwin-arm64
// output gets a fresh linker-style ad-hoc signature from Bun and is fine.) No Apple
// tool runs on Linux, so the release build re-signs the x64 binary here, ad hoc, the
// way `codesign -s - --force` would, and checks every macOS binary before shipping it.
//
// Layout references (all structures big-endian inside the signature, little-endian
// Mach-O around it): xnu's osfmk/kern/cs_blobs.h for the blob formats; Apple's
// Security framework (libsecurity_codesigning signer.cpp, codedirectory.cpp) for what
// an ad-hoc signature holds: a CodeDirectory, the internal-requirements set (empty for
// ad-hoc code: `codesign -d -vvv` prints "Internal requirements count=0 size=12") and,
// because signCodeDirectory() returns empty CMS data for the null identity, an empty
// BlobWrapper in the CMS slot. The CodeDirectory's internal order (fixed header,
// identifier, team id, special-slot hashes, code-page hashes) is the one seen in
// Apple-signed binaries, e.g. the Developer ID signature Bun's x64 runtime carries.

import { createHash } from "node:crypto";

// Mach-O (little-endian, as on every Apple CPU since PowerPC).
const MH_MAGIC_64 = 0xfeedfacf;
const MH_HEADER_64_SIZE = 32;
const MH_EXECUTE = 0x2;
const LC_SEGMENT_64 = 0x19;
const LC_CODE_SIGNATURE = 0x1d;

// Code signing (big-endian), from cs_blobs.h.
const CSMAGIC_EMBEDDED_SIGNATURE = 0xfade0cc0; // the SuperBlob
const CSMAGIC_CODEDIRECTORY = 0xfade0c02;
const CSMAGIC_REQUIREMENTS = 0xfade0c01;
const CSMAGIC_BLOBWRAPPER = 0xfade0b01; // holds the CMS signature; empty when ad hoc
const CSSLOT_CODEDIRECTORY = 0;
const CSSLOT_REQUIREMENTS = 2;
const CSSLOT_ALTERNATE_CODEDIRECTORIES = 0x1000; // up to five more CodeDirectories, other hash types
const CSSLOT_ALTERNATE_CODEDIRECTORY_LIMIT = 5;
const CSSLOT_SIGNATURESLOT = 0x10000;
const CS_ADHOC = 0x2;
const CS_EXECSEG_MAIN_BINARY = 0x1;
const CS_HASHTYPE_SHA1 = 1;
const CS_HASHTYPE_SHA256 = 2;
const CS_SUPPORTSSCATTER = 0x20100;
const CS_SUPPORTSCODELIMIT64 = 0x20300;
const CS_SUPPORTSEXECSEG = 0x20400;
/** CodeDirectory header size for version 0x20400 (through execSegFlags). */
const CD_HEADER_SIZE_EXECSEG = 88;
/** Oldest header: magic … spare2. Everything older than scatter support ends here. */
const CD_HEADER_SIZE_EARLIEST = 44;

/** Code pages are 4 KiB in every signature Apple's tools write for Mach-O, on x86_64 and arm64 alike. */
const PAGE_SIZE_LOG2 = 12;
const PAGE_SIZE = 1 << PAGE_SIZE_LOG2;
const SHA256_SIZE = 32;
/** __LINKEDIT's vmsize is rounded to the 16 KiB arm64 page by codesign, on both architectures. */
const LINKEDIT_VM_ROUND = 16384;

export type VerifyResult = { ok: true; pages: number; adhoc: boolean } | { ok: false; reason: string };

interface Segment {
  name: string;
  /** File offset of the LC_SEGMENT_64 command, to patch it. */
  cmdOffset: number;
  vmaddr: number;
  vmsize: number;
  fileoff: number;
  filesize: number;
}

interface MachO {
  filetype: number;
  segments: Segment[];
  /** The LC_CODE_SIGNATURE command, if any. */
  codeSignature: { cmdOffset: number; dataoff: number; datasize: number } | null;
}

/** A u64 field as a JS number; Mach-O offsets in a real file are far below 2^53. */
function u64(buf: Buffer, offset: number): number | null {
  const v = buf.readBigUInt64LE(offset);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? null : Number(v);
}

/** Parses the header and the load commands this module needs; a string says what is wrong. */
function parseMachO(file: Buffer): MachO | string {
  if (file.length < MH_HEADER_64_SIZE) return `the file is ${file.length} bytes long, too short for a Mach-O header`;
  const magicLE = file.readUInt32LE(0);
  const magicBE = file.readUInt32BE(0);
  if (magicBE === 0xcafebabe || magicBE === 0xcafebabf) return "the file is a fat (universal) Mach-O: sign and check each thin slice instead";
  if (magicLE === 0xfeedface) return "the file is a 32-bit Mach-O; only 64-bit executables are supported";
  if (magicBE === 0xfeedface || magicBE === 0xfeedfacf) return "the file is a big-endian Mach-O; only little-endian is supported";
  if (magicLE !== MH_MAGIC_64) return `the file is not a Mach-O (magic 0x${magicLE.toString(16).padStart(8, "0")})`;
  const filetype = file.readUInt32LE(12);
  const ncmds = file.readUInt32LE(16);
  const sizeofcmds = file.readUInt32LE(20);
  const cmdsEnd = MH_HEADER_64_SIZE + sizeofcmds;
  if (cmdsEnd > file.length) return `the load commands (${sizeofcmds} bytes) run past the end of the ${file.length}-byte file`;

  const segments: Segment[] = [];
  let codeSignature: MachO["codeSignature"] = null;
  let off = MH_HEADER_64_SIZE;
  for (let i = 0; i < ncmds; i++) {
    if (off + 8 > cmdsEnd) return `load command ${i} of ${ncmds} starts past the end of the load commands`;
    const cmd = file.readUInt32LE(off);
    const cmdsize = file.readUInt32LE(off + 4);
    if (cmdsize < 8 || off + cmdsize > cmdsEnd) return `load command ${i} (0x${cmd.toString(16)}) has an invalid size ${cmdsize}`;
    if (cmd === LC_SEGMENT_64) {
      if (cmdsize < 72) return `LC_SEGMENT_64 command ${i} is ${cmdsize} bytes, shorter than its 72-byte header`;
      const rawName = file.subarray(off + 8, off + 24);
      const nul = rawName.indexOf(0);
      const [vmaddr, vmsize, fileoff, filesize] = [24, 32, 40, 48].map((d) => u64(file, off + d));
      if (vmaddr === null || vmsize === null || fileoff === null || filesize === null) return `segment ${i} has a size or address beyond 2^53`;
      segments.push({ name: rawName.subarray(0, nul < 0 ? 16 : nul).toString("latin1"), cmdOffset: off, vmaddr, vmsize, fileoff, filesize });
    } else if (cmd === LC_CODE_SIGNATURE) {
      if (cmdsize < 16) return `LC_CODE_SIGNATURE is ${cmdsize} bytes, shorter than 16`;
      if (codeSignature) return "the file has more than one LC_CODE_SIGNATURE";
      codeSignature = { cmdOffset: off, dataoff: file.readUInt32LE(off + 8), datasize: file.readUInt32LE(off + 12) };
    }
    off += cmdsize;
  }
  return { filetype, segments, codeSignature };
}

function hashOf(hashType: number, data: Uint8Array): Buffer {
  return createHash(hashType === CS_HASHTYPE_SHA1 ? "sha1" : "sha256").update(data).digest();
}

/** Index entries of a SuperBlob: slot type → that blob's bytes, every bound checked. */
function readSuperBlob(sig: Buffer): Map<number, Buffer> | string {
  if (sig.length < 12) return `the signature area is ${sig.length} bytes, too small for a SuperBlob header`;
  const magic = sig.readUInt32BE(0);
  if (magic !== CSMAGIC_EMBEDDED_SIGNATURE) return `the signature does not start with the SuperBlob magic 0xfade0cc0 (found 0x${magic.toString(16).padStart(8, "0")})`;
  const length = sig.readUInt32BE(4);
  const count = sig.readUInt32BE(8);
  if (length > sig.length) return `the SuperBlob says it is ${length} bytes but LC_CODE_SIGNATURE gives it ${sig.length}`;
  if (12 + count * 8 > length) return `the SuperBlob's ${count} index entries do not fit in its ${length} bytes`;
  const blobs = new Map<number, Buffer>();
  for (let i = 0; i < count; i++) {
    const type = sig.readUInt32BE(12 + i * 8);
    const offset = sig.readUInt32BE(16 + i * 8);
    if (offset + 8 > length) return `blob ${i} (slot 0x${type.toString(16)}) starts at ${offset}, outside the ${length}-byte SuperBlob`;
    const blobLength = sig.readUInt32BE(offset + 4);
    if (blobLength < 8 || offset + blobLength > length) return `blob ${i} (slot 0x${type.toString(16)}) has length ${blobLength}, running outside the SuperBlob`;
    if (blobs.has(type)) return `slot 0x${type.toString(16)} appears twice in the SuperBlob`;
    blobs.set(type, sig.subarray(offset, offset + blobLength));
  }
  return blobs;
}

/**
 * Checks one CodeDirectory against the file: its own bounds, that it covers all the code
 * up to the signature, the hashes of the other blobs it names in special slots, and the
 * hash of every code page. Returns the page count, or a sentence.
 */
function checkCodeDirectory(file: Buffer, dataoff: number, cd: Buffer, slot: number, blobs: Map<number, Buffer>): number | string {
  const where = slot === CSSLOT_CODEDIRECTORY ? "the CodeDirectory" : `the alternate CodeDirectory in slot 0x${slot.toString(16)}`;
  if (cd.readUInt32BE(0) !== CSMAGIC_CODEDIRECTORY) return `${where} does not have the CodeDirectory magic 0xfade0c02`;
  if (cd.length < CD_HEADER_SIZE_EARLIEST) return `${where} is ${cd.length} bytes, shorter than the smallest CodeDirectory header`;
  const version = cd.readUInt32BE(8);
  const headerSize = version >= CS_SUPPORTSEXECSEG ? CD_HEADER_SIZE_EXECSEG : version >= CS_SUPPORTSCODELIMIT64 ? 64 : version >= CS_SUPPORTSSCATTER ? 52 : CD_HEADER_SIZE_EARLIEST;
  if (cd.length < headerSize) return `${where} (version 0x${version.toString(16)}) is ${cd.length} bytes, shorter than its ${headerSize}-byte header`;
  const hashOffset = cd.readUInt32BE(16);
  const identOffset = cd.readUInt32BE(20);
  const nSpecialSlots = cd.readUInt32BE(24);
  const nCodeSlots = cd.readUInt32BE(28);
  let codeLimit = cd.readUInt32BE(32);
  const hashSize = cd[36];
  const hashType = cd[37];
  const pageSizeLog2 = cd[39];
  if (version >= CS_SUPPORTSSCATTER && cd.readUInt32BE(44) !== 0) return `${where} uses a scatter vector, which Mach-O executables never do`;
  if (version >= CS_SUPPORTSCODELIMIT64) {
    const codeLimit64 = cd.readBigUInt64BE(56);
    if (codeLimit64 !== 0n) codeLimit = codeLimit64 > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(codeLimit64);
  }

  if (!((hashType === CS_HASHTYPE_SHA256 && hashSize === 32) || (hashType === CS_HASHTYPE_SHA1 && hashSize === 20))) {
    return `${where} uses hash type ${hashType} with ${hashSize}-byte hashes; only SHA-256 (2, 32) and SHA-1 (1, 20) are supported`;
  }
  if (pageSizeLog2 > 16) return `${where} has an implausible page size 2^${pageSizeLog2}`;
  if (identOffset >= cd.length || cd.indexOf(0, identOffset) < 0) return `${where}'s identifier is not a NUL-terminated string inside it`;
  if (hashOffset < nSpecialSlots * hashSize || hashOffset - nSpecialSlots * hashSize < headerSize) return `${where}'s special-slot hashes overlap its header`;
  if (hashOffset + nCodeSlots * hashSize > cd.length) return `${where}'s ${nCodeSlots} code hashes run past its ${cd.length} bytes`;

  // A signature covers the file from offset 0 to codeLimit, which must be where the signature
  // itself starts: anything between the two was added after signing and is not covered.
  if (codeLimit !== dataoff) {
    return `${where} covers the first ${codeLimit} bytes but the code runs to ${dataoff} (LC_CODE_SIGNATURE dataoff): the file was changed after it was signed`;
  }
  // pageSize 0 means one hash over the whole code.
  const pageSize = pageSizeLog2 === 0 ? Math.max(codeLimit, 1) : 2 ** pageSizeLog2;
  const expectedSlots = Math.ceil(codeLimit / pageSize);
  if (nCodeSlots !== expectedSlots) return `${where} has ${nCodeSlots} code hashes but ${codeLimit} bytes in ${pageSize}-byte pages need ${expectedSlots}`;

  // Special slot n (1-based) is stored at hashOffset - n * hashSize and holds the hash of the
  // blob in SuperBlob slot n. Blobs that live outside the signature (Info.plist, resources)
  // cannot be checked from here; every blob the SuperBlob does hold must match.
  for (const [type, blob] of blobs) {
    if (type === CSSLOT_CODEDIRECTORY || type >= CSSLOT_ALTERNATE_CODEDIRECTORIES) continue;
    if (type > nSpecialSlots) return `${where} has no special slot for the blob in slot ${type}`;
    const stored = cd.subarray(hashOffset - type * hashSize, hashOffset - (type - 1) * hashSize);
    if (!stored.equals(hashOf(hashType, blob))) {
      return `the blob in slot ${type}${type === CSSLOT_REQUIREMENTS ? " (requirements)" : ""} does not match its hash in ${where}`;
    }
  }

  let firstBad = -1;
  let bad = 0;
  for (let page = 0; page < nCodeSlots; page++) {
    const start = page * pageSize;
    const end = Math.min(start + pageSize, codeLimit);
    const stored = cd.subarray(hashOffset + page * hashSize, hashOffset + (page + 1) * hashSize);
    if (!stored.equals(hashOf(hashType, file.subarray(start, end)))) {
      if (firstBad < 0) firstBad = page;
      bad++;
    }
  }
  if (bad > 0) {
    const start = firstBad * pageSize;
    const end = Math.min(start + pageSize, codeLimit);
    return `page ${firstBad} (file bytes ${start}-${end - 1}) does not match its hash in ${where}` + (bad > 1 ? `; ${bad} of ${nCodeSlots} pages differ` : "");
  }
  return nCodeSlots;
}

/**
 * Checks that a thin 64-bit little-endian Mach-O carries a code signature whose hashes match
 * the file: every CodeDirectory (the primary one in slot 0 and any alternates) must cover all
 * code up to the signature, with SHA-256 or SHA-1 hashes of each page and of the blobs beside
 * it. It does not check a CMS signature (who signed): `adhoc` says whether there is meant to be
 * none. Never throws: whatever is wrong with the input comes back as a sentence.
 */
export function verifyCodeSignature(file: Buffer): VerifyResult {
  try {
    const macho = parseMachO(file);
    if (typeof macho === "string") return { ok: false, reason: macho };
    if (!macho.codeSignature) return { ok: false, reason: "the file has no LC_CODE_SIGNATURE load command: it is not signed" };
    const { dataoff, datasize } = macho.codeSignature;
    if (dataoff + datasize > file.length) {
      return { ok: false, reason: `the signature (${datasize} bytes at ${dataoff}) runs past the end of the ${file.length}-byte file` };
    }
    const blobs = readSuperBlob(file.subarray(dataoff, dataoff + datasize));
    if (typeof blobs === "string") return { ok: false, reason: blobs };
    const primary = blobs.get(CSSLOT_CODEDIRECTORY);
    if (!primary) return { ok: false, reason: "the SuperBlob has no CodeDirectory in slot 0" };
    const pages = checkCodeDirectory(file, dataoff, primary, CSSLOT_CODEDIRECTORY, blobs);
    if (typeof pages === "string") return { ok: false, reason: pages };
    // macOS uses the strongest CodeDirectory present, which may be an alternate one.
    for (let slot = CSSLOT_ALTERNATE_CODEDIRECTORIES; slot < CSSLOT_ALTERNATE_CODEDIRECTORIES + CSSLOT_ALTERNATE_CODEDIRECTORY_LIMIT; slot++) {
      const alternate = blobs.get(slot);
      if (!alternate) continue;
      const result = checkCodeDirectory(file, dataoff, alternate, slot, blobs);
      if (typeof result === "string") return { ok: false, reason: result };
    }
    return { ok: true, pages, adhoc: (primary.readUInt32BE(12) & CS_ADHOC) !== 0 };
  } catch (e) {
    // Every read above is bounds-checked first; this is a last guard so a malformed file can
    // never turn into an exception for the caller.
    return { ok: false, reason: `the signature could not be read: ${(e as Error).message}` };
  }
}

/**
 * Returns a copy of a thin 64-bit Mach-O with a fresh ad-hoc signature in place of whatever
 * LC_CODE_SIGNATURE held, laid out as `codesign -s - --force -i <identifier>` writes it:
 *
 *   SuperBlob 0xfade0cc0, index sorted by slot:
 *     slot 0       CodeDirectory 0xfade0c02: version 0x20400, flags CS_ADHOC, SHA-256, 4 KiB
 *                  pages, codeLimit = dataoff, 2 special slots (-1 Info.plist: none, zeros;
 *                  -2: hash of the requirements blob), execSeg = __TEXT's file range, with
 *                  CS_EXECSEG_MAIN_BINARY for an MH_EXECUTE file; no team id
 *     slot 2       Requirements 0xfade0c01, empty (length 12, count 0)
 *     slot 0x10000 BlobWrapper 0xfade0b01, empty (length 8): no CMS signature
 *
 * The code before dataoff is kept byte for byte except three load-command fields:
 * LC_CODE_SIGNATURE datasize (the SuperBlob padded to 16 bytes, like ld64) and __LINKEDIT's
 * filesize and vmsize (rounded up to 16 KiB, like codesign), so that __LINKEDIT ends exactly
 * where the file now ends. Those fields sit in the first page, which is hashed too, so they
 * are written before any page is hashed. Throws on input it cannot sign. The result is a
 * Buffer over a plain ArrayBuffer, so it can stand in for what fs.readFileSync returns.
 */
export function signAdHoc(file: Buffer, identifier: string): Buffer<ArrayBuffer> {
  const macho = parseMachO(file);
  if (typeof macho === "string") throw new Error(`signAdHoc: ${macho}`);
  if (!macho.codeSignature) throw new Error("signAdHoc: the file has no LC_CODE_SIGNATURE to put the signature in (adding one is not supported)");
  if (identifier.length === 0 || identifier.includes("\0")) throw new Error("signAdHoc: the identifier must be a non-empty string without NUL");
  const { cmdOffset: sigCmd, dataoff } = macho.codeSignature;
  if (dataoff > file.length) throw new Error(`signAdHoc: LC_CODE_SIGNATURE dataoff ${dataoff} is past the end of the ${file.length}-byte file`);
  const text = macho.segments.find((s) => s.name === "__TEXT");
  const linkedit = macho.segments.find((s) => s.name === "__LINKEDIT");
  if (!text) throw new Error("signAdHoc: the file has no __TEXT segment");
  if (!linkedit) throw new Error("signAdHoc: the file has no __LINKEDIT segment");
  if (dataoff < linkedit.fileoff) throw new Error(`signAdHoc: the signature at ${dataoff} is not inside __LINKEDIT (which starts at ${linkedit.fileoff})`);
  // The signature must be the last thing in the file: we cut the file at its end.
  for (const s of macho.segments) {
    if (s !== linkedit && s.filesize > 0 && s.fileoff + s.filesize > dataoff) {
      throw new Error(`signAdHoc: segment ${s.name} (file bytes ${s.fileoff}-${s.fileoff + s.filesize - 1}) extends past the signature at ${dataoff}`);
    }
  }

  // Sizes first: nothing in the signature's size depends on the page contents.
  const ident = Buffer.from(identifier + "\0", "utf8");
  const nSpecialSlots = CSSLOT_REQUIREMENTS; // slots -1 (Info.plist, empty) and -2 (requirements)
  const nCodeSlots = Math.ceil(dataoff / PAGE_SIZE);
  const hashOffset = CD_HEADER_SIZE_EXECSEG + ident.length + nSpecialSlots * SHA256_SIZE;
  const cdLength = hashOffset + nCodeSlots * SHA256_SIZE;

  const requirements = Buffer.alloc(12);
  requirements.writeUInt32BE(CSMAGIC_REQUIREMENTS, 0);
  requirements.writeUInt32BE(12, 4);
  requirements.writeUInt32BE(0, 8); // no requirements: an ad-hoc signature's designated requirement is its cdhash
  const cms = Buffer.alloc(8);
  cms.writeUInt32BE(CSMAGIC_BLOBWRAPPER, 0);
  cms.writeUInt32BE(8, 4);

  const entries: [number, number][] = [
    [CSSLOT_CODEDIRECTORY, cdLength],
    [CSSLOT_REQUIREMENTS, requirements.length],
    [CSSLOT_SIGNATURESLOT, cms.length],
  ];
  const indexSize = 12 + entries.length * 8;
  const superBlobLength = indexSize + entries.reduce((sum, [, len]) => sum + len, 0);
  const datasize = Math.ceil(superBlobLength / 16) * 16;
  const linkeditFilesize = dataoff + datasize - linkedit.fileoff;
  const linkeditVmsize = Math.ceil(linkeditFilesize / LINKEDIT_VM_ROUND) * LINKEDIT_VM_ROUND;

  // The new file: code unchanged, load commands patched, then the signature (zero padded).
  const out = Buffer.alloc(dataoff + datasize);
  file.copy(out, 0, 0, dataoff);
  out.writeUInt32LE(datasize, sigCmd + 12);
  out.writeBigUInt64LE(BigInt(linkeditVmsize), linkedit.cmdOffset + 32);
  out.writeBigUInt64LE(BigInt(linkeditFilesize), linkedit.cmdOffset + 48);

  const sb = out.subarray(dataoff, dataoff + superBlobLength);
  sb.writeUInt32BE(CSMAGIC_EMBEDDED_SIGNATURE, 0);
  sb.writeUInt32BE(superBlobLength, 4);
  sb.writeUInt32BE(entries.length, 8);
  let blobOffset = indexSize;
  const offsets = new Map<number, number>();
  entries.forEach(([slot, len], i) => {
    sb.writeUInt32BE(slot, 12 + i * 8);
    sb.writeUInt32BE(blobOffset, 16 + i * 8);
    offsets.set(slot, blobOffset);
    blobOffset += len;
  });
  requirements.copy(sb, offsets.get(CSSLOT_REQUIREMENTS)!);
  cms.copy(sb, offsets.get(CSSLOT_SIGNATURESLOT)!);

  const cd = sb.subarray(offsets.get(CSSLOT_CODEDIRECTORY)!, offsets.get(CSSLOT_CODEDIRECTORY)! + cdLength);
  cd.writeUInt32BE(CSMAGIC_CODEDIRECTORY, 0);
  cd.writeUInt32BE(cdLength, 4);
  cd.writeUInt32BE(CS_SUPPORTSEXECSEG, 8); // version 0x20400: the oldest with execSeg fields
  cd.writeUInt32BE(CS_ADHOC, 12);
  cd.writeUInt32BE(hashOffset, 16);
  cd.writeUInt32BE(CD_HEADER_SIZE_EXECSEG, 20); // identOffset: right after the header
  cd.writeUInt32BE(nSpecialSlots, 24);
  cd.writeUInt32BE(nCodeSlots, 28);
  cd.writeUInt32BE(dataoff, 32); // codeLimit; dataoff is a u32, so codeLimit64 stays 0
  cd[36] = SHA256_SIZE;
  cd[37] = CS_HASHTYPE_SHA256;
  cd[38] = 0; // platform: not a platform binary
  cd[39] = PAGE_SIZE_LOG2;
  // spare2 (40), scatterOffset (44), teamOffset (48), spare3 (52), codeLimit64 (56): zero
  cd.writeBigUInt64BE(BigInt(text.fileoff), 64); // execSegBase
  cd.writeBigUInt64BE(BigInt(text.filesize), 72); // execSegLimit
  cd.writeBigUInt64BE(BigInt(macho.filetype === MH_EXECUTE ? CS_EXECSEG_MAIN_BINARY : 0), 80);
  ident.copy(cd, CD_HEADER_SIZE_EXECSEG);
  // Special slot -1 (Info.plist) stays zero; -2 is the requirements blob's hash.
  hashOf(CS_HASHTYPE_SHA256, requirements).copy(cd, hashOffset - CSSLOT_REQUIREMENTS * SHA256_SIZE);
  for (let page = 0; page < nCodeSlots; page++) {
    const start = page * PAGE_SIZE;
    hashOf(CS_HASHTYPE_SHA256, out.subarray(start, Math.min(start + PAGE_SIZE, dataoff))).copy(cd, hashOffset + page * SHA256_SIZE);
  }
  return out;
}
