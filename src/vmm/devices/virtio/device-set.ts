/**
 * Glue between virtio devices and the Machine: each VirtioDevice becomes an MmioDeviceSpec
 * whose bus device is its virtio-mmio transport. Queue notifications come through one
 * ioeventfd per queue (QueueNotify with datamatch = the queue index), watched by one shared
 * NotifyPoller; interrupts go out through the machine's irqfd (ctx.raiseIrq) after the
 * transport has set InterruptStatus. A QueueNotify that reaches the bus anyway (e.g. a
 * 2-byte write that the datamatch does not cover) is handled by the transport directly.
 */
import type { MmioDeviceContext, MmioDeviceSpec } from '../../machine.js';
import { MmioTransport, VIRTIO_MMIO_QUEUE_NOTIFY, type VirtioDevice } from './mmio.js';
import { NotifyPoller } from './notify-poller.js';

export interface VirtioDeviceSetOptions {
  log?: (line: string) => void;
  /** a device's notification handler threw (the machine should stop): default logs it */
  onError?: (e: unknown) => void;
}

export class VirtioDeviceSet {
  private poller?: NotifyPoller;
  private readonly entries: { name: string; device: VirtioDevice; transport?: MmioTransport }[] = [];

  constructor(private readonly opts: VirtioDeviceSetOptions = {}) {}

  /** Adds a device; pass the returned spec (in order) to MachineConfig.mmioDevices. */
  add(name: string, device: VirtioDevice): MmioDeviceSpec {
    const entry: (typeof this.entries)[number] = { name, device };
    this.entries.push(entry);
    return {
      name,
      virtio: true,
      create: (ctx: MmioDeviceContext) => {
        const transport = new MmioTransport(device, {
          memory: ctx.memory,
          raiseIrq: ctx.raiseIrq,
          log: (l) => this.opts.log?.(`${name}: ${l}`),
        });
        entry.transport = transport;
        const poller = this.notifyPoller();
        transport.queues.forEach((_, i) => {
          const fd = ctx.ioeventfd(VIRTIO_MMIO_QUEUE_NOTIFY, 4, BigInt(i));
          poller.add(fd, () => transport.notify(i));
        });
        return transport;
      },
    };
  }

  private notifyPoller(): NotifyPoller {
    this.poller ??= new NotifyPoller((e) => (this.opts.onError ?? ((x) => this.opts.log?.(`virtio: ${(x as Error).message}`)))(e));
    return this.poller;
  }

  /** The transport of a placed device (after Machine.create), for diagnostics and snapshots. */
  transport(name: string): MmioTransport | undefined {
    return this.entries.find((e) => e.name === name)?.transport;
  }

  /** Stops the notification thread; call after the machine has run (or failed to build). */
  async close(): Promise<void> {
    await this.poller?.close();
    this.poller = undefined;
  }
}
