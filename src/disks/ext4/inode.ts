/**
 * The ext4 on-disk inode (struct ext4_inode): 128 "good old" bytes plus i_extra_isize = 32 bytes
 * of extra fields (nanosecond times, checksum high half, crtime), in a 256-byte inode slot.
 */
import { defineStruct } from './struct.js';
import { crc32cUpdate, crc32cU32 } from './crc32c.js';

export const EXT4_INODE_SIZE = 256;
export const EXT4_GOOD_OLD_INODE_SIZE = 128;
/** bytes of extra fields we fill (up to and including i_projid) */
export const EXT4_EXTRA_ISIZE = 32;
/** i_block: 15 u32s, holds the extent tree root, a fast symlink target or a device number */
export const EXT4_N_BLOCKS_BYTES = 60;

export const EXT4_ROOT_INO = 2;
export const EXT4_JOURNAL_INO = 8;
export const EXT4_GOOD_OLD_FIRST_INO = 11;

export { S_IFMT, S_IFSOCK, S_IFLNK, S_IFREG, S_IFBLK, S_IFDIR, S_IFCHR, S_IFIFO } from '../file-mode.js';

export const EXT4_HUGE_FILE_FL = 0x00040000;
export const EXT4_EXTENTS_FL = 0x00080000;
export const EXT4_INDEX_FL = 0x00001000;

/** links_count saturates at 1 for directories with too many subdirectories (dir_nlink) */
export const EXT4_LINK_MAX = 65000;

export const INODE = defineStruct(EXT4_INODE_SIZE, {
  i_mode: [0x00, 'u16'],
  i_uid: [0x02, 'u16'],
  i_size_lo: [0x04, 'u32'],
  i_atime: [0x08, 'u32'],
  i_ctime: [0x0c, 'u32'],
  i_mtime: [0x10, 'u32'],
  i_dtime: [0x14, 'u32'],
  i_gid: [0x18, 'u16'],
  i_links_count: [0x1a, 'u16'],
  i_blocks_lo: [0x1c, 'u32'],
  i_flags: [0x20, 'u32'],
  l_i_version: [0x24, 'u32'],
  i_block: [0x28, { bytes: EXT4_N_BLOCKS_BYTES }],
  i_generation: [0x64, 'u32'],
  i_file_acl_lo: [0x68, 'u32'],
  i_size_high: [0x6c, 'u32'],
  i_obso_faddr: [0x70, 'u32'],
  l_i_blocks_high: [0x74, 'u16'],
  l_i_file_acl_high: [0x76, 'u16'],
  l_i_uid_high: [0x78, 'u16'],
  l_i_gid_high: [0x7a, 'u16'],
  l_i_checksum_lo: [0x7c, 'u16'],
  l_i_reserved: [0x7e, 'u16'],
  i_extra_isize: [0x80, 'u16'],
  i_checksum_hi: [0x82, 'u16'],
  i_ctime_extra: [0x84, 'u32'],
  i_mtime_extra: [0x88, 'u32'],
  i_atime_extra: [0x8c, 'u32'],
  i_crtime: [0x90, 'u32'],
  i_crtime_extra: [0x94, 'u32'],
  i_version_hi: [0x98, 'u32'],
  i_projid: [0x9c, 'u32'],
} as const);

/** where in-inode extended attributes start: right after the extra fields */
export const EXT4_INODE_XATTR_OFFSET = EXT4_GOOD_OLD_INODE_SIZE + EXT4_EXTRA_ISIZE;

export interface Timestamp {
  /** seconds since the epoch (may be negative) */
  sec: number;
  nsec: number;
}

/**
 * ext4's time encoding: the low 32 bits of the seconds in the base field, and in the extra field
 * nanoseconds << 2 plus two epoch bits that extend the signed 32-bit seconds to 34 bits.
 */
export function encodeTime(t: Timestamp): { base: number; extra: number } {
  const base = ((t.sec % 0x1_0000_0000) + 0x1_0000_0000) % 0x1_0000_0000;
  const signedBase = base >= 0x8000_0000 ? base - 0x1_0000_0000 : base;
  const epoch = ((t.sec - signedBase) / 0x1_0000_0000) & 3;
  return { base, extra: ((t.nsec << 2) | epoch) >>> 0 };
}

export function decodeTime(base: number, extra: number): Timestamp {
  const signedBase = base >= 0x8000_0000 ? base - 0x1_0000_0000 : base;
  return { sec: signedBase + (extra & 3) * 0x1_0000_0000, nsec: extra >>> 2 };
}

/**
 * Device numbers in i_block: the old 16-bit encoding in i_block[0] when both halves fit in a
 * byte, else the kernel's new_encode_dev() in i_block[1] (as ext4_inode's setter does).
 */
export function encodeDevice(major: number, minor: number): Buffer {
  const b = Buffer.alloc(EXT4_N_BLOCKS_BYTES);
  if (major < 256 && minor < 256) b.writeUInt32LE((major << 8) | minor, 0);
  else b.writeUInt32LE(((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0, 4);
  return b;
}

export function decodeDevice(iblock: Uint8Array): { major: number; minor: number } {
  const b = Buffer.from(iblock.buffer, iblock.byteOffset, iblock.byteLength);
  const old = b.readUInt32LE(0);
  if (old !== 0) return { major: (old >> 8) & 0xff, minor: old & 0xff };
  const n = b.readUInt32LE(4);
  return { major: (n & 0xfff00) >> 8, minor: (n & 0xff) | ((n >> 12) & 0xfff00) };
}

/** per-inode checksum seed: crc32c(fs seed, le32 inode number, le32 generation) */
export function inodeCsumSeed(fsSeed: number, ino: number, generation: number): number {
  return crc32cU32(crc32cU32(fsSeed, ino), generation);
}

/**
 * Stores the inode checksum (metadata_csum): crc32c over the whole inode slot with
 * l_i_checksum_lo and i_checksum_hi zeroed; low half in _lo, high half in _hi.
 */
export function setInodeChecksum(raw: Buffer, fsSeed: number, ino: number, generation: number): void {
  const lo = INODE.offsetOf('l_i_checksum_lo');
  const hi = INODE.offsetOf('i_checksum_hi');
  raw.writeUInt16LE(0, lo);
  const hasHi = raw.readUInt16LE(INODE.offsetOf('i_extra_isize')) >= 4;
  if (hasHi) raw.writeUInt16LE(0, hi);
  const c = crc32cUpdate(inodeCsumSeed(fsSeed, ino, generation), raw);
  raw.writeUInt16LE(c & 0xffff, lo);
  if (hasHi) raw.writeUInt16LE(c >>> 16, hi);
}
