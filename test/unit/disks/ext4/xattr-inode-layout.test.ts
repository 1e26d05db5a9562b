import { describe, it, expect } from 'vitest';
import {
  splitXattrName,
  sortXattrs,
  xattrEntryHash,
  fitsInInode,
  writeInodeXattrs,
  buildXattrBlock,
  posixAclToExt4,
  XATTR_ENTRY,
  XATTR_HEADER,
  EXT4_XATTR_MAGIC,
  type Xattr,
} from '../../../../src/disks/ext4/xattr.js';
import {
  encodeTime,
  decodeTime,
  encodeDevice,
  decodeDevice,
  setInodeChecksum,
  INODE,
  inodeCsumSeed,
} from '../../../../src/disks/ext4/inode.js';
import { crc32cUpdate } from '../../../../src/disks/ext4/crc32c.js';
import { hasSuperblockBackup, computeGeometry, trimBlocksCount, BLOCKS_PER_GROUP } from '../../../../src/disks/ext4/layout.js';
import { BlockAllocator } from '../../../../src/disks/ext4/allocator.js';
import { InvalidParameterError } from '../../../../src/errors.js';

describe('xattrs', () => {
  it('maps name prefixes to ext4 name indexes', () => {
    expect(splitXattrName('security.capability')).toEqual({ index: 6, name: Buffer.from('capability') });
    expect(splitXattrName('user.mime')).toEqual({ index: 1, name: Buffer.from('mime') });
    expect(splitXattrName('trusted.overlay.opaque')).toEqual({ index: 4, name: Buffer.from('overlay.opaque') });
    expect(splitXattrName('system.posix_acl_access')).toEqual({ index: 2, name: Buffer.alloc(0) });
    expect(splitXattrName('com.apple.quarantine')).toBeNull();
    expect(splitXattrName('user.')).toBeNull();
  });

  it('hashes names and padded values like ext4_xattr_hash_entry', () => {
    expect(xattrEntryHash(Buffer.from('a'), Buffer.alloc(0))).toBe(0x61);
    expect(xattrEntryHash(Buffer.from('ab'), Buffer.alloc(0))).toBe((0x61 << 5) ^ 0x62);
    const h = (0x61 << 5) ^ 0x62;
    expect(xattrEntryHash(Buffer.from('ab'), Buffer.from([1]))).toBe(((h << 16) ^ (h >>> 16) ^ 1) >>> 0);
  });

  it('sorts by index, name length, name', () => {
    const l: Xattr[] = [
      { index: 6, name: Buffer.from('capability'), value: Buffer.alloc(1) },
      { index: 1, name: Buffer.from('zz'), value: Buffer.alloc(1) },
      { index: 1, name: Buffer.from('b'), value: Buffer.alloc(1) },
      { index: 1, name: Buffer.from('a'), value: Buffer.alloc(1) },
    ];
    expect(sortXattrs(l).map((x) => `${x.index}.${x.name.toString()}`)).toEqual(['1.a', '1.b', '1.zz', '6.capability']);
  });

  it('lays out in-inode attributes after the ibody magic, values at the end', () => {
    const l: Xattr[] = [{ index: 1, name: Buffer.from('k'), value: Buffer.from('value') }];
    expect(fitsInInode(l, 96)).toBe(true);
    const region = Buffer.alloc(96);
    writeInodeXattrs(region, l);
    expect(region.readUInt32LE(0)).toBe(EXT4_XATTR_MAGIC);
    const e = XATTR_ENTRY.decode(region, 4);
    expect(e).toMatchObject({ e_name_len: 1, e_name_index: 1, e_value_size: 5 });
    const off = 4 + (e.e_value_offs as number);
    expect(region.subarray(off, off + 5).toString()).toBe('value');
    expect(region.readUInt32LE(4 + 20)).toBe(0); // terminator after the one entry
    expect(fitsInInode([{ index: 1, name: Buffer.from('k'), value: Buffer.alloc(80) }], 96)).toBe(false);
  });

  it('builds a checksummed xattr block', () => {
    const l: Xattr[] = [{ index: 1, name: Buffer.from('big'), value: Buffer.alloc(1000, 0xff) }];
    const b = buildXattrBlock(l, 4096, 1234, 2, 0x55);
    const h = XATTR_HEADER.decode(b);
    expect(h).toMatchObject({ h_magic: EXT4_XATTR_MAGIC, h_refcount: 2, h_blocks: 1 });
    const e = XATTR_ENTRY.decode(b, 32);
    expect(h.h_hash).not.toBe(0);
    expect(b.subarray(e.e_value_offs as number, (e.e_value_offs as number) + 1000)).toEqual(Buffer.alloc(1000, 0xff));
    const copy = Buffer.from(b);
    copy.writeUInt32LE(0, 16);
    const seed = crc32cUpdate(0x55, Buffer.from([0xd2, 0x04, 0, 0, 0, 0, 0, 0]));
    expect(h.h_checksum).toBe(crc32cUpdate(seed, copy));
  });

  it('converts POSIX ACLs from the xattr form to the ext4 on-disk form', () => {
    const x = Buffer.alloc(4 + 8 * 4);
    x.writeUInt32LE(2, 0);
    const ents = [
      [0x01, 6, 0xffffffff],
      [0x02, 4, 1000],
      [0x04, 4, 0xffffffff],
      [0x20, 0, 0xffffffff],
    ];
    ents.forEach(([t, p, id], i) => {
      x.writeUInt16LE(t!, 4 + i * 8);
      x.writeUInt16LE(p!, 6 + i * 8);
      x.writeUInt32LE(id!, 8 + i * 8);
    });
    const e = posixAclToExt4(x)!;
    expect(e.length).toBe(4 + 4 + 8 + 4 + 4);
    expect(e.readUInt32LE(0)).toBe(1);
    expect(e.readUInt32LE(12)).toBe(1000);
    expect(posixAclToExt4(Buffer.from([1, 2, 3]))).toBeNull();
  });
});

describe('inode fields', () => {
  it('encodes times with nanoseconds and epoch bits', () => {
    expect(encodeTime({ sec: 1700000000, nsec: 123456789 })).toEqual({ base: 1700000000, extra: (123456789 << 2) >>> 0 });
    expect(encodeTime({ sec: -1, nsec: 0 })).toEqual({ base: 0xffffffff, extra: 0 });
    expect(encodeTime({ sec: 2 ** 31, nsec: 0 })).toEqual({ base: 2 ** 31, extra: 1 });
    for (const t of [
      { sec: 0, nsec: 1 },
      { sec: -86401, nsec: 750000000 },
      { sec: 4102444800, nsec: 999999999 },
      { sec: 2 ** 33, nsec: 5 },
    ]) {
      const e = encodeTime(t);
      expect(decodeTime(e.base, e.extra)).toEqual(t);
    }
  });

  it('encodes device numbers old-style when small, new-style otherwise', () => {
    const small = encodeDevice(1, 3);
    expect(small.readUInt32LE(0)).toBe(0x0103);
    expect(small.readUInt32LE(4)).toBe(0);
    const big = encodeDevice(300, 70000);
    expect(big.readUInt32LE(0)).toBe(0);
    expect(decodeDevice(big)).toEqual({ major: 300, minor: 70000 });
    expect(decodeDevice(small)).toEqual({ major: 1, minor: 3 });
  });

  it('stores the inode checksum split over lo/hi, computed with both zeroed', () => {
    const raw = Buffer.alloc(256);
    INODE.encode({ i_mode: 0o100644, i_extra_isize: 32, l_i_checksum_lo: 0xffff, i_checksum_hi: 0xffff }, raw);
    setInodeChecksum(raw, 0x1111, 12, 0);
    const lo = raw.readUInt16LE(0x7c);
    const hi = raw.readUInt16LE(0x82);
    const z = Buffer.from(raw);
    z.writeUInt16LE(0, 0x7c);
    z.writeUInt16LE(0, 0x82);
    expect(((hi << 16) | lo) >>> 0).toBe(crc32cUpdate(inodeCsumSeed(0x1111, 12, 0), z));
  });
});

describe('layout and allocation', () => {
  it('puts superblock backups in groups 0, 1 and powers of 3, 5, 7', () => {
    const got = Array.from({ length: 130 }, (_, g) => g).filter(hasSuperblockBackup);
    expect(got).toEqual([0, 1, 3, 5, 7, 9, 25, 27, 49, 81, 125]);
  });

  it('sizes inodes by ratio or need, and refuses what cannot fit', () => {
    const g = computeGeometry(8 * BLOCKS_PER_GROUP, 100);
    expect(g).toMatchObject({ groupCount: 8, inodesPerGroup: 8192, inodesCount: 65536, gdtBlocks: 1, inodeTableBlocks: 512 });
    expect(computeGeometry(8 * BLOCKS_PER_GROUP, 100_000).inodesPerGroup).toBe(12512);
    expect(() => computeGeometry(BLOCKS_PER_GROUP, 40_000)).toThrow(InvalidParameterError);
    expect(trimBlocksCount(BLOCKS_PER_GROUP + 10)).toBe(BLOCKS_PER_GROUP);
    expect(trimBlocksCount(BLOCKS_PER_GROUP + 100)).toBe(BLOCKS_PER_GROUP + 100);
  });

  it('skips reserved areas, reuses freed runs first, and enforces the limit', () => {
    const a = new BlockAllocator(3, 2 * BLOCKS_PER_GROUP + 100);
    expect(a.alloc(5)).toEqual({ start: 3, len: 5 });
    // a run stops at the next backup group's reserved area
    const big = a.alloc(BLOCKS_PER_GROUP);
    expect(big).toEqual({ start: 8, len: BLOCKS_PER_GROUP - 8 });
    expect(a.alloc(1)).toEqual({ start: BLOCKS_PER_GROUP + 3, len: 1 });
    a.release(100, 10);
    expect(a.alloc(4)).toEqual({ start: 100, len: 4 });
    expect(a.alloc(100)).toEqual({ start: 104, len: 6 });
    expect(a.allocContiguousFresh(10)).toBe(BLOCKS_PER_GROUP + 4);
    expect(() => a.alloc(2 * BLOCKS_PER_GROUP)).toThrow(InvalidParameterError);
  });
});
