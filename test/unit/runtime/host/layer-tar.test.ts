import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { link, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { extract } from 'tar-stream';
import type { Readable } from 'node:stream';
import { changesTar } from '../../../../src/runtime/host/layer-tar.js';
import { CHANGE_ADDED, CHANGE_DELETED, CHANGE_MODIFIED } from '../../../../src/runtime/types.js';

async function entries(
  tar: Readable,
): Promise<{ name: string; type: string; linkname?: string; size: number; body: string; uid: number }[]> {
  const out: { name: string; type: string; linkname?: string; size: number; body: string; uid: number }[] = [];
  const ex = extract();
  ex.on('entry', (h, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: unknown) => void chunks.push(c as Buffer));
    stream.on('end', () => {
      out.push({
        name: h.name,
        type: h.type ?? 'file',
        ...(h.linkname && { linkname: h.linkname }),
        size: h.size ?? 0,
        body: Buffer.concat(chunks).toString(),
        uid: h.uid ?? 0,
      });
      next();
    });
  });
  await new Promise<void>((resolve, reject) => {
    ex.on('finish', resolve);
    ex.on('error', reject);
    tar.on('error', reject);
    tar.pipe(ex);
  });
  return out;
}

describe('changesTar: a writable layer as an image layer', () => {
  let upper: string;
  beforeAll(async () => {
    upper = await mkdtemp(path.join(os.tmpdir(), 'build-layer-tar-'));
    await mkdir(path.join(upper, 'etc'));
    await writeFile(path.join(upper, 'etc', 'conf'), 'changed');
    await mkdir(path.join(upper, 'new', 'sub'), { recursive: true });
    await writeFile(path.join(upper, 'new', 'one'), '1');
    await link(path.join(upper, 'new', 'one'), path.join(upper, 'new', 'sub', 'same'));
    await symlink('../one', path.join(upper, 'new', 'sub', 'ln'));
    await writeFile(path.join(upper, 'new', 'empty'), '');
  });
  afterAll(async () => {
    await rm(upper, { recursive: true, force: true });
  });

  it('packs added and modified paths from the upper, deletions as .wh. files, hard links once', async () => {
    const got = await entries(
      changesTar(upper, [
        { Path: '/etc', Kind: CHANGE_MODIFIED },
        { Path: '/etc/conf', Kind: CHANGE_MODIFIED },
        { Path: '/etc/gone', Kind: CHANGE_DELETED },
        { Path: '/new', Kind: CHANGE_ADDED },
        { Path: '/new/empty', Kind: CHANGE_ADDED },
        { Path: '/new/one', Kind: CHANGE_ADDED },
        { Path: '/new/sub', Kind: CHANGE_ADDED },
        { Path: '/new/sub/ln', Kind: CHANGE_ADDED },
        { Path: '/new/sub/same', Kind: CHANGE_ADDED },
      ]),
    );
    expect(got.map((e) => [e.name, e.type, e.linkname ?? e.body])).toEqual([
      ['etc', 'directory', ''],
      ['etc/conf', 'file', 'changed'],
      ['etc/.wh.gone', 'file', ''],
      ['new', 'directory', ''],
      ['new/empty', 'file', ''],
      ['new/one', 'file', '1'],
      ['new/sub', 'directory', ''],
      ['new/sub/ln', 'symlink', '../one'],
      ['new/sub/same', 'link', 'new/one'],
    ]);
  });

  it('maps owners through the user namespace mapping it is given', async () => {
    const got = await entries(changesTar(upper, [{ Path: '/new/one', Kind: CHANGE_ADDED }], () => ({ uid: 7, gid: 8 })));
    expect(got[0]!.uid).toBe(7);
  });

  it('an empty change list is an empty tar (the empty layer moby drops)', async () => {
    expect(await entries(changesTar(upper, []))).toEqual([]);
  });
});
