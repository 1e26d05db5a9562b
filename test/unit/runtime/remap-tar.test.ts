import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { extract, pack, type Header } from 'tar-stream';
import { containerToHost, hostToContainer, remapTar } from '../../../src/runtime/host/remap-tar.js';

const maps = { uidMap: [{ containerID: 0, hostID: 100000, size: 65536 }], gidMap: [{ containerID: 0, hostID: 200000, size: 65536 }] };

async function tarOf(entries: { h: Partial<Header> & { name: string }; body?: string }[]): Promise<Buffer> {
  const p = pack();
  for (const e of entries) {
    if (e.body !== undefined) p.entry(e.h, e.body);
    else p.entry(e.h);
  }
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function read(s: Readable): Promise<{ h: Header; body: string }[]> {
  const ex = extract();
  const out: { h: Header; body: string }[] = [];
  const done = new Promise<void>((resolve, reject) => {
    ex.on('entry', (h, body, next) => {
      const parts: Buffer[] = [];
      body.on('data', (c: unknown) => parts.push(c as Buffer));
      body.on('end', () => {
        out.push({ h, body: Buffer.concat(parts).toString() });
        next();
      });
    });
    ex.on('finish', resolve);
    ex.on('error', reject);
    s.on('error', reject);
  });
  s.pipe(ex);
  await done;
  return out;
}

describe('tar id translation for docker cp under --userns-remap', () => {
  it('shows host-owned files with their container ids, unmapped ones as 65534, bodies intact', async () => {
    const big = 'x'.repeat(100_000);
    const tar = await tarOf([
      { h: { name: 'd', type: 'directory', uid: 100000, gid: 200000, uname: 'dockremap' } },
      { h: { name: 'd/f', uid: 101000, gid: 201000 }, body: big },
      { h: { name: 'd/host', uid: 0, gid: 5 }, body: 'h' },
      { h: { name: 'd/l', type: 'symlink', linkname: 'f', uid: 100000, gid: 200000 } },
    ]);
    const got = await read(remapTar(Readable.from([tar]), hostToContainer(maps)));
    expect(got.map((e) => [e.h.name, e.h.uid, e.h.gid])).toEqual([
      ['d', 0, 0], ['d/f', 1000, 1000], ['d/host', 65534, 65534], ['d/l', 0, 0],
    ]);
    expect(got[0]!.h.uname).toBe('');
    expect(got[1]!.body).toBe(big);
    expect(got[3]!.h.linkname).toBe('f');
  });

  it('gives copied-in files the host ids of their container ids, and refuses ids outside the map', async () => {
    const tar = await tarOf([{ h: { name: 'a', uid: 0, gid: 0 }, body: 'a' }, { h: { name: 'b', uid: 1000, gid: 50 }, body: 'b' }]);
    const got = await read(remapTar(Readable.from([tar]), containerToHost(maps)));
    expect(got.map((e) => [e.h.name, e.h.uid, e.h.gid])).toEqual([['a', 100000, 200000], ['b', 101000, 200050]]);
    const bad = await tarOf([{ h: { name: 'big', uid: 70000, gid: 0 }, body: 'x' }]);
    await expect(read(remapTar(Readable.from([bad]), containerToHost(maps)))).rejects.toThrow(/big: container uid 70000 cannot be mapped/);
  });

  it('passes a malformed tar\'s error on', async () => {
    const junk = Buffer.alloc(1024, 7);
    await expect(read(remapTar(Readable.from([junk]), hostToContainer(maps)))).rejects.toThrow();
  });
});
