/**
 * A writable image's host cluster accounting, as QEMU's qcow2-refcount.c: the refcount table
 * (whole, in memory), its refcount blocks (through a TableCache), the allocator of free host
 * clusters and the file end it pushes out, and moving the table to a bigger one when the file
 * outgrows it. Counts only ever grow in memory before a write-back; decrements are the image's
 * to apply once the tables that dropped a cluster are durable (image.ts, step 5).
 */
import type { FormatError, NotImplementedError } from '../../errors.js';
import type { FileIo } from '../raw.js';
import { HEADER_FIELDS } from './header.js';
import { encodeOffset, readHalves, writeHalves } from './entries.js';
import { getRefcount, maxRefcount, setRefcount } from './refcount.js';
import { TableCache } from './table-cache.js';

const hex = (n: number): string => `0x${n.toString(16)}`;

export interface RefcountTableOptions {
  io: FileIo;
  clusterSize: number;
  /** entries per refcount block */
  blockEntries: number;
  refcountOrder: number;
  /** the table as read from the file, and where it is */
  table: Uint8Array;
  tableOffset: number;
  tableClusters: number;
  /** the file's size when opened */
  fileEnd: number;
  cacheBlocks: number;
  /** the image's corruption error (it also marks the image corrupt) */
  corrupt: (msg: string) => FormatError;
  unsupported: (what: string) => NotImplementedError;
  /** the header now points to a moved table (durable when called) */
  onTableMoved: (offset: number, clusters: number) => void;
}

export class RefcountTable {
  /** end of the last allocated cluster, or of the file if that is further */
  fileEnd: number;
  private readonly io: FileIo;
  private readonly cs: number;
  private readonly per: number;
  private readonly order: number;
  private rt: Uint8Array;
  private rtEntries: number;
  private tableOffset: number;
  private tableClusters: number;
  private readonly dirtyRt = new Set<number>();
  private readonly blocks: TableCache;
  /** offsets of refcount blocks: data and tables must never alias them */
  private readonly blockOffsets = new Set<number>();
  /** lowest cluster index that may be free */
  private freeHint = 0;

  constructor(private readonly opts: RefcountTableOptions) {
    this.io = opts.io;
    this.cs = opts.clusterSize;
    this.per = opts.blockEntries;
    this.order = opts.refcountOrder;
    this.rt = opts.table;
    this.rtEntries = opts.table.length / 8;
    this.tableOffset = opts.tableOffset;
    this.tableClusters = opts.tableClusters;
    this.fileEnd = opts.fileEnd;
    this.blocks = new TableCache(opts.cacheBlocks, opts.clusterSize, opts.io);
    for (let t = 0; t < this.rtEntries; t++) {
      const off = this.entry(t);
      if (off !== 0) this.blockOffsets.add(off);
    }
  }

  /** whether `off` is a refcount block's cluster */
  isBlock(off: number): boolean {
    return this.blockOffsets.has(off);
  }

  /** Checks every table entry points to an aligned cluster inside the file, past the header. */
  validate(): void {
    for (let t = 0; t < this.rtEntries; t++) {
      const off = this.entry(t);
      if (off === 0) continue;
      const what = `refcount table entry ${t}`;
      if (off % this.cs !== 0) throw this.opts.corrupt(`${what} points to ${hex(off)}, not aligned to the cluster size`);
      if (off >= this.fileEnd) throw this.opts.corrupt(`${what} points to ${hex(off)}, past the end of the file (${this.fileEnd} bytes)`);
      if (off < this.cs) throw this.opts.corrupt(`${what} points into the header cluster`);
    }
    if (this.entry(0) === 0) throw this.opts.corrupt('refcount table entry 0 is empty: the header cluster has no refcount');
  }

  /** The count of the host cluster at `hostOff`. */
  get(hostOff: number): number {
    const cluster = Math.floor(hostOff / this.cs);
    const t = Math.floor(cluster / this.per);
    const rb = this.entry(t);
    if (rb === 0) return 0;
    return getRefcount(this.loadBlock(rb, t), cluster % this.per, this.order);
  }

  add(hostOff: number, delta: number): void {
    const cluster = Math.floor(hostOff / this.cs);
    const t = Math.floor(cluster / this.per);
    const rb = this.entry(t);
    if (rb === 0) throw this.opts.corrupt(`cluster ${hex(hostOff)} is in use but has no refcount block`);
    const block = this.loadBlock(rb, t);
    const i = cluster % this.per;
    const v = getRefcount(block, i, this.order) + delta;
    if (v < 0) throw this.opts.corrupt(`refcount of cluster ${hex(hostOff)} would drop below 0`);
    if (v > maxRefcount(this.order)) throw this.opts.unsupported(`a refcount above ${maxRefcount(this.order)}`);
    setRefcount(block, i, this.order, v);
    this.blocks.markDirty(rb);
    if (v === 0) this.freeHint = Math.min(this.freeHint, cluster);
  }

  /** Finds a free host cluster, counts it (in memory) and returns its offset. */
  alloc(): number {
    const cs = this.cs;
    for (;;) {
      const idx = this.freeHint;
      const t = Math.floor(idx / this.per);
      if (t >= this.rtEntries) {
        this.grow(t);
        continue;
      }
      const rbOff = this.entry(t);
      if (rbOff === 0) {
        // No block: every count in its range is 0. Put the block at the range's first cluster,
        // counting itself, so it needs no other block.
        const off = t * this.per * cs;
        if (t === 0) throw this.opts.corrupt('refcount table entry 0 is empty');
        setRefcount(this.blocks.create(off), 0, this.order, 1);
        this.blockOffsets.add(off);
        const [hi, lo] = encodeOffset(off, false);
        writeHalves(this.rt, t, hi, lo);
        this.dirtyRt.add(t);
        this.fileEnd = Math.max(this.fileEnd, off + cs);
        if (idx === t * this.per) this.freeHint = idx + 1;
        continue;
      }
      const block = this.loadBlock(rbOff, t);
      let j = idx % this.per;
      while (j < this.per && getRefcount(block, j, this.order) !== 0) j++;
      if (j === this.per) {
        this.freeHint = (t + 1) * this.per;
        continue;
      }
      setRefcount(block, j, this.order, 1);
      this.blocks.markDirty(rbOff);
      const cluster = t * this.per + j;
      this.freeHint = cluster + 1;
      this.fileEnd = Math.max(this.fileEnd, (cluster + 1) * cs);
      return cluster * cs;
    }
  }

  /**
   * Write-back step 1: dirty refcount blocks, then (after an fsync, so no entry points to a
   * block not yet on disk) the table entries that point to new blocks. No final fsync.
   */
  writeBack(): void {
    this.blocks.writeDirty();
    if (this.dirtyRt.size === 0) return;
    this.io.fsync();
    for (const t of [...this.dirtyRt].sort((a, b) => a - b)) this.io.pwrite(this.rt.subarray(t * 8, t * 8 + 8), this.tableOffset + t * 8);
    this.dirtyRt.clear();
  }

  /** Writes the dirty refcount blocks alone (counts that only dropped: safe at any time). */
  writeBlocks(): void {
    this.blocks.writeDirty();
  }

  /** Evicts least recently used blocks beyond the cache's capacity, writing dirty ones first. */
  trim(): void {
    while (this.blocks.overCapacity()) {
      const k = this.blocks.oldest();
      // Counts in memory only ever exceed the disk's until a write-back: safe to write any time.
      if (this.blocks.isDirty(k)) this.blocks.writeOne(k);
      this.blocks.drop(k);
    }
  }

  private entry(t: number): number {
    if (t >= this.rtEntries) return 0;
    const [hi, lo] = readHalves(this.rt, t);
    return hi * 0x1_0000_0000 + lo;
  }

  private loadBlock(off: number, t: number): Uint8Array {
    return (
      this.blocks.get(off) ??
      this.blocks.load(off, () =>
        this.opts.corrupt(`refcount table entry ${t}: refcount block at ${hex(off)} is cut short by the end of the file`),
      )
    );
  }

  /**
   * Moves the refcount table to a bigger one at the end of the file, with new refcount blocks
   * for the area it occupies. Written and made durable before the header points to it; the
   * old table is freed only after the header update is durable.
   */
  private grow(neededIndex: number): void {
    const cs = this.cs;
    const per = this.per;
    const start = Math.ceil(this.fileEnd / cs);
    let tableClusters = Math.max(this.tableClusters * 2, Math.ceil(((neededIndex + 1) * 8) / cs));
    let missing: number[] = [];
    for (;;) {
      const areaEnd = start + missing.length + tableClusters;
      const tFirst = Math.floor(start / per);
      const tLast = Math.floor((areaEnd - 1) / per);
      const need: number[] = [];
      for (let t = tFirst; t <= tLast; t++) if (this.entry(t) === 0) need.push(t);
      const clustersNeeded = Math.max(tableClusters, Math.ceil(((Math.max(neededIndex, tLast) + 1) * 8) / cs));
      if (need.length === missing.length && clustersNeeded === tableClusters) break;
      missing = need;
      tableClusters = clustersNeeded;
    }
    if (tableClusters * cs > 8 * 1024 * 1024)
      throw this.opts.unsupported('a refcount table above 8 MiB (image too large for its cluster size)');
    const newTable = new Uint8Array(tableClusters * cs);
    newTable.set(this.rt);
    const tableOff = (start + missing.length) * cs;
    missing.forEach((t, k) => {
      const off = (start + k) * cs;
      this.blocks.create(off);
      this.blockOffsets.add(off);
      const [hi, lo] = encodeOffset(off, false);
      writeHalves(newTable, t, hi, lo);
    });
    const oldTableOff = this.tableOffset;
    const oldTableClusters = this.tableClusters;
    this.rt = newTable;
    this.rtEntries = (tableClusters * cs) / 8;
    const areaEnd = start + missing.length + tableClusters;
    for (let c = start; c < areaEnd; c++) this.add(c * cs, 1);
    this.fileEnd = Math.max(this.fileEnd, areaEnd * cs);

    this.blocks.writeDirty();
    this.io.pwrite(newTable, tableOff);
    this.io.fsync();
    const field = Buffer.alloc(12);
    field.writeBigUInt64BE(BigInt(tableOff), 0);
    field.writeUInt32BE(tableClusters, 8);
    this.io.pwrite(field, HEADER_FIELDS.refcount_table_offset.offset);
    this.io.fsync();
    this.tableOffset = tableOff;
    this.tableClusters = tableClusters;
    this.opts.onTableMoved(tableOff, tableClusters);
    this.dirtyRt.clear();
    for (let c = 0; c < oldTableClusters; c++) this.add(oldTableOff + c * cs, -1);
  }
}
