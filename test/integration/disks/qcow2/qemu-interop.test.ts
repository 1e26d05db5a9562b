/**
 * qcow2 against the real QEMU tools: images we write must pass `qemu-img check` and compare
 * equal to a raw reference; images QEMU writes must read (and keep writing) correctly in ours.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFileSync, writeFileSync, openSync, writeSync, closeSync, readSync } from 'node:fs';
import path from 'node:path';
import { Qcow2Image } from '../../../../src/disks/qcow2/image.js';
import { checkQcow2 } from '../../../../src/disks/qcow2/check.js';
import { RawFile } from '../../../../src/disks/raw.js';
import { FormatError, NotImplementedError, TvmError } from '../../../../src/errors.js';
import { makeBase, prng, qemuCheck, qemuCompare, removeTempDirs, requireTool, run, runOk, tempDir } from './helpers.js';

const MiB = 1024 * 1024;

beforeAll(() => {
  requireTool('qemu-img');
  requireTool('qemu-io');
});
afterAll(() => removeTempDirs());

function expectClean(image: string): void {
  const mine = checkQcow2(image);
  expect(mine.corruptions).toEqual([]);
  expect(mine.leaks).toBe(0);
  const c = qemuCheck(image);
  expect(c.raw).not.toMatch(/ERROR|Leaked/);
  expect({ status: c.status, corruptions: c.corruptions, leaks: c.leaks, checkErrors: c.checkErrors }).toEqual({
    status: 0,
    corruptions: 0,
    leaks: 0,
    checkErrors: 0,
  });
}

function expectIdentical(image: string, raw: string): void {
  const r = qemuCompare(image, raw);
  expect(r.out).toMatch(/identical/);
  expect(r.identical).toBe(true);
}

describe('images we create', () => {
  it('are what qemu-img create -f qcow2 -b base -F raw makes: check clean, info shows the backing file', () => {
    const dir = tempDir('create');
    makeBase(path.join(dir, 'base.raw'), 4 * MiB);
    const img = Qcow2Image.createSync(path.join(dir, 'ov.qcow2'), { backingFile: 'base.raw', backingFormat: 'raw' });
    expect(img.size).toBe(4 * MiB);
    expect(img.discardGranularity).toBe(65536);
    img.closeSync();
    expectClean(path.join(dir, 'ov.qcow2'));
    const info = JSON.parse(runOk('qemu-img', ['info', '--output=json', path.join(dir, 'ov.qcow2')]));
    expect(info).toMatchObject({
      format: 'qcow2',
      'virtual-size': 4 * MiB,
      'cluster-size': 65536,
      'backing-filename': 'base.raw',
      'backing-filename-format': 'raw',
      'full-backing-filename': path.join(dir, 'base.raw'),
      'dirty-flag': false,
      'format-specific': { data: { compat: '1.1', 'refcount-bits': 16, corrupt: false, 'extended-l2': false, 'compression-type': 'zlib' } },
    });
    // byte-identical metadata to QEMU's own create for the same parameters
    runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'base.raw', '-F', 'raw', path.join(dir, 'qemu.qcow2')]);
    const ours = readFileSync(path.join(dir, 'ov.qcow2'));
    const theirs = readFileSync(path.join(dir, 'qemu.qcow2'));
    expect(ours.subarray(0, 0x218).equals(theirs.subarray(0, 0x218))).toBe(true);
    expectIdentical(path.join(dir, 'ov.qcow2'), path.join(dir, 'base.raw'));
  });

  it('can be taken over by QEMU and back: ours writes, qemu-io writes, ours reads both', async () => {
    const dir = tempDir('handover');
    const base = makeBase(path.join(dir, 'base.raw'), 2 * MiB);
    const image = path.join(dir, 'ov.qcow2');
    const img = await Qcow2Image.create(image, { backingFile: 'base.raw', size: 4 * MiB });
    await img.write(Buffer.alloc(100000, 0x21), 50000);
    await img.close();
    runOk('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x22 120000 70000', '-c', 'write -P 0x23 3M 64k', '-c', 'discard 1M 128k', image]);
    const ref = Buffer.alloc(4 * MiB);
    base.copy(ref);
    ref.fill(0x21, 50000, 150000);
    ref.fill(0x22, 120000, 190000);
    ref.fill(0x23, 3 * MiB, 3 * MiB + 65536);
    const ro = await Qcow2Image.open(image, { readOnly: true });
    const got = Buffer.alloc(4 * MiB);
    await ro.read(got, 0);
    await ro.close();
    // QEMU's discard on a version 3 image with a backing file sets the zero flag, like ours
    ref.fill(0, MiB, MiB + 128 * 1024);
    expect(got.equals(ref)).toBe(true);
    expectClean(image);
  });

  it('refuses an existing path and a missing backing file, leaving nothing behind', () => {
    const dir = tempDir('create-bad');
    writeFileSync(path.join(dir, 'exists.qcow2'), 'x');
    expect(() => Qcow2Image.createSync(path.join(dir, 'exists.qcow2'), { size: MiB })).toThrow(/already exists/);
    expect(() => Qcow2Image.createSync(path.join(dir, 'n.qcow2'), { backingFile: 'nope.raw' })).toThrow(
      /backing file .*nope.raw does not exist/,
    );
    expect(() => Qcow2Image.createSync(path.join(dir, 'n.qcow2'), { size: 1000 })).toThrow(/multiple of 512/);
    expect(readdirNames(dir)).toEqual(['exists.qcow2']);
  });
});

function readdirNames(dir: string): string[] {
  return runOk('ls', ['-A', dir]).split('\n').filter(Boolean);
}

interface WorkloadOpts {
  seed: number;
  baseSize: number;
  size: number;
  clusterBits: number;
  refcountOrder?: number;
  ops: number;
  l2CacheTables?: number;
  /** bytes written sequentially (256 KiB requests) before the random part */
  prefill?: number;
}

/** Random writes/discards/flushes/reopens through ours and the same on a raw reference. */
async function workload(o: WorkloadOpts): Promise<{ dir: string; image: string; ref: string }> {
  const dir = tempDir('work');
  const basePath = path.join(dir, 'base.raw');
  const base = makeBase(basePath, o.baseSize);
  const ref = Buffer.alloc(o.size);
  base.copy(ref, 0, 0, Math.min(o.baseSize, o.size));
  const image = path.join(dir, 'ov.qcow2');
  const cs = 2 ** o.clusterBits;
  let img = await Qcow2Image.create(image, {
    size: o.size,
    backingFile: 'base.raw',
    backingFormat: 'raw',
    clusterBits: o.clusterBits,
    refcountOrder: o.refcountOrder ?? 4,
  });
  const reopen = async () => {
    await img.close();
    img = await Qcow2Image.open(image, { readOnly: false, l2CacheTables: o.l2CacheTables ?? 32, refcountCacheBlocks: 2 });
  };
  await reopen();
  const r = prng(o.seed);
  const rint = (n: number) => Math.floor(r() * n);
  for (let off = 0; off < (o.prefill ?? 0); off += 256 * 1024) {
    const data = Buffer.alloc(Math.min(256 * 1024, o.prefill! - off), (off >> 18) + 1);
    await img.write(data, off);
    data.copy(ref, off);
  }
  for (let i = 0; i < o.ops; i++) {
    const op = r();
    if (op < 0.62) {
      const kind = rint(4);
      const len = kind === 0 ? 512 * (1 + rint(8)) : kind === 1 ? 4096 : kind === 2 ? cs * (1 + rint(3)) : 1 + rint(3 * cs);
      const off = kind === 3 ? rint(o.size - len) : Math.floor(rint(o.size - len) / 512) * 512;
      const data = Buffer.alloc(len);
      const fill = rint(256);
      for (let j = 0; j < len; j++) data[j] = (fill + j * 7) & 0xff;
      await img.write(data, off);
      data.copy(ref, off);
    } else if (op < 0.72) {
      const off = rint(o.size);
      const len = rint(Math.min(o.size - off, 4 * cs));
      await img.discard(off, len);
      const first = Math.ceil(off / cs) * cs;
      const end = Math.floor((off + len) / cs) * cs;
      if (end > first) ref.fill(0, first, end);
    } else if (op < 0.76) {
      const off = rint(o.size);
      const len = rint(Math.min(o.size - off, 3 * cs));
      await img.writeZeroes(off, len);
      ref.fill(0, off, off + len);
    } else if (op < 0.8) {
      await img.flush();
    } else if (op < 0.83) {
      await reopen();
    } else {
      const off = rint(o.size - 1);
      const len = 1 + rint(Math.min(o.size - off, 3 * cs));
      const got = Buffer.alloc(len);
      await img.read(got, off);
      if (!got.equals(ref.subarray(off, off + len))) throw new Error(`op ${i}: read ${len} at ${off} differs from the reference`);
    }
  }
  const all = Buffer.alloc(o.size);
  await img.read(all, 0);
  expect(all.equals(ref)).toBe(true);
  await img.close();
  const refPath = path.join(dir, 'ref.raw');
  writeFileSync(refPath, ref);
  return { dir, image, ref: refPath };
}

describe('random workloads compared with a raw reference', () => {
  it('64 KiB clusters: partial, cluster-spanning, beyond the backing end, discards, reopens', async () => {
    const { image, ref } = await workload({ seed: 1, baseSize: 6 * MiB, size: 10 * MiB, clusterBits: 16, ops: 600 });
    expectClean(image);
    expectIdentical(image, ref);
  });

  it('4 KiB clusters with a 2-table L2 cache (evictions write back mid-run)', async () => {
    const { image, ref } = await workload({ seed: 2, baseSize: 3 * MiB, size: 8 * MiB, clusterBits: 12, ops: 500, l2CacheTables: 2 });
    expectClean(image);
    expectIdentical(image, ref);
  });

  it('512-byte clusters with 64-bit refcounts: refcount blocks and the refcount table grow', async () => {
    const { image, ref } = await workload({
      seed: 3,
      baseSize: 1 * MiB,
      size: 4 * MiB,
      clusterBits: 9,
      refcountOrder: 6,
      ops: 400,
      prefill: 3 * MiB,
    });
    expectClean(image);
    expectIdentical(image, ref);
    const info = JSON.parse(runOk('qemu-img', ['info', '--output=json', image]));
    expect(info['format-specific'].data['refcount-bits']).toBe(64);
    // the table started as one 512-byte cluster at offset 512 and had to move and grow
    const h = Qcow2Image.openSync(image, { readOnly: true });
    expect(h.getHeader().refcountTableClusters).toBeGreaterThan(1);
    expect(h.getHeader().refcountTableOffset).not.toBe(512);
    h.closeSync();
  });

  it('1-bit refcounts', async () => {
    const { image, ref } = await workload({ seed: 4, baseSize: 2 * MiB, size: 3 * MiB, clusterBits: 13, refcountOrder: 0, ops: 300 });
    expectClean(image);
    expectIdentical(image, ref);
  });
});

describe('large virtual disks', () => {
  it('a 20 GiB overlay: writes far into the disk use later L1 entries and stay sparse', async () => {
    const dir = tempDir('large');
    makeBase(path.join(dir, 'base.raw'), 2 * MiB);
    const image = path.join(dir, 'big.qcow2');
    const size = 20 * 1024 * MiB;
    const img = await Qcow2Image.create(image, { size, backingFile: 'base.raw' });
    const spots = [0, 600 * MiB + 123, 5 * 1024 * MiB - 3000, 17 * 1024 * MiB + 65536 * 3 + 17, size - 70000];
    for (const [i, off] of spots.entries()) await img.write(Buffer.alloc(70000, 0x10 + i), off);
    for (const [i, off] of spots.entries()) {
      const got = Buffer.alloc(70000);
      await img.read(got, off);
      expect(got.every((x) => x === 0x10 + i)).toBe(true);
    }
    await img.writeZeroes(17 * 1024 * MiB, 65536 * 4);
    await img.close();
    expectClean(image);
    const ro = await Qcow2Image.open(image, { readOnly: true });
    // the zeroed range covers the head of the write at 17 GiB + 3 clusters + 17; its tail survives
    const z = Buffer.alloc(65536 * 5, 1);
    await ro.read(z, 17 * 1024 * MiB);
    expect(z.subarray(0, 65536 * 4).every((x) => x === 0)).toBe(true);
    expect(z.subarray(65536 * 4, 65536 * 3 + 17 + 70000).every((x) => x === 0x13)).toBe(true);
    await ro.close();
    runOk('qemu-io', [
      '-f',
      'qcow2',
      '-c',
      `read -P 0x13 ${17 * 1024 * MiB + 65536 * 4} 4096`,
      '-c',
      `read -P 0x14 ${size - 70000} 70000`,
      image,
    ]);
  });
});

describe('images QEMU writes', () => {
  it('qemu-img create + qemu-io writes read correctly in ours, and ours keeps writing', async () => {
    const dir = tempDir('qemu-io');
    const basePath = path.join(dir, 'base.raw');
    const base = makeBase(basePath, 4 * MiB);
    const image = path.join(dir, 'ov.qcow2');
    runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'base.raw', '-F', 'raw', image, String(6 * MiB)]);
    runOk('qemu-io', [
      '-f',
      'qcow2',
      '-c',
      'write -P 0xab 0 64k',
      '-c',
      'write -P 0xcd 100k 10k',
      '-c',
      'write -z 1M 128k',
      '-c',
      'write -P 0x11 5M 4k',
      image,
    ]);
    const ref = Buffer.alloc(6 * MiB);
    base.copy(ref);
    ref.fill(0xab, 0, 65536);
    ref.fill(0xcd, 100 * 1024, 110 * 1024);
    ref.fill(0, MiB, MiB + 128 * 1024);
    ref.fill(0x11, 5 * MiB, 5 * MiB + 4096);

    const ro = await Qcow2Image.open(image, { readOnly: true });
    const all = Buffer.alloc(6 * MiB);
    await ro.read(all, 0);
    expect(all.equals(ref)).toBe(true);
    await expect(ro.write(Buffer.alloc(512), 0)).rejects.toMatchObject({ code: 'ERR_BLOCK_READ_ONLY' });
    await ro.close();

    const rw = await Qcow2Image.open(image, { readOnly: false });
    const w = Buffer.alloc(70000, 0xef);
    await rw.write(w, 60000); // into qemu's cluster and past it
    w.copy(ref, 60000);
    await rw.write(Buffer.alloc(4096, 0x22), MiB + 4096); // into qemu's zero cluster
    ref.fill(0x22, MiB + 4096, MiB + 8192);
    await rw.close();

    expectClean(image);
    writeFileSync(path.join(dir, 'ref.raw'), ref);
    expectIdentical(image, path.join(dir, 'ref.raw'));
    // and QEMU reads our writes back
    runOk('qemu-io', ['-f', 'qcow2', '-c', 'read -P 0xef 60000 70000', '-c', 'read -P 0x22 1052672 4096', image]);
  });

  it.each([
    ['compat=0.10 (version 2: no zero flag)', 'compat=0.10'],
    ['2 MiB clusters', 'cluster_size=2M'],
    ['refcount_bits=1, 4 KiB clusters', 'refcount_bits=1,cluster_size=4096'],
    ['lazy_refcounts=on (clean)', 'lazy_refcounts=on'],
  ])('QEMU-created %s: ours writes, zeroes and discards; QEMU agrees', async (_label, options) => {
    const dir = tempDir('qemu-opts');
    const base = makeBase(path.join(dir, 'base.raw'), 6 * MiB);
    const image = path.join(dir, 'o.qcow2');
    runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', options, '-b', 'base.raw', '-F', 'raw', image, String(8 * MiB)]);
    const ref = Buffer.alloc(8 * MiB);
    base.copy(ref);
    const img = await Qcow2Image.open(image);
    const r = prng(options.length);
    for (let i = 0; i < 120; i++) {
      const len = 1 + Math.floor(r() * 300000);
      const off = Math.floor(r() * (8 * MiB - len));
      if (i % 10 === 9) {
        await img.writeZeroes(off, len);
        ref.fill(0, off, off + len);
      } else {
        const d = Buffer.alloc(len, i + 1);
        await img.write(d, off);
        d.copy(ref, off);
      }
      if (i % 25 === 0) await img.flush();
    }
    // discard is advisory: what it guarantees is that the result is consistent
    await img.discard(MiB, 3 * MiB);
    const after = Buffer.alloc(3 * MiB);
    await img.read(after, MiB);
    after.copy(ref, MiB);
    await img.close();
    writeFileSync(path.join(dir, 'ref.raw'), ref);
    expectClean(image);
    expectIdentical(image, path.join(dir, 'ref.raw'));
  });

  it('repairs a dirty lazy-refcount image (qemu-io abort) on a writable open, like QEMU', async () => {
    const dir = tempDir('dirty');
    const image = path.join(dir, 'lz.qcow2');
    runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'lazy_refcounts=on', image, '4M']);
    run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x61 0 300k', '-c', 'write -P 0x62 1M 64k', '-c', 'abort', image]);
    expect(JSON.parse(runOk('qemu-img', ['info', '--output=json', '--force-share', image]))['dirty-flag']).toBe(true);
    expect(qemuCheck(image).corruptions).toBeGreaterThan(0);
    // our checker sees the same missing refcounts
    expect(checkQcow2(image).corruptions.some((c) => /referenced 1 times but its refcount is 0/.test(c))).toBe(true);
    // read-only: readable as is; writable: repaired first
    const ro = await Qcow2Image.open(image, { readOnly: true });
    const b = Buffer.alloc(300 * 1024);
    await ro.read(b, 0);
    expect(b.every((x) => x === 0x61)).toBe(true);
    await ro.close();
    const rw = await Qcow2Image.open(image);
    expect(rw.getHeader().incompatibleFeatures & 1n).toBe(0n);
    await rw.write(Buffer.alloc(4096, 0x63), 2 * MiB);
    await rw.close();
    expectClean(image);
    runOk('qemu-io', ['-f', 'qcow2', '-c', 'read -P 0x61 0 300k', '-c', 'read -P 0x62 1M 64k', '-c', 'read -P 0x63 2M 4k', image]);
  });

  it('writes into a preallocated zero cluster (qemu-io write -z keeps the allocation)', async () => {
    const dir = tempDir('zero-alloc');
    const image = path.join(dir, 'z.qcow2');
    runOk('qemu-img', ['create', '-q', '-f', 'qcow2', image, '1M']);
    runOk('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x44 0 128k', '-c', 'write -z 0 64k', image]);
    const img = await Qcow2Image.open(image);
    const b = Buffer.alloc(65536, 9);
    await img.read(b, 0);
    expect(b.every((x) => x === 0)).toBe(true);
    await img.write(Buffer.alloc(1000, 0x55), 3000);
    await img.close();
    const ref = Buffer.alloc(MiB);
    ref.fill(0x44, 65536, 131072);
    ref.fill(0x55, 3000, 4000);
    writeFileSync(path.join(dir, 'ref.raw'), ref);
    expectClean(image);
    expectIdentical(image, path.join(dir, 'ref.raw'));
    // reused in place: still only the two data clusters QEMU allocated
    const check = JSON.parse(runOk('qemu-img', ['check', '--output=json', image]));
    expect(check['allocated-clusters']).toBe(2);
  });

  it.each(['zlib', 'zstd'])('reads %s-compressed clusters (qemu-img convert -c) and refuses to write into them', async (type) => {
    const dir = tempDir('compressed');
    const raw = path.join(dir, 'src.raw');
    makeBase(raw, 2 * MiB);
    // make some clusters compressible
    const fd = openSync(raw, 'r+');
    writeSync(fd, Buffer.alloc(200000, 0x5a), 0, 200000, 300000);
    closeSync(fd);
    const image = path.join(dir, 'c.qcow2');
    runOk('qemu-img', ['convert', '-c', '-f', 'raw', '-O', 'qcow2', '-o', `compression_type=${type}`, raw, image]);
    const check = JSON.parse(runOk('qemu-img', ['check', '--output=json', image]));
    expect(check['compressed-clusters']).toBeGreaterThan(10);
    const img = await Qcow2Image.open(image, { readOnly: false });
    const got = Buffer.alloc(2 * MiB);
    await img.read(got, 0);
    expect(got.equals(readFileSync(raw))).toBe(true);
    await expect(img.write(Buffer.alloc(512, 1), 300000)).rejects.toMatchObject({
      code: 'ERR_QCOW2_UNSUPPORTED',
      message: expect.stringMatching(/compressed cluster/),
    });
    // discarding a compressed cluster frees its host clusters correctly
    await img.discard(5 * 65536, 65536);
    await img.close();
    expectClean(image);
  });

  it('opens images with internal snapshots read-only and refuses writing them', async () => {
    const dir = tempDir('snap');
    const image = path.join(dir, 's.qcow2');
    runOk('qemu-img', ['create', '-q', '-f', 'qcow2', image, '1M']);
    runOk('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x33 0 8k', image]);
    runOk('qemu-img', ['snapshot', '-c', 'snap1', image]);
    const ro = await Qcow2Image.open(image, { readOnly: true });
    const b = Buffer.alloc(8192);
    await ro.read(b, 0);
    expect(b.every((x) => x === 0x33)).toBe(true);
    await ro.close();
    await expect(Qcow2Image.open(image, { readOnly: false })).rejects.toMatchObject({
      code: 'ERR_QCOW2_UNSUPPORTED',
      message: expect.stringMatching(/internal snapshots/),
    });
  });

  it('keeps unknown header extensions and clears autoclear bits it does not maintain', async () => {
    const dir = tempDir('autoclear');
    const image = path.join(dir, 'a.qcow2');
    runOk('qemu-img', ['create', '-q', '-f', 'qcow2', image, '1M']);
    const fd = openSync(image, 'r+');
    const bits = Buffer.alloc(8);
    bits.writeBigUInt64BE(1n << 5n);
    writeSync(fd, bits, 0, 8, 88);
    closeSync(fd);
    const img = await Qcow2Image.open(image, { readOnly: false });
    expect(img.getHeader().autoclearFeatures).toBe(0n);
    await img.close();
    const after = Buffer.alloc(8);
    const rfd = openSync(image, 'r');
    readSync(rfd, after, 0, 8, 88);
    closeSync(rfd);
    expect(after.readBigUInt64BE()).toBe(0n);
    expectClean(image);
  });
});

describe('corrupt images are rejected', () => {
  it('a bad header is refused with a typed error', async () => {
    const dir = tempDir('badhdr');
    const image = path.join(dir, 'b.qcow2');
    runOk('qemu-img', ['create', '-q', '-f', 'qcow2', image, '1M']);
    const fd = openSync(image, 'r+');
    writeSync(fd, Buffer.from([0, 0, 0, 9]), 0, 4, 4); // version 9
    closeSync(fd);
    const err = await Qcow2Image.open(image, { readOnly: true }).catch((e) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect(err.code).toBe('ERR_QCOW2_BAD_VERSION');
    expect(err.message).toContain(image);
    const notQcow = path.join(dir, 'raw.img');
    writeFileSync(notQcow, Buffer.alloc(4096));
    await expect(Qcow2Image.open(notQcow)).rejects.toMatchObject({ code: 'ERR_QCOW2_BAD_MAGIC' });
  });

  it('an L2 entry pointing past EOF is named, never read, and marks the image corrupt', async () => {
    const dir = tempDir('badl2');
    const image = path.join(dir, 'l2.qcow2');
    const img = await Qcow2Image.create(image, { size: MiB });
    await img.write(Buffer.alloc(65536, 7), 65536);
    await img.close();
    // L1 entry 0 -> L2 table; patch L2 entry 1 to point far past the end of the file
    const f = readFileSync(image);
    const l1 = Number(f.readBigUInt64BE(40));
    const l2 = Number(f.readBigUInt64BE(l1) & 0x00fffffffffffe00n);
    const fd = openSync(image, 'r+');
    const e = Buffer.alloc(8);
    e.writeBigUInt64BE((1n << 63n) | 0x40000000n);
    writeSync(fd, e, 0, 8, l2 + 8);
    closeSync(fd);

    const ro = await Qcow2Image.open(image, { readOnly: true });
    const err = await ro.read(Buffer.alloc(512), 65536).catch((x) => x);
    expect(err).toBeInstanceOf(FormatError);
    expect(err.code).toBe('ERR_QCOW2_CORRUPT');
    expect(err.message).toMatch(
      /L2 entry 1 of the L2 table at 0x[0-9a-f]+ \(guest offset 0x10000\) points to 0x40000000, past the end of the file/,
    );
    // other clusters still read (zeros)
    const ok = Buffer.alloc(512, 1);
    await ro.read(ok, 0);
    expect(ok.every((x) => x === 0)).toBe(true);
    await ro.close();

    const rw = await Qcow2Image.open(image, { readOnly: false });
    await expect(rw.write(Buffer.alloc(512), 65536)).rejects.toMatchObject({ code: 'ERR_QCOW2_CORRUPT' });
    await expect(rw.read(Buffer.alloc(512), 0)).rejects.toMatchObject({ code: 'ERR_QCOW2_FAILED' });
    await rw.close();
    const info = JSON.parse(runOk('qemu-img', ['info', '--output=json', '--force-share', image]));
    expect(info['format-specific'].data.corrupt).toBe(true);
    await expect(Qcow2Image.open(image, { readOnly: false })).rejects.toMatchObject({ code: 'ERR_QCOW2_CORRUPT' });
    expect(checkQcow2(image).corruptions).toEqual([
      expect.stringMatching(/^L2 entry 1 of the L2 table at 0x[0-9a-f]+ points to 0x40000000 \(misaligned or past the end of the file\)$/),
    ]);
  });

  it('an L1 entry pointing at the refcount table is refused as overlapping metadata', async () => {
    const dir = tempDir('badl1');
    const image = path.join(dir, 'l1.qcow2');
    (await Qcow2Image.create(image, { size: MiB })).closeSync();
    const f = readFileSync(image);
    const l1 = Number(f.readBigUInt64BE(40));
    const fd = openSync(image, 'r+');
    const e = Buffer.alloc(8);
    e.writeBigUInt64BE((1n << 63n) | 0x10000n);
    writeSync(fd, e, 0, 8, l1);
    closeSync(fd);
    const ro = await Qcow2Image.open(image, { readOnly: true });
    await expect(ro.read(Buffer.alloc(512), 0)).rejects.toMatchObject({
      code: 'ERR_QCOW2_CORRUPT',
      message: expect.stringMatching(/L1 entry 0 .* overlaps the refcount table/),
    });
    await ro.close();
  });

  it('refuses a missing backing file by name', async () => {
    const dir = tempDir('nobacking');
    makeBase(path.join(dir, 'base.raw'), MiB);
    runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'base.raw', '-F', 'raw', path.join(dir, 'o.qcow2')]);
    runOk('rm', [path.join(dir, 'base.raw')]);
    await expect(Qcow2Image.open(path.join(dir, 'o.qcow2'), { readOnly: true })).rejects.toMatchObject({
      code: 'ERR_DISK_NOT_FOUND',
      message: expect.stringMatching(/base.raw does not exist/),
    });
  });
});

describe('raw backend', () => {
  it('reads, writes, refuses out-of-range and read-only writes', async () => {
    const dir = tempDir('raw');
    const p = path.join(dir, 'd.raw');
    makeBase(p, 65536);
    const r = RawFile.open(p);
    await r.write(Buffer.alloc(100, 9), 1000);
    const b = Buffer.alloc(100);
    await r.read(b, 1000);
    expect(b.every((x) => x === 9)).toBe(true);
    await expect(r.read(Buffer.alloc(2), 65535)).rejects.toMatchObject({ code: 'ERR_BLOCK_RANGE' });
    await r.writeZeroes(1010, 50);
    await r.read(b, 1000);
    expect(
      [...b.subarray(0, 10)].every((x) => x === 9) && b.subarray(10, 60).every((x) => x === 0) && b.subarray(60).every((x) => x === 9),
    ).toBe(true);
    await r.close();
    const ro = RawFile.open(p, { readOnly: true });
    expect(() => ro.writeSync(Buffer.alloc(1), 0)).toThrow(TvmError);
    await ro.close();
    expect(NotImplementedError).toBeDefined();
  });
});
