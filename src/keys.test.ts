import { test, expect, describe } from "bun:test";
import {
  NAME_MAX,
  KEY_MAX,
  KeyError,
  validateSegment,
  normalizePrefix,
  fileKey,
  dirKey,
  keyToPath,
  isUnder,
  splitKey,
  validateKey,
  escapeLike,
  likePrefix,
} from "./keys";

/** Runs fn and returns the KeyError it throws (fails the test when it does not throw one). */
function keyError(fn: () => unknown): KeyError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(KeyError);
    return e as KeyError;
  }
  throw new Error("expected a KeyError, but nothing was thrown");
}

/** A tiny SQL LIKE matcher with backslash as the escape character. */
function like(value: string, pattern: string): boolean {
  let re = "^";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "\\") {
      i++;
      re += (pattern[i] ?? "").replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    } else if (c === "%") re += "[\\s\\S]*";
    else if (c === "_") re += "[\\s\\S]";
    else re += c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(re + "$", "u").test(value);
}

const hostile = ["100%", "a_b", "back\\slash", "it's", 'say "hi"', "new\nline", "tab\there", "emoji 😀", "日本語"];

describe("validateSegment", () => {
  test("accepts hostile but legal names", () => {
    for (const name of hostile) expect(() => validateSegment(name)).not.toThrow();
  });

  test("rejects empty, '.', '..', slash and NUL with EINVAL", () => {
    for (const name of ["", ".", "..", "a/b", "a\0b"]) {
      expect(keyError(() => validateSegment(name)).errno).toBe("EINVAL");
    }
  });

  test("rejects lone surrogates", () => {
    expect(keyError(() => validateSegment("\uD800")).errno).toBe("EINVAL");
    expect(keyError(() => validateSegment("a\uDC00b")).errno).toBe("EINVAL");
    expect(keyError(() => validateSegment("x\uD83D")).errno).toBe("EINVAL");
  });

  test("a 255-byte ASCII name is fine, 256 bytes is ENAMETOOLONG", () => {
    expect(NAME_MAX).toBe(255);
    expect(() => validateSegment("a".repeat(255))).not.toThrow();
    expect(keyError(() => validateSegment("a".repeat(256))).errno).toBe("ENAMETOOLONG");
  });

  test("counts UTF-8 bytes: 63 emoji (252 bytes) fit, 64 (256 bytes) do not", () => {
    expect(() => validateSegment("😀".repeat(63))).not.toThrow();
    expect(keyError(() => validateSegment("😀".repeat(64))).errno).toBe("ENAMETOOLONG");
  });

  test("error message quotes the name so control characters show", () => {
    const e2 = keyError(() => validateSegment("bad\nname\0"));
    expect(e2.message).toContain(JSON.stringify("bad\nname\0"));
    expect(e2.message).not.toContain("\n");
  });
});

describe("normalizePrefix", () => {
  test('"" stays "" (whole table)', () => {
    expect(normalizePrefix("")).toBe("");
  });

  test("adds a trailing slash when missing and keeps one that is there", () => {
    expect(normalizePrefix("agents/x")).toBe("agents/x/");
    expect(normalizePrefix("agents/x/")).toBe("agents/x/");
  });

  test('rejects a leading "/", an empty segment, "..", "." and NUL', () => {
    for (const p of ["/agents/x/", "agents//x/", "agents/../x", "./x", "a\0/", "//"]) {
      expect(keyError(() => normalizePrefix(p)).errno).toBe("EINVAL");
    }
  });

  test("accepts hostile legal characters", () => {
    expect(normalizePrefix("100%/a_b/it's")).toBe("100%/a_b/it's/");
  });

  test("must leave room for a name: at most KEY_MAX-1 bytes", () => {
    const seg = "a".repeat(200);
    const build = (n: number) => {
      const segs: string[] = [];
      let s = "";
      while (s.length + 201 <= n) {
        segs.push(seg);
        s = segs.join("/") + "/";
      }
      return s + "b".repeat(n - s.length - 1) + "/";
    };
    const ok = build(KEY_MAX - 1);
    expect(Buffer.byteLength(ok)).toBe(KEY_MAX - 1);
    expect(normalizePrefix(ok)).toBe(ok);
    const tooLong = build(KEY_MAX);
    expect(keyError(() => normalizePrefix(tooLong)).errno).toBe("ENAMETOOLONG");
  });
});

describe("fileKey", () => {
  test("joins prefix and path, leading slash meaning the prefix root", () => {
    expect(fileKey("agents/a/", "out/result.json")).toBe("agents/a/out/result.json");
    expect(fileKey("agents/a/", "/out/result.json")).toBe("agents/a/out/result.json");
    expect(fileKey("", "readme.md")).toBe("readme.md");
    expect(fileKey("", "/readme.md")).toBe("readme.md");
  });

  test("keeps hostile names verbatim", () => {
    for (const name of hostile) expect(fileKey("p/", name)).toBe("p/" + name);
  });

  test("rejects the root, a trailing slash, '..', '.', empty segments", () => {
    for (const path of ["", "/", "a/", "a/../b", "../x", "./x", "a/./b", "a//b", "//a"]) {
      expect(keyError(() => fileKey("p/", path)).errno).toBe("EINVAL");
    }
    expect(keyError(() => fileKey("p/", "/")).message).toContain("root");
  });

  test("rejects a prefix that was not normalised", () => {
    expect(keyError(() => fileKey("agents/a", "x")).errno).toBe("EINVAL");
  });

  test("limits the whole key, prefix included, to KEY_MAX bytes", () => {
    const prefix = normalizePrefix(Array(10).fill("p".repeat(200)).join("/")); // 2010 bytes
    expect(prefix.length).toBe(2010);
    const segs = (n: number) => {
      // path of n bytes made of 200-byte segments plus a tail
      const parts: string[] = [];
      let len = 0;
      while (n - len > 201) {
        parts.push("q".repeat(200));
        len += 201;
      }
      parts.push("r".repeat(n - len));
      return parts.join("/");
    };
    const fits = segs(KEY_MAX - prefix.length);
    expect(Buffer.byteLength(fileKey(prefix, fits))).toBe(KEY_MAX);
    expect(keyError(() => fileKey(prefix, segs(KEY_MAX - prefix.length + 1))).errno).toBe("ENAMETOOLONG");
  });

  test("a segment over NAME_MAX is ENAMETOOLONG", () => {
    expect(keyError(() => fileKey("", "dir/" + "😀".repeat(64))).errno).toBe("ENAMETOOLONG");
  });
});

describe("dirKey", () => {
  test("ends with a slash, with or without a trailing slash on input", () => {
    expect(dirKey("agents/a/", "output")).toBe("agents/a/output/");
    expect(dirKey("agents/a/", "/output/")).toBe("agents/a/output/");
    expect(dirKey("", "x/y")).toBe("x/y/");
  });

  test("the root is the prefix itself", () => {
    expect(dirKey("agents/a/", "")).toBe("agents/a/");
    expect(dirKey("agents/a/", "/")).toBe("agents/a/");
    expect(dirKey("", "/")).toBe("");
  });

  test("rejects '..', '.', empty segments", () => {
    for (const path of ["..", "a/..", "a//b", "//", "a//"]) {
      expect(keyError(() => dirKey("p/", path)).errno).toBe("EINVAL");
    }
  });
});

describe("isUnder and keyToPath (the jail)", () => {
  test('prefix "" contains everything', () => {
    expect(isUnder("", "anything/at/all")).toBe(true);
    expect(keyToPath("", "a/b")).toBe("a/b");
  });

  test("a sibling whose name starts with the prefix name is outside", () => {
    expect(isUnder("agents/a/", "agents/ab/x")).toBe(false);
    expect(isUnder("agents/a", "agents/ab/x")).toBe(false);
    expect(isUnder("agents/a/", "agents/a/x")).toBe(true);
    expect(keyError(() => keyToPath("agents/a/", "agents/ab/x")).errno).toBe("EINVAL");
  });

  test("keys outside the prefix are refused", () => {
    for (const key of ["agents/b/x", "other", "agents/a", "", "/agents/a/x"]) {
      expect(() => keyToPath("agents/a/", key)).toThrow(KeyError);
    }
  });

  test("round-trips fileKey and dirKey, dir markers keep their slash", () => {
    for (const prefix of ["", "agents/a/", "100%_\\/"]) {
      for (const name of hostile) {
        expect(keyToPath(prefix, fileKey(prefix, "d/" + name))).toBe("d/" + name);
        expect(keyToPath(prefix, dirKey(prefix, name))).toBe(name + "/");
      }
      expect(keyToPath(prefix, dirKey(prefix, "/"))).toBe("");
    }
  });
});

describe("splitKey", () => {
  test("splits files and dir markers into parent and name", () => {
    expect(splitKey("a/b/c.txt")).toEqual({ parent: "a/b/", name: "c.txt" });
    expect(splitKey("a/b/")).toEqual({ parent: "a/", name: "b" });
    expect(splitKey("top.txt")).toEqual({ parent: "", name: "top.txt" });
    expect(splitKey("top/")).toEqual({ parent: "", name: "top" });
    expect(splitKey("a/new\nline")).toEqual({ parent: "a/", name: "new\nline" });
  });
});

describe("validateKey", () => {
  test("accepts files and dir markers with hostile names", () => {
    for (const name of hostile) {
      expect(() => validateKey("p/" + name)).not.toThrow();
      expect(() => validateKey("p/" + name + "/")).not.toThrow();
    }
  });

  test("rejects empty, leading slash, double slash, '..', NUL, lone surrogates", () => {
    for (const key of ["", "/a", "a//b", "a//", "a/../b", "a/./b", "a\0", "a/\uD800"]) {
      expect(keyError(() => validateKey(key)).errno).toBe("EINVAL");
    }
  });

  test("4096 bytes is the limit", () => {
    const k = Array(20).fill("k".repeat(200)).join("/"); // 4019
    const exact = k + "/" + "z".repeat(KEY_MAX - k.length - 1);
    expect(exact.length).toBe(KEY_MAX);
    expect(() => validateKey(exact)).not.toThrow();
    expect(keyError(() => validateKey(exact + "z")).errno).toBe("ENAMETOOLONG");
  });

  test("the key limit counts UTF-8 bytes, not characters", () => {
    const k = Array(17).fill("😀".repeat(60)).join("/"); // 17*240 + 16 = 4096 bytes, 2056 UTF-16 units
    expect(Buffer.byteLength(k)).toBe(KEY_MAX);
    expect(() => validateKey(k)).not.toThrow();
    expect(keyError(() => validateKey(k + "é")).errno).toBe("ENAMETOOLONG");
  });
});

describe("escapeLike and likePrefix", () => {
  test("escapes backslash, percent and underscore", () => {
    expect(escapeLike("a%b_c\\d")).toBe("a\\%b\\_c\\\\d");
    expect(escapeLike("plain/it's \"x\"")).toBe("plain/it's \"x\"");
    expect(likePrefix("agents/a_1/")).toBe("agents/a\\_1/%");
  });

  test("an escaped pattern matches only the literal", () => {
    for (const lit of ["100%", "a_b", "back\\slash", "%_\\%"]) {
      expect(like(lit, escapeLike(lit))).toBe(true);
    }
    expect(like("100x", escapeLike("100%"))).toBe(false);
    expect(like("100%", "100%")).toBe(true); // sanity: matcher treats unescaped % as wildcard
    expect(like("axb", escapeLike("a_b"))).toBe(false);
    expect(like("back/slash", escapeLike("back\\slash"))).toBe(false);
  });

  test("likePrefix matches keys under the prefix and not its look-alikes", () => {
    const pat = likePrefix("agents/a_1%/");
    expect(like("agents/a_1%/x/y.txt", pat)).toBe(true);
    expect(like("agents/a_1%/", pat)).toBe(true);
    expect(like("agents/ab1%/x", pat)).toBe(false);
    expect(like("agents/a_1zz/x", pat)).toBe(false);
    expect(like("agents/a_1%", pat)).toBe(false);
  });
});
