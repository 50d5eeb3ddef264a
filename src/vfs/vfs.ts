// Filesystem semantics over the journal and the store, for any frontend.
// Writes go to a per-inode staging file; close of a changed file records one
// version in the journal (the durability boundary); the flusher takes it from
// there. Reads: pending versions, then the data cache, then Postgres.
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fsyncDir, fsyncPath, INLINE_MAX, type StagedBody } from "../journal/bodies.ts";
import { isDiskFull, type Journal, type NewVersion } from "../journal/journal.ts";
import { KeyError, validateSegment } from "../keys.ts";
import { contentTypeFor, MAX_FILE_SIZE, nowNs, type Meta, parseMeta, stampFromNs, tombstoneMeta } from "../meta.ts";
import { isStoreUnavailable, type Sql } from "../store/connect.ts";
import { latest, listChildren } from "../store/store.ts";
import { localBody } from "./bodies.ts";
import { Content } from "./content.ts";
import { type FileStamp, type Kind, type Node, NodeTable, type OpenFile, openSize } from "./nodes.ts";
import {
  type Attr, type Caller, type DirEntry, Errno, type Opened, RENAME_EXCHANGE, RENAME_NOREPLACE, type SetAttr, type StatFs,
  type Vfs, VfsError,
} from "./types.ts";

/** What the kernel must forget after a remote change: a name in a directory, or an inode's attributes and pages. */
export type Invalidation = { parent: bigint; name: string } | { ino: bigint };

export interface VfsOptions {
  journal: Journal;
  /** Returns the pool, or null while Postgres is unreachable. */
  sql: () => Sql | null;
  prefix: string;
  readOnly: boolean;
  metadataTtlMs: number;
  log?: { warn(obj: object, msg?: string): void };
  /** Strict mode (PGFILES_STRICT): close and fsync return only once these versions are in Postgres; rejects
   * (EIO to the caller; the versions stay in the journal) when that does not happen in time. */
  waitForPostgres?: (ids: string[]) => Promise<void>;
}

const O_ACCMODE = 3;
const O_RDONLY = 0;
const O_TRUNC = 0o1000;
const PAGE = 1000;

export class PgVfs implements Vfs {
  readonly nodes: NodeTable;
  private readonly j: Journal;
  private readonly stagingDir: string;
  private nextFh = 1n;
  private readonly handles = new Map<bigint, { node: Node; write: boolean; state: OpenFile }>();
  private readonly dirHandles = new Map<bigint, DirEntry[]>();

  constructor(private readonly o: VfsOptions) {
    this.j = o.journal;
    this.nodes = new NodeTable({ uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 });
    this.stagingDir = path.join(this.j.dir, "staging", String(process.pid));
    fs.rmSync(this.stagingDir, { recursive: true, force: true });
    fs.mkdirSync(this.stagingDir, { recursive: true, mode: 0o700 });
  }

  /**
   * The mount root's own attributes (chmod, chown, utimes of the mount point)
   * live in a directory marker whose key is the prefix itself: read it once at
   * mount, from the journal when pending, else from Postgres (skipped while it
   * is away: the root then shows the defaults). An empty prefix has no key for
   * the root, so its attributes stay in memory.
   */
  async loadRoot(): Promise<void> {
    const key = this.o.prefix;
    if (key === "") return;
    const pending = this.j.pendingForKey(key).at(-1);
    let found: { id: string; meta: Partial<Meta> } | null = null;
    if (pending) {
      if (pending.op !== "delete") found = { id: pending.id, meta: parseMeta(pending.meta) };
    } else {
      const sql = this.sql();
      if (sql) {
        try {
          const v = await latest(sql, key);
          if (v) found = { id: v.id, meta: parseMeta(v.meta) };
        } catch (e) {
          if (!isStoreUnavailable(e)) throw e;
        }
      }
    }
    if (!found || found.meta.deleted || found.meta.type !== "dir") return;
    NodeTable.apply(this.nodes.root, "dir", found.meta, found.id);
    this.nodes.root.atimeNs = this.nodes.root.mtimeNs;
  }

  // ---- names, keys, nodes ----

  private node(ino: bigint): Node {
    const n = this.nodes.get(ino);
    if (!n) throw new VfsError(Errno.ENOENT, `inode ${ino} is not known`);
    return n;
  }

  private dirNode(ino: bigint): Node {
    const n = this.node(ino);
    if (n.kind !== "dir") throw new VfsError(Errno.ENOTDIR, "not a directory");
    return n;
  }

  private key(node: Node): string {
    // Without this, a directory deleted by another mount while a shell sits in it would put the shell's new
    // files at the mount root: the path of a detached node stops at the detached directory.
    if (NodeTable.detached(node)) throw new VfsError(Errno.ENOENT, "the directory was removed");
    const p = NodeTable.path(node);
    return node.kind === "dir" ? (p === "" ? this.o.prefix : `${this.o.prefix}${p}/`) : this.o.prefix + p;
  }

  private checkName(name: string) {
    try {
      validateSegment(name);
    } catch (e) {
      if (e instanceof KeyError) throw new VfsError(e.errno === "ENAMETOOLONG" ? Errno.ENAMETOOLONG : Errno.EINVAL, e.message);
      throw e;
    }
  }

  private writable() {
    if (this.o.readOnly) throw new VfsError(Errno.EROFS, "read-only mount");
  }

  private sql(): Sql | null {
    return this.o.sql();
  }

  private readonly reloading = new Map<Node, Promise<Map<string, Node>>>();

  /** Children of a directory. The first listing waits for Postgres; after the
   * metadata TTL the known children are answered at once while a reload runs in
   * the background (it cost 2.6 ms on the request path per directory in rm -rf). */
  private async children(dir: Node): Promise<Map<string, Node>> {
    // A removed directory (a shell may still sit in it) is empty, as on any filesystem.
    if (NodeTable.detached(dir)) return new Map();
    if (dir.children) {
      if (Date.now() - dir.loadedAt >= this.o.metadataTtlMs && !this.reloading.has(dir)) {
        const p = this.reload(dir).finally(() => this.reloading.delete(dir));
        this.reloading.set(dir, p);
        p.catch((e) => this.o.log?.warn({ err: (e as Error).message, path: NodeTable.path(dir) }, "directory reload failed"));
      }
      return dir.children;
    }
    const running = this.reloading.get(dir);
    if (running) return running;
    const p = this.reload(dir).finally(() => this.reloading.delete(dir));
    this.reloading.set(dir, p);
    return p;
  }

  /**
   * Versions another writer stored (from the change follower, src/sync/follower.ts):
   * reloads every loaded directory they touch and says which kernel entries and
   * inodes to invalidate. Changes this mount made itself (the node already shows
   * that version) and changes under directories nobody listed are skipped.
   */
  async remoteChanges(changes: { key: string; id: string; deleted: boolean }[]): Promise<Invalidation[]> {
    const touched = new Map<Node, Set<string>>();
    for (const c of changes) {
      if (!c.key.startsWith(this.o.prefix)) continue;
      const rel = c.key.slice(this.o.prefix.length);
      if (rel === "") continue; // the root's marker: its attributes are read at mount
      const parts = (rel.endsWith("/") ? rel.slice(0, -1) : rel).split("/");
      let dir = this.nodes.root;
      let i = 0;
      let unlisted = false;
      for (; i < parts.length - 1; i++) {
        const next = dir.children?.get(parts[i]);
        // Below a directory known but never listed: nothing of it is cached, and its own entry is unchanged.
        if (next?.kind === "dir" && !next.children) unlisted = true;
        if (!next || next.kind !== "dir" || !next.children) break;
        dir = next;
      }
      if (unlisted || !dir.children) continue; // never listed: nothing of it is cached here or in the kernel
      const name = parts[i];
      const node = dir.children.get(name);
      const exact = i === parts.length - 1;
      if (exact && node && node.id === c.id) continue; // this mount's own version
      if (exact && !node && c.deleted) continue; // gone here already
      let names = touched.get(dir);
      if (!names) touched.set(dir, (names = new Set()));
      names.add(name);
    }
    const out: Invalidation[] = [];
    for (const [dir, names] of touched) {
      await this.reloading.get(dir)?.catch(() => {});
      await this.reload(dir);
      for (const name of names) {
        out.push({ parent: dir.ino, name });
        const n = dir.children?.get(name);
        if (n && !n.open && n.kind !== "dir") out.push({ ino: n.ino });
      }
    }
    return out;
  }

  /**
   * Keys a CLI command on this machine just changed (restore, purge, purge-prefix, batch; see src/cli/notify.ts):
   * reloads the directories that hold them, whatever version the nodes show (a purge leaves no head row, and a
   * restore's version may be the one this mount already took from the shared journal), and says what the
   * kernel must forget. A key ending in "/" that covers the whole mount reloads the root.
   */
  async localChanges(keys: string[]): Promise<Invalidation[]> {
    const changes: { key: string; id: string; deleted: boolean }[] = [];
    for (const key of keys) {
      if (key.startsWith(this.o.prefix) && key !== this.o.prefix) changes.push({ key, id: "", deleted: false });
      else if (key.endsWith("/") && this.o.prefix.startsWith(key)) {
        for (const c of this.nodes.root.children?.values() ?? []) changes.push({ key: this.key(c), id: "", deleted: false });
      }
    }
    return this.remoteChanges(changes);
  }

  /** Lists a directory from Postgres and lays the journal's pending versions over it. */
  private async reload(dir: Node): Promise<Map<string, Node>> {
    if (NodeTable.detached(dir)) return dir.children ?? new Map();
    const sql = this.sql();
    const stored = new Map<string, { kind: Kind; id: string | null; meta: Partial<Meta> | null; marker: boolean }>();
    let fresh = false;
    // A flush while Postgres is being asked moves versions from the journal into Postgres behind the
    // listing's back: such a version would be in neither, and its file would seem gone. Ask again.
    for (let attempt = 0; sql && !fresh && attempt < 5; attempt++) {
      stored.clear();
      const generation = this.j.flushGeneration;
      try {
        const dirKey = this.key(dir);
        let after: string | null = null;
        for (;;) {
          const page = await listChildren(sql, dirKey, after, PAGE);
          for (const c of page) {
            const meta = c.meta ? parseMeta(c.meta) : null;
            const kind: Kind = c.dir ? "dir" : ((meta?.type as Kind) ?? "file");
            // A key that is both a file and a directory prefix shows as the directory.
            if (stored.get(c.name)?.kind === "dir") continue;
            stored.set(c.name, { kind, id: c.id, meta, marker: c.dir && c.id !== null });
          }
          if (page.length < PAGE) break;
          after = page[page.length - 1].resumeKey;
        }
        fresh = this.j.flushGeneration === generation;
      } catch (e) {
        if (!isStoreUnavailable(e)) throw e;
        break;
      }
    }
    if (!fresh && dir.children) return dir.children; // offline: keep what we know
    // The journal's pending versions win over Postgres (read-your-writes).
    const dirKey = this.key(dir);
    for (const p of this.j.pendingUnder(dirKey)) {
      const rest = p.key.slice(dirKey.length);
      if (rest === "") continue;
      const slash = rest.indexOf("/");
      const name = slash < 0 ? rest : rest.slice(0, slash);
      let meta = parseMeta(p.meta);
      const deleted = p.op === "delete" || meta.deleted === true;
      if (!deleted && p.op === "copy" && slash < 0 && meta.size === undefined) {
        // A CLI copy (restore, copy, tag) records only what it changes; the rest of its attributes (the size
        // above all) come from its source, resolved in Postgres at flush. Showing it with what it records would
        // show a size-0 file that reads empty until the next reload after the flush. Take the source's
        // attributes when the journal has them; otherwise show what Postgres has until the copy arrives there.
        const src = this.copySourceMeta(p.src_id);
        if (!src) continue;
        meta = { ...src, ...meta };
      }
      if (slash >= 0 && slash < rest.length - 1) {
        if (!deleted && !stored.has(name)) stored.set(name, { kind: "dir", id: null, meta: null, marker: false });
        continue;
      }
      if (deleted) {
        const cur = stored.get(name);
        // A deleted marker leaves an implicit directory if keys remain below it.
        if (cur && !(slash >= 0 && cur.kind === "dir" && !cur.marker)) stored.delete(name);
        continue;
      }
      stored.set(name, { kind: slash >= 0 ? "dir" : ((meta.type as Kind) ?? "file"), id: p.id, meta, marker: slash >= 0 });
    }
    const old = dir.children ?? new Map<string, Node>();
    const next = new Map<string, Node>();
    for (const [name, s] of stored) {
      let n = old.get(name);
      if (n && n.kind !== s.kind) n = undefined;
      if (!n) n = this.nodes.create(dir, name, s.kind, s.meta ?? {}, s.id, s.marker);
      else if (!n.open || this.retire(n, s.id)) {
        if (n.kind === "file" && s.meta && n.id !== s.id) n.dropPages = true;
        if (s.meta) NodeTable.apply(n, s.kind, s.meta, s.id);
        n.marker = s.marker;
      }
      next.set(name, n);
    }
    // Local nodes Postgres does not know yet (created while offline, open) stay.
    for (const [name, n] of old) if (!next.has(name) && (n.open || n.id === null) && !n.unlinked && n.kind !== "dir") next.set(name, n);
    for (const [name, n] of old) {
      if (!next.has(name)) {
        n.parent = null;
        n.unlinked = true;
        this.nodes.release(n);
      }
    }
    dir.children = next;
    dir.loadedAt = Date.now();
    return next;
  }

  /** The attributes a pending copy inherits from its source, when its source is a pending version too. */
  private copySourceMeta(srcId: string | null, depth = 0): Partial<Meta> | null {
    if (!srcId || depth > 8) return null;
    const src = this.j.pendingById(srcId);
    if (!src || src.op === "delete") return null;
    const meta = parseMeta(src.meta);
    if (src.op === "copy" && meta.size === undefined) {
      const up = this.copySourceMeta(src.src_id, depth + 1);
      return up ? { ...up, ...meta } : null;
    }
    const { version: _v, ...rest } = meta as Partial<Meta> & { version?: number };
    return rest;
  }

  /**
   * Close-to-open: another writer's version `id` replaced an open file. A state only read from (no writer, no
   * unrecorded change) is retired: its descriptors keep the content they opened, and the next open takes the
   * new version. A state with a writer keeps the node as it is (its close records the next version).
   */
  private retire(n: Node, id: string | null): boolean {
    const open = n.open;
    if (!open || n.kind !== "file" || id === n.id || open.dirty || open.fresh || open.passthrough) return false;
    for (const h of this.handles.values()) if (h.state === open && h.write) return false;
    open.retired = true;
    n.open = null;
    return true;
  }

  private async child(dir: Node, name: string): Promise<Node | undefined> {
    return (await this.children(dir)).get(name);
  }

  // ---- recording versions ----

  private meta(node: Node, extra: Partial<Meta> = {}): Meta {
    const now = stampFromNs(nowNs());
    return {
      deleted: false, type: node.kind, size: node.kind === "file" ? node.size : 0, mode: node.mode, uid: node.uid, gid: node.gid,
      mtime: stampFromNs(node.mtimeNs), ctime: stampFromNs(node.ctimeNs), created: now,
      ...(node.kind === "file" ? { content_type: node.contentType ?? contentTypeFor(node.name) } : {}),
      ...(node.target !== undefined ? { target: node.target } : {}),
      ...(Object.keys(node.tags).length ? { tags: node.tags } : {}),
      ...extra,
    };
  }

  private record(versions: NewVersion[], durable = false) {
    try {
      this.roomFor(() => this.j.record(versions, durable));
    } catch (e) {
      if (e instanceof VfsError) throw e;
      throw new VfsError(Errno.EIO, (e as Error).message);
    }
  }

  /**
   * Runs `fn`; when the cache disk is full, evicts clean cached bodies (Postgres
   * has them) and tries once more. Only then is it ENOSPC for the caller:
   * nothing already recorded is ever dropped to make room.
   */
  private roomFor<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (!isDiskFull(e)) throw e;
      if (this.j.evictForSpace(ROOM) === 0) throw new VfsError(Errno.ENOSPC, "The cache disk is full and holds only unflushed data.");
      try {
        return fn();
      } catch (again) {
        if (isDiskFull(again)) throw new VfsError(Errno.ENOSPC, "The cache disk is full.");
        throw again;
      }
    }
  }

  /** A new version with the node's current attributes and the same body.
   * `removedTags` are tags the source version has and this one must not. */
  private metaOnlyVersion(node: Node, removedTags: string[] = []): NewVersion {
    const key = this.key(node);
    const id = crypto.randomUUID();
    if (node.kind === "file" && node.id) {
      // Server-side copy: the body is not sent again; a null tag removes it.
      const tags: Record<string, string | null> = { ...node.tags };
      for (const t of removedTags) tags[t] = null;
      return { id, key, op: "copy", meta: { ...this.meta(node), tags: tags as Record<string, string> }, src: { id: node.id } };
    }
    return { id, key, op: "put", meta: this.meta(node), ...(node.kind === "file" ? { body: { inline: new Uint8Array(0), size: 0, etag: EMPTY_SHA } } : {}) };
  }

  /** A body file made for a version that was not recorded: a staging file handed over goes back to being
   * the open file's private staging (removed at its last close); a copy is removed now. */
  private dropUnrecordedBody(content: Content, dest: string, handedOver: boolean) {
    try {
      if (handedOver) content.takeBack();
      else fs.rmSync(dest, { force: true });
    } catch (e) {
      this.o.log?.warn({ err: (e as Error).message }, "could not remove the body of a version that was not recorded");
    }
  }

  /** Records the open file's content as a version if it changed; returns the version's id (null: nothing). */
  private commit(node: Node, durable: boolean): string | null {
    const open = node.open;
    // A removed file (or one in a removed directory) stays usable while open and makes no version.
    if (!open || !open.dirty || node.unlinked || NodeTable.detached(node)) return null;
    const size = openSize(open);
    if (size > MAX_FILE_SIZE) throw new VfsError(Errno.EFBIG, "file larger than pgfiles can store");
    const id = crypto.randomUUID();
    let body: StagedBody;
    let handedOver = false;
    const content = open.content;
    if (size <= INLINE_MAX) {
      const bytes = content.bytes ?? fs.readFileSync(content.file!);
      body = { inline: bytes, size: bytes.length, etag: createHash("sha256").update(bytes).digest("hex") };
    } else {
      const dest = this.j.bodies.pathOf(id);
      const etag = content.knownSha256(size);
      // The staging file itself becomes the body file (a rename; the next write copies it again), unless the
      // kernel writes it directly (passthrough: the backing file must stay) or it is someone else's file.
      handedOver = !open.passthrough && content.handOver(dest, durable);
      try {
        if (!handedOver) {
          // Durable: the copy and its directory entry are fsynced (the source needs no fsync of its own).
          this.roomFor(() => {
            content.copyTo(dest);
            if (durable) {
              fsyncPath(dest);
              fsyncDir(path.dirname(dest));
            }
          });
        }
        body = { file: id, size, etag: etag ?? sha256File(dest) };
      } catch (e) {
        this.dropUnrecordedBody(content, dest, handedOver);
        throw e;
      }
    }
    try {
      this.record([{ id, key: this.key(node), op: "put", meta: this.meta(node, { size, etag: body.etag }), body }], durable);
    } catch (e) {
      // Not recorded (ENOSPC, EIO): no version references the body, so it must not stay on the cache disk
      // (it kept a full disk full until a start-up an hour later). The node keeps its last recorded size.
      if ("file" in body) this.dropUnrecordedBody(content, this.j.bodies.pathOf(id), handedOver);
      throw e;
    }
    node.size = size;
    node.id = id;
    open.dirty = false;
    open.recordedSize = size;
    return id;
  }

  // ---- Vfs ----

  async lookup(parent: bigint, name: string, _who?: Caller): Promise<Attr> {
    const dir = this.dirNode(parent);
    if (name.length > 255 && Buffer.byteLength(name) > 255) throw new VfsError(Errno.ENAMETOOLONG, "name too long");
    const n = await this.child(dir, name);
    if (!n) throw new VfsError(Errno.ENOENT, "no such file or directory");
    n.lookups++;
    await this.countSubdirs(n);
    return NodeTable.attr(n);
  }

  /** Where an inode is now, relative to the mount root ("" for the root); null when it is unknown or no
   * longer in the tree (removed here or by another writer). For a frontend that names files by path
   * across restarts (NFS file handles). */
  pathOf(ino: bigint): string | null {
    const n = this.nodes.get(ino);
    if (!n || NodeTable.detached(n)) return null;
    return NodeTable.path(n);
  }

  forget(ino: bigint, count: number) {
    const n = this.nodes.get(ino);
    if (!n || ino === 1n) return;
    n.lookups -= count;
    this.nodes.release(n);
  }

  async getattr(ino: bigint, _who?: Caller): Promise<Attr> {
    const n = this.node(ino);
    if (n.open) {
      this.noticeWrites(n);
      n.size = openSize(n.open);
    }
    await this.countSubdirs(n);
    return NodeTable.attr(n);
  }

  /** A directory's st_nlink is 2 + its subdirectories: list it once so the count is known. */
  private async countSubdirs(n: Node) {
    if (n.kind === "dir" && !n.children) await this.children(n);
  }

  async setattr(ino: bigint, set: SetAttr, who?: Caller): Promise<Attr> {
    return this.changeAttr(ino, set, [], false, who);
  }

  /** `tagsChanged`: the caller changed n.tags (xattrs), which is a stored change by itself. */
  private async changeAttr(ino: bigint, set: SetAttr, removedTags: string[], tagsChanged: boolean, who?: Caller): Promise<Attr> {
    this.writable();
    const n = this.node(ino);
    const now = nowNs();
    // Writes the kernel made straight to a passthrough file before this change are the file's, not after it.
    this.noticeWrites(n);
    if (set.killSuidGid && set.mode === undefined) {
      const { killSuidGid: _, ...rest } = set;
      const mode = withoutSuidGid(n, who);
      const same = mode === (n.mode & 0o7777);
      if (same && Object.keys(rest).length === 0) return NodeTable.attr(n); // nothing to clear: no change
      set = same ? rest : { ...rest, mode };
    }
    const stored = tagsChanged || set.mode !== undefined || set.uid !== undefined || set.gid !== undefined || set.size !== undefined || set.mtimeNs !== undefined;
    if (!stored) {
      // atime (touch -a) is not part of meta, and a SETATTR that changes nothing (chown -1 -1) changes nothing:
      // neither is a new version.
      if (set.atimeNs !== undefined) n.atimeNs = set.atimeNs === "now" ? now : set.atimeNs;
      n.ctimeNs = now;
      return NodeTable.attr(n);
    }
    if (set.size !== undefined) {
      if (n.kind === "dir") throw new VfsError(Errno.EISDIR, "is a directory");
      if (set.size > MAX_FILE_SIZE) throw new VfsError(Errno.EFBIG, "file too large");
    }
    if (set.mode !== undefined) n.mode = set.mode & 0o7777;
    if (set.uid !== undefined) n.uid = set.uid;
    if (set.gid !== undefined) n.gid = set.gid;
    if (set.atimeNs !== undefined) n.atimeNs = set.atimeNs === "now" ? now : set.atimeNs;
    if (set.mtimeNs !== undefined) n.mtimeNs = set.mtimeNs === "now" ? now : set.mtimeNs;
    n.ctimeNs = now;
    if (set.size !== undefined) {
      const temporary = !n.open;
      await this.openState(n, false, true);
      this.noticeWrites(n);
      n.open!.content.truncate(set.size);
      this.restamp(n);
      n.size = set.size;
      if (set.mtimeNs === undefined) n.mtimeNs = now;
      n.open!.dirty = true;
      if (temporary) {
        // truncate(2) on a closed file: that is a version of its own.
        this.commit(n, false);
        this.closeState(n);
      }
      return NodeTable.attr(n);
    }
    if (n.open) {
      // The next close records the attributes with the content.
      n.open.dirty = true;
    } else if (!NodeTable.detached(n) && (n.parent || this.o.prefix !== "")) {
      // (The root too, as the marker at the prefix's own key: see loadRoot.)
      const v = this.metaOnlyVersion(n, removedTags);
      this.record([v]);
      n.id = v.op === "copy" || v.body ? v.id : n.id;
      if (n.kind === "dir") n.marker = true;
    }
    return NodeTable.attr(n);
  }

  async readlink(ino: bigint, _who?: Caller): Promise<string> {
    const n = this.node(ino);
    if (n.kind !== "symlink") throw new VfsError(Errno.EINVAL, "not a symlink");
    return n.target ?? "";
  }

  private async newChild(parent: bigint, name: string): Promise<Node> {
    this.writable();
    this.checkName(name);
    const dir = this.dirNode(parent);
    if (NodeTable.detached(dir)) throw new VfsError(Errno.ENOENT, "the directory was removed");
    if (await this.child(dir, name)) throw new VfsError(Errno.EEXIST, "file exists");
    return dir;
  }

  private attach(dir: Node, name: string, kind: Kind, who: Caller, mode: number, extra: Partial<Meta> = {}): Node {
    // newChild checked the name before an await: another create may have taken it since.
    if (dir.children!.has(name)) throw new VfsError(Errno.EEXIST, "file exists");
    const n = this.nodes.create(dir, name, kind, { mode: mode & 0o7777, uid: who.uid, gid: who.gid, ...extra }, null, kind === "dir");
    dir.children!.set(name, n);
    const now = nowNs();
    dir.mtimeNs = now;
    dir.ctimeNs = now;
    n.lookups++;
    return n;
  }

  async mkdir(parent: bigint, name: string, mode: number, who: Caller): Promise<Attr> {
    const dir = await this.newChild(parent, name);
    const n = this.attach(dir, name, "dir", who, mode);
    n.children = new Map();
    n.loadedAt = Date.now();
    const id = crypto.randomUUID();
    this.record([{ id, key: this.key(n), op: "put", meta: this.meta(n) }]);
    n.id = id;
    return NodeTable.attr(n);
  }

  async symlink(parent: bigint, name: string, target: string, who: Caller): Promise<Attr> {
    const dir = await this.newChild(parent, name);
    if (Buffer.byteLength(target) > 4095) throw new VfsError(Errno.ENAMETOOLONG, "symlink target too long");
    const n = this.attach(dir, name, "symlink", who, 0o777, { target });
    const id = crypto.randomUUID();
    this.record([{ id, key: this.key(n), op: "put", meta: this.meta(n) }]);
    n.id = id;
    return NodeTable.attr(n);
  }

  /** Deleting the last entry of an implicit directory would make it vanish:
   * give it a marker in the same journal transaction. */
  private keepParent(dir: Node, versions: NewVersion[]) {
    if (dir.parent && !dir.marker && dir.children && dir.children.size === 0) {
      versions.push({ id: crypto.randomUUID(), key: this.key(dir), op: "put", meta: this.meta(dir) });
      dir.marker = true;
    }
  }

  private detach(n: Node) {
    const dir = n.parent!;
    dir.children?.delete(n.name);
    const now = nowNs();
    dir.mtimeNs = now;
    dir.ctimeNs = now;
    n.parent = null;
    n.unlinked = true;
    this.nodes.release(n);
  }

  async unlink(parent: bigint, name: string, _who?: Caller): Promise<void> {
    this.writable();
    const dir = this.dirNode(parent);
    const n = await this.child(dir, name);
    if (!n) throw new VfsError(Errno.ENOENT, "no such file");
    if (n.kind === "dir") throw new VfsError(Errno.EISDIR, "is a directory");
    const versions: NewVersion[] = [];
    if (n.id !== null || !n.open) versions.push({ id: crypto.randomUUID(), key: this.key(n), op: "delete", meta: tombstoneMeta(n.kind) });
    this.detach(n);
    this.keepParent(dir, versions);
    this.record(versions);
  }

  async rmdir(parent: bigint, name: string, _who?: Caller): Promise<void> {
    this.writable();
    const dir = this.dirNode(parent);
    const n = await this.child(dir, name);
    if (!n) throw new VfsError(Errno.ENOENT, "no such directory");
    if (n.kind !== "dir") throw new VfsError(Errno.ENOTDIR, "not a directory");
    if ((await this.children(n)).size > 0) throw new VfsError(Errno.ENOTEMPTY, "directory not empty");
    const versions: NewVersion[] = [];
    if (n.marker) versions.push({ id: crypto.randomUUID(), key: this.key(n), op: "delete", meta: tombstoneMeta("dir") });
    this.detach(n);
    this.keepParent(dir, versions);
    this.record(versions);
  }

  /** Every version needed to move `n` (and, for a directory, every key below it) to `toKey`. */
  private async moveVersions(n: Node, toKey: string, versions: NewVersion[]) {
    const fromKey = this.key(n);
    if (n.kind !== "dir") {
      this.noticeWrites(n);
      if (n.open?.dirty) this.commit(n, false);
      const meta = this.meta(n);
      if (n.id === null) versions.push({ id: crypto.randomUUID(), key: toKey, op: "put", meta, body: { inline: new Uint8Array(0), size: 0, etag: EMPTY_SHA } });
      else versions.push({ id: crypto.randomUUID(), key: toKey, op: "copy", meta, src: { id: n.id } });
      versions.push({ id: crypto.randomUUID(), key: fromKey, op: "delete", meta: tombstoneMeta(n.kind) });
      return;
    }
    if (n.marker) {
      versions.push({ id: crypto.randomUUID(), key: toKey, op: "put", meta: this.meta(n) });
      versions.push({ id: crypto.randomUUID(), key: fromKey, op: "delete", meta: tombstoneMeta("dir") });
    }
    for (const c of (await this.children(n)).values()) {
      await this.moveVersions(c, toKey + c.name + (c.kind === "dir" ? "/" : ""), versions);
    }
  }

  async rename(parent: bigint, name: string, newParent: bigint, newName: string, flags: number, _who?: Caller): Promise<void> {
    this.writable();
    this.checkName(newName);
    const from = this.dirNode(parent);
    const to = this.dirNode(newParent);
    const n = await this.child(from, name);
    if (!n) throw new VfsError(Errno.ENOENT, "no such file or directory");
    const target = await this.child(to, newName);
    if (flags & RENAME_NOREPLACE && target) throw new VfsError(Errno.EEXIST, "target exists");
    if (flags & RENAME_EXCHANGE) {
      if (!target) throw new VfsError(Errno.ENOENT, "target does not exist");
      return this.exchange(n, target);
    }
    if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) throw new VfsError(Errno.EINVAL, "unsupported rename flags");
    if (target === n) return;
    for (let p: Node | null = to; p; p = p.parent) if (p === n) throw new VfsError(Errno.EINVAL, "cannot move a directory into itself");
    const versions: NewVersion[] = [];
    if (target) {
      if (target.kind === "dir" && n.kind !== "dir") throw new VfsError(Errno.EISDIR, "target is a directory");
      if (target.kind !== "dir" && n.kind === "dir") throw new VfsError(Errno.ENOTDIR, "target is not a directory");
      if (target.kind === "dir" && (await this.children(target)).size > 0) throw new VfsError(Errno.ENOTEMPTY, "target directory not empty");
      if (target.kind === "dir" && target.marker) versions.push({ id: crypto.randomUUID(), key: this.key(target), op: "delete", meta: tombstoneMeta("dir") });
      // A replaced file needs no tombstone: the moved version becomes its latest.
    }
    const toKey = this.key(to) + newName + (n.kind === "dir" ? "/" : "");
    await this.moveVersions(n, toKey, versions);
    if (target) this.detach(target);
    from.children!.delete(name);
    n.name = newName;
    n.parent = to;
    to.children!.set(newName, n);
    const now = nowNs();
    for (const d of [from, to]) {
      d.mtimeNs = now;
      d.ctimeNs = now;
    }
    n.ctimeNs = now;
    this.keepParent(from, versions);
    // One journal transaction: the whole move reaches Postgres atomically.
    this.record(versions);
    this.refreshIds(n, versions);
  }

  /** After a move the nodes show the copies' ids (same bodies, new keys). */
  private refreshIds(n: Node, versions: NewVersion[]) {
    const byKey = new Map(versions.filter((v) => v.op !== "delete").map((v) => [v.key, v.id]));
    const walk = (x: Node) => {
      const id = byKey.get(this.key(x));
      if (id) x.id = id;
      if (x.kind === "dir" && x.children) for (const c of x.children.values()) walk(c);
    };
    walk(n);
  }

  /** RENAME_EXCHANGE: each side takes the other's name (a directory with every key below it), atomically. */
  private async exchange(a: Node, b: Node) {
    if (a === b) return;
    const slot = (x: Node) => this.key(x.parent!) + x.name;
    const moves: NewVersion[] = [];
    await this.moveVersions(a, slot(b) + (a.kind === "dir" ? "/" : ""), moves);
    await this.moveVersions(b, slot(a) + (b.kind === "dir" ? "/" : ""), moves);
    // A key one side leaves and the other side takes is overwritten, not deleted.
    const taken = new Set(moves.filter((v) => v.op !== "delete").map((v) => v.key));
    const versions = [...moves.filter((v) => v.op !== "delete"), ...moves.filter((v) => v.op === "delete" && !taken.has(v.key))];
    // One journal transaction: the exchange reaches Postgres atomically.
    this.record(versions);
    const [ap, an] = [a.parent!, a.name];
    const [bp, bn] = [b.parent!, b.name];
    ap.children!.set(an, b);
    bp.children!.set(bn, a);
    [a.parent, a.name, b.parent, b.name] = [bp, bn, ap, an];
    const now = nowNs();
    for (const d of [ap, bp]) {
      d.mtimeNs = now;
      d.ctimeNs = now;
    }
    a.ctimeNs = now;
    b.ctimeNs = now;
    this.refreshIds(a, versions);
    this.refreshIds(b, versions);
  }

  /** The inode's open state. Readers share the local body (file or memory); a
   * writer (or a truncate) gets a private copy that every descriptor then uses:
   * in memory while small, else a staging file (src/vfs/content.ts). */
  private async openState(n: Node, truncate: boolean, forWrite = truncate): Promise<void> {
    if (n.open) {
      if (forWrite) n.open.content.privatize();
      if (truncate) {
        n.open.content.truncate(0);
        n.open.dirty = true;
      }
      return;
    }
    const staging = path.join(this.stagingDir, `${n.ino}`);
    let content: Content;
    if (truncate || n.id === null) content = Content.empty(staging);
    else {
      const id = n.id;
      let body: Awaited<ReturnType<typeof localBody>>;
      try {
        body = await localBody(this.j, this.sql(), id, n.size);
      } catch (e) {
        // Fetching it from Postgres needs room in the cache: clean bodies go first.
        if (!isDiskFull(e) || this.j.evictForSpace(ROOM + n.size) === 0) throw isDiskFull(e) ? new VfsError(Errno.ENOSPC, "The cache disk is full.") : e;
        body = await localBody(this.j, this.sql(), id, n.size);
      }
      if (n.open) return this.openState(n, truncate, forWrite); // another open raced us through the await
      const from = (b: typeof body) =>
        !forWrite ? ("file" in b ? Content.sharedFile(staging, b.file) : Content.sharedBytes(staging, b.bytes)) : Content.copyOf(staging, b, n.size);
      try {
        content = from(body);
      } catch (e) {
        // The cached body file was evicted between finding it and opening it (another fetch made room):
        // fetch it again rather than fail a read of a file Postgres has.
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
        body = await localBody(this.j, this.sql(), id, n.size);
        if (n.open) return this.openState(n, truncate, forWrite);
        content = from(body);
      }
    }
    // Passthrough needs the content in a file from the first open to the last close, and the same file:
    // the kernel refuses a second backing file, or a non-passthrough open, on an inode with open passthrough
    // files. So it is decided here, once per open state, by the open that creates the state: a writer whose
    // content is in a staging file (over 128 KiB) gets it, and its reads and writes then cost no round trip.
    // Small content stays in memory (a staging file per create cost more than the WRITEs it saves: 1.27 ms
    // against 0.93-1.14 ms per create+write+close of 1 KiB), and readers are served from the page cache.
    // Setuid/setgid files stay out: passthrough writes would not clear those bits.
    const passthrough = this.passthrough && forWrite && content.file !== null && !content.shared && (n.mode & 0o6000) === 0;
    n.open = { content, handles: 0, dirty: truncate && n.size > 0, fresh: false, passthrough, seen: null, recordedSize: n.size };
    if (passthrough) n.open.seen = stampOf(content.descriptor);
    if (truncate) n.size = 0;
  }

  private closeState(n: Node) {
    if (!n.open || n.open.handles > 0) return;
    // Changes that never became a version (their close failed) are gone with the state: show the last version.
    if (n.open.dirty) n.size = n.open.recordedSize;
    n.open.content.close();
    n.open = null;
    this.nodes.release(n);
  }

  private handle(n: Node, write: boolean): Opened {
    const fh = this.nextFh++;
    const open = n.open!;
    this.handles.set(fh, { node: n, write, state: open });
    open.handles++;
    // After another writer's change the kernel's pages are of the old version: not kept (close-to-open).
    const keepCache = !open.dirty && !n.dropPages;
    n.dropPages = false;
    return { fh, keepCache, ...(open.passthrough ? { backingFd: open.content.descriptor } : {}) };
  }

  private passthrough = false;

  setPassthrough(on: boolean) {
    this.passthrough = on;
  }

  /** A passthrough state's file was written by the kernel: take its size and times, and mark it changed. */
  private noticeWrites(n: Node) {
    const open = n.open;
    if (!open?.passthrough || !open.seen) return;
    const st = stampOf(open.content.descriptor);
    if (st.size === open.seen.size && st.mtimeNs === open.seen.mtimeNs && st.ctimeNs === open.seen.ctimeNs) return;
    open.seen = st;
    open.dirty = true;
    open.fresh = false;
    n.size = Number(st.size);
    n.mtimeNs = st.mtimeNs;
    n.ctimeNs = st.ctimeNs;
    // The kernel wrote this file without asking us (passthrough), so it never said whether the writer may keep
    // setuid/setgid. A passthrough state is only made for a file without them (openState), so these bits were
    // set while it was open: drop them, as for a writer without CAP_FSETID (safe, if stricter for root).
    if (n.mode & (S_ISUID | S_ISGID)) n.mode = withoutSuidGid(n);
  }

  /** After we changed a passthrough state's file ourselves (truncate): not a write to notice later. */
  private restamp(n: Node) {
    if (n.open?.passthrough) n.open.seen = stampOf(n.open.content.descriptor);
  }

  async open(ino: bigint, flags: number, _who?: Caller): Promise<Opened> {
    const n = this.node(ino);
    if (n.kind === "dir") throw new VfsError(Errno.EISDIR, "is a directory");
    const write = (flags & O_ACCMODE) !== O_RDONLY;
    if (write || flags & O_TRUNC) this.writable();
    const truncate = Boolean(flags & O_TRUNC) && write;
    await this.openState(n, truncate, write);
    // `> file` on an existing file: like a new file, the truncation alone becomes
    // a version at the last close, not at the shell's early close of a duplicate.
    if (truncate) n.open!.fresh = true;
    return this.handle(n, write);
  }

  async create(parent: bigint, name: string, mode: number, flags: number, who: Caller): Promise<{ attr: Attr; opened: Opened }> {
    const dir = await this.newChild(parent, name);
    const n = this.attach(dir, name, "file", who, mode);
    await this.openState(n, true);
    n.open!.dirty = true; // a new file is a change even if nothing is written
    n.open!.fresh = true;
    return { attr: NodeTable.attr(n), opened: this.handle(n, true) };
  }

  private openFile(fh: bigint) {
    const h = this.handles.get(fh);
    if (!h || (!h.node.open && !h.state.retired)) throw new VfsError(Errno.EBADF, "bad file handle");
    return h;
  }

  async read(_ino: bigint, fh: bigint, offset: number, size: number): Promise<Uint8Array> {
    // A retired state (another writer's version arrived) still serves the descriptors that opened it.
    return this.openFile(fh).state.content.read(offset, size);
  }

  async write(_ino: bigint, fh: bigint, offset: number, data: Uint8Array, _who?: Caller): Promise<number> {
    const h = this.openFile(fh);
    if (!h.write) throw new VfsError(Errno.EBADF, "file not open for writing");
    if (offset + data.length > MAX_FILE_SIZE) throw new VfsError(Errno.EFBIG, "file larger than pgfiles can store");
    const content = h.node.open!.content;
    const n = this.roomFor(() => {
      content.privatize(); // after a version handed the staging file to the journal
      return content.write(offset, data);
    });
    const node = h.node;
    node.open!.dirty = true;
    node.open!.fresh = false;
    node.size = Math.max(node.size, offset + n);
    node.mtimeNs = nowNs();
    node.ctimeNs = node.mtimeNs;
    return n;
  }

  async flush(_ino: bigint, fh: bigint, _who?: Caller): Promise<void> {
    const { node, state } = this.openFile(fh);
    if (state.retired) return; // read-only, and replaced by another writer's version: nothing to record
    this.noticeWrites(node);
    // A new, still empty file becomes a version at its last close (release) — except in strict mode, where
    // close must not return before its version is in Postgres (a shell's `> f` then makes an empty one first).
    if (node.open!.fresh && !this.o.waitForPostgres) return;
    this.commit(node, false);
    // Strict mode: this file's newest version, whenever it was recorded, is in Postgres before close returns.
    if (this.o.waitForPostgres && node.id && this.j.pendingById(node.id)) await this.o.waitForPostgres([node.id]);
  }

  async release(_ino: bigint, fh: bigint): Promise<void> {
    const h = this.handles.get(fh);
    if (!h) return;
    this.handles.delete(fh);
    const node = h.node;
    if (h.state.retired) {
      if (--h.state.handles === 0) h.state.content.close();
      return;
    }
    if (!node.open) return;
    node.open.handles--;
    if (node.open.handles === 0) {
      try {
        this.noticeWrites(node);
        this.commit(node, false);
      } finally {
        // Even when the last version could not be recorded (the error goes to the kernel), the open state
        // ends here: a state with no handles would swallow later changes.
        this.closeState(node);
      }
    }
  }

  async fsync(_ino: bigint, fh: bigint): Promise<void> {
    const { node, state } = this.openFile(fh);
    if (state.retired) return;
    this.noticeWrites(node);
    const id = node.open?.dirty ? this.commit(node, true) : null;
    // Nothing new: the version recorded at an earlier close may still be only in the page cache.
    if (!id) this.j.makeDurable(node.id ?? undefined);
    // Strict mode: fsync also waits for Postgres, for this file's newest version whenever it was recorded.
    if (this.o.waitForPostgres && node.id && this.j.pendingById(node.id)) await this.o.waitForPostgres([node.id]);
  }

  async opendir(ino: bigint, _who?: Caller): Promise<bigint> {
    const dir = this.dirNode(ino);
    // A snapshot per open: offsets stay stable while the directory changes.
    const kids = await this.children(dir);
    const entries: DirEntry[] = [
      { name: ".", cookie: 1n, attr: NodeTable.attr(dir) },
      { name: "..", cookie: 2n, attr: NodeTable.attr(dir.parent ?? dir) },
    ];
    let cookie = 3n;
    for (const c of kids.values()) entries.push({ name: c.name, cookie: cookie++, attr: NodeTable.attr(c) });
    const fh = this.nextFh++;
    this.dirHandles.set(fh, entries);
    return fh;
  }

  async readdir(ino: bigint, fh: bigint, cookie: bigint, max: number, plus: boolean): Promise<DirEntry[]> {
    const entries = this.dirHandles.get(fh) ?? [];
    const out = entries.slice(Number(cookie), Number(cookie) + max);
    if (plus) {
      for (const e of out) {
        if (e.name === "." || e.name === "..") continue;
        const n = this.nodes.get(e.attr.ino);
        if (n) {
          n.lookups++;
          e.attr = NodeTable.attr(n);
        }
      }
    }
    void ino;
    return out;
  }

  async releasedir(_ino: bigint, fh: bigint): Promise<void> {
    this.dirHandles.delete(fh);
  }

  async fsyncdir(): Promise<void> {
    // Creates, renames and unlinks in the directory are journal commits: make them durable.
    this.j.makeDurable();
  }

  async statfs(): Promise<StatFs> {
    const s = fs.statfsSync(this.j.dir);
    return { blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: 1 << 30, ffree: 1 << 29, bsize: s.bsize, namelen: 255, frsize: s.bsize };
  }

  private tagName(name: string): string {
    if (!name.startsWith("user.")) throw new VfsError(Errno.ENOTSUP, "only user.* extended attributes are supported");
    const tag = name.slice(5);
    if (tag === "") throw new VfsError(Errno.EINVAL, "empty attribute name");
    return tag;
  }

  async getxattr(ino: bigint, name: string): Promise<Uint8Array> {
    const n = this.node(ino);
    // Other namespaces (security.*, system.posix_acl_*) are not supported at all:
    // ENOTSUP lets ls and friends stop asking for every file.
    if (!name.startsWith("user.")) throw new VfsError(Errno.ENOTSUP, "only user.* extended attributes are supported");
    const v = n.tags[name.slice(5)];
    if (v === undefined) throw new VfsError(Errno.ENODATA, "no such attribute");
    return Buffer.from(v, "utf8");
  }

  async listxattr(ino: bigint): Promise<string[]> {
    return Object.keys(this.node(ino).tags).map((t) => `user.${t}`);
  }

  async setxattr(ino: bigint, name: string, value: Uint8Array, flags: number, _who?: Caller): Promise<void> {
    this.writable();
    const n = this.node(ino);
    const tag = this.tagName(name);
    const XATTR_CREATE = 1;
    const XATTR_REPLACE = 2;
    if (flags & XATTR_CREATE && tag in n.tags) throw new VfsError(Errno.EEXIST, "attribute exists");
    if (flags & XATTR_REPLACE && !(tag in n.tags)) throw new VfsError(Errno.ENODATA, "no such attribute");
    // Tags are JSON strings that SQL users read: values must be UTF-8 text.
    const text = Buffer.from(value).toString("utf8");
    if (!Buffer.from(text, "utf8").equals(Buffer.from(value))) throw new VfsError(Errno.EINVAL, "extended attribute values must be UTF-8 text");
    n.tags = { ...n.tags, [tag]: text };
    await this.changeAttr(ino, {}, [], true);
  }

  async removexattr(ino: bigint, name: string, _who?: Caller): Promise<void> {
    this.writable();
    const n = this.node(ino);
    const tag = this.tagName(name);
    if (!(tag in n.tags)) throw new VfsError(Errno.ENODATA, "no such attribute");
    const { [tag]: _, ...rest } = n.tags;
    n.tags = rest;
    await this.changeAttr(ino, {}, [tag], true);
  }

  async access(ino: bigint, _mask?: number, _who?: Caller): Promise<void> {
    this.node(ino);
  }

  /** Records every open file's pending changes (unmount). */
  commitAll() {
    for (const { node, state } of this.handles.values()) {
      if (state.retired) continue;
      this.noticeWrites(node);
      this.commit(node, true);
    }
  }
}

const EMPTY_SHA = createHash("sha256").digest("hex");

/** Free space to make on a full cache disk before trying again. */
const ROOM = 64 * 1024 * 1024;



const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
const S_IXGRP = 0o0010;

/**
 * A regular file's permission bits once a write, truncate or chown by `who` has dropped setuid/setgid, as Linux
 * does (setattr_should_drop_suidgid / setattr_should_drop_sgid): set-user-ID always goes; set-group-ID goes when
 * the group may execute, and otherwise (it then marks mandatory locking, not privilege) only when `who` is not
 * root and not in the file's group. FUSE asks for this only when the caller lacks CAP_FSETID (writes, truncates)
 * or for any chown of a non-directory; NFS asks for non-root callers. Directories keep theirs (setgid there means
 * "new entries take the directory's group"). Without `who`: as for an unprivileged caller outside the group.
 */
function withoutSuidGid(n: Node, who?: Caller): number {
  let mode = n.mode & 0o7777;
  if (n.kind !== "file" || (mode & (S_ISUID | S_ISGID)) === 0) return mode;
  mode &= ~S_ISUID;
  const inGroup = who !== undefined && (who.uid === 0 || who.gid === n.gid);
  if (mode & S_IXGRP || !inGroup) mode &= ~S_ISGID;
  return mode;
}

function stampOf(fd: number): FileStamp {
  const st = fs.fstatSync(fd, { bigint: true });
  return { size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs };
}

function sha256File(file: string): string {
  const h = createHash("sha256");
  const fd = fs.openSync(file, "r");
  const buf = Buffer.allocUnsafe(1 << 20);
  try {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest("hex");
}
