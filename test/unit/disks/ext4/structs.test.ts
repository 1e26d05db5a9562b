import { describe, it, expect } from 'vitest';
import { SUPERBLOCK, superblockChecksum } from '../../../../src/disks/ext4/superblock.js';
import { GROUP_DESC } from '../../../../src/disks/ext4/group-descriptor.js';
import { INODE, EXT4_INODE_XATTR_OFFSET } from '../../../../src/disks/ext4/inode.js';
import { EXTENT_HEADER, EXTENT, EXTENT_IDX } from '../../../../src/disks/ext4/extent.js';
import { DIR_ENTRY, DIR_TAIL } from '../../../../src/disks/ext4/dir-entry.js';
import { XATTR_HEADER, XATTR_ENTRY } from '../../../../src/disks/ext4/xattr.js';
import { JOURNAL_SUPERBLOCK, buildJournalSuperblock } from '../../../../src/disks/ext4/journal.js';
import { defineStruct, fieldSize, type FieldTable } from '../../../../src/disks/ext4/struct.js';

/** fields must not overlap and, with explicit padding fields, cover the struct exactly */
function checkPacked(fields: FieldTable, size: number) {
  const sorted = Object.entries(fields).sort((a, b) => a[1][0] - b[1][0]);
  let at = 0;
  for (const [name, [off, type]] of sorted) {
    expect(off, `field ${name}`).toBe(at);
    at = off + fieldSize(type);
  }
  expect(at).toBe(size);
}

describe('ext4 struct layouts (fs/ext4/ext4.h, ext4_extents.h, xattr.h, jbd2.h)', () => {
  it('superblock: 1024 bytes, kernel offsets', () => {
    expect(SUPERBLOCK.size).toBe(1024);
    checkPacked(SUPERBLOCK.fields, 1024);
    const o = (n: keyof typeof SUPERBLOCK.fields) => SUPERBLOCK.offsetOf(n);
    expect(o('s_magic')).toBe(0x38);
    expect(o('s_feature_compat')).toBe(0x5c);
    expect(o('s_uuid')).toBe(0x68);
    expect(o('s_volume_name')).toBe(0x78);
    expect(o('s_journal_inum')).toBe(0xe0);
    expect(o('s_hash_seed')).toBe(0xec);
    expect(o('s_desc_size')).toBe(0xfe);
    expect(o('s_jnl_blocks')).toBe(0x10c);
    expect(o('s_blocks_count_hi')).toBe(0x150);
    expect(o('s_log_groups_per_flex')).toBe(0x174);
    expect(o('s_checksum_type')).toBe(0x175);
    expect(o('s_checksum_seed')).toBe(0x270);
    expect(o('s_checksum')).toBe(0x3fc);
  });

  it('group descriptor: 64 bytes', () => {
    checkPacked(GROUP_DESC.fields, 64);
    expect(GROUP_DESC.offsetOf('bg_checksum')).toBe(0x1e);
    expect(GROUP_DESC.offsetOf('bg_block_bitmap_hi')).toBe(0x20);
    expect(GROUP_DESC.offsetOf('bg_inode_bitmap_csum_hi')).toBe(0x3a);
  });

  it('inode: 160 bytes of fields in a 256-byte slot', () => {
    checkPacked(INODE.fields, 0xa0);
    expect(INODE.size).toBe(256);
    expect(INODE.offsetOf('i_block')).toBe(0x28);
    expect(INODE.offsetOf('i_generation')).toBe(0x64);
    expect(INODE.offsetOf('l_i_checksum_lo')).toBe(0x7c);
    expect(INODE.offsetOf('i_extra_isize')).toBe(0x80);
    expect(INODE.offsetOf('i_checksum_hi')).toBe(0x82);
    expect(INODE.offsetOf('i_crtime')).toBe(0x90);
    expect(INODE.offsetOf('i_projid')).toBe(0x9c);
    expect(EXT4_INODE_XATTR_OFFSET).toBe(0xa0);
  });

  it('extent header, extent and index: 12 bytes each', () => {
    checkPacked(EXTENT_HEADER.fields, 12);
    checkPacked(EXTENT.fields, 12);
    checkPacked(EXTENT_IDX.fields, 12);
    expect(EXTENT.offsetOf('ee_start_hi')).toBe(6);
    expect(EXTENT_IDX.offsetOf('ei_leaf_hi')).toBe(8);
  });

  it('directory entry header 8 bytes, checksum tail 12 bytes', () => {
    checkPacked(DIR_ENTRY.fields, 8);
    checkPacked(DIR_TAIL.fields, 12);
  });

  it('xattr block header 32 bytes, entry header 16 bytes', () => {
    checkPacked(XATTR_HEADER.fields, 32);
    checkPacked(XATTR_ENTRY.fields, 16);
  });

  it('jbd2 superblock: 1024 bytes, big-endian', () => {
    checkPacked(JOURNAL_SUPERBLOCK.fields, 1024);
    expect(JOURNAL_SUPERBLOCK.offsetOf('s_uuid')).toBe(0x30);
    expect(JOURNAL_SUPERBLOCK.offsetOf('s_nr_users')).toBe(0x40);
    expect(JOURNAL_SUPERBLOCK.offsetOf('s_checksum')).toBe(0xfc);
    expect(JOURNAL_SUPERBLOCK.offsetOf('s_users')).toBe(0x100);
    const uuid = Buffer.alloc(16, 0xab);
    const b = buildJournalSuperblock(4096, 8192, uuid);
    expect(b.readUInt32BE(0)).toBe(0xc03b3998);
    expect(b.readUInt32BE(4)).toBe(4);
    expect(b.readUInt32BE(0x0c)).toBe(4096);
    expect(b.readUInt32BE(0x10)).toBe(8192);
    expect(b.readUInt32BE(0x14)).toBe(1);
    expect(b.readUInt32BE(0x1c)).toBe(0);
    expect(b.subarray(0x30, 0x40)).toEqual(uuid);
  });

  it('encode/decode round-trip and range checks', () => {
    const S = defineStruct(8, { a: [0, 'u16'], b: [2, 'u8'], c: [4, 'u32'] } as const);
    const buf = S.encode({ a: 0xbeef, b: 7, c: 0xdeadbeef });
    expect(S.decode(buf)).toEqual({ a: 0xbeef, b: 7, c: 0xdeadbeef });
    expect(() => S.encode({ b: 256 })).toThrow(/u8/);
    expect(() => defineStruct(4, { x: [2, 'u32'] } as const)).toThrow(/overruns/);
  });

  it('superblock checksum covers bytes before s_checksum only', () => {
    const sb = Buffer.alloc(1024);
    const c1 = superblockChecksum(sb);
    sb.writeUInt32LE(123, 0x3fc);
    expect(superblockChecksum(sb)).toBe(c1);
    sb[0] = 1;
    expect(superblockChecksum(sb)).not.toBe(c1);
  });
});
