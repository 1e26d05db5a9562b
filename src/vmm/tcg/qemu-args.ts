/**
 * QEMU's command line for a microVM under TCG (no /dev/kvm): QEMU is the vCPU and the
 * virtio-mmio transport, our device models serve the guest over vhost-user. The flags are the
 * ones measured to work with QEMU 7.2 (docs/platform-kvm.md, "Now"):
 * - `microvm,acpi=off`: with ACPI QEMU does not append `virtio_mmio.device=` to the command
 *   line and our ACPI-less kernel finds no devices; PIT and PIC stay on (the guest spins at
 *   TSC calibration without them);
 * - guest RAM in a shared memfd: vhost-user back ends map it;
 * - `virtio-mmio.force-legacy=false`: QEMU 7.2 defaults to legacy virtio-mmio (no VERSION_1);
 * - each vhost-user device on a socket QEMU inherits as fd N (no socket files, no races);
 * - except the NIC: `-netdev vhost-user` insists on a chardev with FD_PASS, which QEMU 7.2's
 *   char-socket sets only for a socket it opened by path (`fd=` fails with "does not support FD
 *   passing"), so QEMU connects to a socket file the backend listens on.
 */
import { InvalidParameterError } from '../../errors.js';

export interface QemuMicrovmOptions {
  kernel: string;
  initrd?: string;
  /** the whole kernel command line (the caller includes `console=ttyS0 reboot=t panic=-1`) */
  cmdline: string;
  memoryMiB: number;
  vcpus: number;
  /** fd numbers AS SEEN BY THE CHILD (e.g. 3, 4, 5 from spawn's stdio array) */
  vhostUser: { kind: 'blk' | 'vsock' | 'rng'; fd: number }[];
  /** the guest's NIC: a vhost-user-net backend listening at `socket`; the NIC's MAC */
  net?: { socket: string; mac: string };
}

const DEVICE: Record<QemuMicrovmOptions['vhostUser'][number]['kind'], string> = {
  blk: 'vhost-user-blk',
  vsock: 'vhost-user-vsock-device',
  rng: 'vhost-user-rng',
};

export function qemuMicrovmArgs(o: QemuMicrovmOptions): string[] {
  const bad = (why: string) => new InvalidParameterError(`qemu microvm: ${why}`);
  if (!o.kernel) throw bad('no kernel');
  if (!Number.isInteger(o.memoryMiB) || o.memoryMiB < 16) throw bad(`memory ${o.memoryMiB} MiB; need an integer of at least 16`);
  if (!Number.isInteger(o.vcpus) || o.vcpus < 1 || o.vcpus > 255) throw bad(`${o.vcpus} vCPUs; need 1..255`);
  if (/[\n\0]/.test(o.cmdline)) throw bad('kernel command line with a newline or NUL');
  const fds = new Set<number>();
  for (const d of o.vhostUser) {
    if (!(d.kind in DEVICE)) throw bad(`unknown vhost-user device kind ${JSON.stringify(d.kind)}`);
    if (!Number.isInteger(d.fd) || d.fd < 3) throw bad(`vhost-user ${d.kind} on fd ${d.fd}; need 3 or above (0-2 are stdio)`);
    if (fds.has(d.fd)) throw bad(`fd ${d.fd} given to two vhost-user devices`);
    fds.add(d.fd);
  }
  if (o.net) {
    if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(o.net.mac)) throw bad(`NIC MAC ${JSON.stringify(o.net.mac)}`);
    if (!o.net.socket || /[,\n\0]/.test(o.net.socket)) throw bad(`NIC socket path ${JSON.stringify(o.net.socket)}`);
  }
  const args = [
    '-M',
    'microvm,acpi=off,x-option-roms=off,isa-serial=on,rtc=off',
    '-accel',
    'tcg',
    '-cpu',
    'max',
    '-smp',
    String(o.vcpus),
    '-m',
    `${o.memoryMiB}M`,
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-serial',
    'stdio',
    '-no-reboot',
    '-object',
    `memory-backend-memfd,id=mem,size=${o.memoryMiB}M,share=on`,
    '-machine',
    'memory-backend=mem',
    '-global',
    'virtio-mmio.force-legacy=false',
    '-kernel',
    o.kernel,
  ];
  if (o.initrd) args.push('-initrd', o.initrd);
  args.push('-append', o.cmdline);
  o.vhostUser.forEach((d, i) => {
    args.push('-chardev', `socket,id=vhu${i},fd=${d.fd}`, '-device', `${DEVICE[d.kind]},chardev=vhu${i}`);
  });
  if (o.net) {
    args.push(
      '-chardev',
      `socket,id=vhunet,path=${o.net.socket}`,
      '-netdev',
      'vhost-user,id=net0,chardev=vhunet',
      '-device',
      `virtio-net-device,netdev=net0,mac=${o.net.mac}`,
    );
  }
  return args;
}
