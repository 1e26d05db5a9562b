/**
 * docker cp out, docker export and docker diff of a stopped VM container, read offline from its
 * qcow2 overlay over the image's base disk (both written by our own code, edited with
 * Ext4Editor as `docker cp` into the container would).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { sha256Hex as sha } from '../../../fixtures/hash.js';
import path from 'node:path';
import { Readable } from 'node:stream';
import { extract, type Header } from 'tar-stream';
import { Ext4Editor } from '../../../../src/disks/ext4/editor.js';
import { Ext4Reader } from '../../../../src/disks/ext4/reader.js';
import { archiveFromDisk, diffDisks, exportDisk } from '../../../../src/disks/ext4/disk-archive.js';
import { Qcow2Image } from '../../../../src/disks/qcow2/image.js';
import { NotFoundError } from '../../../../src/errors.js';
import { busyboxRootfsEntries, packTar, type TarEntry } from '../../../fixtures/rootfs.js';
import { buildDisk, cleanup, tempDir } from './helpers.js';

const big = Buffer.alloc(200_000, 0x61);

const extra: TarEntry[] = [
  { name: 'data/', type: 'directory', mode: 0o750, uid: 1000, gid: 1000 },
  { name: 'data/big', content: big, uid: 1000 },
  { name: 'data/hl', type: 'link', linkname: 'data/big' },
  { name: 'data/fifo', type: 'fifo', mode: 0o600 },
  { name: 'data/sym', type: 'symlink', linkname: 'big' },
  { name: 'dev/', type: 'directory' },
  { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
  { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0, mode: 0o660 },
];

interface Got {
  h: Header;
  body: Buffer;
}
async function untar(s: Readable): Promise<Map<string, Got>> {
  const out = new Map<string, Got>();
  const ex = extract();
  const done = new Promise<void>((resolve, reject) => {
    ex.on('entry', (h, body, next) => {
      const chunks: Buffer[] = [];
      body.on('data', (c: unknown) => {
        chunks.push(c as Buffer);
      });
      body.on('end', () => {
        out.set(h.name, { h, body: Buffer.concat(chunks) });
        next();
      });
    });
    ex.on('finish', resolve);
    ex.on('error', reject);
  });
  s.pipe(ex);
  await done;
  return out;
}

let work: string;
let base: string;
let overlay: string;

beforeAll(async () => {
  work = tempDir('disk-archive');
  base = path.join(work, 'base.ext4');
  await buildDisk([await packTar(busyboxRootfsEntries()), await packTar(extra)], base, { sizeBytes: 64 << 20 });
  overlay = path.join(work, 'c.qcow2');
  await (await Qcow2Image.create(overlay, { backingFile: 'base.ext4', backingFormat: 'raw' })).close();
  const attrs = { mode: 0o644, uid: 0, gid: 0 };
  await Ext4Editor.edit(overlay, async (ed) => {
    await ed.remove('/data/hl');
    await ed.writeFile('/data/new', Buffer.from('new\n'), attrs);
    // an empty file (a bind-mount point the agent made) once stalled the archive for ever
    await ed.writeFile('/data/empty', Buffer.alloc(0), attrs);
    await ed.writeFile('/etc/passwd', Buffer.from('root:x:0:0:root:/root:/bin/sh\n'), attrs);
    await ed.mkdir('/newdir', { ...attrs, mode: 0o755 });
    await ed.writeFile('/newdir/f', Buffer.from('f'), attrs);
  });
});
afterAll(() => cleanup(work));

describe("a stopped VM container's disk, read offline", () => {
  it("docker diff: the overlay against the base disk, with Docker's rules and order", async () => {
    const b = await Ext4Reader.open(base);
    const t = await Ext4Reader.open(overlay);
    try {
      expect(await diffDisks(b, t)).toEqual([
        { Path: '/data', Kind: 0 },
        { Path: '/data/empty', Kind: 1 },
        { Path: '/data/hl', Kind: 2 },
        { Path: '/data/new', Kind: 1 },
        { Path: '/etc', Kind: 0 },
        { Path: '/etc/passwd', Kind: 0 },
        { Path: '/newdir', Kind: 1 },
        { Path: '/newdir/f', Kind: 1 },
      ]);
      expect(await diffDisks(b, b)).toEqual([]);
      // what the runtime makes is left out by name
      expect((await diffDisks(b, t, ['/newdir', '/etc'])).map((c) => c.Path)).toEqual(['/data', '/data/empty', '/data/hl', '/data/new']);
    } finally {
      await t.close();
      await b.close();
    }
  });

  it('docker export: every entry relative to the root, with owners, devices, links and content', async () => {
    const r = await Ext4Reader.open(base);
    try {
      const got = await untar(await exportDisk(r));
      expect(got.has('.')).toBe(false);
      expect(got.has('lost+found')).toBe(false);
      expect(got.get('bin/busybox')!.h.type).toBe('file');
      const data = got.get('data')!.h;
      expect([data.type, data.mode, data.uid, data.gid]).toEqual(['directory', 0o750, 1000, 1000]);
      expect(sha(got.get('data/big')!.body)).toBe(sha(big));
      expect([got.get('data/hl')!.h.type, got.get('data/hl')!.h.linkname]).toEqual(['link', 'data/big']);
      expect([got.get('data/sym')!.h.type, got.get('data/sym')!.h.linkname]).toEqual(['symlink', 'big']);
      expect(got.get('data/fifo')!.h.type).toBe('fifo');
      const nul = got.get('dev/null')!.h;
      expect([nul.type, nul.devmajor, nul.devminor, nul.mode]).toEqual(['character-device', 1, 3, 0o666]);
      const sda = got.get('dev/sda')!.h;
      expect([sda.type, sda.devmajor, sda.devminor]).toEqual(['block-device', 8, 0]);
    } finally {
      await r.close();
    }
  });

  it('docker export of the overlay ends, empty files included', async () => {
    const r = await Ext4Reader.open(overlay);
    try {
      const got = await untar(await exportDisk(r));
      expect(got.get('data/empty')!.h.size).toBe(0);
      expect(got.get('data/new')!.body.toString()).toBe('new\n');
    } finally {
      await r.close();
    }
  });

  it('docker cp out: a path named by its base name, symlinks in the path resolved inside the disk', async () => {
    const r = await Ext4Reader.open(overlay);
    try {
      const dir = await untar(await archiveFromDisk(r, '/data'));
      expect([...dir.keys()].sort()).toEqual(['data', 'data/big', 'data/empty', 'data/fifo', 'data/new', 'data/sym']);
      expect(dir.get('data/new')!.body.toString()).toBe('new\n');
      const file = await untar(await archiveFromDisk(r, '/etc/passwd'));
      expect([...file.keys()]).toEqual(['passwd']);
      expect(file.get('passwd')!.body.toString()).toBe('root:x:0:0:root:/root:/bin/sh\n');
      // the last component is archived as it is (a symlink stays one)
      const sym = await untar(await archiveFromDisk(r, '/data/sym'));
      expect(sym.get('sym')!.h.type).toBe('symlink');
      await expect(archiveFromDisk(r, '/nope')).rejects.toBeInstanceOf(NotFoundError);
    } finally {
      await r.close();
    }
  });
});
