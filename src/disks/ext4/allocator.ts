/**
 * Block allocation while the layers stream in. File data goes to ascending blocks from the
 * start of the disk ("bump"), skipping the superblock + descriptor area at the start of every
 * backup group; blocks freed by whiteouts and overwrites are handed out again first, so deleted
 * files cost no space. The final geometry is unknown until the end, so the descriptor area is
 * reserved for the largest disk this build can produce.
 */
import { BLOCKS_PER_GROUP, hasSuperblockBackup } from './layout.js';
import { InvalidParameterError } from '../../errors.js';

export interface Run {
  start: number;
  len: number;
}

export class BlockAllocator {
  /** next never-used block */
  private bump = 0;
  private readonly free: Run[] = [];

  /**
   * @param reservedPerBackup blocks reserved at the start of each backup group (superblock + GDT)
   * @param limit blocks in the disk, if already known
   */
  constructor(
    readonly reservedPerBackup: number,
    readonly limit = Number.POSITIVE_INFINITY,
  ) {
    this.skipReserved();
  }

  get highWater(): number {
    return this.bump;
  }

  /** blocks handed back and not reused yet */
  get freeBlocks(): number {
    return this.free.reduce((n, r) => n + r.len, 0);
  }

  private skipReserved(): void {
    const g = Math.floor(this.bump / BLOCKS_PER_GROUP);
    const off = this.bump - g * BLOCKS_PER_GROUP;
    if (hasSuperblockBackup(g) && off < this.reservedPerBackup) this.bump = g * BLOCKS_PER_GROUP + this.reservedPerBackup;
  }

  /** first block at or after `b` where a reserved area starts */
  private nextReservedStart(b: number): number {
    let g = Math.floor(b / BLOCKS_PER_GROUP) + 1;
    while (!hasSuperblockBackup(g)) g++;
    return g * BLOCKS_PER_GROUP;
  }

  private checkLimit(end: number): void {
    if (end > this.limit) {
      throw new InvalidParameterError(`the disk is full: content needs more than ${this.limit} blocks`, 'ERR_DISK_TOO_SMALL');
    }
  }

  /** up to `want` contiguous blocks (at least 1): reused ones first, then fresh ones */
  alloc(want: number, freshOnly = false): Run {
    if (!freshOnly) {
      const r = this.free[this.free.length - 1];
      if (r) {
        const len = Math.min(want, r.len);
        const run = { start: r.start, len };
        r.start += len;
        r.len -= len;
        if (r.len === 0) this.free.pop();
        return run;
      }
    }
    this.skipReserved();
    const len = Math.min(want, this.nextReservedStart(this.bump) - this.bump);
    const run = { start: this.bump, len };
    this.checkLimit(run.start + len);
    this.bump += len;
    this.skipReserved();
    return run;
  }

  /** exactly `n` contiguous never-used blocks (so known to read as zeros), e.g. an inode table */
  allocContiguousFresh(n: number): number {
    this.skipReserved();
    if (this.bump + n > this.nextReservedStart(this.bump)) {
      this.bump = this.nextReservedStart(this.bump);
      this.skipReserved();
    }
    const start = this.bump;
    this.checkLimit(start + n);
    this.bump += n;
    this.skipReserved();
    return start;
  }

  release(start: number, len: number): void {
    if (len > 0) this.free.push({ start, len });
  }

  /** the free list, for the final bitmaps: these blocks are not in use */
  releasedRuns(): readonly Run[] {
    return this.free;
  }
}
