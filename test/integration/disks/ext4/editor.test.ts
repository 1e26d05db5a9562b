/**
 * Offline edits of a container's disk: an ext4 base disk from our writer, a qcow2 overlay from
 * our qcow2 code, files written into the overlay through libext2fs (Ext4Editor), then checked
 * by independent tools: `qemu-img check` on the overlay, `e2fsck -fn` and `debugfs` on a raw
 * conversion of it, and the base disk byte-identical.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { sha256Hex as sha } from '../../../fixtures/hash.js';
import { readFileSync, readdirSync, copyFileSync, openSync, writeSync, readSync, closeSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Ext4Editor } from '../../../../src/disks/ext4/editor.js';
import { Ext4Reader } from '../../../../src/disks/ext4/reader.js';
import { Qcow2Image } from '../../../../src/disks/qcow2/image.js';
import { detectDiskFormat } from '../../../../src/disks/disk-image.js';
import { EXT4_FEATURE_INCOMPAT, SUPERBLOCK, SUPERBLOCK_OFFSET } from '../../../../src/disks/ext4/superblock.js';
import { ConflictError, FormatError, InvalidParameterError, NotFoundError, NotImplementedError } from '../../../../src/errors.js';
import { busyboxRootfsEntries, packTar, type TarEntry } from '../../../fixtures/rootfs.js';
import { buildDisk, cleanup, debugfs, fsck, tempDir } from './helpers.js';
import { qemuCheck, requireTool, runOk } from '../qcow2/helpers.js';

const MTIME = new Date('2021-03-04T05:06:07.000Z');

let work: string;
let base: string;
let baseSha: string;

beforeAll(async () => {
  requireTool('qemu-img');
  work = tempDir('editor');
  base = path.join(work, 'base.ext4');
  await buildDisk([await packTar(busyboxRootfsEntries())], base, { sizeBytes: 64 << 20 });
  baseSha = sha(readFileSync(base));
});
afterAll(() => cleanup(work));

let n = 0;
async function overlay(): Promise<string> {
  const p = path.join(work, `c${n++}.qcow2`);
  const img = await Qcow2Image.create(p, { backingFile: 'base.ext4', backingFormat: 'raw' });
  await img.close();
  return p;
}

/** the disk the guest would see, as a raw file (for e2fsck and debugfs) */
function flatten(qcow2: string): string {
  const raw = qcow2.replace(/\.qcow2$/, '.raw');
  runOk('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', qcow2, raw]);
  return raw;
}

const big = Buffer.alloc(3 * 1024 * 1024 + 123);
for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;

const payload: TarEntry[] = [
  { name: 'app/', type: 'directory', mode: 0o750, uid: 1000, gid: 1000, mtime: MTIME },
  { name: 'app/bin/', type: 'directory', mode: 0o755, mtime: MTIME },
  { name: 'app/bin/tool', content: big, mode: 0o4755, uid: 0, gid: 0, mtime: MTIME },
  { name: 'app/config.json', content: Buffer.from('{"a":1}\n'), mode: 0o640, uid: 1000, gid: 1001, mtime: MTIME },
  { name: 'app/link', type: 'symlink', linkname: 'bin/tool', mtime: MTIME },
  { name: 'app/hard', type: 'link', linkname: 'app/config.json' },
];

describe("Ext4Editor: docker cp into a stopped VM container's qcow2 disk", () => {
  it('detects formats by content', async () => {
    expect(detectDiskFormat(base)).toBe('raw');
    expect(detectDiskFormat(await overlay())).toBe('qcow2');
  });

  it('writes files, dirs, symlinks and hardlinks with owners, modes and mtimes; qemu-img check and e2fsck are clean', async () => {
    const disk = await overlay();
    // an empty archive first: a no-op edit must also leave a clean disk
    await Ext4Editor.edit(disk, (ed) => ed.extractTar('/tmp', Readable.from([Buffer.alloc(1024)])));
    const tar = await packTar(payload);
    await Ext4Editor.edit(disk, (ed) => ed.extractTar('/tmp', Readable.from([tar])));

    expect(sha(readFileSync(base))).toBe(baseSha);
    expect(qemuCheck(disk).status).toBe(0);
    expect(readdirSync(work).filter((f) => f.includes('.edit-'))).toEqual([]);
    const raw = flatten(disk);
    fsck(raw);
    expect(debugfs(raw, 'stat /tmp/app/bin/tool')).toContain(`mtime: 0x${(MTIME.getTime() / 1000).toString(16)}`);

    const r = await Ext4Reader.open(disk);
    try {
      const tool = await r.stat('/tmp/app/bin/tool');
      expect([tool.type, tool.mode, tool.uid, tool.size, tool.mtimeSec]).toEqual(['file', 0o4755, 0, big.length, MTIME.getTime() / 1000]);
      expect(sha(await r.readFile('/tmp/app/bin/tool'))).toBe(sha(big));
      const app = await r.stat('/tmp/app');
      expect([app.type, app.mode, app.uid, app.gid, app.mtimeSec]).toEqual(['dir', 0o750, 1000, 1000, MTIME.getTime() / 1000]);
      const cfg = await r.stat('/tmp/app/config.json');
      expect([cfg.mode, cfg.uid, cfg.gid, cfg.nlink]).toEqual([0o640, 1000, 1001, 2]);
      expect((await r.stat('/tmp/app/hard')).ino).toBe(cfg.ino);
      expect((await r.stat('/tmp/app/link')).target).toBe('bin/tool');
      expect((await r.readFile('/tmp/app/config.json')).toString()).toBe('{"a":1}\n');
      // the image's own files are still there, read through the overlay from the base
      expect((await r.stat('/bin/busybox')).type).toBe('file');
    } finally {
      await r.close();
    }
  });

  it('resolves symlinks in the destination inside the disk, never outside it', async () => {
    const disk = await overlay();
    const setup = await packTar([
      { name: 'escape', type: 'symlink', linkname: '../../../../../..' },
      { name: 'abs', type: 'symlink', linkname: '/etc' },
    ]);
    await Ext4Editor.edit(disk, (ed) => ed.extractTar('/', Readable.from([setup])));
    const tar = await packTar([{ name: 'x', content: Buffer.from('inside') }]);
    await Ext4Editor.edit(disk, (ed) => ed.extractTar('/abs', Readable.from([tar])));
    await Ext4Editor.edit(disk, (ed) => ed.extractTar('/escape', Readable.from([tar])));
    const r = await Ext4Reader.open(disk);
    try {
      expect((await r.readFile('/etc/x')).toString()).toBe('inside');
      expect((await r.readFile('/x')).toString()).toBe('inside');
    } finally {
      await r.close();
    }
    fsck(flatten(disk));
  });

  it('bad archives are refused by name and leave the disk byte-identical', async () => {
    const disk = await overlay();
    await Ext4Editor.edit(disk, (ed) => ed.extractTar('/tmp', Readable.from([Buffer.alloc(1024)])));
    const before = sha(readFileSync(disk));
    // a good entry first, then the bad one: the good one must not land either
    const dotdot = await packTar([
      { name: 'ok', content: Buffer.from('1') },
      { name: '../evil', content: Buffer.from('x') },
    ]);
    await expect(Ext4Editor.edit(disk, (ed) => ed.extractTar('/tmp', Readable.from([dotdot])))).rejects.toBeInstanceOf(FormatError);
    const dev = await packTar([
      { name: 'ok', content: Buffer.from('1') },
      { name: 'null', type: 'character-device', devmajor: 1, devminor: 3 },
    ]);
    await expect(Ext4Editor.edit(disk, (ed) => ed.extractTar('/tmp', Readable.from([dev])))).rejects.toThrow(NotImplementedError);
    const good = await packTar([{ name: 'ok', content: Buffer.alloc(100_000, 1) }]);
    const truncated = good.subarray(0, 5000);
    await expect(Ext4Editor.edit(disk, (ed) => ed.extractTar('/tmp', Readable.from([truncated])))).rejects.toBeInstanceOf(FormatError);
    await expect(Ext4Editor.edit(disk, (ed) => ed.extractTar('/no/such/dir', Readable.from([good])))).rejects.toBeInstanceOf(NotFoundError);
    await expect(Ext4Editor.edit(disk, (ed) => ed.extractTar('/bin/busybox', Readable.from([good])))).rejects.toBeInstanceOf(
      InvalidParameterError,
    );
    expect(sha(readFileSync(disk))).toBe(before);
    expect(readdirSync(work).filter((f) => f.includes('.edit-'))).toEqual([]);
    expect(qemuCheck(disk).status).toBe(0);
  });

  it('noOverwriteDirNonDir refuses to replace a directory by a file, as docker cp asks', async () => {
    const disk = await overlay();
    const tar = await packTar([{ name: 'etc', content: Buffer.from('not a dir') }]);
    await expect(Ext4Editor.edit(disk, (ed) => ed.extractTar('/', Readable.from([tar]), { noOverwriteDirNonDir: true }))).rejects.toThrow(
      /cannot overwrite directory/,
    );
  });

  it("an explicit format wins over what the file's first bytes say (a guest can write them on a raw disk)", async () => {
    const raw = path.join(work, 'guest-written.ext4');
    copyFileSync(base, raw);
    // ext4 leaves its first 1024 bytes to the boot loader: a guest can put a qcow2 magic there
    const fd = openSync(raw, 'r+');
    const magic = Buffer.alloc(4);
    magic.writeUInt32BE(0x514649fb, 0);
    writeSync(fd, magic, 0, 4, 0);
    closeSync(fd);
    expect(detectDiskFormat(raw)).toBe('qcow2');
    const r = await Ext4Reader.open(raw, { format: 'raw' });
    try {
      expect((await r.stat('/bin/busybox')).type).toBe('file');
    } finally {
      await r.close();
    }
    await Ext4Editor.edit(raw, (ed) => ed.writeFile('/x', Buffer.from('x'), { mode: 0o644, uid: 0, gid: 0 }), { format: 'raw' });
    fsck(raw);
  });

  it('refuses a filesystem whose journal needs recovery (the guest stopped uncleanly)', async () => {
    const raw = path.join(work, 'dirty.ext4');
    copyFileSync(base, raw);
    const fd = openSync(raw, 'r+');
    const sb = Buffer.alloc(1024);
    readSync(fd, sb, 0, 1024, SUPERBLOCK_OFFSET);
    const off = SUPERBLOCK.offsetOf('s_feature_incompat');
    sb.writeUInt32LE(sb.readUInt32LE(off) | EXT4_FEATURE_INCOMPAT.RECOVER, off);
    writeSync(fd, sb, 0, 1024, SUPERBLOCK_OFFSET);
    closeSync(fd);
    const before = sha(readFileSync(raw));
    await expect(Ext4Editor.edit(raw, async () => {})).rejects.toBeInstanceOf(ConflictError);
    expect(sha(readFileSync(raw))).toBe(before);
  });
});
