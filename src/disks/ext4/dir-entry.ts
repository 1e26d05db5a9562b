/**
 * Linear directories (struct ext4_dir_entry_2 with the filetype feature) and the 12-byte
 * checksum tail (struct ext4_dir_entry_tail) that metadata_csum puts at the end of every leaf
 * block. Large directories are simply more blocks: e2fsck and the kernel accept linear
 * directories of any size with dir_index set.
 */
import { defineStruct } from './struct.js';
import { crc32cUpdate } from './crc32c.js';

export const DIR_ENTRY_HEADER_SIZE = 8;
export const DIR_TAIL_SIZE = 12;
export const EXT4_NAME_LEN = 255;
export const EXT4_DIR_TAIL_FT = 0xde;

export const EXT4_FT = {
  UNKNOWN: 0,
  REG_FILE: 1,
  DIR: 2,
  CHRDEV: 3,
  BLKDEV: 4,
  FIFO: 5,
  SOCK: 6,
  SYMLINK: 7,
} as const;

export const DIR_ENTRY = defineStruct(DIR_ENTRY_HEADER_SIZE, {
  inode: [0x0, 'u32'],
  rec_len: [0x4, 'u16'],
  name_len: [0x6, 'u8'],
  file_type: [0x7, 'u8'],
} as const);

export const DIR_TAIL = defineStruct(DIR_TAIL_SIZE, {
  det_reserved_zero1: [0x0, 'u32'],
  det_rec_len: [0x4, 'u16'],
  det_reserved_zero2: [0x6, 'u8'],
  det_reserved_ft: [0x7, 'u8'],
  det_checksum: [0x8, 'u32'],
} as const);

export interface DirEntry {
  name: Buffer;
  inode: number;
  fileType: number;
}

export function dirEntrySize(nameLen: number): number {
  return (DIR_ENTRY_HEADER_SIZE + nameLen + 3) & ~3;
}

/** How many blocks packDirectory() will produce for these entries (same algorithm, no output). */
export function dirBlocksNeeded(nameLens: Iterable<number>, blockSize: number): number {
  const usable = blockSize - DIR_TAIL_SIZE;
  let blocks = 1;
  let used = 0;
  for (const n of nameLens) {
    const sz = dirEntrySize(n);
    if (used + sz > usable) {
      blocks++;
      used = 0;
    }
    used += sz;
  }
  return blocks;
}

/**
 * Packs entries (the caller puts "." and ".." first) into whole directory blocks; the last entry
 * of each block stretches to the tail. Checksums are filled in with `inodeSeed`.
 */
export function packDirectory(entries: DirEntry[], blockSize: number, inodeSeed: number): Buffer[] {
  const usable = blockSize - DIR_TAIL_SIZE;
  const blocks: Buffer[] = [];
  let buf = Buffer.alloc(blockSize);
  let used = 0;
  let lastAt = -1;
  const close = () => {
    if (lastAt >= 0) buf.writeUInt16LE(usable - lastAt, lastAt + DIR_ENTRY.offsetOf('rec_len'));
    else DIR_ENTRY.encode({ inode: 0, rec_len: usable, name_len: 0, file_type: 0 }, buf, 0);
    DIR_TAIL.encode({ det_rec_len: DIR_TAIL_SIZE, det_reserved_ft: EXT4_DIR_TAIL_FT }, buf, usable);
    buf.writeUInt32LE(crc32cUpdate(inodeSeed, buf, 0, usable), usable + DIR_TAIL.offsetOf('det_checksum'));
    blocks.push(buf);
  };
  for (const e of entries) {
    if (e.name.length === 0 || e.name.length > EXT4_NAME_LEN) throw new Error(`directory entry name length ${e.name.length} out of range`);
    const sz = dirEntrySize(e.name.length);
    if (used + sz > usable) {
      close();
      buf = Buffer.alloc(blockSize);
      used = 0;
      lastAt = -1;
    }
    DIR_ENTRY.encode({ inode: e.inode, rec_len: sz, name_len: e.name.length, file_type: e.fileType }, buf, used);
    e.name.copy(buf, used + DIR_ENTRY_HEADER_SIZE);
    lastAt = used;
    used += sz;
  }
  close();
  return blocks;
}
