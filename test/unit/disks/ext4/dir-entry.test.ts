import { describe, it, expect } from 'vitest';
import {
  packDirectory,
  dirBlocksNeeded,
  dirEntrySize,
  DIR_ENTRY,
  DIR_TAIL,
  EXT4_FT,
  type DirEntry,
} from '../../../../src/disks/ext4/dir-entry.js';
import { crc32cUpdate } from '../../../../src/disks/ext4/crc32c.js';

function parse(block: Buffer): { name: string; inode: number; type: number }[] {
  const out = [];
  let at = 0;
  while (at < block.length - 12) {
    const e = DIR_ENTRY.decode(block, at);
    out.push({
      name: block.subarray(at + 8, at + 8 + (e.name_len as number)).toString(),
      inode: e.inode as number,
      type: e.file_type as number,
    });
    expect(e.rec_len as number).toBeGreaterThanOrEqual(dirEntrySize(e.name_len as number));
    at += e.rec_len as number;
  }
  expect(at).toBe(block.length - 12);
  return out;
}

describe('directory blocks', () => {
  it('packs ".", ".." and entries; the last record reaches the checksum tail', () => {
    const entries: DirEntry[] = [
      { name: Buffer.from('.'), inode: 2, fileType: EXT4_FT.DIR },
      { name: Buffer.from('..'), inode: 2, fileType: EXT4_FT.DIR },
      { name: Buffer.from('hello.txt'), inode: 12, fileType: EXT4_FT.REG_FILE },
    ];
    const [b, ...rest] = packDirectory(entries, 4096, 0xabcd);
    expect(rest).toEqual([]);
    expect(parse(b!)).toEqual([
      { name: '.', inode: 2, type: 2 },
      { name: '..', inode: 2, type: 2 },
      { name: 'hello.txt', inode: 12, type: 1 },
    ]);
    expect(DIR_TAIL.decode(b!, 4084)).toMatchObject({ det_reserved_zero1: 0, det_rec_len: 12, det_reserved_ft: 0xde });
    expect(b!.readUInt32LE(4092)).toBe(crc32cUpdate(0xabcd, b!, 0, 4084));
  });

  it('spills into more blocks exactly as dirBlocksNeeded predicts', () => {
    const entries: DirEntry[] = Array.from({ length: 1000 }, (_, i) => ({
      name: Buffer.from(`entry-number-${i}`),
      inode: 100 + i,
      fileType: 1,
    }));
    const blocks = packDirectory(entries, 4096, 0);
    expect(blocks.length).toBe(
      dirBlocksNeeded(
        entries.map((e) => e.name.length),
        4096,
      ),
    );
    expect(blocks.length).toBeGreaterThan(1);
    const names = blocks.flatMap((b) => parse(b).map((e) => e.name));
    expect(names).toEqual(entries.map((e) => e.name.toString()));
  });

  it('rounds entry sizes to 4 bytes', () => {
    expect(dirEntrySize(1)).toBe(12);
    expect(dirEntrySize(4)).toBe(12);
    expect(dirEntrySize(5)).toBe(16);
    expect(dirEntrySize(255)).toBe(264);
  });
});
