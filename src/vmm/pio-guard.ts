/**
 * Port I/O from guest user mode must not reach a device. On hardware a CPL-3 `in`/`out`
 * without I/O permission faults inside the guest; PVM-backed KVM delivers it to us as an
 * ordinary KVM_EXIT_IO (docs/platform-kvm.md point 4). So on every PIO exit the vCPU's CPL
 * is checked and a CPL-3 access is answered with #GP(0) instead of the access, which the
 * guest kernel turns into SIGSEGV as hardware would. (A guest process granted ports with
 * ioperm/iopl is refused too: tvm's guests never grant them.)
 */
import type { KvmSregs, KvmVcpuEvents } from '../kvm/structs.js';

export const GP_VECTOR = 13;
const CR0_PE = 1n;

export interface GuardedVcpu {
  getSregs(): KvmSregs;
  getVcpuEvents(): KvmVcpuEvents;
  setVcpuEvents(e: Partial<KvmVcpuEvents>): void;
}

/** CPL from segment state: 0 in real mode, else the stricter of CS.DPL and CS.RPL. */
export function currentPrivilegeLevel(s: Pick<KvmSregs, 'cr0' | 'cs'>): number {
  if (!(s.cr0 & CR0_PE)) return 0;
  return Math.max(s.cs.dpl & 3, s.cs.selector & 3);
}

/** Queues #GP(0) for delivery at the next KVM_RUN (events read-modify-write, flags 0 so NMI/SIPI/SMM state is left alone). */
export function injectGeneralProtection(vcpu: GuardedVcpu): void {
  const ev = vcpu.getVcpuEvents();
  ev.exception = { injected: 1, nr: GP_VECTOR, has_error_code: 1, pending: 0, error_code: 0 };
  ev.flags = 0;
  vcpu.setVcpuEvents(ev);
}

export type PioVerdict = 'allow' | 'gp-injected';

/** Call on every KVM_EXIT_IO before dispatching it. */
export function guardPio(vcpu: GuardedVcpu): PioVerdict {
  if (currentPrivilegeLevel(vcpu.getSregs()) < 3) return 'allow';
  injectGeneralProtection(vcpu);
  return 'gp-injected';
}
