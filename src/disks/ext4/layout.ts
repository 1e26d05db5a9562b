/**
 * Filesystem geometry: block groups, where superblock backups live (sparse_super), how many
 * group descriptor blocks and inodes there are. Everything else (bitmaps, inode tables, the
 * journal) is placed freely thanks to flex_bg.
 */
import { GROUP_DESC_SIZE_64 } from './group-descriptor.js';
import { EXT4_INODE_SIZE } from './inode.js';
import { InvalidParameterError } from '../../errors.js';

export const BLOCK_SIZE = 4096;
export const LOG_BLOCK_SIZE = 2; // 1024 << 2
export const BLOCKS_PER_GROUP = BLOCK_SIZE * 8;
/** mke2fs's default bytes-per-inode ratio for ext4 */
export const INODE_RATIO = 16384;
export const MAX_INODES_PER_GROUP = BLOCK_SIZE * 8;
export const INODES_PER_BLOCK = BLOCK_SIZE / EXT4_INODE_SIZE;
/** a last group smaller than this is dropped, as mke2fs does */
export const MIN_LAST_GROUP_BLOCKS = 64;
export const LOG_GROUPS_PER_FLEX = 4;

function isPowerOf(n: number, base: number): boolean {
  while (n > 1 && n % base === 0) n /= base;
  return n === 1;
}

/** sparse_super: groups 0, 1 and powers of 3, 5 and 7 carry a superblock + GDT copy */
export function hasSuperblockBackup(group: number): boolean {
  return group <= 1 || isPowerOf(group, 3) || isPowerOf(group, 5) || isPowerOf(group, 7);
}

export function gdtBlocksFor(groups: number): number {
  return Math.ceil((groups * GROUP_DESC_SIZE_64) / BLOCK_SIZE);
}

export interface Geometry {
  blocksCount: number;
  groupCount: number;
  gdtBlocks: number;
  inodesPerGroup: number;
  inodesCount: number;
  inodeTableBlocks: number;
}

/** blocks in `group` (the last group may be short) */
export function groupBlocks(g: Geometry, group: number): number {
  return group === g.groupCount - 1 ? g.blocksCount - group * BLOCKS_PER_GROUP : BLOCKS_PER_GROUP;
}

/** drops a too-small last group */
export function trimBlocksCount(blocks: number): number {
  const rem = blocks % BLOCKS_PER_GROUP;
  if (rem !== 0 && rem < MIN_LAST_GROUP_BLOCKS) return blocks - rem;
  return blocks;
}

export function computeGeometry(blocksCount: number, minInodes: number): Geometry {
  const groupCount = Math.ceil(blocksCount / BLOCKS_PER_GROUP);
  if (groupCount < 1) throw new InvalidParameterError(`disk of ${blocksCount} blocks is too small`, 'ERR_DISK_TOO_SMALL');
  const byRatio = Math.floor((BLOCKS_PER_GROUP * BLOCK_SIZE) / INODE_RATIO);
  const byNeed = Math.ceil(minInodes / groupCount);
  const ipg = Math.ceil(Math.max(byRatio, byNeed) / INODES_PER_BLOCK) * INODES_PER_BLOCK;
  if (ipg > MAX_INODES_PER_GROUP) {
    throw new InvalidParameterError(`${minInodes} inodes do not fit in a disk of ${groupCount} block groups`, 'ERR_DISK_TOO_SMALL');
  }
  if (ipg * groupCount >= 2 ** 32) throw new InvalidParameterError('too many inodes for ext4', 'ERR_DISK_TOO_SMALL');
  return {
    blocksCount,
    groupCount,
    gdtBlocks: gdtBlocksFor(groupCount),
    inodesPerGroup: ipg,
    inodesCount: ipg * groupCount,
    inodeTableBlocks: ipg / INODES_PER_BLOCK,
  };
}
