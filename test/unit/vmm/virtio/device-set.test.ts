import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { socketpair, sendmsg, recvmsg } from '../../../../src/kvm/socket.js';
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

  it('watches a socket one-shot without reading it, re-arms after the handler, and drops removed fds', async () => {
    const p = new NotifyPoller();
    const [x, y] = socketpair();
    const e = libc.eventfd(0, libc.EFD_CLOEXEC | libc.EFD_NONBLOCK);
    try {
      const got: number[] = [];
      let wake: () => void = () => {};
      const fired = () => new Promise<void>((r) => (wake = r));
      p.addReadable(y, () => {
        const b = new Uint8Array(16);
        for (let r = recvmsg(y, b); r.bytes > 0; r = recvmsg(y, b)) got.push(...b.subarray(0, r.bytes));
        wake();
      });
      let f = fired();
      sendmsg(x, new Uint8Array([1, 2]));
      await f;
      f = fired();
      sendmsg(x, new Uint8Array([3]));
      await f;
      expect(got).toEqual([1, 2, 3]);
      let kicks = 0;
      p.add(e, () => kicks++);
      p.remove(e);
      libc.eventfdSignal(e);
      f = fired();
      sendmsg(x, new Uint8Array([4]));
      await f;
      expect(kicks).toBe(0);
      expect(libc.read(e, new Uint8Array(8))).toBe(8); // nobody drained it
    } finally {
      await p.close();
      for (const fd of [x, y, e]) libc.close(fd);
    }
  });

  it('keeps the process alive while close() waits for its thread', () => {
    // A process whose only pending work is `await poller.close()` must not exit under it.
    const src = `import { NotifyPoller } from './src/vmm/devices/virtio/notify-poller.ts';
import * as libc from './src/kvm/libc.ts';
const p = new NotifyPoller();
const fd = libc.eventfd();
p.add(fd, () => {});
await p.close();
console.log('closed');`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', src], {
      encoding: 'utf8',
      cwd: path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..'),
    });
    expect([r.status, r.stdout.trim()], r.stderr).toEqual([0, 'closed']);
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
      base: 0xd0000000,
      size: 0x1000,
      irq: 5,
      memory: mem,
      raiseIrq: () => (irqs++, wake()),
      ioeventfd: (offset, len, datamatch) => {
        const fd = libc.eventfd(0, libc.EFD_CLOEXEC | libc.EFD_NONBLOCK);
        fds.push({ fd, offset, len, datamatch });
        return fd;
      },
    };
    try {
      const bus = spec.create(ctx);
      expect(fds.map(({ offset, len, datamatch }) => ({ offset, len, datamatch }))).toEqual([
        { offset: VIRTIO_MMIO_QUEUE_NOTIFY, len: 4, datamatch: 0n },
      ]);
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
