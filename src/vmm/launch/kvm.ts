/**
 * The kvm backend: tvm's own VMM in this process. Devices sit on the in-process virtio-mmio
 * transport (ioeventfd notifications, irqfd interrupts); the guest's reboot reaches the i8042
 * reset and ends the machine.
 */
import { Machine, type MachineEnd } from '../machine.js';
import { VirtioDeviceSet } from '../devices/virtio/device-set.js';
import type { GuestEnd, GuestLaunch, RunningGuest } from './types.js';

function endOf(end: MachineEnd): GuestEnd {
  switch (end.kind) {
    case 'rebooted':
    case 'shutdown':
    case 'halted':
      return { kind: 'poweroff', detail: end.detail };
    case 'stopped':
      return { kind: 'stopped', detail: end.detail };
    default:
      return { kind: 'crashed', detail: `${end.kind}: ${end.detail}` };
  }
}

export async function launchKvm(o: GuestLaunch): Promise<RunningGuest> {
  const set = new VirtioDeviceSet({ ...(o.log && { log: o.log }) });
  let machine: Machine;
  try {
    machine = await Machine.create({
      kernel: o.kernel,
      initrd: o.initrd,
      cmdline: o.cmdline,
      memMiB: o.memMiB,
      cpus: o.cpus,
      console: { output: o.console },
      mmioDevices: [
        set.add('vda', o.devices.blk),
        set.add('vsock', o.devices.vsock),
        set.add('rng', o.devices.rng),
        ...(o.devices.net ? [set.add('net', o.devices.net)] : []),
      ],
      ...(o.log && { log: o.log }),
    });
  } catch (e) {
    await set.close();
    throw e;
  }
  const ended = machine
    .run()
    .then(
      (end) => endOf(end),
      (e: unknown) => ({ kind: 'crashed' as const, detail: `VMM error: ${(e as Error).message}` }),
    )
    .finally(() => set.close());
  return {
    backend: 'kvm',
    ended,
    stop: (reason) => machine.stop(reason),
  };
}
