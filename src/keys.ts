// Keys: the one place that joins a prefix and a path into a key, splits keys,
// validates them and escapes LIKE patterns.
//
// A key is a flat '/'-delimited string, like an S3 key, with no leading '/'.
// A directory marker's key ends with '/'. A prefix is either "" (the whole
// table) or a key-like string ending with '/'. Paths are relative to the
// prefix root and may start with '/', which means that root.

/** Largest segment (file name), in UTF-8 bytes. */
export const NAME_MAX = 255;
/** Largest whole key, prefix included, in UTF-8 bytes. */
export const KEY_MAX = 4096;

export type KeyErrno = "EINVAL" | "ENAMETOOLONG";

export class KeyError extends Error {
  readonly errno: KeyErrno;
  constructor(message: string, errno: KeyErrno) {
    super(message);
    this.name = "KeyError";
    this.errno = errno;
  }
}

/** UTF-8 length of a well-formed string. */
function bytes(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

/** JSON-quoted, shortened form of a name for error messages. */
function show(s: string): string {
  const max = 64;
  if (s.length <= max) return JSON.stringify(s);
  return JSON.stringify(s.slice(0, max)).slice(0, -1) + '..."';
}

/** True when the string has no lone surrogates (so it encodes to valid UTF-8). */
function wellFormed(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) return false;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return false;
    }
  }
  return true;
}

export function validateSegment(name: string): void {
  if (name === "") throw new KeyError("A name cannot be empty (a path may not contain \"//\").", "EINVAL");
  if (name === "." || name === "..") {
    throw new KeyError(`The name ${show(name)} is not allowed; "." and ".." cannot be used in a path.`, "EINVAL");
  }
  if (name.includes("/")) throw new KeyError(`The name ${show(name)} contains "/", which separates names.`, "EINVAL");
  if (name.includes("\0")) throw new KeyError(`The name ${show(name)} contains a NUL character.`, "EINVAL");
  if (!wellFormed(name)) {
    throw new KeyError(`The name ${show(name)} is not valid Unicode (it has an unpaired surrogate).`, "EINVAL");
  }
  const n = bytes(name);
  if (n > NAME_MAX) {
    throw new KeyError(`The name ${show(name)} is ${n} bytes long, more than the ${NAME_MAX} allowed.`, "ENAMETOOLONG");
  }
}

/** Validates the '/'-separated segments of a body with no leading or trailing '/'. */
function validateSegments(body: string): void {
  for (const seg of body.split("/")) validateSegment(seg);
}

function checkKeyLength(key: string, limit: number = KEY_MAX): void {
  const n = bytes(key);
  if (n > limit) {
    throw new KeyError(`The key ${show(key)} is ${n} bytes long, more than the ${limit} allowed.`, "ENAMETOOLONG");
  }
}

function checkPrefix(prefix: string): void {
  if (prefix !== "" && !prefix.endsWith("/")) {
    throw new KeyError(`The prefix ${show(prefix)} is not normalised; it must be "" or end with "/".`, "EINVAL");
  }
}

export function normalizePrefix(prefix: string): string {
  if (prefix === "") return "";
  if (prefix.startsWith("/")) {
    throw new KeyError(`The prefix ${show(prefix)} starts with "/", but keys never do (write it without the leading "/").`, "EINVAL");
  }
  const p = prefix.endsWith("/") ? prefix : prefix + "/";
  validateSegments(p.slice(0, -1));
  // Leave room for at least a one-byte name under the prefix.
  checkKeyLength(p, KEY_MAX - 1);
  return p;
}

/** Strips one leading '/' from a path relative to the prefix root. */
function stripRoot(path: string): string {
  return path.startsWith("/") ? path.slice(1) : path;
}

export function fileKey(prefix: string, path: string): string {
  checkPrefix(prefix);
  const rel = stripRoot(path);
  if (rel === "") throw new KeyError(`The path ${show(path)} names the root, not a file.`, "EINVAL");
  if (rel.endsWith("/")) {
    throw new KeyError(`The path ${show(path)} ends with "/", so it names a directory, not a file.`, "EINVAL");
  }
  validateSegments(rel);
  const key = prefix + rel;
  checkKeyLength(key);
  return key;
}

export function dirKey(prefix: string, path: string): string {
  checkPrefix(prefix);
  let rel = stripRoot(path);
  if (rel.endsWith("/")) rel = rel.slice(0, -1);
  if (rel === "") {
    if (path.length > 1) throw new KeyError(`The path ${show(path)} contains an empty name.`, "EINVAL");
    return prefix;
  }
  validateSegments(rel);
  const key = prefix + rel + "/";
  checkKeyLength(key);
  return key;
}

export function isUnder(prefix: string, key: string): boolean {
  if (prefix === "") return true;
  // A prefix always names a directory: "agents/a" must not contain "agents/ab/x".
  const p = prefix.endsWith("/") ? prefix : prefix + "/";
  return key.startsWith(p);
}

export function keyToPath(prefix: string, key: string): string {
  checkPrefix(prefix);
  if (!isUnder(prefix, key)) {
    throw new KeyError(`The key ${show(key)} is outside the prefix ${show(prefix)}.`, "EINVAL");
  }
  return key.slice(prefix.length);
}

export function splitKey(key: string): { parent: string; name: string } {
  const body = key.endsWith("/") ? key.slice(0, -1) : key;
  const i = body.lastIndexOf("/");
  return { parent: body.slice(0, i + 1), name: body.slice(i + 1) };
}

export function validateKey(key: string): void {
  if (key === "") throw new KeyError("A key cannot be empty.", "EINVAL");
  if (key.startsWith("/")) throw new KeyError(`The key ${show(key)} starts with "/", but keys never do.`, "EINVAL");
  const body = key.endsWith("/") ? key.slice(0, -1) : key;
  validateSegments(body);
  checkKeyLength(key);
}

export function escapeLike(literal: string): string {
  return literal.replace(/[\\%_]/g, "\\$&");
}

export function likePrefix(prefix: string): string {
  return escapeLike(prefix) + "%";
}
