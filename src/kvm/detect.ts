/**
 * Which KVM this host offers. PVM ("kvm_pvm", a page-table based hypervisor that serves the
 * KVM API inside a VM without VMX/SVM) needs a reduced CPUID template and the guest fixes in
 * docs/platform-kvm.md; hardware KVM gets the full feature set.
 */
import { existsSync, accessSync, constants } from 'node:fs';
import { TvmError } from '../errors.js';

export const KVM_DEVICE = '/dev/kvm';

export type KvmFlavor = 'hardware' | 'pvm';

export interface KvmHost {
  device: string;
  present: boolean;
  flavor: KvmFlavor;
}

export class KvmUnavailableError extends TvmError {
  constructor(message: string) {
    super('ERR_NO_KVM', message, 500);
  }
}

export function isPvmHost(sysModule = '/sys/module'): boolean {
  return existsSync(`${sysModule}/kvm_pvm`);
}

export function detectKvm(device = KVM_DEVICE, sysModule = '/sys/module'): KvmHost {
  return { device, present: existsSync(device), flavor: isPvmHost(sysModule) ? 'pvm' : 'hardware' };
}

/** Throws a clear error when the KVM device cannot be used; returns what was found otherwise. */
export function requireKvm(device = KVM_DEVICE, sysModule = '/sys/module'): KvmHost {
  const host = detectKvm(device, sysModule);
  if (!host.present) {
    const hint =
      host.flavor === 'pvm'
        ? ' (kvm_pvm is loaded but did not create the device: see dmesg; a PVM host that is itself a PVM guest cannot serve KVM)'
        : ' (load kvm_intel or kvm_amd, or enable nested virtualization for this VM)';
    throw new KvmUnavailableError(`missing ${device}: this host offers no KVM${hint}`);
  }
  try {
    accessSync(device, constants.R_OK | constants.W_OK);
  } catch {
    throw new KvmUnavailableError(`${device} exists but is not readable and writable by this user (add it to the kvm group)`);
  }
  return host;
}
