/**
 * Kernel arguments the machine adds unless the user already chose them: the console on our
 * 8250, `reboot=k` so a guest reboot reaches the i8042 reset line (the way a tvm VM ends),
 * `panic=1` so a panic ends the VM too, no PCI probing (there is no PCI), a quiet i8042 probe;
 * on PVM the CPUID template's counterpart for kernels that probe features themselves.
 */
import { Cmdline } from './boot/cmdline.js';
import type { KvmFlavor } from '../kvm/detect.js';
import { PVM_KERNEL_ARGS } from './cpuid.js';

const DEFAULTS: [key: string, arg: string][] = [
  ['console', 'console=ttyS0'],
  ['reboot', 'reboot=k'],
  ['panic', 'panic=1'],
  ['pci', 'pci=off'],
  ['i8042.noaux', 'i8042.noaux'],
  ['i8042.nomux', 'i8042.nomux'],
  ['i8042.dumbkbd', 'i8042.dumbkbd'],
];

export function buildKernelCmdline(user: string, flavor: KvmFlavor, capacity: number): Cmdline {
  const probe = new Cmdline(1 << 20).append(user);
  const c = new Cmdline(capacity);
  for (const [key, arg] of DEFAULTS) if (!probe.has(key)) c.append(arg);
  if (flavor === 'pvm') {
    for (const arg of PVM_KERNEL_ARGS.split(' ')) if (!probe.has(arg.split('=')[0]!)) c.append(arg);
  }
  c.append(user);
  return c;
}
