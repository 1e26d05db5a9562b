/**
 * Which backend runs this host's VMs: `kvm` when /dev/kvm opens for reading and writing,
 * else `tcg` when QEMU is installed. `tvm daemon --vm-backend` forces one; a forced backend
 * that cannot run here is an error at daemon start, not at the first container.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { TvmError } from '../../errors.js';
import { KVM_DEVICE, requireKvm } from '../../kvm/detect.js';
import { QEMU_BINARY } from './tcg-binary.js';
import type { VmBackendKind } from './types.js';

export function findOnPath(cmd: string, envPath = process.env.PATH ?? ''): string | undefined {
  for (const dir of envPath.split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

function kvmUsable(device: string): boolean {
  try {
    accessSync(device, constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

export interface BackendChoice {
  backend: VmBackendKind;
  /** why this one, for the daemon's log and `docker info` */
  reason: string;
}

/** The backend for `wanted` ('auto' picks); undefined when VM isolation cannot run here at all. */
export function chooseVmBackend(
  wanted: VmBackendKind | 'auto',
  o: { kvmDevice?: string; envPath?: string } = {},
): BackendChoice | undefined {
  const device = o.kvmDevice ?? KVM_DEVICE;
  if (wanted === 'kvm') {
    requireKvm(device);
    return { backend: 'kvm', reason: `${device} (forced)` };
  }
  const qemu = findOnPath(QEMU_BINARY, o.envPath);
  if (wanted === 'tcg') {
    if (!qemu) throw new TvmError('ERR_VM_BACKEND', `--vm-backend tcg needs ${QEMU_BINARY} (apt-get install qemu-system-x86)`, 500);
    return { backend: 'tcg', reason: `${qemu} (forced)` };
  }
  if (kvmUsable(device)) return { backend: 'kvm', reason: `${device} is usable` };
  if (qemu) return { backend: 'tcg', reason: `no usable ${device}: QEMU's software CPU (${qemu}) with tvm's devices over vhost-user` };
  return undefined;
}
