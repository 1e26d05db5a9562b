import { describe, it, expect } from 'vitest';
import * as libc from '../../../../src/kvm/libc.js';
import { BufferRam } from '../../../../src/vmm/memory.js';
import type { MmioDeviceContext } from '../../../../src/vmm/machine.js';
import { VirtioDeviceSet } from '../../../../src/vmm/devices/virtio/device-set.js';
import { NotifyPoller } from '../../../../src/vmm/devices/virtio/notify-poller.js';
import { RngDevice } from '../../../../src/vmm/devices/virtio/rng.js';
import { bit, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_MMIO_INT_VRING } from '../../../../src/vmm/devices/virtio/mmio.js';
import { VIRTIO_F_VERSION_1 } from '../../../../src/vmm/devices/virtio/virtqueue.js';
import { VirtioMmioDriver, MiB } from '../../../fixtures/virtio-driver.js';

describe('NotifyPoller', () => {
  it('runs the handler of each eventfd that fires, on the main thread, and stops cleanly', async () => {
    const p = new NotifyPoller();
    const a = libc.eventfd(0, libc.EFD_CLOEXEC | libc.EFD_NONBLOCK);
    const b = libc.eventfd(0, libc.EFD_CLOEXEC | libc.EFD_NONBLOCK);
    try {
      const seen: string[] = [];
      let wake: () => void = () => {};
      const fired = () => new Promise<void>((r) => (wake = r));
      p.add(a, () => (seen.push('a'), wake()));
      p.add(b, () => (seen.push('b'), wake()));
      expect(() => p.add(a, () => {})).toThrow(/already watched/);
      let f = fired();
      libc.eventfdSignal(b);
      await f;
      f = fired();
      libc.eventfdSignal(a, 3n); // a counter of 3 is one wake-up, drained by the poller
      await f;
      expect(seen).toEqual(['b', 'a']);
      // the poller drained the counter
      expect(libc.read(a, new Uint8Array(8))).toBe(-1);
    } finally {
      await p.close();
      libc.close(a);
      libc.close(b);
    }
    expect(() => p.add(a, () => {})).toThrow(/closed/);
  });
});

describe('VirtioDeviceSet', () => {
  it('places a device as an MmioDeviceSpec: ioeventfd per queue notifies it, irq via raiseIrq', async () => {
    const set = new VirtioDeviceSet();
    const spec = set.add('rng0', new RngDevice());
    expect(spec.virtio).toBe(true);
    const mem = new BufferRam(16 * MiB);
    const fds: { fd: number; offset: number; len: number; datamatch?: bigint }[] = [];
    let irqs = 0;
    let wake: () => void = () => {};
    const ctx: MmioDeviceContext = {
      base: 0xd0000000, size: 0x1000, irq: 5, memory: mem,
      raiseIrq: () => (irqs++, wake()),
      ioeventfd: (offset, len, datamatch) => {
        const fd = libc.eventfd(0, libc.EFD_CLOEXEC | libc.EFD_NONBLOCK);
        fds.push({ fd, offset, len, datamatch });
        return fd;
      },
    };
    try {
      const bus = spec.create(ctx);
      expect(fds.map(({ offset, len, datamatch }) => ({ offset, len, datamatch }))).toEqual([{ offset: VIRTIO_MMIO_QUEUE_NOTIFY, len: 4, datamatch: 0n }]);
      expect(set.transport('rng0')).toBe(bus);
      const driver = new VirtioMmioDriver(bus, mem);
      driver.init(bit(VIRTIO_F_VERSION_1), 1);
      const q = driver.queues[0]!;
      const p = driver.post(q, [{ writable: 32 }]);
      const irq = new Promise<void>((r) => (wake = r));
      libc.eventfdSignal(fds[0]!.fd); // what KVM does on the guest's QueueNotify write
      await irq;
      expect(irqs).toBe(1);
      expect(driver.takeUsed(q)).toEqual([{ id: p.head, len: 32 }]);
      expect(driver.ackInterrupt()).toBe(VIRTIO_MMIO_INT_VRING);
    } finally {
      await set.close();
      for (const f of fds) libc.close(f.fd);
    }
  });
});
