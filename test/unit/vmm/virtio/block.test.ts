import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { virtioTestbed, type VirtioMmioDriver } from '../../../fixtures/virtio-driver.js';
import { requireTool } from '../../../fixtures/guests/cc.js';
import {
  BlockDevice,
  VIRTIO_BLK_CONFIG,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_DISCARD,
  VIRTIO_BLK_F_WRITE_ZEROES,
  VIRTIO_BLK_F_FLUSH,
  BLOCK_QUEUE_SIZE,
} from '../../../../src/vmm/devices/virtio/block.js';
import {
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_WRITE_ZEROES,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
} from '../../../../src/vmm/devices/virtio/block-request.js';
import { bit } from '../../../../src/vmm/devices/virtio/mmio.js';
import { VIRTIO_F_VERSION_1 } from '../../../../src/vmm/devices/virtio/virtqueue.js';
import { RawFile } from '../../../../src/disks/raw.js';
import { Qcow2Image } from '../../../../src/disks/qcow2/image.js';
import type { SyncBlockBackend } from '../../../../src/disks/block-backend.js';

const ALL = bit(VIRTIO_F_VERSION_1) | ((1n << 32n) - 1n);
const MIB = 1024 * 1024;
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'tvm-vblk-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function header(type: number, sector: number): Uint8Array {
  const h = new Uint8Array(16);
  const v = new DataView(h.buffer);
  v.setUint32(0, type, true);
  v.setBigUint64(8, BigInt(sector), true);
  return h;
}
function segment(sector: number, n: number, flags = 0): Uint8Array {
  const s = new Uint8Array(16);
  const v = new DataView(s.buffer);
  v.setBigUint64(0, BigInt(sector), true);
  v.setUint32(8, n, true);
  v.setUint32(12, flags, true);
  return s;
}

/** Posts one request, notifies, returns {status, used length, data read}. */
function request(driver: VirtioMmioDriver, type: number, sector: number, opts: { out?: Uint8Array[]; inLen?: number[] } = {}) {
  const q = driver.queues[0]!;
  const bufs = [
    { data: header(type, sector) },
    ...(opts.out ?? []).map((data) => ({ data })),
    ...(opts.inLen ?? []).map((writable) => ({ writable })),
    { writable: 1 },
  ];
  const p = driver.post(q, bufs);
  driver.notify(q);
  const used = driver.takeUsed(q);
  expect(used.map((u) => u.id)).toEqual([p.head]);
  const statusAddr = p.addrs[p.addrs.length - 1]!;
  const nIn = opts.inLen?.length ?? 0;
  const inParts = p.addrs.slice(p.addrs.length - 1 - nIn, p.addrs.length - 1).map((a, i) => driver.bytes(a, opts.inLen![i]!).slice());
  const data = new Uint8Array(inParts.reduce((n, b) => n + b.length, 0));
  let o = 0;
  for (const b of inParts) {
    data.set(b, o);
    o += b.length;
  }
  return { status: driver.bytes(statusAddr, 1)[0], len: used[0]!.len, data };
}

function start(backend: SyncBlockBackend, opts: { readOnly?: boolean; id?: string } = {}) {
  const dev = new BlockDevice({ backend, ...opts });
  const tb = virtioTestbed(dev);
  const accepted = tb.driver.init(ALL, 1);
  return { ...tb, dev, accepted };
}

describe('virtio-blk over a raw file', () => {
  it('exposes capacity, seg_max and blk_size in config space', () => {
    const f = path.join(dir, 'd.raw');
    writeFileSync(f, Buffer.alloc(3 * MIB));
    const { driver, accepted } = start(RawFile.open(f));
    const c = new DataView(driver.readConfig(0, VIRTIO_BLK_CONFIG.size).buffer);
    expect(c.getBigUint64(VIRTIO_BLK_CONFIG.capacity, true)).toBe(BigInt((3 * MIB) / 512));
    expect(c.getUint32(VIRTIO_BLK_CONFIG.seg_max, true)).toBe(BLOCK_QUEUE_SIZE - 2);
    expect(c.getUint32(VIRTIO_BLK_CONFIG.blk_size, true)).toBe(512);
    expect(accepted & bit(VIRTIO_BLK_F_FLUSH)).toBeTruthy();
    expect(accepted & bit(VIRTIO_BLK_F_RO)).toBe(0n);
    expect(accepted & bit(VIRTIO_BLK_F_DISCARD)).toBe(0n); // raw discards nothing
  });

  it('reads and writes, across split data descriptors, and the file holds the bytes', () => {
    const f = path.join(dir, 'd.raw');
    const init = randomBytes(MIB);
    writeFileSync(f, init);
    const disk = RawFile.open(f);
    const { driver, irq } = start(disk);
    const r = request(driver, VIRTIO_BLK_T_IN, 8, { inLen: [512, 1024, 512] });
    expect(r.status).toBe(VIRTIO_BLK_S_OK);
    expect(r.len).toBe(2048 + 1);
    expect(Buffer.from(r.data).equals(init.subarray(4096, 4096 + 2048))).toBe(true);
    expect(irq.count).toBe(1);
    const w = randomBytes(3 * 512);
    const wr = request(driver, VIRTIO_BLK_T_OUT, 100, { out: [w.subarray(0, 100), w.subarray(100)] });
    expect(wr.status).toBe(VIRTIO_BLK_S_OK);
    expect(wr.len).toBe(1);
    expect(request(driver, VIRTIO_BLK_T_FLUSH, 0).status).toBe(VIRTIO_BLK_S_OK);
    disk.closeSync();
    const after = readFileSync(f);
    expect(after.subarray(100 * 512, 103 * 512).equals(w)).toBe(true);
    expect(after.subarray(0, 100 * 512).equals(init.subarray(0, 100 * 512))).toBe(true);
  });

  it('GET_ID returns the serial, truncated to the buffer', () => {
    const f = path.join(dir, 'd.raw');
    writeFileSync(f, Buffer.alloc(MIB));
    const { driver } = start(RawFile.open(f), { id: 'tvm-abc123' });
    const r = request(driver, VIRTIO_BLK_T_GET_ID, 0, { inLen: [20] });
    expect(r.status).toBe(VIRTIO_BLK_S_OK);
    expect(Buffer.from(r.data).toString('latin1')).toBe('tvm-abc123'.padEnd(20, '\0'));
    expect(request(driver, VIRTIO_BLK_T_GET_ID, 0, { inLen: [4] }).data).toEqual(new TextEncoder().encode('tvm-'));
    expect(() => new BlockDevice({ backend: RawFile.open(f), id: 'x'.repeat(21) })).toThrow(/longer than 20/);
  });

  it('bad requests get IOERR/UNSUPP and leave the disk untouched', () => {
    const f = path.join(dir, 'd.raw');
    const init = randomBytes(MIB);
    writeFileSync(f, init);
    const disk = RawFile.open(f);
    const { driver, dev } = start(disk);
    const sectors = MIB / 512;
    expect(request(driver, VIRTIO_BLK_T_IN, sectors - 1, { inLen: [1024] }).status).toBe(VIRTIO_BLK_S_IOERR); // past the end
    expect(request(driver, VIRTIO_BLK_T_OUT, sectors, { out: [new Uint8Array(512)] }).status).toBe(VIRTIO_BLK_S_IOERR);
    expect(request(driver, VIRTIO_BLK_T_OUT, 2 ** 62, { out: [new Uint8Array(512)] }).status).toBe(VIRTIO_BLK_S_IOERR); // sector overflow
    expect(request(driver, VIRTIO_BLK_T_OUT, 0, { out: [new Uint8Array(100)] }).status).toBe(VIRTIO_BLK_S_IOERR); // not whole sectors
    // a read that comes with readable data
    expect(request(driver, VIRTIO_BLK_T_IN, 0, { out: [new Uint8Array(512)], inLen: [512] }).status).toBe(VIRTIO_BLK_S_IOERR);
    expect(request(driver, 77, 0).status).toBe(VIRTIO_BLK_S_UNSUPP);
    expect(request(driver, VIRTIO_BLK_T_DISCARD, 0, { out: [segment(0, 8)] }).status).toBe(VIRTIO_BLK_S_UNSUPP); // not offered
    // Header too short: status byte still written.
    const q = driver.queues[0]!;
    const p = driver.post(q, [{ data: new Uint8Array(8) }, { writable: 1 }]);
    driver.notify(q);
    expect(driver.takeUsed(q)).toEqual([{ id: p.head, len: 1 }]);
    expect(driver.bytes(p.addrs[1]!, 1)[0]).toBe(VIRTIO_BLK_S_IOERR);
    // No writable byte at all: completed with length 0, nothing written.
    const p2 = driver.post(q, [{ data: header(VIRTIO_BLK_T_OUT, 0) }, { data: new Uint8Array(512).fill(1) }]);
    driver.notify(q);
    expect(driver.takeUsed(q)).toEqual([{ id: p2.head, len: 0 }]);
    expect(dev.stats.writes).toBe(0);
    disk.closeSync();
    expect(readFileSync(f).equals(init)).toBe(true);
  });

  it('a read-only device offers VIRTIO_BLK_F_RO and fails writes with IOERR', () => {
    const f = path.join(dir, 'd.raw');
    writeFileSync(f, Buffer.alloc(MIB, 7));
    const { driver, accepted } = start(RawFile.open(f, { readOnly: true }));
    expect(accepted & bit(VIRTIO_BLK_F_RO)).toBeTruthy();
    expect(request(driver, VIRTIO_BLK_T_OUT, 0, { out: [new Uint8Array(512)] }).status).toBe(VIRTIO_BLK_S_IOERR);
    expect(request(driver, VIRTIO_BLK_T_IN, 0, { inLen: [512] }).data).toEqual(new Uint8Array(512).fill(7));
    expect(readFileSync(f).equals(Buffer.alloc(MIB, 7))).toBe(true);
    // readOnly option over a writable backend
    const w = start(RawFile.open(f), { readOnly: true });
    expect(w.accepted & bit(VIRTIO_BLK_F_RO)).toBeTruthy();
    expect(request(w.driver, VIRTIO_BLK_T_OUT, 0, { out: [new Uint8Array(512)] }).status).toBe(VIRTIO_BLK_S_IOERR);
  });

  it('backend failure is IOERR, not a crash', () => {
    const f = path.join(dir, 'd.raw');
    writeFileSync(f, Buffer.alloc(MIB));
    const disk = RawFile.open(f);
    const { driver, dev } = start(disk);
    disk.io.close(); // every syscall now fails with EBADF
    expect(request(driver, VIRTIO_BLK_T_IN, 0, { inLen: [512] }).status).toBe(VIRTIO_BLK_S_IOERR);
    expect(dev.stats.errors).toBe(1);
  });
});

describe('virtio-blk over a qcow2 overlay', () => {
  it('writes land in the overlay, discard/write-zeroes unmap, qemu-img check is clean and contents match', () => {
    const qemuImg = requireTool('qemu-img');
    const base = path.join(dir, 'base.raw');
    const baseBytes = randomBytes(4 * MIB);
    writeFileSync(base, baseBytes);
    const overlay = path.join(dir, 'o.qcow2');
    const img = Qcow2Image.createSync(overlay, { backingFile: 'base.raw', backingFormat: 'raw' });
    const { driver, accepted } = start(img);
    expect(accepted & bit(VIRTIO_BLK_F_DISCARD)).toBeTruthy();
    expect(accepted & bit(VIRTIO_BLK_F_WRITE_ZEROES)).toBeTruthy();
    const c = new DataView(driver.readConfig(0, VIRTIO_BLK_CONFIG.size).buffer);
    expect(c.getUint32(VIRTIO_BLK_CONFIG.discard_sector_alignment, true)).toBe(img.clusterSize / 512);

    const expected = Buffer.from(baseBytes);
    const w1 = randomBytes(8192);
    expect(request(driver, VIRTIO_BLK_T_OUT, 3, { out: [w1] }).status).toBe(VIRTIO_BLK_S_OK);
    w1.copy(expected, 3 * 512);
    const w2 = randomBytes(128 * 1024);
    expect(request(driver, VIRTIO_BLK_T_OUT, 1024, { out: [w2.subarray(0, 65536), w2.subarray(65536)] }).status).toBe(VIRTIO_BLK_S_OK);
    w2.copy(expected, 1024 * 512);
    // write-zeroes of one whole cluster (sector 2048 = 1 MiB) with UNMAP, and of a partial range
    expect(
      request(driver, VIRTIO_BLK_T_WRITE_ZEROES, 2048, { out: [segment(2048, 128, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP), segment(10, 2)] })
        .status,
    ).toBe(VIRTIO_BLK_S_OK);
    expected.fill(0, 2048 * 512, 2176 * 512);
    expected.fill(0, 10 * 512, 12 * 512);
    // discard with flags is UNSUPP; DISCARD's content afterwards is unspecified, so compare outside it
    expect(request(driver, VIRTIO_BLK_T_DISCARD, 0, { out: [segment(4096, 128, 1)] }).status).toBe(VIRTIO_BLK_S_UNSUPP);
    expect(request(driver, VIRTIO_BLK_T_DISCARD, 0, { out: [segment(1024, 128)] }).status).toBe(VIRTIO_BLK_S_OK);
    const r = request(driver, VIRTIO_BLK_T_IN, 0, { inLen: [16384] });
    expect(Buffer.from(r.data).equals(expected.subarray(0, 16384))).toBe(true);
    expect(request(driver, VIRTIO_BLK_T_FLUSH, 0).status).toBe(VIRTIO_BLK_S_OK);
    img.closeSync();

    execFileSync(qemuImg, ['check', overlay], { stdio: 'pipe' });
    const out = path.join(dir, 'out.raw');
    execFileSync(qemuImg, ['convert', '-O', 'raw', overlay, out], { stdio: 'pipe' });
    const got = readFileSync(out);
    // qcow2 v3 discard reads back as zeros; compare everything else byte for byte.
    expect(got.subarray(1024 * 512, 1152 * 512).equals(Buffer.alloc(65536))).toBe(true);
    expected.fill(0, 1024 * 512, 1152 * 512);
    expect(got.equals(expected)).toBe(true);
    expect(readFileSync(base).equals(baseBytes)).toBe(true);
  });

  it('refuses segment counts and sizes beyond what config space advertises', () => {
    const img = Qcow2Image.createSync(path.join(dir, 'x.qcow2'), { size: 4 * MIB });
    const { driver } = start(img);
    const many = Array.from({ length: 33 }, (_, i) => segment(i * 8, 8));
    expect(request(driver, VIRTIO_BLK_T_DISCARD, 0, { out: many }).status).toBe(VIRTIO_BLK_S_UNSUPP);
    expect(request(driver, VIRTIO_BLK_T_WRITE_ZEROES, 0, { out: [segment(8000, 1000)] }).status).toBe(VIRTIO_BLK_S_IOERR); // past the end
    expect(request(driver, VIRTIO_BLK_T_WRITE_ZEROES, 0, { out: [new Uint8Array(10)] }).status).toBe(VIRTIO_BLK_S_IOERR);
    img.closeSync();
  });
});
