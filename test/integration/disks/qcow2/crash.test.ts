/**
 * Crash consistency: the same workload is cut short after N writes, for many N, with a
 * power-failure model (writes since the last fsync land in arbitrary subsets and order).
 * Every time `qemu-img check` must find no corruption (leaks are allowed), everything flushed
 * before the crash must read back, and the image must stay writable.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import path from 'node:path';
import { rmSync } from 'node:fs';
import { Qcow2Image } from '../../../../src/disks/qcow2/image.js';
import { checkQcow2 } from '../../../../src/disks/qcow2/check.js';
import { NodeFileIo } from '../../../../src/disks/raw.js';
import { CrashError, CrashingFileIo, makeBase, prng, qemuCheck, removeTempDirs, requireTool, tempDir } from './helpers.js';

const MiB = 1024 * 1024;

beforeAll(() => requireTool('qemu-img'));
afterAll(() => removeTempDirs());

interface Config {
  clusterBits: number;
  refcountOrder: number;
  size: number;
  baseSize: number;
  ops: number;
  prefill: number;
  l2CacheTables: number;
}

interface Outcome {
  image: string;
  writes: number;
  crashed: boolean;
  durable: Buffer;
  volatile: [number, number][];
}

const bases = new Map<number, { path: string; data: Buffer }>();
/** One read-only base disk per size, shared by every run. */
function baseFor(size: number): { path: string; data: Buffer } {
  let b = bases.get(size);
  if (!b) {
    const p = path.join(tempDir('crash-base'), 'base.raw');
    b = { path: p, data: makeBase(p, size) };
    bases.set(size, b);
  }
  return b;
}

async function runUntilCrash(cfg: Config, crashAfter: number, seed: number): Promise<Outcome> {
  const dir = tempDir('crash');
  const base = baseFor(cfg.baseSize);
  const image = path.join(dir, 'ov.qcow2');
  (
    await Qcow2Image.create(image, {
      size: cfg.size,
      backingFile: base.path,
      clusterBits: cfg.clusterBits,
      refcountOrder: cfg.refcountOrder,
    })
  ).closeSync();
  const cs = 2 ** cfg.clusterBits;
  let io: CrashingFileIo | undefined;
  const img = await Qcow2Image.open(image, {
    l2CacheTables: cfg.l2CacheTables,
    refcountCacheBlocks: 2,
    openFile: (p, ro) => (io = new CrashingFileIo(NodeFileIo.open(p, { readOnly: ro }), crashAfter, prng(seed))),
  });
  const current = Buffer.alloc(cfg.size);
  base.data.copy(current, 0, 0, Math.min(cfg.baseSize, cfg.size));
  let durable = Buffer.from(current);
  let volatile: [number, number][] = [];
  const r = prng(seed * 7 + 1);
  const rint = (n: number) => Math.floor(r() * n);
  let crashed = false;
  try {
    for (let off = 0; off < cfg.prefill; off += 64 * 1024) {
      const d = Buffer.alloc(64 * 1024, 0x40 + (off >> 16));
      volatile.push([off, off + d.length]);
      await img.write(d, off);
      d.copy(current, off);
    }
    for (let i = 0; i < cfg.ops; i++) {
      const op = r();
      if (op < 0.7) {
        const len = r() < 0.5 ? 4096 : 1 + rint(2 * cs);
        const off = rint(cfg.size - len);
        const d = Buffer.alloc(len, 1 + rint(255));
        volatile.push([off, off + len]);
        await img.write(d, off);
        d.copy(current, off);
      } else if (op < 0.8) {
        const off = rint(cfg.size);
        const len = rint(Math.min(cfg.size - off, 3 * cs));
        volatile.push([off, off + len]);
        await img.discard(off, len);
        const first = Math.ceil(off / cs) * cs;
        const end = Math.floor((off + len) / cs) * cs;
        if (end > first) current.fill(0, first, end);
      } else {
        await img.flush();
        durable = Buffer.from(current);
        volatile = [];
      }
    }
    await img.close();
    durable = Buffer.from(current);
    volatile = [];
  } catch (e) {
    if (!(e instanceof CrashError) && !(e as { cause?: unknown }).cause) throw e;
    crashed = true;
    io!.crash();
    // the crashed I/O fails the close too: what counts is the image reopened below
    await img.close().catch(() => {});
  }
  return { image, writes: (io as unknown as { writes: number }).writes, crashed, durable, volatile };
}

async function verifyAfterCrash(o: Outcome, cfg: Config): Promise<number> {
  const c = qemuCheck(o.image);
  if (c.corruptions !== 0 || (c.status !== 0 && c.status !== 3)) throw new Error(`qemu-img check after crash: ${c.raw}`);
  // our own checker agrees with QEMU's, leak for leak
  const mine = checkQcow2(o.image);
  expect(mine.corruptions).toEqual([]);
  expect(mine.leaks).toBe(c.leaks);
  const ro = await Qcow2Image.open(o.image, { readOnly: true });
  const got = Buffer.alloc(cfg.size);
  await ro.read(got, 0);
  await ro.close();
  // Outside what was written or discarded since the last completed flush, the disk must read
  // exactly what was flushed. Compare the gaps between those ranges.
  const ranges = o.volatile.map(([s, e]) => [s, e] as [number, number]).sort((a, b) => a[0] - b[0]);
  let pos = 0;
  for (const [s, e] of [...ranges, [cfg.size, cfg.size] as [number, number]]) {
    if (s > pos && !got.subarray(pos, s).equals(o.durable.subarray(pos, s))) {
      let i = pos;
      while (got[i] === o.durable[i]) i++;
      throw new Error(`byte ${i} flushed before the crash reads ${got[i]}, expected ${o.durable[i]}`);
    }
    pos = Math.max(pos, e);
  }
  // still writable, still consistent
  const rw = await Qcow2Image.open(o.image);
  await rw.write(Buffer.alloc(3 * 4096, 0x77), cfg.size - 3 * 4096);
  await rw.write(Buffer.alloc(5000, 0x78), 1000);
  await rw.close();
  const c2 = qemuCheck(o.image);
  if (c2.corruptions !== 0 || (c2.status !== 0 && c2.status !== 3))
    throw new Error(`qemu-img check after writing the crashed image: ${c2.raw}`);
  // leaks can be reclaimed, after which QEMU finds the image clean
  const fixed = checkQcow2(o.image, { repair: 'leaks' });
  expect(fixed.leaksFixed).toBe(c2.leaks);
  const c3 = qemuCheck(o.image);
  if (c3.status !== 0) throw new Error(`qemu-img check after repairing leaks: ${c3.raw}`);
  return c.leaks;
}

/** Returns how many crash points left leaked clusters (all of them repaired). */
async function sweep(cfg: Config, seed: number, points: number): Promise<number> {
  const full = await runUntilCrash(cfg, Number.POSITIVE_INFINITY, seed);
  expect(full.crashed).toBe(false);
  expect(qemuCheck(full.image).status).toBe(0);
  let leaky = 0;
  for (let k = 0; k < points; k++) {
    const n = Math.floor((full.writes * k) / points);
    const o = await runUntilCrash(cfg, n, seed);
    expect(o.crashed).toBe(true);
    if ((await verifyAfterCrash(o, cfg)) > 0) leaky++;
    rmSync(path.dirname(o.image), { recursive: true, force: true });
  }
  return leaky;
}

describe('crash consistency (power-failure model)', () => {
  it('64 KiB clusters: every crash point leaves a consistent image', async () => {
    const n = await sweep(
      { clusterBits: 16, refcountOrder: 4, size: 4 * MiB, baseSize: 3 * MiB, ops: 80, prefill: 0, l2CacheTables: 32 },
      11,
      20,
    );
    expect(n).toBeGreaterThan(0);
  });

  it('4 KiB clusters with L2 evictions and refcount block allocation', async () => {
    const n = await sweep(
      { clusterBits: 12, refcountOrder: 4, size: 6 * MiB, baseSize: 2 * MiB, ops: 80, prefill: 0, l2CacheTables: 1 },
      12,
      14,
    );
    expect(n).toBeGreaterThan(0);
  });

  it('512-byte clusters with 64-bit refcounts: crashes while the refcount table moves', async () => {
    const n = await sweep(
      { clusterBits: 9, refcountOrder: 6, size: 3 * MiB, baseSize: MiB, ops: 40, prefill: 2560 * 1024, l2CacheTables: 4 },
      13,
      16,
    );
    expect(n).toBeGreaterThan(0);
  });
});
