import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { copyHash, globIn, planCopy, type CopySource } from '../../../src/build/copy.js';

describe('COPY planning (moby copy.go rules)', () => {
  let root: string;
  const src = (rel: string): CopySource => ({ shown: rel, host: path.join(root, rel), rel });
  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'build-copy-unit-'));
    await mkdir(path.join(root, 'dir', 'sub'), { recursive: true });
    await writeFile(path.join(root, 'dir', 'sub', 'f'), 'f');
    for (const n of ['a.txt', 'b.txt', 'c.md']) await writeFile(path.join(root, n), n);
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('globs match within one component, sorted', async () => {
    expect(await globIn(root, '*.txt')).toEqual(['a.txt', 'b.txt']);
    expect(await globIn(root, 'dir/*/f')).toEqual(['dir/sub/f']);
    expect(await globIn(root, '[ab].txt')).toEqual(['a.txt', 'b.txt']);
    expect(await globIn(root, '*.none')).toEqual([]);
  });

  it("globs never enter a symlinked directory (as moby's walk): it could lead out of the root", async () => {
    await symlink(path.join(root, 'dir'), path.join(root, 'lnk'));
    try {
      expect(await globIn(root, 'lnk/*/f')).toEqual([]);
      expect(await globIn(root, 'lnk/sub/*')).toEqual([]);
      expect(await globIn(path.join(root, 'lnk'), '*')).toEqual([]);
      // the link itself matches
      expect(await globIn(root, 'l*')).toEqual(['lnk']);
    } finally {
      await rm(path.join(root, 'lnk'));
    }
  });

  it('a file goes to dest, or into it when dest ends in / or is a directory', async () => {
    const never = async () => false;
    expect((await planCopy('COPY', [src('a.txt')], '/x', '/', never)).items[0]!.dest).toBe('/x');
    expect((await planCopy('COPY', [src('a.txt')], '/x/', '/', never)).items[0]!.dest).toBe('/x/a.txt');
    expect((await planCopy('COPY', [src('a.txt')], '/etc', '/', async () => true)).items[0]!.dest).toBe('/etc/a.txt');
    expect((await planCopy('COPY', [src('a.txt')], 'rel', '/work', never)).items[0]!.dest).toBe('/work/rel');
    expect((await planCopy('COPY', [src('a.txt')], '.', '/work', never)).items[0]!.dest).toBe('/work/a.txt');
  });

  it('a directory copies its contents into dest (made if missing)', async () => {
    const p = await planCopy('COPY', [src('dir')], '/d', '/', async () => false);
    expect(p.items).toEqual([{ host: path.join(root, 'dir'), dest: '/d' }]);
    expect(p.mkdirs).toEqual(['/d']);
  });

  it('several sources need a directory destination ending in /', async () => {
    await expect(planCopy('COPY', [src('a.txt'), src('b.txt')], '/x', '/', async () => true)).rejects.toThrow(
      'When using COPY with more than one source file, the destination must be a directory and end with a /',
    );
  });

  it('hashes name file, dir or multi and change with the content', async () => {
    const h1 = await copyHash([src('a.txt')]);
    expect(h1).toMatch(/^file:[0-9a-f]{64}$/);
    expect(await copyHash([src('dir')])).toMatch(/^dir:/);
    expect(await copyHash([src('a.txt'), src('b.txt')])).toMatch(/^multi:/);
    await writeFile(path.join(root, 'a.txt'), 'changed');
    expect(await copyHash([src('a.txt')])).not.toBe(h1);
  });
});
