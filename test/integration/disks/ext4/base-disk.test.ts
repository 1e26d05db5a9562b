import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { BaseDiskCache, baseDiskUuid, BASE_DISK_WRITER_VERSION, imageIdHex } from '../../../../src/disks/base-disk.js';
import { writeExt4FromLayers, formatUuid } from '../../../../src/disks/ext4/writer.js';
import { FormatError, InvalidParameterError } from '../../../../src/errors.js';
import type { ImageRecord } from '../../../../src/images/types.js';
import { busyboxRootfsTar, packTar } from '../../../fixtures/rootfs.js';
import { cleanup, debugfs, fsck, tempDir } from './helpers.js';

const ID = 'sha256:' + 'ab'.repeat(32);
const image = (id = ID): ImageRecord => ({
  id,
  repoTags: [],
  repoDigests: [],
  created: '',
  architecture: 'amd64',
  os: 'linux',
  config: {},
  diffIds: [],
  size: 0,
});

let work: string;
let busybox: Buffer;
beforeAll(async () => {
  work = tempDir('base');
  busybox = await busyboxRootfsTar();
});
afterAll(() => cleanup(work));

describe('BaseDiskCache', () => {
  it('builds <dataRoot>/disks/base/<hex>.ext4 once, shares concurrent builds, and reuses it', async () => {
    const dataRoot = path.join(work, 'root1');
    let calls = 0;
    const cache = new BaseDiskCache({
      dataRoot,
      layerStreams: async function* () {
        calls++;
        yield Readable.from([busybox]);
        yield Readable.from([await packTar([{ name: 'etc/extra', content: 'layer 2' }])]);
      },
    });
    const [a, b, c] = await Promise.all([cache.ensure(image()), cache.ensure(image()), cache.ensure(image())]);
    expect(a).toBe(path.join(dataRoot, 'disks', 'base', `${'ab'.repeat(32)}.ext4`));
    expect(b).toBe(a);
    expect(c).toBe(a);
    expect(calls).toBe(1);
    fsck(a);
    expect(debugfs(a, 'stats')).toContain(formatUuid(baseDiskUuid(ID)));
    expect(debugfs(a, 'cat /etc/extra')).toBe('layer 2');
    const mtime = statSync(a).mtimeMs;
    expect(await cache.ensure(image())).toBe(a);
    expect(calls).toBe(1);
    expect(statSync(a).mtimeMs).toBe(mtime);
    expect(await cache.isCurrent(ID)).toBe(true);
    expect(readdirSync(path.dirname(a))).toEqual([path.basename(a)]);
  });

  it("honours the daemon's --storage-opt size= and rebuilds when it changes", async () => {
    const dataRoot = path.join(work, 'root-size');
    let calls = 0;
    const layerStreams = async function* () {
      calls++;
      yield Readable.from([busybox]);
    };
    const GiB = 1024 ** 3;
    const two = new BaseDiskCache({ dataRoot, layerStreams, sizeBytes: 2 * GiB });
    const a = await two.ensure(image());
    expect(statSync(a).size).toBe(2 * GiB);
    fsck(a);
    expect(await two.ensure(image())).toBe(a);
    expect(calls).toBe(1);
    const three = new BaseDiskCache({ dataRoot, layerStreams, sizeBytes: 3 * GiB });
    expect(await three.isCurrent(ID)).toBe(false);
    await three.ensure(image());
    expect(calls).toBe(2);
    expect(statSync(a).size).toBe(3 * GiB);
    fsck(a);
    expect(baseDiskUuid(ID, BASE_DISK_WRITER_VERSION, 2 * GiB).equals(baseDiskUuid(ID, BASE_DISK_WRITER_VERSION, 3 * GiB))).toBe(false);
    expect(baseDiskUuid(ID).equals(baseDiskUuid(ID, BASE_DISK_WRITER_VERSION, undefined))).toBe(true);
  });

  it('rebuilds a disk left by another writer version', async () => {
    const dataRoot = path.join(work, 'root2');
    let calls = 0;
    const cache = new BaseDiskCache({
      dataRoot,
      layerStreams: async function* () {
        calls++;
        yield Readable.from([busybox]);
      },
    });
    const p = cache.pathFor(ID);
    // what the previous writer version would have left behind
    await import('node:fs/promises').then((fs) => fs.mkdir(path.dirname(p), { recursive: true }));
    await writeExt4FromLayers(
      (async function* () {
        yield Readable.from([busybox]);
      })(),
      p,
      {
        uuid: baseDiskUuid(ID, BASE_DISK_WRITER_VERSION - 1 || 999),
        label: 'tvm-base',
      },
    );
    expect(await cache.isCurrent(ID)).toBe(false);
    // while containers use it, the old disk stays (their overlays sit on its blocks)
    const pinned = new BaseDiskCache({
      dataRoot,
      layerStreams: async function* () {
        calls++;
        yield* [];
      },
      inUse: () => true,
    });
    expect(await pinned.ensure(image())).toBe(p);
    expect(calls).toBe(0);
    expect(await cache.isCurrent(ID)).toBe(false);
    await cache.ensure(image());
    expect(calls).toBe(1);
    expect(await cache.isCurrent(ID)).toBe(true);
    fsck(p);
  });

  it('leaves nothing behind when a layer is bad, and retries on the next call', async () => {
    const dataRoot = path.join(work, 'root3');
    let bad = true;
    const cache = new BaseDiskCache({
      dataRoot,
      layerStreams: async function* () {
        yield Readable.from([bad ? busybox.subarray(0, 5000) : busybox]);
      },
    });
    await expect(cache.ensure(image())).rejects.toBeInstanceOf(FormatError);
    expect(readdirSync(path.join(dataRoot, 'disks', 'base'))).toEqual([]);
    bad = false;
    // what a daemon killed during a build leaves behind
    const stale = path.join(dataRoot, 'disks', 'base', `.${'ab'.repeat(32)}.ext4.0123456789ab.tmp`);
    writeFileSync(stale, 'partial');
    const p = await cache.ensure(image());
    expect(existsSync(p)).toBe(true);
    expect(existsSync(stale)).toBe(false);
    fsck(p);
  });

  it('rejects malformed image IDs before touching the disk', () => {
    expect(() => imageIdHex('../../etc/passwd')).toThrow(InvalidParameterError);
    expect(imageIdHex('cd'.repeat(32))).toBe('cd'.repeat(32));
    const cache = new BaseDiskCache({ dataRoot: work, layerStreams: async function* () {} });
    expect(() => cache.ensure(image('sha256:xyz'))).toThrow(InvalidParameterError);
  });
});
