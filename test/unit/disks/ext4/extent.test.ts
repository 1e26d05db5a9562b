import { describe, it, expect } from 'vitest';
import {
  appendExtent,
  buildExtentTree,
  extentTreeBlocksNeeded,
  extentsPerBlock,
  setExtentBlockChecksum,
  EXTENT_HEADER,
  EXTENT,
  EXTENT_IDX,
  EXT_INIT_MAX_LEN,
  type Extent,
} from '../../../../src/disks/ext4/extent.js';
import { crc32cUpdate } from '../../../../src/disks/ext4/crc32c.js';

describe('extents', () => {
  it('merges contiguous runs and splits at the 32768-block limit', () => {
    const l: Extent[] = [];
    appendExtent(l, 0, 100, 10);
    appendExtent(l, 10, 110, 5);
    expect(l).toEqual([{ logical: 0, physical: 100, len: 15 }]);
    appendExtent(l, 20, 115, 1); // logical gap: new extent
    appendExtent(l, 21, 500, 1); // physical gap: new extent
    expect(l.length).toBe(3);
    const big: Extent[] = [];
    appendExtent(big, 0, 1000, EXT_INIT_MAX_LEN + 5);
    expect(big).toEqual([
      { logical: 0, physical: 1000, len: EXT_INIT_MAX_LEN },
      { logical: EXT_INIT_MAX_LEN, physical: 1000 + EXT_INIT_MAX_LEN, len: 5 },
    ]);
  });

  it('counts tree blocks: none up to 4 extents, one level per 340', () => {
    expect(extentsPerBlock(4096)).toBe(340);
    expect(extentTreeBlocksNeeded(0, 4096)).toBe(0);
    expect(extentTreeBlocksNeeded(4, 4096)).toBe(0);
    expect(extentTreeBlocksNeeded(5, 4096)).toBe(1);
    expect(extentTreeBlocksNeeded(1360, 4096)).toBe(4);
    expect(extentTreeBlocksNeeded(1361, 4096)).toBe(5 + 1);
  });

  const many = (n: number): Extent[] => Array.from({ length: n }, (_, i) => ({ logical: i * 2, physical: 10_000 + i * 3, len: 1 }));

  it('keeps up to four extents in the inode root', () => {
    const t = buildExtentTree(many(4), [], 4096);
    expect(t.depth).toBe(0);
    expect(EXTENT_HEADER.decode(t.root)).toMatchObject({ eh_magic: 0xf30a, eh_entries: 4, eh_max: 4, eh_depth: 0 });
    expect(EXTENT.decode(t.root, 12 + 3 * 12)).toMatchObject({ ee_block: 6, ee_len: 1, ee_start_lo: 10_009 });
  });

  it('builds index levels bottom-up with correct first-logical keys', () => {
    const ext = many(1500);
    const need = extentTreeBlocksNeeded(ext.length, 4096);
    const blocks = Array.from({ length: need }, (_, i) => 900 + i);
    const t = buildExtentTree(ext, blocks, 4096);
    expect(t.depth).toBe(2);
    expect(t.treeBlocks).toBe(need);
    const root = EXTENT_HEADER.decode(t.root);
    expect(root).toMatchObject({ eh_entries: 1, eh_depth: 2 });
    const idx = EXTENT_IDX.decode(t.root, 12);
    const top = t.blocks.find((b) => b.block === idx.ei_leaf_lo)!;
    expect(EXTENT_HEADER.decode(top.data)).toMatchObject({ eh_entries: 5, eh_max: 340, eh_depth: 1 });
    // second leaf starts at extent 340
    const second = EXTENT_IDX.decode(top.data, 12 + 12);
    expect(second.ei_block).toBe(340 * 2);
    const leaf = t.blocks.find((b) => b.block === second.ei_leaf_lo)!;
    expect(EXTENT_HEADER.decode(leaf.data)).toMatchObject({ eh_entries: 340, eh_depth: 0 });
    expect(EXTENT.decode(leaf.data, 12)).toMatchObject({ ee_block: 680, ee_start_lo: 10_000 + 340 * 3 });
  });

  it('puts the checksum tail right after eh_max entries', () => {
    const t = buildExtentTree(many(10), [77], 4096);
    const b = t.blocks[0]!.data;
    setExtentBlockChecksum(b, 0x1234);
    expect(b.readUInt32LE(12 + 340 * 12)).toBe(crc32cUpdate(0x1234, b, 0, 4092));
  });
});
