import { describe, it, expect } from 'vitest';
import {
  dirHash,
  packHashedDirectory,
  dxRootLimit,
  dxNodeLimit,
  DX_ROOT_INFO,
  DX_COUNTLIMIT,
  DX_ROOT_ENTRIES_OFFSET,
} from '../../../../src/disks/ext4/htree.js';
import { DIR_ENTRY, type DirEntry } from '../../../../src/disks/ext4/dir-entry.js';
import { crc32cUpdate } from '../../../../src/disks/ext4/crc32c.js';

const SEED = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');

describe('htree directories', () => {
  it('hashes names exactly like the kernel (half_md4, signed chars); vectors from debugfs dx_hash', () => {
    expect(dirHash(Buffer.from('hello'), SEED, true)).toBe(0xa26e4a80);
    expect(dirHash(Buffer.from('file-with-a-longish-name-77777'), SEED, true)).toBe(0xc82eb3a2);
    expect(dirHash(Buffer.from('x'.repeat(70)), SEED, true)).toBe(0x2b6b6870);
    expect(dirHash(Buffer.from('héllo', 'utf8'), SEED, true)).toBe(0x1e7a395c);
  });

  it('uses the checksum-tail-adjusted index limits', () => {
    expect(dxRootLimit(4096)).toBe(507);
    expect(dxNodeLimit(4096)).toBe(510);
  });

  function leafHashes(block: Buffer): number[] {
    const out: number[] = [];
    for (let at = 0; at < block.length - 12;) {
      const e = DIR_ENTRY.decode(block, at);
      if ((e.inode as number) !== 0) out.push(dirHash(block.subarray(at + 8, at + 8 + (e.name_len as number)), SEED, true));
      at += e.rec_len as number;
    }
    return out;
  }

  it('builds a root whose index ranges contain each leaf', () => {
    const entries: DirEntry[] = Array.from({ length: 3000 }, (_, i) => ({ name: Buffer.from(`name-${i}`), inode: 20 + i, fileType: 1 }));
    const blocks = packHashedDirectory(12, 2, entries, 4096, 0xfeed, SEED, true);
    const root = blocks[0]!;
    expect(DIR_ENTRY.decode(root, 0)).toMatchObject({ inode: 12, rec_len: 12, name_len: 1 });
    expect(DIR_ENTRY.decode(root, 12)).toMatchObject({ inode: 2, rec_len: 4096 - 12, name_len: 2 });
    expect(DX_ROOT_INFO.decode(root, 24)).toMatchObject({ reserved_zero: 0, hash_version: 1, info_length: 8, indirect_levels: 0 });
    const { limit, count } = DX_COUNTLIMIT.decode(root, DX_ROOT_ENTRIES_OFFSET) as { limit: number; count: number };
    expect(limit).toBe(507);
    expect(count).toBe(blocks.length - 1);
    const index = Array.from({ length: count }, (_, i) => ({
      hash: i === 0 ? 0 : root.readUInt32LE(32 + i * 8),
      block: root.readUInt32LE(32 + i * 8 + 4),
    }));
    let total = 0;
    index.forEach((e, i) => {
      const hi = i + 1 < index.length ? index[i + 1]!.hash : 2 ** 32;
      const hs = leafHashes(blocks[e.block]!);
      total += hs.length;
      for (const h of hs) {
        expect(h).toBeGreaterThanOrEqual(e.hash);
        expect(h).toBeLessThan(hi);
      }
    });
    expect(total).toBe(3000);
    // dx tail checksum: used entries, then the 8-byte tail with the checksum zeroed
    const tail = 32 + limit * 8;
    const z = Buffer.from(root);
    z.writeUInt32LE(0, tail + 4);
    let c = crc32cUpdate(0xfeed, z, 0, 32 + count * 8);
    c = crc32cUpdate(c, z, tail, tail + 8);
    expect(root.readUInt32LE(tail + 4)).toBe(c);
  });

  it('adds a level of index nodes when the root is full', () => {
    const entries: DirEntry[] = Array.from({ length: 60_000 }, (_, i) => ({
      name: Buffer.from(`a-fairly-long-file-name-number-${i}`),
      inode: 20 + i,
      fileType: 1,
    }));
    const blocks = packHashedDirectory(12, 2, entries, 4096, 1, SEED, true);
    expect(DX_ROOT_INFO.decode(blocks[0]!, 24).indirect_levels).toBe(1);
    const { count } = DX_COUNTLIMIT.decode(blocks[0]!, DX_ROOT_ENTRIES_OFFSET) as { count: number };
    expect(count).toBeGreaterThan(1);
    expect(DIR_ENTRY.decode(blocks[1]!, 0)).toMatchObject({ inode: 0, rec_len: 4096, name_len: 0 });
  });
});
