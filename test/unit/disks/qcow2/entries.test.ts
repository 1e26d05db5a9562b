import { describe, it, expect } from 'vitest';
import { decodeL1, decodeL2, encodeCompressed, encodeOffset, readHalves, writeHalves } from '../../../../src/disks/qcow2/entries.js';
import { getRefcount, maxRefcount, refcountBlockEntries, refcountLocation, setRefcount } from '../../../../src/disks/qcow2/refcount.js';
import { createLayout } from '../../../../src/disks/qcow2/layout.js';
import { LruMap } from '../../../../src/disks/qcow2/lru.js';

const entry = (v: bigint): [number, number] => [Number(v >> 32n), Number(v & 0xffffffffn)];

describe('L1/L2 entries', () => {
  it('decode a standard L2 entry with the copied flag', () => {
    const e = decodeL2(...entry((1n << 63n) | 0x50000n), 16);
    expect(e).toEqual({ kind: 'normal', offset: 0x50000, copied: true, compressedSize: 0, reservedBits: false });
  });
  it('decode unallocated, zero and preallocated-zero entries', () => {
    expect(decodeL2(0, 0, 16).kind).toBe('unallocated');
    expect(decodeL2(0, 1, 16).kind).toBe('zero');
    const z = decodeL2(...entry((1n << 63n) | 0x70000n | 1n), 16);
    expect(z).toMatchObject({ kind: 'zero-alloc', offset: 0x70000, copied: true });
  });
  it('decode offsets above 4 GiB (bits 32-55)', () => {
    const off = 0x00ab_cdef_1234_0000n;
    expect(decodeL2(...entry(off), 16).offset).toBe(Number(off));
    expect(decodeL1(...entry(off | (1n << 63n))).offset).toBe(Number(off));
  });
  it('flag reserved bits', () => {
    expect(decodeL2(...entry(0x50000n | 2n), 16).reservedBits).toBe(true); // bit 1
    expect(decodeL2(...entry(0x50000n | (1n << 56n)), 16).reservedBits).toBe(true); // bit 56
    expect(decodeL1(...entry(0x50000n | 1n)).reservedBits).toBe(true); // bit 0
    expect(decodeL1(...entry(0x50000n | (1n << 62n))).reservedBits).toBe(true); // bit 62
    expect(decodeL1(...entry(0x50000n | (1n << 63n))).reservedBits).toBe(false);
  });
  it('decode compressed descriptors (x = 62 - (cluster_bits - 8))', () => {
    // cluster_bits 16: x = 54; offset 0x12345 (unaligned), 3 additional sectors
    const [hi, lo] = encodeCompressed(0x12345, 3, 16);
    const raw = (BigInt(hi) << 32n) | BigInt(lo);
    expect(raw >> 62n).toBe(1n);
    expect((raw >> 54n) & 0xffn).toBe(3n);
    const e = decodeL2(hi, lo, 16);
    expect(e).toMatchObject({ kind: 'compressed', offset: 0x12345 });
    expect(e.compressedSize).toBe(4 * 512 - (0x12345 % 512));
  });
  it('encode round-trips through the byte table', () => {
    const t = new Uint8Array(64);
    const [hi, lo] = encodeOffset(0x1_2345_0000, true);
    writeHalves(t, 3, hi, lo);
    expect(Buffer.from(t).readBigUInt64BE(24)).toBe((1n << 63n) | 0x1_2345_0000n);
    expect(readHalves(t, 3)).toEqual([hi, lo]);
    const [zhi, zlo] = encodeOffset(0x20000, false, true);
    expect(decodeL2(zhi, zlo, 16)).toMatchObject({ kind: 'zero-alloc', copied: false, offset: 0x20000 });
  });
});

describe('refcount math', () => {
  it('entries per block and location (spec formulas)', () => {
    expect(refcountBlockEntries(16, 4)).toBe(32768);
    expect(refcountBlockEntries(16, 0)).toBe(65536 * 8);
    expect(refcountBlockEntries(9, 6)).toBe(64);
    expect(refcountLocation(0x30000, 16, 4)).toEqual({ tableIndex: 0, blockIndex: 3 });
    expect(refcountLocation(32768 * 65536 + 5 * 65536, 16, 4)).toEqual({ tableIndex: 1, blockIndex: 5 });
  });
  it('get/set every width without touching neighbours', () => {
    for (let order = 0; order <= 6; order++) {
      const block = new Uint8Array(64);
      const n = (64 * 8) >> order;
      const max = maxRefcount(order);
      for (let i = 0; i < n; i++) setRefcount(block, i, order, i % 3 === 0 ? max : i % (max + 1));
      for (let i = 0; i < n; i++) expect(getRefcount(block, i, order)).toBe(i % 3 === 0 ? max : i % (max + 1));
      expect(() => setRefcount(block, 0, order, max + (order === 6 ? 1 : 1))).toThrow(RangeError);
    }
  });
  it('16-bit refcounts are big-endian; sub-byte ones start at the least significant bit', () => {
    const b = new Uint8Array(4);
    setRefcount(b, 1, 4, 0x0102);
    expect([...b]).toEqual([0, 0, 1, 2]);
    const s = new Uint8Array(1);
    setRefcount(s, 0, 0, 1);
    expect(s[0]).toBe(1);
    setRefcount(s, 3, 1, 2);
    expect(s[0]).toBe(0b1000_0001);
  });
});

describe('create layout', () => {
  it('matches qemu-img for 64 KiB clusters: rt at 1, refblock at 2, L1 at 3', () => {
    expect(createLayout(10 * 1024 * 1024, 16, 4)).toEqual({
      clusterSize: 65536,
      l1Size: 1,
      l1TableOffset: 3 * 65536,
      l1Clusters: 1,
      refcountTableOffset: 65536,
      refcountTableClusters: 1,
      refcountBlockOffsets: [2 * 65536],
      totalClusters: 4,
    });
  });
  it('counts its own refcount structures with tiny clusters', () => {
    const l = createLayout(1024 ** 3, 9, 4);
    // 32768 L1 entries = 512 clusters; a 512-byte block holds 256 counts
    expect(l.l1Clusters).toBe(512);
    expect(l.refcountBlockOffsets.length * 256).toBeGreaterThanOrEqual(l.totalClusters);
    expect(l.refcountTableClusters * 64).toBeGreaterThanOrEqual(l.refcountBlockOffsets.length);
  });
});

describe('LruMap', () => {
  it('evicts the least recently used first', () => {
    const m = new LruMap<string>(2);
    m.set(1, 'a');
    m.set(2, 'b');
    m.get(1);
    m.set(3, 'c');
    expect(m.overCapacity()).toBe(true);
    expect(m.oldestKey()).toBe(2);
  });
});
