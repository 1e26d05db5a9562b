/**
 * The MSRs a VMM sets before entering Linux (what a BIOS would leave): SYSENTER/SYSCALL MSRs
 * cleared, TSC at 0, fast strings enabled, MTRRs enabled with write-back default (else Linux
 * maps all of RAM uncached). Index names from the SDM (Linux's msr-index.h).
 */
import type { KvmMsrEntry } from '../kvm/structs.js';

export const MSR_IA32_TSC = 0x10;
export const MSR_IA32_APICBASE = 0x1b;
export const MSR_IA32_SYSENTER_CS = 0x174;
export const MSR_IA32_SYSENTER_ESP = 0x175;
export const MSR_IA32_SYSENTER_EIP = 0x176;
export const MSR_IA32_MISC_ENABLE = 0x1a0;
export const MSR_MTRR_DEF_TYPE = 0x2ff;
export const MSR_IA32_ARCH_CAPABILITIES = 0x10a;
export const MSR_STAR = 0xc0000081;
export const MSR_LSTAR = 0xc0000082;
export const MSR_CSTAR = 0xc0000083;
export const MSR_SYSCALL_MASK = 0xc0000084;
export const MSR_KERNEL_GS_BASE = 0xc0000102;
export const MSR_KVM_ASYNC_PF_INT = 0x4b564d06;

export const MISC_ENABLE_FAST_STRING = 1n << 0n;
export const MTRR_DEF_TYPE_E = 1n << 11n;
export const MTRR_TYPE_WRBACK = 6n;

export function bootMsrs(): KvmMsrEntry[] {
  return [
    { index: MSR_IA32_SYSENTER_CS, data: 0n },
    { index: MSR_IA32_SYSENTER_ESP, data: 0n },
    { index: MSR_IA32_SYSENTER_EIP, data: 0n },
    { index: MSR_STAR, data: 0n },
    { index: MSR_CSTAR, data: 0n },
    { index: MSR_KERNEL_GS_BASE, data: 0n },
    { index: MSR_SYSCALL_MASK, data: 0n },
    { index: MSR_LSTAR, data: 0n },
    { index: MSR_IA32_TSC, data: 0n },
    { index: MSR_IA32_MISC_ENABLE, data: MISC_ENABLE_FAST_STRING },
    { index: MSR_MTRR_DEF_TYPE, data: MTRR_DEF_TYPE_E | MTRR_TYPE_WRBACK },
  ];
}

/**
 * KVM_SET_MSRS stops at the first MSR it refuses (PVM refuses some: docs/platform-kvm.md
 * point 6), so write them one at a time and report which were refused.
 */
export function writeMsrsEach(setMsrs: (e: KvmMsrEntry[]) => number, entries: readonly KvmMsrEntry[]): KvmMsrEntry[] {
  const refused: KvmMsrEntry[] = [];
  for (const e of entries) if (setMsrs([e]) !== 1) refused.push(e);
  return refused;
}
