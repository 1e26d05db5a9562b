/** The 64-byte block group descriptor (struct ext4_group_desc) used with the 64bit feature. */
import { defineStruct } from './struct.js';
import { crc32cUpdate, crc32cU32 } from './crc32c.js';

export const GROUP_DESC_SIZE_64 = 64;

export const EXT4_BG_INODE_UNINIT = 0x0001;
export const EXT4_BG_BLOCK_UNINIT = 0x0002;
export const EXT4_BG_INODE_ZEROED = 0x0004;

export const GROUP_DESC = defineStruct(GROUP_DESC_SIZE_64, {
  bg_block_bitmap_lo: [0x00, 'u32'],
  bg_inode_bitmap_lo: [0x04, 'u32'],
  bg_inode_table_lo: [0x08, 'u32'],
  bg_free_blocks_count_lo: [0x0c, 'u16'],
  bg_free_inodes_count_lo: [0x0e, 'u16'],
  bg_used_dirs_count_lo: [0x10, 'u16'],
  bg_flags: [0x12, 'u16'],
  bg_exclude_bitmap_lo: [0x14, 'u32'],
  bg_block_bitmap_csum_lo: [0x18, 'u16'],
  bg_inode_bitmap_csum_lo: [0x1a, 'u16'],
  bg_itable_unused_lo: [0x1c, 'u16'],
  bg_checksum: [0x1e, 'u16'],
  bg_block_bitmap_hi: [0x20, 'u32'],
  bg_inode_bitmap_hi: [0x24, 'u32'],
  bg_inode_table_hi: [0x28, 'u32'],
  bg_free_blocks_count_hi: [0x2c, 'u16'],
  bg_free_inodes_count_hi: [0x2e, 'u16'],
  bg_used_dirs_count_hi: [0x30, 'u16'],
  bg_itable_unused_hi: [0x32, 'u16'],
  bg_exclude_bitmap_hi: [0x34, 'u32'],
  bg_block_bitmap_csum_hi: [0x38, 'u16'],
  bg_inode_bitmap_csum_hi: [0x3a, 'u16'],
  bg_reserved: [0x3c, 'u32'],
} as const);

/** bg_checksum with metadata_csum: low 16 bits of crc32c(seed, le32 group, desc with bg_checksum zeroed) */
export function groupDescChecksum(csumSeed: number, group: number, desc: Uint8Array): number {
  const off = GROUP_DESC.offsetOf('bg_checksum');
  let c = crc32cU32(csumSeed, group);
  c = crc32cUpdate(c, desc, 0, off);
  c = crc32cUpdate(c, ZERO2);
  c = crc32cUpdate(c, desc, off + 2, desc.length);
  return c & 0xffff;
}
const ZERO2 = new Uint8Array(2);

/** block/inode bitmap checksum: crc32c(seed, the bitmap's meaningful bytes) */
export function bitmapChecksum(csumSeed: number, bitmap: Uint8Array, bytes: number): number {
  return crc32cUpdate(csumSeed, bitmap, 0, bytes);
}
