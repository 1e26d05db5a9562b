/**
 * The merged filesystem tree that layers are applied to, bottom layer first, with OCI whiteout
 * semantics: ".wh.NAME" hides NAME from lower layers, ".wh..wh..opq" hides everything a lower
 * layer put in its directory. Entries of the layer being applied are never hidden by that same
 * layer's whiteouts. Nodes are shared by hard links; a node whose last name goes away hands its
 * data blocks back to the allocator.
 */
import { FormatError } from '../../errors.js';
import type { Extent } from './extent.js';
import type { Timestamp } from './inode.js';

export type NodeKind = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'sock';

export const WHITEOUT_PREFIX = '.wh.';
export const WHITEOUT_META_PREFIX = '.wh..wh.';
export const WHITEOUT_OPAQUE = '.wh..wh..opq';

export interface NodeMeta {
  /** permission bits incl. setuid/setgid/sticky (no file type) */
  mode: number;
  uid: number;
  gid: number;
  atime: Timestamp;
  mtime: Timestamp;
  ctime: Timestamp;
  xattrs: Map<string, Buffer>;
}

export class FsNode {
  /** directory entries by name (latin1 = raw bytes), in insertion order */
  children: Map<string, FsNode> | null;
  /** symlink target */
  target: Buffer | null = null;
  rdev = { major: 0, minor: 0 };
  size = 0;
  extents: Extent[] = [];
  dataBlocks = 0;
  /** names that refer to this node */
  links = 0;
  /** highest layer that defined this node or anything below it */
  layer: number;
  /** inode number, assigned when the disk is laid out */
  ino = 0;

  constructor(
    readonly kind: NodeKind,
    public meta: NodeMeta,
    layer: number,
  ) {
    this.children = kind === 'dir' ? new Map() : null;
    this.layer = layer;
  }
}

export interface TreeCounters {
  whiteouts: number;
  opaques: number;
}

/** splits and validates an archive path; "" and "." mean the root */
export function splitPath(p: string, what: string): string[] {
  if (p.startsWith('/')) throw new FormatError(`tar entry ${what}: absolute path ${JSON.stringify(p)}`, 'ERR_TAR_UNSAFE_PATH');
  const parts: string[] = [];
  for (const c of p.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') throw new FormatError(`tar entry ${what}: path ${JSON.stringify(p)} contains '..'`, 'ERR_TAR_UNSAFE_PATH');
    if (Buffer.byteLength(c, 'latin1') > 255) throw new FormatError(`tar entry ${what}: name longer than 255 bytes`, 'ERR_TAR_FORMAT');
    if (c.includes('\0')) throw new FormatError(`tar entry ${what}: NUL in name`, 'ERR_TAR_FORMAT');
    parts.push(c);
  }
  return parts;
}

export class MergedTree {
  readonly root: FsNode;
  readonly counters: TreeCounters = { whiteouts: 0, opaques: 0 };

  constructor(
    rootMeta: NodeMeta,
    /** called with every extent of a node that lost its last name */
    private readonly onFree: (node: FsNode) => void,
  ) {
    this.root = new FsNode('dir', rootMeta, -1);
    this.root.links = 1;
  }

  /**
   * Walks to the parent directory of `parts`, creating missing or non-directory parents in
   * `layer`. A symlink on the way is replaced, not followed: a layer's entries describe its own
   * directory, as Docker's overlay2 applies a layer into the layer's diff directory, where
   * "lib/x" makes "lib" a directory that hides a lower "lib -> usr/lib".
   */
  parentOf(parts: string[], layer: number, implicitMeta: () => NodeMeta): FsNode {
    let dir = this.root;
    if (dir.layer < layer) dir.layer = layer;
    for (let i = 0; i < parts.length - 1; i++) {
      const name = parts[i]!;
      let child = dir.children!.get(name);
      if (!child || child.kind !== 'dir') {
        if (child) this.unlink(dir, name);
        child = new FsNode('dir', implicitMeta(), layer);
        this.link(dir, name, child);
      }
      if (child.layer < layer) child.layer = layer;
      dir = child;
    }
    return dir;
  }

  lookup(parts: string[]): FsNode | undefined {
    let n: FsNode | undefined = this.root;
    for (const p of parts) {
      n = n?.children?.get(p);
      if (!n) return undefined;
    }
    return n;
  }

  link(dir: FsNode, name: string, node: FsNode): void {
    const old = dir.children!.get(name);
    if (old === node) return;
    if (old) this.unlink(dir, name);
    dir.children!.set(name, node);
    node.links++;
  }

  unlink(dir: FsNode, name: string): void {
    const node = dir.children!.get(name);
    if (!node) return;
    dir.children!.delete(name);
    this.drop(node);
  }

  private drop(node: FsNode): void {
    node.links--;
    if (node.links > 0) return;
    if (node.children) {
      for (const child of node.children.values()) this.drop(child);
      node.children.clear();
    }
    this.onFree(node);
  }

  /** ".wh.NAME" in `dir` while applying `layer` */
  whiteout(dir: FsNode, name: string, layer: number): void {
    this.counters.whiteouts++;
    const node = dir.children!.get(name);
    if (node && node.layer < layer) this.unlink(dir, name);
  }

  /** ".wh..wh..opq" in `dir` while applying `layer`: hide what lower layers put below `dir` */
  opaque(dir: FsNode, layer: number): void {
    this.counters.opaques++;
    this.hideLower(dir, layer);
  }

  private hideLower(dir: FsNode, layer: number): void {
    for (const [name, child] of [...dir.children!]) {
      if (child.layer < layer) this.unlink(dir, name);
      else if (child.kind === 'dir') this.hideLower(child, layer);
    }
  }
}
