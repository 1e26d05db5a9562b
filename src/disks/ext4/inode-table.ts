/**
 * Direct access to the inode table of an ext4 filesystem, for what libext2fs's WASM binding
 * does not expose: device numbers and nanosecond times (read), and timestamps (write: `docker
 * cp` into a container keeps the archive's mtimes). The inode is found from the superblock and
 * its group descriptor; a patched inode gets its metadata_csum checksum recomputed.
 */
import type { BlockBackend } from '../block-backend.js';
import { FormatError, NotImplementedError } from '../../errors.js';
import { crc32cUpdate } from './crc32c.js';
import { GROUP_DESC } from './group-descriptor.js';
import { INODE, EXT4_GOOD_OLD_INODE_SIZE, decodeTime, encodeTime, setInodeChecksum, type Timestamp } from './inode.js';
import {
  EXT4_FEATURE_INCOMPAT,
  EXT4_FEATURE_RO_COMPAT,
  EXT4_SUPER_MAGIC,
  SUPERBLOCK,
  SUPERBLOCK_OFFSET,
  SUPERBLOCK_SIZE,
} from './superblock.js';

/** ext2/3's group descriptor size when the 64bit feature is off */
const GROUP_DESC_SIZE_32 = 32;
/** the extra-fields size that holds i_ctime_extra..i_atime_extra (EXT4_FITS_IN_INODE) */
const EXTRA_TIMES_END = INODE.offsetOf('i_atime_extra') + 4;

export interface Ext4SuperblockFacts {
  blockSize: number;
  inodesPerGroup: number;
  inodeSize: number;
  inodesCount: number;
  /** byte offset of the first group descriptor */
  gdtOffset: number;
  descSize: number;
  bit64: boolean;
  metadataCsum: boolean;
  /** the crc32c seed of every metadata checksum */
  csumSeed: number;
  /** the journal has transactions that were never replayed (an unclean shutdown) */
  needsRecovery: boolean;
  /** descriptors live in each meta group, not after the superblock */
  metaBg: boolean;
}

export async function readSuperblockFacts(disk: BlockBackend, name: string): Promise<Ext4SuperblockFacts> {
  if (disk.size < SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE)
    throw new FormatError(`${name}: too small for an ext4 filesystem`, 'ERR_EXT4_FORMAT');
  const raw = Buffer.alloc(SUPERBLOCK_SIZE);
  await disk.read(raw, SUPERBLOCK_OFFSET);
  const sb = SUPERBLOCK.decode(raw);
  if (sb.s_magic !== EXT4_SUPER_MAGIC) throw new FormatError(`${name}: no ext4 superblock (bad magic)`, 'ERR_EXT4_FORMAT');
  // the guest wrote this superblock: geometry the kernel would refuse is refused here too
  // (fs/ext4/super.c: block size 1 KiB..64 KiB, inode size a power of two from 128 up to the
  // block size, 64bit descriptors of at least 64 bytes)
  const logBlock = sb.s_log_block_size as number;
  const rev0 = (sb.s_rev_level as number) === 0;
  const inodeSize = rev0 ? EXT4_GOOD_OLD_INODE_SIZE : (sb.s_inode_size as number);
  const bad = (what: string) => new FormatError(`${name}: ext4 superblock has ${what}`, 'ERR_EXT4_FORMAT');
  if (logBlock > 6) throw bad(`an invalid block size (s_log_block_size ${logBlock})`);
  const blockSizeOf = 1024 << logBlock;
  if ((sb.s_inodes_per_group as number) === 0) throw bad('no inodes per group');
  if (inodeSize < EXT4_GOOD_OLD_INODE_SIZE || inodeSize > blockSizeOf || (inodeSize & (inodeSize - 1)) !== 0)
    throw bad(`an invalid inode size (${inodeSize})`);
  const incompat = sb.s_feature_incompat as number;
  const roCompat = sb.s_feature_ro_compat as number;
  const blockSize = blockSizeOf;
  const bit64 = (incompat & EXT4_FEATURE_INCOMPAT.BIT64) !== 0;
  if (bit64 && (sb.s_desc_size as number) < 64) throw bad(`an invalid group descriptor size (${sb.s_desc_size as number})`);
  const metadataCsum = (roCompat & EXT4_FEATURE_RO_COMPAT.METADATA_CSUM) !== 0;
  const csumSeed =
    (incompat & EXT4_FEATURE_INCOMPAT.CSUM_SEED) !== 0 ? (sb.s_checksum_seed as number) : crc32cUpdate(0xffffffff, sb.s_uuid as Uint8Array);
  return {
    blockSize,
    inodesPerGroup: sb.s_inodes_per_group as number,
    inodeSize,
    inodesCount: sb.s_inodes_count as number,
    gdtOffset: ((sb.s_first_data_block as number) + 1) * blockSize,
    descSize: bit64 ? (sb.s_desc_size as number) : GROUP_DESC_SIZE_32,
    bit64,
    metadataCsum,
    csumSeed,
    needsRecovery: (incompat & EXT4_FEATURE_INCOMPAT.RECOVER) !== 0,
    metaBg: (incompat & EXT4_FEATURE_INCOMPAT.META_BG) !== 0,
  };
}

async function inodeOffset(disk: BlockBackend, name: string, sb: Ext4SuperblockFacts, ino: number): Promise<number> {
  if (!Number.isInteger(ino) || ino < 1 || ino > sb.inodesCount)
    throw new FormatError(`${name}: inode ${ino} out of range`, 'ERR_EXT4_FORMAT');
  if (sb.metaBg)
    throw new NotImplementedError(`${name}: meta_bg filesystems are not supported for offline timestamp edits`, 'ERR_EXT4_UNSUPPORTED');
  const group = Math.floor((ino - 1) / sb.inodesPerGroup);
  const index = (ino - 1) % sb.inodesPerGroup;
  const desc = Buffer.alloc(GROUP_DESC.size);
  await disk.read(desc.subarray(0, sb.descSize), sb.gdtOffset + group * sb.descSize);
  const d = GROUP_DESC.decode(desc);
  const table = (d.bg_inode_table_lo as number) + (sb.bit64 ? (d.bg_inode_table_hi as number) * 0x1_0000_0000 : 0);
  const off = table * sb.blockSize + index * sb.inodeSize;
  if (table === 0 || off + sb.inodeSize > disk.size)
    throw new FormatError(`${name}: group ${group}'s inode table is outside the disk`, 'ERR_EXT4_FORMAT');
  return off;
}

/** The raw on-disk inode (s_inode_size bytes); the filesystem must not be changing under us. */
export async function readInode(disk: BlockBackend, name: string, ino: number): Promise<Buffer> {
  const sb = await readSuperblockFacts(disk, name);
  const slot = Buffer.alloc(sb.inodeSize);
  await disk.read(slot, await inodeOffset(disk, name, sb, ino));
  return slot;
}

/** mtime with nanoseconds when the inode has the extra fields */
export function inodeMtime(raw: Buffer): Timestamp {
  const extra =
    raw.length > EXT4_GOOD_OLD_INODE_SIZE && EXT4_GOOD_OLD_INODE_SIZE + raw.readUInt16LE(INODE.offsetOf('i_extra_isize')) >= EXTRA_TIMES_END
      ? raw.readUInt32LE(INODE.offsetOf('i_mtime_extra'))
      : 0;
  return decodeTime(raw.readUInt32LE(INODE.offsetOf('i_mtime')), extra);
}

export interface InodeTimes {
  ino: number;
  mtime: Timestamp;
  /** defaults to mtime, as tar extraction does without an atime record */
  atime?: Timestamp;
}

/** Writes atime/mtime of each inode; the filesystem must not be mounted (also not by libext2fs). */
export async function setInodeTimes(disk: BlockBackend, name: string, updates: InodeTimes[]): Promise<void> {
  if (updates.length === 0) return;
  const sb = await readSuperblockFacts(disk, name);
  for (const u of updates) {
    const at = await inodeOffset(disk, name, sb, u.ino);
    const slot = Buffer.alloc(sb.inodeSize);
    await disk.read(slot, at);
    const m = encodeTime(u.mtime);
    const a = encodeTime(u.atime ?? u.mtime);
    slot.writeUInt32LE(m.base, INODE.offsetOf('i_mtime'));
    slot.writeUInt32LE(a.base, INODE.offsetOf('i_atime'));
    const extra = sb.inodeSize > EXT4_GOOD_OLD_INODE_SIZE ? slot.readUInt16LE(INODE.offsetOf('i_extra_isize')) : 0;
    if (EXT4_GOOD_OLD_INODE_SIZE + extra >= EXTRA_TIMES_END) {
      slot.writeUInt32LE(m.extra, INODE.offsetOf('i_mtime_extra'));
      slot.writeUInt32LE(a.extra, INODE.offsetOf('i_atime_extra'));
    }
    if (sb.metadataCsum) {
      setInodeChecksum(slot, sb.csumSeed, u.ino, slot.readUInt32LE(INODE.offsetOf('i_generation')));
    }
    await disk.write(slot, at);
  }
}
