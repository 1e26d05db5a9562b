import { describe, it, expect, vi } from 'vitest';
import { virtioTestbed } from '../../../fixtures/virtio-driver.js';
import { RngDevice } from '../../../../src/vmm/devices/virtio/rng.js';
import { bit, VIRTIO_CONFIG_S_NEEDS_RESET } from '../../../../src/vmm/devices/virtio/mmio.js';
import { BufferRam } from '../../../../src/vmm/memory.js';
import {
  Virtqueue,
  ChainBuffers,
  VIRTIO_F_VERSION_1,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VirtqueueError,
} from '../../../../src/vmm/devices/virtio/virtqueue.js';

const V1 = bit(VIRTIO_F_VERSION_1);

/** A queue of 8 driven directly (no device), for chain validation. */
function rawQueue(features = V1 | bit(VIRTIO_RING_F_INDIRECT_DESC)) {
  const tb = virtioTestbed(new RngDevice());
  tb.driver.negotiate(features);
  const dq = tb.driver.setupQueue(0, 8);
  const vq = tb.transport.queues[0]!;
  vq.indirect = (features & bit(VIRTIO_RING_F_INDIRECT_DESC)) !== 0n;
  return { ...tb, dq, vq };
}

describe('split virtqueue: shared index words (issue 16 item 20)', () => {
  // The guest's vCPUs write avail.idx while the device reads it (and read used.idx while the
  // device writes it): each access must be one atomic 16-bit access, not two byte accesses.
  it('reads avail.idx and publishes used.idx with Atomics', () => {
    const { driver, dq, vq, mem } = rawQueue();
    driver.post(dq, [{ writable: 4 }]);
    const load = vi.spyOn(Atomics, 'load');
    const store = vi.spyOn(Atomics, 'store');
    try {
      const c = vq.pop(mem)!;
      expect(load).toHaveBeenCalled();
      vq.addUsed(mem, c.head, 4);
      expect(store).toHaveBeenCalled();
      const [arr, index, value] = store.mock.calls.at(-1)! as unknown as [Uint16Array, number, number];
      expect(arr).toBeInstanceOf(Uint16Array);
      expect([index, value]).toEqual([0, 1]);
    } finally {
      load.mockRestore();
      store.mockRestore();
    }
  });
});

describe('split virtqueue: descriptor chains', () => {
  it('walks a chain in order with readable then writable buffers', () => {
    const { driver, dq, vq, mem } = rawQueue();
    const p = driver.post(dq, [{ data: Uint8Array.of(1, 2, 3) }, { data: Uint8Array.of(4) }, { writable: 10 }]);
    const c = vq.pop(mem)!;
    expect(c.error).toBeUndefined();
    expect(c.head).toBe(p.head);
    expect(c.descriptors).toEqual([
      { addr: p.addrs[0], len: 3, writable: false },
      { addr: p.addrs[1], len: 1, writable: false },
      { addr: p.addrs[2], len: 10, writable: true },
    ]);
    expect(vq.pop(mem)).toBeUndefined();
  });

  it('ChainBuffers reads and writes across descriptor boundaries', () => {
    const { driver, dq, vq, mem } = rawQueue();
    const p = driver.post(dq, [{ data: Uint8Array.of(1, 2) }, { data: Uint8Array.of(3, 4, 5) }, { writable: 2 }, { writable: 3 }]);
    const c = vq.pop(mem)!;
    const b = new ChainBuffers(mem, c.descriptors!);
    const got = new Uint8Array(4);
    expect(b.read(1, got)).toBe(4);
    expect([...got]).toEqual([2, 3, 4, 5]);
    expect(b.write(1, Uint8Array.of(9, 8, 7, 6, 5))).toBe(4);
    expect([...driver.bytes(p.addrs[2]!, 2), ...driver.bytes(p.addrs[3]!, 3)]).toEqual([0xee, 9, 8, 7, 6]);
  });

  it('rejects a next index outside the queue', () => {
    const { driver, dq, vq, mem } = rawQueue();
    const a = driver.alloc(16);
    driver.writeDesc(dq, 0, a, 16, VIRTQ_DESC_F_NEXT, 8);
    driver.pushAvail(dq, 0);
    const c = vq.pop(mem)!;
    expect(c.head).toBe(0);
    expect(c.error).toBeInstanceOf(VirtqueueError);
    expect(c.error!.message).toMatch(/next index 8/);
  });

  it('rejects a buffer outside guest RAM and a zero-length buffer', () => {
    const { driver, dq, vq, mem } = rawQueue();
    driver.writeDesc(dq, 0, 16 * 1024 * 1024 - 8, 16, 0, 0);
    driver.pushAvail(dq, 0);
    expect(vq.pop(mem)!.error!.message).toMatch(/outside guest RAM/);
    driver.writeDesc(dq, 1, 2 ** 52, 16, 0, 0);
    driver.pushAvail(dq, 1);
    expect(vq.pop(mem)!.error!.message).toMatch(/outside guest RAM/);
    driver.writeDesc(dq, 2, driver.alloc(16), 0, 0, 0);
    driver.pushAvail(dq, 2);
    expect(vq.pop(mem)!.error!.message).toMatch(/zero-length/);
  });

  it('detects loops', () => {
    const { driver, dq, vq, mem } = rawQueue();
    const a = driver.alloc(16);
    driver.writeDesc(dq, 0, a, 16, VIRTQ_DESC_F_NEXT, 1);
    driver.writeDesc(dq, 1, a, 16, VIRTQ_DESC_F_NEXT, 0);
    driver.pushAvail(dq, 0);
    expect(vq.pop(mem)!.error!.message).toMatch(/loop/);
    driver.writeDesc(dq, 2, a, 16, VIRTQ_DESC_F_NEXT, 2); // self-loop
    driver.pushAvail(dq, 2);
    expect(vq.pop(mem)!.error!.message).toMatch(/loop/);
  });

  it('rejects a readable buffer after a writable one', () => {
    const { driver, dq, vq, mem } = rawQueue();
    const a = driver.alloc(32);
    driver.writeDesc(dq, 0, a, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
    driver.writeDesc(dq, 1, a + 16, 16, 0, 0);
    driver.pushAvail(dq, 0);
    expect(vq.pop(mem)!.error!.message).toMatch(/readable buffer follows/);
  });

  it('a head index out of range breaks the queue (nothing to return it to)', () => {
    const { driver, dq, vq, mem } = rawQueue();
    driver.pushAvail(dq, 8);
    expect(() => vq.pop(mem)).toThrow(/head 8/);
  });

  it('avail.idx running more than a queue ahead breaks the queue', () => {
    const { driver, dq, vq, mem } = rawQueue();
    dq.availIdx = 20;
    driver.pushAvail(dq, 0);
    expect(() => vq.pop(mem)).toThrow(/21 entries ahead/);
  });

  it('expands indirect tables, and validates them', () => {
    const { driver, dq, vq, mem } = rawQueue();
    const p = driver.post(dq, [{ data: Uint8Array.of(1) }, { writable: 4 }], { indirect: true });
    const c = vq.pop(mem)!;
    expect(c.descriptors).toEqual([
      { addr: p.addrs[0], len: 1, writable: false },
      { addr: p.addrs[1], len: 4, writable: true },
    ]);

    const table = driver.alloc(32, 16);
    driver.writeDesc(dq, 0, driver.alloc(8), 8, VIRTQ_DESC_F_NEXT, 5, table); // next past the 2-entry table
    driver.writeDesc(dq, 1, driver.alloc(8), 8, 0, 0, table);
    const h = driver.takeDesc(dq);
    driver.writeDesc(dq, h, table, 32, VIRTQ_DESC_F_INDIRECT, 0);
    driver.pushAvail(dq, h);
    expect(vq.pop(mem)!.error!.message).toMatch(/next index 5 is outside its table of 2/);

    driver.writeDesc(dq, 0, table, 32, VIRTQ_DESC_F_INDIRECT, 0, table); // nested indirect
    driver.pushAvail(dq, h);
    expect(vq.pop(mem)!.error!.message).toMatch(/inside an indirect table/);

    driver.writeDesc(dq, h, table, 24, VIRTQ_DESC_F_INDIRECT, 0); // not a whole number of descriptors
    driver.pushAvail(dq, h);
    expect(vq.pop(mem)!.error!.message).toMatch(/indirect table of 24 bytes/);

    driver.writeDesc(dq, h, table, 32, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
    driver.pushAvail(dq, h);
    expect(vq.pop(mem)!.error!.message).toMatch(/INDIRECT together with NEXT/);
  });

  it('refuses INDIRECT when the feature was not negotiated', () => {
    const { driver, dq, vq, mem } = rawQueue(V1);
    driver.post(dq, [{ writable: 4 }], { indirect: true });
    expect(vq.pop(mem)!.error!.message).toMatch(/without VIRTIO_RING_F_INDIRECT_DESC/);
  });

  it('used ring carries head and length; malformed chains complete with length 0 through a device', () => {
    const tb = virtioTestbed(new RngDevice());
    tb.driver.init(V1, 1);
    const q = tb.driver.queues[0]!;
    const a = tb.driver.alloc(16);
    tb.driver.writeDesc(q, 5, a, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 5);
    q.freeDescs = q.freeDescs.filter((d) => d !== 5);
    tb.driver.pushAvail(q, 5);
    const p = tb.driver.post(q, [{ writable: 32 }]);
    tb.driver.notify(q);
    expect(tb.driver.takeUsed(q)).toEqual([
      { id: 5, len: 0 },
      { id: p.head, len: 32 },
    ]);
    expect(tb.driver.status() & VIRTIO_CONFIG_S_NEEDS_RESET).toBe(0);
  });
});

describe('split virtqueue: notification suppression', () => {
  it('VIRTQ_AVAIL_F_NO_INTERRUPT suppresses interrupts without EVENT_IDX', () => {
    const tb = virtioTestbed(new RngDevice());
    tb.driver.init(V1, 1);
    const q = tb.driver.queues[0]!;
    tb.driver.setAvailFlags(q, VIRTQ_AVAIL_F_NO_INTERRUPT);
    tb.driver.post(q, [{ writable: 8 }]);
    tb.driver.notify(q);
    expect(tb.irq.count).toBe(0);
    expect(tb.driver.takeUsed(q)).toHaveLength(1);
    tb.driver.setAvailFlags(q, 0);
    tb.driver.post(q, [{ writable: 8 }]);
    tb.driver.notify(q);
    expect(tb.irq.count).toBe(1);
  });

  it('EVENT_IDX: interrupts only when used.idx passes used_event; avail_event tracks the device', () => {
    const tb = virtioTestbed(new RngDevice());
    expect(tb.driver.init(V1 | bit(VIRTIO_RING_F_EVENT_IDX), 1) & bit(VIRTIO_RING_F_EVENT_IDX)).toBeTruthy();
    const q = tb.driver.queues[0]!;
    tb.driver.setUsedEvent(q, 0);
    tb.driver.post(q, [{ writable: 8 }]);
    tb.driver.notify(q);
    expect(tb.irq.count).toBe(1); // first completion always signals
    expect(tb.driver.availEvent(q)).toBe(1);
    tb.driver.setUsedEvent(q, 3); // interrupt me once used.idx passes 3 (i.e. reaches 4)
    for (let i = 0; i < 2; i++) {
      tb.driver.post(q, [{ writable: 8 }]);
      tb.driver.notify(q);
    }
    expect(tb.irq.count).toBe(1); // used.idx = 3
    tb.driver.post(q, [{ writable: 8 }]);
    tb.driver.notify(q);
    expect(tb.irq.count).toBe(2); // used.idx = 4 crossed 3
    expect(tb.driver.availEvent(q)).toBe(4);
  });

  it('queue size must be a power of two at construction', () => {
    expect(() => new Virtqueue(3)).toThrow(VirtqueueError);
    expect(() => new Virtqueue(65536)).toThrow(VirtqueueError);
    expect(new Virtqueue(1).invalidReason(new BufferRam(16 << 20))).toBeNull();
  });
});
