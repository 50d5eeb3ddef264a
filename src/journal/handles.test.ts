// The NFS handle table: identities that survive reopening the journal, move
// with renames (a directory's whole subtree), and die with removes.
import { afterAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { HandleTable } from "./handles.ts";
import { Journal } from "./journal.ts";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pgfiles-handles-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function open(cacheDir: string) {
  return new Journal({ cacheDir, dsn: "postgres://u@127.0.0.1:1/db", prefix: "p/", cacheMaxSize: 1 << 30 });
}

describe("NFS handle table", () => {
  test("a reopened journal gives the same export id, fileids and generations; another journal another export id", () => {
    const dir = path.join(tmp, "a");
    let j = open(dir);
    const t = new HandleTable(j);
    const a = t.ensure("a/b.txt");
    const id = Buffer.from(t.exportId);
    j.close();
    j = open(dir);
    const again = new HandleTable(j);
    expect(again.exportId).toEqual(id);
    expect(again.byFileid(a.fileid)).toEqual(a);
    expect(again.ensure("a/b.txt")).toEqual(a);
    j.close();
    const other = open(path.join(tmp, "b"));
    expect(new HandleTable(other).exportId).not.toEqual(id);
    other.close();
  });

  test("rename moves a directory's rows with it and drops the replaced target's; remove drops a subtree; fileids are never reused", () => {
    const j = open(path.join(tmp, "c"));
    const t = new HandleTable(j);
    const [d, f, deep, target, sibling] = t.ensureMany(["d", "d/f", "d/e/deep", "x", "dd/f"]);
    t.rename("d", "x");
    expect(t.byFileid(target.fileid)).toBeNull();
    expect(t.byFileid(d.fileid)!.path).toBe("x");
    expect(t.byFileid(f.fileid)!.path).toBe("x/f");
    expect(t.byFileid(deep.fileid)!.path).toBe("x/e/deep");
    expect(t.byFileid(sibling.fileid)!.path).toBe("dd/f"); // a prefix of the name is not a parent
    expect(t.byPathOf("d/f")).toBeNull();
    // The same in a fresh table (read from SQLite, not memory).
    const fresh = new HandleTable(j);
    expect(fresh.byPathOf("x/e/deep")!.fileid).toBe(deep.fileid);
    t.remove("x");
    expect(t.byFileid(f.fileid)).toBeNull();
    expect(new HandleTable(j).byFileid(deep.fileid)).toBeNull();
    const reborn = t.ensure("x/f");
    expect(reborn.fileid).toBeGreaterThan(sibling.fileid);
    j.close();
  });

  test("names outside the BMP (emoji) move and die with their directory, also after reopening", () => {
    const dir = path.join(tmp, "emoji");
    let j = open(dir);
    let t = new HandleTable(j);
    const [child, gone] = t.ensureMany(["📁/c.txt", "🎉/x"]);
    t.rename("📁", "d");
    t.remove("🎉");
    j.close();
    j = open(dir);
    t = new HandleTable(j);
    expect(t.byFileid(child.fileid)?.path).toBe("d/c.txt");
    expect(t.byFileid(gone.fileid)).toBeNull();
    // A new file where the removed one was is a new identity, not the old handle's.
    expect(t.ensure("🎉/x").fileid).not.toBe(gone.fileid);
    j.close();
  });

  test("CREATE EXCLUSIVE's verifier is kept with the row", () => {
    const j = open(path.join(tmp, "e"));
    const t = new HandleTable(j);
    t.setCreateVerf("n", Buffer.from("12345678"));
    expect(new HandleTable(j).byPathOf("n")!.createVerf).toEqual(Buffer.from("12345678"));
    j.close();
  });
});
