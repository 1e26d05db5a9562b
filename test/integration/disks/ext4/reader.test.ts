import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { sha256Hex as sha } from '../../../fixtures/hash.js';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ext4Reader } from '../../../../src/disks/ext4/reader.js';
import { NotFoundError } from '../../../../src/errors.js';
import { busyboxRootfsEntries, packTar, type TarEntry } from '../../../fixtures/rootfs.js';
import { buildDisk, cleanup, fsck, referenceMerge, tempDir } from './helpers.js';

let work: string;
beforeAll(() => {
  work = tempDir('reader');
});
afterAll(() => cleanup(work));

describe('Ext4Reader (libext2fs via WASM) reads what the writer wrote', () => {
  it('lists every entry with type, mode, owner, size, target and content, and never modifies the image', async () => {
    const extra: TarEntry[] = [
      { name: 'data/', type: 'directory', uid: 1000, gid: 1000, mode: 0o750 },
      { name: 'data/big', content: Buffer.alloc(300_000, 0x5a), uid: 1000 },
      { name: 'data/hl', type: 'link', linkname: 'data/big' },
      { name: 'data/long-link', type: 'symlink', linkname: 'y/'.repeat(60) + 'z' },
      { name: 'dev/', type: 'directory' },
      { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
    ];
    const layers = [busyboxRootfsEntries(), extra];
    const img = path.join(work, 'r.ext4');
    await buildDisk(await Promise.all(layers.map((l) => packTar(l))), img, { sizeBytes: 64 << 20 });
    fsck(img);
    const before = sha(readFileSync(img));
    const expected = referenceMerge(layers);
    const r = await Ext4Reader.open(img);
    try {
      const seen = new Map<string, Awaited<ReturnType<Ext4Reader['stat']>>>();
      for await (const e of r.walk('/')) seen.set(e.path.slice(1), e);
      seen.delete('lost+found');
      expect([...seen.keys()].sort()).toEqual([...expected.keys()].sort());
      const types = {
        file: 'file',
        directory: 'dir',
        symlink: 'symlink',
        'character-device': 'char',
        'block-device': 'block',
        fifo: 'fifo',
      } as const;
      for (const [p, exp] of expected) {
        const got = seen.get(p)!;
        expect(got.type, p).toBe(types[exp.type]);
        if (exp.type !== 'symlink') expect(got.mode, p).toBe(exp.mode);
        expect([got.uid, got.gid, got.mtimeSec], p).toEqual([exp.uid, exp.gid, exp.mtimeSec]);
        if (exp.type === 'file') expect(sha(await r.readFile('/' + p)), p).toBe(exp.sha256);
        if (exp.type === 'symlink') expect(got.target, p).toBe(exp.linkname);
      }
      expect(seen.get('data/big')!.nlink).toBe(2);
      expect(seen.get('data/hl')!.ino).toBe(seen.get('data/big')!.ino);
      await expect(r.stat('/nope')).rejects.toBeInstanceOf(NotFoundError);
    } finally {
      await r.close();
    }
    expect(sha(readFileSync(img))).toBe(before);
  });
});
