// Turns parsed batch operations into journal versions, all recorded in one
// journal transaction (one group: all or nothing, one Postgres transaction).
// Every line is checked before anything is recorded; the first bad line
// rejects the whole batch, naming the line.
import { PgfilesError } from "../errors.ts";
import type { Journal, NewVersion } from "../journal/journal.ts";
import { dirKey, fileKey, KeyError } from "../keys.ts";
import { dirMeta, fileMeta, nowStamp, parseMeta, tombstoneMeta, type Meta } from "../meta.ts";
import type { Sql } from "../store/connect.ts";
import { latest, versionOf } from "../store/store.ts";
import type { BatchOp } from "./parse.ts";

export interface ApplyContext {
  journal: Journal;
  prefix: string;
  /** null when Postgres is unreachable: checks that need it are left to the flush. */
  sql: Sql | null;
  durable: boolean;
}

export interface Recorded {
  line: number;
  op: BatchOp["op"];
  key: string;
  id: string;
}

/** What is known of a key's latest version while the batch is being built. */
type Latest = { id: string; meta: Partial<Meta>; deleted: boolean } | null | "unknown";

export async function applyBatchOps(ops: BatchOp[], ctx: ApplyContext): Promise<Recorded[]> {
  const inBatch = new Map<string, { id: string; meta: Partial<Meta>; deleted: boolean }>();
  const versions: NewVersion[] = [];
  const recorded: Recorded[] = [];

  const latestOf = async (key: string): Promise<Latest> => {
    const b = inBatch.get(key);
    if (b) return b;
    const pend = ctx.journal.pendingForKey(key).filter((r) => r.held_reason === null).pop();
    if (pend) {
      const meta = parseMeta(pend.meta);
      return { id: pend.id, meta, deleted: pend.op === "delete" || meta.deleted === true };
    }
    if (!ctx.sql) return "unknown";
    const s = await latest(ctx.sql, key);
    if (!s) return null;
    const meta = parseMeta(s.meta);
    return { id: s.id, meta, deleted: meta.deleted === true };
  };

  try {
    for (const op of ops) {
      const fail = (msg: string): never => {
        throw new PgfilesError(`line ${op.line}: ${msg}`, { errno: "EINVAL" });
      };
      // A path ending in "/" names a directory marker; mkdir always does.
      const keyFor = (path: string, dir = path.endsWith("/")) => {
        try {
          return dir ? dirKey(ctx.prefix, path) : fileKey(ctx.prefix, path);
        } catch (e) {
          if (e instanceof KeyError) return fail(e.message);
          throw e;
        }
      };
      const key = keyFor(op.path, op.op === "mkdir" || op.path.endsWith("/"));
      if (key === ctx.prefix) fail("the path names the root directory.");
      const id = crypto.randomUUID();
      const name = key.endsWith("/") ? key.slice(0, -1) : key;
      let v: NewVersion;
      switch (op.op) {
        case "put": {
          if (key.endsWith("/")) fail(`${op.path} names a directory; put writes files.`);
          let staged;
          try {
            staged =
              "file" in op.body
                ? ctx.journal.bodies.fromLocalFile(id, op.body.file, ctx.durable)
                : ctx.journal.bodies.fromBytes(id, "text" in op.body ? Buffer.from(op.body.text, "utf8") : op.body.base64, ctx.durable);
          } catch (e) {
            // A missing or too large local file is this line's fault: say which line.
            if (e instanceof PgfilesError) throw new PgfilesError(`line ${op.line}: ${e.message}`, { exitCode: e.exitCode, errno: e.errno, cause: e });
            throw e;
          }
          v = { id, key, op: "put", meta: fileMeta(name, staged.size, staged.etag), body: staged };
          break;
        }
        case "mkdir":
          v = { id, key, op: "put", meta: dirMeta() };
          break;
        case "delete": {
          const cur = await latestOf(key);
          if (cur === null || (cur !== "unknown" && cur.deleted)) return fail(`${op.path} does not exist.`);
          v = { id, key, op: "delete", meta: tombstoneMeta(cur === "unknown" ? (key.endsWith("/") ? "dir" : "file") : (cur.meta.type ?? "file")) };
          break;
        }
        case "restore": {
          const now = nowStamp();
          const meta: Partial<Meta> = { deleted: false, mtime: now, ctime: now, created: now };
          if (ctx.sql) {
            const s = await versionOf(ctx.sql, key, op.version);
            if (!s) fail(`${op.path} has no version ${op.version}.`);
            if (parseMeta(s!.meta).deleted) fail(`version ${op.version} of ${op.path} is a deletion; there is no content to restore.`);
            v = { id, key, op: "copy", meta, src: { id: s!.id } };
          } else {
            v = { id, key, op: "copy", meta, src: { key, version: op.version } };
          }
          break;
        }
        case "copy":
        case "tag": {
          const srcKey = op.op === "copy" ? keyFor(op.src) : key;
          const srcPath = op.op === "copy" ? op.src : op.path;
          // A key ending in "/" is a directory marker: a file's body never goes there, nor a marker to a file's key.
          if (srcKey.endsWith("/") !== key.endsWith("/")) {
            fail(key.endsWith("/") ? `${op.path} names a directory; copy a file to a file path (no trailing "/").` : `${srcPath} names a directory; copy it to a path ending in "/".`);
          }
          const cur = await latestOf(srcKey);
          if (cur === null || (cur !== "unknown" && cur.deleted)) return fail(`${srcPath} does not exist.`);
          const now = nowStamp();
          const meta: Partial<Meta> = { deleted: false, mtime: now, ctime: now, created: now };
          if (op.op === "tag") meta.tags = op.tags as Record<string, string>;
          v = { id, key, op: "copy", meta, src: cur === "unknown" ? { key: srcKey } : { id: cur.id } };
          break;
        }
      }
      versions.push(v);
      recorded.push({ line: op.line, op: op.op, key, id });
      inBatch.set(key, { id, meta: v.meta, deleted: v.op === "delete" });
    }
    ctx.journal.record(versions, ctx.durable);
  } catch (e) {
    // Nothing was recorded: drop the bodies staged for this batch.
    for (const v of versions) if (v.body?.file) ctx.journal.bodies.remove(v.body.file);
    throw e;
  }
  return recorded;
}
