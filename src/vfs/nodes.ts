// Inodes: the in-memory tree the mount serves. A node's path is derived from its
// parent chain, so renaming a directory is one pointer move in memory; inode
// numbers are never reused for the life of the mount.
import type { Meta } from "../meta.ts";
import { nowNs, nsFromStamp } from "../meta.ts";
import type { Content } from "./content.ts";
import type { Attr } from "./types.ts";

export type Kind = "file" | "dir" | "symlink";

const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

/** An open file's local state, shared by every descriptor of the inode. */
export interface OpenFile {
  content: Content;
  handles: number;
  /** Changed since the last version was made. */
  dirty: boolean;
  /** Created by this open and not yet written: a shell's `> file` closes a dup of
   * the new descriptor before writing, and that close must not make an empty version. */
  fresh: boolean;
  /** Every open of this state passes its reads and writes to the content's file (FUSE passthrough): the
   * kernel writes it without telling us, so changes are noticed by its size and times (`seen`). */
  passthrough: boolean;
  seen: FileStamp | null;
  /** The size of the node's last recorded version: what it shows again when this state ends with changes
   * that could not be recorded (a close that failed with ENOSPC). */
  recordedSize: number;
  /** Another writer's version replaced the node's content while this state was open (read-only): its
   * descriptors keep reading what they opened, and the next open makes a new state with the new version. */
  retired?: boolean;
}

/** Size and times of a file, to notice that someone else wrote it. */
export interface FileStamp {
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

/** Current length of an open file's content. */
export function openSize(open: OpenFile): number {
  return open.content.size();
}

export interface Node {
  ino: bigint;
  name: string;
  parent: Node | null;
  kind: Kind;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  target?: string;
  tags: Record<string, string>;
  contentType?: string;
  /** The version whose body this node shows (null: none yet, or an implicit directory). */
  id: string | null;
  /** A directory with its own marker key (rather than implied by keys below it). */
  marker: boolean;
  /** Directories: children when loaded, and when they were loaded from Postgres. */
  children: Map<string, Node> | null;
  loadedAt: number;
  /** Kernel references (LOOKUP, CREATE, … minus FORGET). */
  lookups: number;
  open: OpenFile | null;
  /** Another writer changed the content: the next open tells the kernel to drop its cached pages. */
  dropPages?: boolean;
  /** Removed from the tree while still open: closing it makes no version. */
  unlinked: boolean;
}

export class NodeTable {
  private next = 2n;
  private readonly byIno = new Map<bigint, Node>();
  readonly root: Node;

  constructor(rootMeta: { uid: number; gid: number }) {
    const now = nowNs();
    this.root = {
      ino: 1n, name: "", parent: null, kind: "dir", mode: 0o755, uid: rootMeta.uid, gid: rootMeta.gid, size: 0,
      atimeNs: now, mtimeNs: now, ctimeNs: now, tags: {}, id: null, marker: true, children: null, loadedAt: 0,
      lookups: 1, open: null, unlinked: false,
    };
    this.byIno.set(1n, this.root);
  }

  get(ino: bigint): Node | undefined {
    return this.byIno.get(ino);
  }

  create(parent: Node, name: string, kind: Kind, meta: Partial<Meta>, id: string | null, marker: boolean): Node {
    const now = nowNs();
    const node: Node = {
      ino: this.next++, name, parent, kind, mode: meta.mode ?? (kind === "dir" ? 0o755 : 0o644),
      uid: meta.uid ?? 0, gid: meta.gid ?? 0, size: meta.size ?? 0,
      atimeNs: meta.mtime ? nsFromStamp(meta.mtime) : now, mtimeNs: meta.mtime ? nsFromStamp(meta.mtime) : now,
      ctimeNs: meta.ctime ? nsFromStamp(meta.ctime) : now, target: meta.target, tags: { ...(meta.tags ?? {}) },
      contentType: meta.content_type, id, marker, children: null, loadedAt: 0, lookups: 0, open: null, unlinked: false,
    };
    this.byIno.set(node.ino, node);
    return node;
  }

  /** Takes the attributes of a stored version (for a node nobody is changing locally). */
  static apply(node: Node, kind: Kind, meta: Partial<Meta>, id: string | null) {
    node.kind = kind;
    node.id = id;
    if (meta.mode !== undefined) node.mode = meta.mode;
    if (meta.uid !== undefined) node.uid = meta.uid;
    if (meta.gid !== undefined) node.gid = meta.gid;
    node.size = meta.size ?? 0;
    if (meta.mtime) node.mtimeNs = nsFromStamp(meta.mtime);
    if (meta.ctime) node.ctimeNs = nsFromStamp(meta.ctime);
    node.target = meta.target;
    node.tags = { ...(meta.tags ?? {}) };
    node.contentType = meta.content_type;
  }

  /** Drops a node the kernel no longer references and the tree no longer holds. */
  release(node: Node) {
    if (node.ino !== 1n && node.lookups <= 0 && node.open === null && (node.parent === null || node.unlinked)) {
      this.byIno.delete(node.ino);
    }
  }

  /** Path relative to the mount root ("" for the root). */
  static path(node: Node): string {
    const parts: string[] = [];
    for (let n: Node | null = node; n && n.parent; n = n.parent) parts.push(n.name);
    return parts.reverse().join("/");
  }

  /** The node or one of its directories was removed from the tree (unlinked here, or deleted by another
   * writer) while the kernel still holds it (an open file, a shell's cwd): it has no key any more. */
  static detached(node: Node): boolean {
    let n = node;
    while (n.parent) {
      if (n.unlinked) return true;
      n = n.parent;
    }
    return n.ino !== 1n;
  }

  static attr(node: Node): Attr {
    const type = node.kind === "dir" ? S_IFDIR : node.kind === "symlink" ? S_IFLNK : S_IFREG;
    let nlink = 1;
    // A directory: 2 + its subdirectories. One not listed yet says 1, the usual "not counted"
    // (as btrfs and others do), never a wrong "no subdirectories"; lookup and getattr list it first.
    if (node.kind === "dir" && node.children) {
      nlink = 2;
      for (const c of node.children.values()) if (c.kind === "dir") nlink++;
    }
    const size = node.kind === "symlink" ? Buffer.byteLength(node.target ?? "") : node.kind === "dir" ? 4096 : node.size;
    return {
      ino: node.ino, mode: type | (node.mode & 0o7777), nlink, uid: node.uid, gid: node.gid, size,
      blocks: Math.ceil(size / 512), atimeNs: node.atimeNs, mtimeNs: node.mtimeNs, ctimeNs: node.ctimeNs, generation: 0n,
    };
  }
}
