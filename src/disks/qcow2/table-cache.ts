/**
 * Metadata tables in memory (L2 tables, refcount blocks), as QEMU's qcow2-cache.c keeps them:
 * one cluster each, keyed by host offset, the least recently used evicted first. Changed
 * tables stay dirty until their owner writes them back, in the order the image's consistency
 * model asks for (see image.ts); the cache itself never decides when.
 */
import type { FileIo } from '../raw.js';
import { LruMap } from './lru.js';

export class TableCache {
  private readonly lru: LruMap<Uint8Array>;
  private readonly dirty = new Set<number>();

  constructor(
    capacity: number,
    private readonly clusterSize: number,
    private readonly io: FileIo,
  ) {
    this.lru = new LruMap(capacity);
  }

  /** The cached table at `off` (now the most recently used), or undefined. */
  get(off: number): Uint8Array | undefined {
    return this.lru.get(off);
  }

  /**
   * The table at `off`, read from the file on a miss; `cutShort` is the error when the file
   * ends inside it. (Hot paths try `get` first, so no closure is made for a hit.)
   */
  load(off: number, cutShort: () => Error): Uint8Array {
    const hit = this.lru.get(off);
    if (hit) return hit;
    const table = new Uint8Array(this.clusterSize);
    if (this.io.pread(table, off) !== table.length) throw cutShort();
    this.lru.set(off, table);
    return table;
  }

  /** A new all-zero table at `off`, dirty (nothing of it is on disk yet). */
  create(off: number): Uint8Array {
    const table = new Uint8Array(this.clusterSize);
    this.lru.set(off, table);
    this.dirty.add(off);
    return table;
  }

  markDirty(off: number): void {
    this.dirty.add(off);
  }

  isDirty(off: number): boolean {
    return this.dirty.has(off);
  }

  /** Writes every dirty table (no fsync: the caller orders the steps); false when none was. */
  writeDirty(): boolean {
    if (this.dirty.size === 0) return false;
    for (const off of this.dirty) this.io.pwrite(this.lru.peek(off)!, off);
    this.dirty.clear();
    return true;
  }

  /** Writes one dirty table. */
  writeOne(off: number): void {
    this.io.pwrite(this.lru.peek(off)!, off);
    this.dirty.delete(off);
  }

  overCapacity(): boolean {
    return this.lru.overCapacity();
  }

  /** The least recently used table's offset (only asked for when over capacity, so never empty). */
  oldest(): number {
    return this.lru.oldestKey()!;
  }

  /** Forgets a clean table. */
  drop(off: number): void {
    this.lru.delete(off);
  }
}
