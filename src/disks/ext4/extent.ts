/**
 * Extent trees (ext4_extents.h): a 12-byte header, then 12-byte extents (leaves) or indexes.
 * The root lives in the inode's i_block (room for 4 entries); deeper levels are whole blocks
 * ending in a 4-byte checksum tail.
 */
import { defineStruct, lo32, hi32 } from './struct.js';
import { crc32cUpdate } from './crc32c.js';

export const EXT4_EXT_MAGIC = 0xf30a;
/** the longest initialized extent */
export const EXT_INIT_MAX_LEN = 32768;
export const EXTENT_HEADER_SIZE = 12;
export const EXTENT_ENTRY_SIZE = 12;
export const EXTENT_TAIL_SIZE = 4;
/** entries that fit in the inode's 60-byte i_block after the header */
export const EXT4_INODE_ROOT_ENTRIES = 4;

export const EXTENT_HEADER = defineStruct(EXTENT_HEADER_SIZE, {
  eh_magic: [0x0, 'u16'],
  eh_entries: [0x2, 'u16'],
  eh_max: [0x4, 'u16'],
  eh_depth: [0x6, 'u16'],
  eh_generation: [0x8, 'u32'],
} as const);

export const EXTENT = defineStruct(EXTENT_ENTRY_SIZE, {
  ee_block: [0x0, 'u32'],
  ee_len: [0x4, 'u16'],
  ee_start_hi: [0x6, 'u16'],
  ee_start_lo: [0x8, 'u32'],
} as const);

export const EXTENT_IDX = defineStruct(EXTENT_ENTRY_SIZE, {
  ei_block: [0x0, 'u32'],
  ei_leaf_lo: [0x4, 'u32'],
  ei_leaf_hi: [0x8, 'u16'],
  ei_unused: [0xa, 'u16'],
} as const);

export interface Extent {
  /** first logical block */
  logical: number;
  /** first physical block */
  physical: number;
  /** length in blocks, 1..EXT_INIT_MAX_LEN */
  len: number;
}

/** entries per tree block: (block size - header - tail) / 12 */
export function extentsPerBlock(blockSize: number): number {
  return Math.floor((blockSize - EXTENT_HEADER_SIZE - EXTENT_TAIL_SIZE) / EXTENT_ENTRY_SIZE);
}

/** Appends a run of blocks to a list of extents, merging with the last one when contiguous. */
export function appendExtent(list: Extent[], logical: number, physical: number, len: number): void {
  while (len > 0) {
    const last = list[list.length - 1];
    if (last && last.logical + last.len === logical && last.physical + last.len === physical && last.len < EXT_INIT_MAX_LEN) {
      const add = Math.min(len, EXT_INIT_MAX_LEN - last.len);
      last.len += add;
      logical += add;
      physical += add;
      len -= add;
      continue;
    }
    const n = Math.min(len, EXT_INIT_MAX_LEN);
    list.push({ logical, physical, len: n });
    logical += n;
    physical += n;
    len -= n;
  }
}

export interface ExtentTree {
  /** the 60 bytes for i_block */
  root: Buffer;
  /** tree blocks to write (their checksums are set by `finish`) */
  blocks: { block: number; data: Buffer }[];
  /** blocks the tree itself occupies (counted in i_blocks) */
  treeBlocks: number;
  depth: number;
}

/** How many tree blocks `extentCount` extents need (so they can be allocated first). */
export function extentTreeBlocksNeeded(extentCount: number, blockSize: number): number {
  const per = extentsPerBlock(blockSize);
  let n = extentCount;
  let total = 0;
  while (n > EXT4_INODE_ROOT_ENTRIES) {
    n = Math.ceil(n / per);
    total += n;
  }
  return total;
}

/**
 * Builds the extent tree for `extents` (sorted, non-overlapping) bottom-up: leaves packed full,
 * then index levels, until the top level fits in the inode's four root slots. `blocks` are the
 * physical blocks reserved for the tree, as many as extentTreeBlocksNeeded() said.
 */
export function buildExtentTree(extents: Extent[], blocks: number[], blockSize: number): ExtentTree {
  const per = extentsPerBlock(blockSize);
  const out: { block: number; data: Buffer }[] = [];
  let next = 0;
  // level entries: (first logical block, encoder)
  type Entry = { logical: number; write: (buf: Buffer, at: number) => void };
  let level: Entry[] = extents.map((e) => ({
    logical: e.logical,
    write: (buf, at) => {
      EXTENT.encode({ ee_block: e.logical, ee_len: e.len, ee_start_hi: hi32(e.physical), ee_start_lo: lo32(e.physical) }, buf, at);
    },
  }));
  let depth = 0;
  while (level.length > EXT4_INODE_ROOT_ENTRIES) {
    const up: Entry[] = [];
    for (let i = 0; i < level.length; i += per) {
      const chunk = level.slice(i, i + per);
      const blk = blocks[next++];
      if (blk === undefined) throw new Error('extent tree: not enough blocks reserved');
      const data = Buffer.alloc(blockSize);
      EXTENT_HEADER.encode({ eh_magic: EXT4_EXT_MAGIC, eh_entries: chunk.length, eh_max: per, eh_depth: depth, eh_generation: 0 }, data, 0);
      chunk.forEach((e, j) => e.write(data, EXTENT_HEADER_SIZE + j * EXTENT_ENTRY_SIZE));
      out.push({ block: blk, data });
      const first = chunk[0]!.logical;
      up.push({
        logical: first,
        write: (buf, at) => EXTENT_IDX.encode({ ei_block: first, ei_leaf_lo: lo32(blk), ei_leaf_hi: hi32(blk), ei_unused: 0 }, buf, at),
      });
    }
    level = up;
    depth++;
  }
  if (next !== blocks.length) throw new Error('extent tree: more blocks reserved than used');
  const root = Buffer.alloc(60);
  EXTENT_HEADER.encode(
    { eh_magic: EXT4_EXT_MAGIC, eh_entries: level.length, eh_max: EXT4_INODE_ROOT_ENTRIES, eh_depth: depth, eh_generation: 0 },
    root,
    0,
  );
  level.forEach((e, j) => e.write(root, EXTENT_HEADER_SIZE + j * EXTENT_ENTRY_SIZE));
  return { root, blocks: out, treeBlocks: out.length, depth };
}

/** extent block tail: crc32c(inode seed, block up to the tail) */
export function setExtentBlockChecksum(data: Buffer, inodeSeed: number): void {
  const max = data.readUInt16LE(EXTENT_HEADER.offsetOf('eh_max'));
  const tail = EXTENT_HEADER_SIZE + max * EXTENT_ENTRY_SIZE;
  data.writeUInt32LE(crc32cUpdate(inodeSeed, data, 0, tail), tail);
}
