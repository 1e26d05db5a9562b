/**
 * A stopped VM container's disk was written by its guest, which can make a directory entry
 * point back at an ancestor (debugfs `link` does it here). Export, cp and diff read that disk
 * on the host: a cycle must be an error, not an endless archive or walk.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { Ext4Reader } from '../../../../src/disks/ext4/reader.js';
import { diffDisks, exportDisk } from '../../../../src/disks/ext4/disk-archive.js';
import { FormatError } from '../../../../src/errors.js';
import { cleanup, tempDir } from './helpers.js';

let work: string;
let looped: string;
let plain: string;
beforeAll(() => {
  work = tempDir('cycles');
  plain = path.join(work, 'plain.img');
  looped = path.join(work, 'looped.img');
  for (const img of [plain, looped]) {
    execFileSync('truncate', ['-s', '8M', img]);
    execFileSync('mke2fs', ['-q', '-t', 'ext4', '-F', img]);
    execFileSync('debugfs', ['-w', '-R', 'mkdir /a', img], { stdio: 'ignore' });
  }
  execFileSync('debugfs', ['-w', '-R', 'link /a /a/loop', looped], { stdio: 'ignore' });
});
afterAll(() => cleanup(work));

/** reads the archive, giving up after `cap` bytes (an endless archive is the failure) */
async function drain(s: NodeJS.ReadableStream, cap = 8 << 20): Promise<unknown> {
  let n = 0;
  try {
    for await (const c of s) {
      n += (c as Buffer).length;
      if (n > cap) return new Error(`archive exceeded ${cap} bytes`);
    }
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('directory cycles on a guest-written disk', () => {
  it('export fails with a FormatError naming the cycle', async () => {
    const r = await Ext4Reader.open(looped);
    try {
      const err = await drain(await exportDisk(r));
      expect(err).toBeInstanceOf(FormatError);
      expect((err as Error).message).toMatch(/directory cycle/);
    } finally {
      await r.close();
    }
  });

  it('diff fails with a FormatError naming the cycle', async () => {
    const base = await Ext4Reader.open(plain);
    const top = await Ext4Reader.open(looped);
    try {
      const err = await Promise.race([
        diffDisks(base, top).then(
          () => undefined,
          (e: unknown) => e,
        ),
        new Promise((r) => setTimeout(() => r(new Error('diff did not finish')), 15_000)),
      ]);
      expect(err).toBeInstanceOf(FormatError);
      expect((err as Error).message).toMatch(/directory cycle/);
    } finally {
      await base.close();
      await top.close();
    }
  }, 30_000);
});

describe('Ext4Reader.walk on a guest-written disk', () => {
  it('refuses a directory cycle', async () => {
    const r = await Ext4Reader.open(looped);
    try {
      let n = 0;
      const err = await (async () => {
        for await (const _ of r.walk('/')) if (++n > 10_000) return new Error('endless walk');
        return undefined;
      })().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FormatError);
      expect((err as Error).message).toMatch(/directory cycle at \/a\/loop/);
    } finally {
      await r.close();
    }
  });
});

describe('Ext4Editor on a guest-written disk', () => {
  it('removing a directory with a cycle below it is refused and leaves the disk as it was', async () => {
    const { Ext4Editor } = await import('../../../../src/disks/ext4/editor.js');
    const { copyFileSync, readFileSync } = await import('node:fs');
    const img = path.join(work, 'edit-looped.img');
    copyFileSync(looped, img);
    const before = readFileSync(img);
    const err = await Promise.race([
      Ext4Editor.edit(img, (ed) => ed.remove('/a')).then(
        () => undefined,
        (e: unknown) => e,
      ),
      new Promise((r) => setTimeout(() => r(new Error('remove did not finish')), 20_000)),
    ]);
    expect(err).toBeInstanceOf(FormatError);
    expect((err as Error).message).toMatch(/directory cycle/);
    expect(readFileSync(img).equals(before)).toBe(true);
  }, 30_000);
});
