/**
 * The offline inode-table access reads a container's disk, which its guest wrote: a superblock
 * with impossible geometry must be a FormatError naming the disk, not a division by zero or a
 * RangeError deep inside.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { copyFileSync, openSync, writeSync, closeSync } from 'node:fs';
import path from 'node:path';
import { openDiskImage } from '../../../../src/disks/disk-image.js';
import { readInode, readSuperblockFacts } from '../../../../src/disks/ext4/inode-table.js';
import { FormatError } from '../../../../src/errors.js';
import { cleanup, tempDir } from './helpers.js';

let work: string;
let good: string;
beforeAll(() => {
  work = tempDir('inode-table');
  good = path.join(work, 'good.img');
  execFileSync('truncate', ['-s', '8M', good]);
  execFileSync('mke2fs', ['-q', '-t', 'ext4', '-F', good]);
});
afterAll(() => cleanup(work));

/** a copy of the good image with superblock field bytes at `at` replaced */
function patched(name: string, at: number, value: Buffer): string {
  const p = path.join(work, `${name}.img`);
  copyFileSync(good, p);
  const fd = openSync(p, 'r+');
  writeSync(fd, value, 0, value.length, 1024 + at);
  closeSync(fd);
  return p;
}

const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
};
const u16 = (v: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return b;
};

describe('inode table access on a disk its guest wrote', () => {
  it('reads a sane filesystem', async () => {
    const d = await openDiskImage(good, { readOnly: true });
    const sb = await readSuperblockFacts(d, 'good');
    expect(sb.blockSize).toBeGreaterThanOrEqual(1024);
    expect((await readInode(d, 'good', 2)).length).toBe(sb.inodeSize);
  });

  it('refuses impossible geometry as a FormatError naming the disk', async () => {
    const cases: [string, number, Buffer][] = [
      ['zero-inodes-per-group', 0x28, u32(0)],
      ['huge-block-size', 0x18, u32(22)],
      ['tiny-inode-size', 0x58, u16(4)],
    ];
    for (const [name, at, value] of cases) {
      const d = await openDiskImage(patched(name, at, value), { readOnly: true });
      const err = await readInode(d, `disk ${name}`, 2).catch((e: unknown) => e);
      expect(err, name).toBeInstanceOf(FormatError);
      expect((err as Error).message, name).toContain(`disk ${name}`);
    }
  });
});
