import { describe, it, expect } from 'vitest';
import { virtioTestbed } from '../../../fixtures/virtio-driver.js';
import { RngDevice } from '../../../../src/vmm/devices/virtio/rng.js';
import { MmioTransport, bit, VIRTIO_CONFIG_S_DRIVER_OK, type MmioTransportState } from '../../../../src/vmm/devices/virtio/mmio.js';
import { VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX } from '../../../../src/vmm/devices/virtio/virtqueue.js';
import { VsockDevice, VSOCK_EVENT_QUEUE } from '../../../../src/vmm/devices/virtio/vsock/device.js';
import { VsockMuxer } from '../../../../src/vmm/devices/virtio/vsock/muxer.js';
import { VirtioMmioDriver } from '../../../fixtures/virtio-driver.js';

const FEATURES = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_RING_F_EVENT_IDX);

describe('virtio-mmio transport state (snapshots)', () => {
  it('a restored transport carries on where the saved one stopped', () => {
    const a = virtioTestbed(new RngDevice());
    a.driver.init(FEATURES, 1);
    const q = a.driver.queues[0]!;
    for (let i = 0; i < 3; i++) a.driver.post(q, [{ writable: 8 }]);
    a.driver.notify(q);
    expect(a.driver.takeUsed(q)).toHaveLength(3);
    const saved: MmioTransportState = JSON.parse(JSON.stringify(a.transport.saveState()));
    expect(saved.queues[0]).toMatchObject({ nextAvail: 3, nextUsed: 3, ready: true, eventIdx: true });

    // Same guest memory, new device and transport (what a restored VMM builds).
    let irqs = 0;
    const t = new MmioTransport(new RngDevice(), { memory: a.mem, raiseIrq: () => irqs++ });
    t.restoreState(saved);
    expect(t.isActive).toBe(true);
    expect(t.status & VIRTIO_CONFIG_S_DRIVER_OK).toBeTruthy();
    const driver = new VirtioMmioDriver(t, a.mem);
    Object.assign(driver, { queues: a.driver.queues });
    a.driver.setUsedEvent(q, 3);
    const p = a.driver.post(q, [{ writable: 8 }]);
    driver.notify(q);
    expect(driver.takeUsed(q)).toEqual([{ id: p.head, len: 8 }]);
    expect(irqs).toBe(1);
  });

  it('refuses records that do not fit, and stays reset', () => {
    const a = virtioTestbed(new RngDevice());
    a.driver.init(FEATURES, 1);
    const good = a.transport.saveState();
    const fresh = () => new MmioTransport(new RngDevice(), { memory: a.mem, raiseIrq: () => {} });
    const cases: [Partial<MmioTransportState> | Record<string, unknown>, RegExp][] = [
      [{ version: 2 as never }, /version 2/],
      [{ deviceId: 2 }, /device type 2/],
      [{ driverFeatures: 'zz' }, /driver features/],
      [{ driverFeatures: (bit(VIRTIO_F_VERSION_1) | bit(5)).toString(16) }, /not offered/],
      [{ queues: [] }, /0 queues/],
      [{ queues: [{ ...good.queues[0]!, usedRing: 0xfffffff0 }] }, /outside guest RAM/],
      [{ queues: [{ ...good.queues[0]!, nextAvail: 70000 }] }, /out-of-range/],
      [{ queues: [{ ...good.queues[0]!, ready: false }] }, /queue not ready/],
    ];
    for (const [patch, msg] of cases) {
      const t = fresh();
      expect(() => t.restoreState({ ...good, ...patch })).toThrow(msg);
      expect(t.isActive).toBe(false);
      expect(t.queues[0]!.ready).toBe(false);
    }
    const used = fresh();
    used.restoreState(good);
    expect(() => used.restoreState(good)).toThrow(/in use/);
  });

  it('vsock: a transport-reset event tells the guest its connections are gone', () => {
    const dev = new VsockDevice(3n, new VsockMuxer({ udsPath: '/tmp/unused-vsock-test.sock' }));
    const tb = virtioTestbed(dev);
    expect(dev.sendTransportReset()).toBe(false); // not active yet
    tb.driver.init(bit(VIRTIO_F_VERSION_1), 3);
    const eq = tb.driver.queues[VSOCK_EVENT_QUEUE]!;
    expect(dev.sendTransportReset()).toBe(false); // no event buffer posted
    const p = tb.driver.post(eq, [{ writable: 4 }]);
    expect(dev.sendTransportReset()).toBe(true);
    expect(tb.driver.takeUsed(eq)).toEqual([{ id: p.head, len: 4 }]);
    expect([...tb.driver.bytes(p.addrs[0]!, 4)]).toEqual([0, 0, 0, 0]);
    expect(tb.irq.count).toBe(1);
  });
});
