import { describe, it, expect } from 'vitest';
import { virtioTestbed } from '../../../fixtures/virtio-driver.js';
import { RngDevice, RNG_MAX_CHAIN_BYTES } from '../../../../src/vmm/devices/virtio/rng.js';
import { bit, VIRTIO_MMIO_DEVICE_ID, VIRTIO_ID_RNG } from '../../../../src/vmm/devices/virtio/mmio.js';
import { VIRTIO_F_VERSION_1, VIRTIO_RING_F_INDIRECT_DESC } from '../../../../src/vmm/devices/virtio/virtqueue.js';

describe('virtio-rng', () => {
  it('fills every writable buffer of a chain with fresh random bytes', () => {
    const dev = new RngDevice();
    const { driver, irq } = virtioTestbed(dev);
    expect(driver.r32(VIRTIO_MMIO_DEVICE_ID)).toBe(VIRTIO_ID_RNG);
    const want = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_RING_F_INDIRECT_DESC);
    expect(driver.init(want, 1)).toBe(want);
    const q = driver.queues[0]!;
    const a = driver.post(q, [{ writable: 64 }, { writable: 64 }]);
    const b = driver.post(q, [{ writable: 64 }], { indirect: true });
    driver.notify(q);
    expect(driver.takeUsed(q)).toEqual([
      { id: a.head, len: 128 },
      { id: b.head, len: 64 },
    ]);
    expect(irq.count).toBe(1);
    const bufs = [driver.bytes(a.addrs[0]!, 64), driver.bytes(a.addrs[1]!, 64), driver.bytes(b.addrs[0]!, 64)].map((x) => Buffer.from(x));
    // 0xee is the driver's fill pattern: 64 random bytes all equal to it would be a 2^-512 event
    for (const x of bufs) expect(x.equals(Buffer.alloc(64, 0xee))).toBe(false);
    expect(bufs[0]!.equals(bufs[1]!)).toBe(false);
    expect(dev.bytesServed).toBe(192);
  });

  it('bounds the bytes served per chain and ignores readable buffers', () => {
    const dev = new RngDevice();
    const { driver } = virtioTestbed(dev);
    driver.init(bit(VIRTIO_F_VERSION_1), 1);
    const q = driver.queues[0]!;
    const p = driver.post(q, [{ data: new Uint8Array(8) }, { writable: RNG_MAX_CHAIN_BYTES + 100 }]);
    driver.notify(q);
    expect(driver.takeUsed(q)).toEqual([{ id: p.head, len: RNG_MAX_CHAIN_BYTES }]);
    expect([...driver.bytes(p.addrs[0]!, 8)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect([...driver.bytes(p.addrs[1]! + RNG_MAX_CHAIN_BYTES, 100)]).toEqual(new Array(100).fill(0xee));
  });
});
