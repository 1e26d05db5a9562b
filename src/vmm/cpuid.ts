/**
 * The CPUID each vCPU sees, derived from KVM_GET_SUPPORTED_CPUID: topology (APIC ID per vCPU,
 * one thread per core, all cores in one package: leaves 1, 4, 0xb, 0x1f, 0x80000008), the
 * hypervisor bit, and on PVM-backed KVM the features its CPL-0 emulator cannot run hidden
 * (docs/platform-kvm.md point 1), as Firecracker's CPU templates do. Hardware KVM keeps all.
 * Bit names are the SDM's.
 */
import type { KvmCpuidEntry2 } from '../kvm/structs.js';
import { KVM_CPUID_FLAG_SIGNIFCANT_INDEX } from '../kvm/structs.js';
import type { KvmFlavor } from '../kvm/detect.js';
import { InvalidParameterError } from '../errors.js';

const bit = (n: number) => (1 << n) >>> 0;

/** CPUID.01H:ECX */
export const Leaf1Ecx = {
  FMA: bit(12),
  X2APIC: bit(21),
  POPCNT: bit(23),
  TSC_DEADLINE: bit(24),
  XSAVE: bit(26),
  OSXSAVE: bit(27),
  AVX: bit(28),
  F16C: bit(29),
  HYPERVISOR: bit(31),
} as const;
/** CPUID.01H:EDX */
export const Leaf1Edx = { HTT: bit(28) } as const;
/** CPUID.(EAX=07H,ECX=0):EBX */
export const Leaf7Ebx = { AVX2: bit(5), SMEP: bit(7), AVX512F: bit(16), SMAP: bit(20) } as const;
/** CPUID.(EAX=07H,ECX=0):EDX */
export const Leaf7Edx = { ARCH_CAPABILITIES: bit(29) } as const;

export const LEAF_FEATURES = 0x1;
export const LEAF_CACHE_PARAMS = 0x4;
export const LEAF_EXT_FEATURES = 0x7;
export const LEAF_EXT_TOPOLOGY = 0xb;
export const LEAF_XSAVE = 0xd;
export const LEAF_V2_EXT_TOPOLOGY = 0x1f;
export const LEAF_AMD_ADDR_SIZES = 0x80000008;

/** Topology level types in leaf 0xb/0x1f ECX[15:8]. */
const LEVEL_INVALID = 0;
const LEVEL_SMT = 1;
const LEVEL_CORE = 2;

export interface CpuidTemplateOptions {
  cpus: number;
  /** this vCPU's index = its APIC ID */
  cpuIndex: number;
  flavor: KvmFlavor;
}

/** Bits needed to number `n` items (the x2APIC ID shift of a topology level). */
export function idBits(n: number): number {
  return n <= 1 ? 0 : Math.ceil(Math.log2(n));
}

export function buildCpuid(supported: readonly KvmCpuidEntry2[], opts: CpuidTemplateOptions): KvmCpuidEntry2[] {
  const { cpus, cpuIndex, flavor } = opts;
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > 254) throw new InvalidParameterError(`cpuid: ${cpus} vCPUs`);
  if (!Number.isInteger(cpuIndex) || cpuIndex < 0 || cpuIndex >= cpus)
    throw new InvalidParameterError(`cpuid: vCPU index ${cpuIndex} of ${cpus}`);
  const apicId = cpuIndex;
  const out: KvmCpuidEntry2[] = [];
  const hasLeaf = (fn: number) => supported.some((e) => e.function === fn);

  for (const src of supported) {
    const e = { ...src };
    switch (e.function) {
      case LEAF_FEATURES:
        e.ebx = ((e.ebx & 0x0000ffff) | ((cpus & 0xff) << 16) | ((apicId & 0xff) << 24)) >>> 0;
        e.ecx = (e.ecx | Leaf1Ecx.HYPERVISOR) >>> 0;
        e.edx = cpus > 1 ? (e.edx | Leaf1Edx.HTT) >>> 0 : (e.edx & ~Leaf1Edx.HTT) >>> 0;
        if (flavor === 'pvm') e.ecx = (e.ecx & ~(Leaf1Ecx.XSAVE | Leaf1Ecx.OSXSAVE | Leaf1Ecx.POPCNT)) >>> 0;
        break;
      case LEAF_CACHE_PARAMS: {
        const level = (e.eax >> 5) & 0x7;
        const sharing = level >= 3 ? cpus - 1 : 0;
        e.eax = ((e.eax & 0x3fff) | ((sharing & 0xfff) << 14) | ((Math.min(cpus - 1, 63) & 0x3f) << 26)) >>> 0;
        break;
      }
      case LEAF_EXT_FEATURES:
        if (e.index === 0 && flavor === 'pvm') {
          e.ebx = (e.ebx & ~(Leaf7Ebx.SMEP | Leaf7Ebx.SMAP)) >>> 0;
          e.edx = (e.edx & ~Leaf7Edx.ARCH_CAPABILITIES) >>> 0;
        }
        break;
      case LEAF_EXT_TOPOLOGY:
      case LEAF_V2_EXT_TOPOLOGY:
        continue; // regenerated below
      case LEAF_XSAVE:
        if (flavor === 'pvm') continue; // no XSAVE: no state components to describe
        break;
      case LEAF_AMD_ADDR_SIZES:
        e.ecx = ((e.ecx & ~0xf0ff) | ((cpus - 1) & 0xff) | (idBits(cpus) << 12)) >>> 0;
        break;
    }
    out.push(e);
  }
  for (const fn of [LEAF_EXT_TOPOLOGY, LEAF_V2_EXT_TOPOLOGY]) {
    if (fn === LEAF_V2_EXT_TOPOLOGY && !hasLeaf(fn)) continue;
    const flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
    out.push({ function: fn, index: 0, flags, eax: 0, ebx: 1, ecx: (LEVEL_SMT << 8) | 0, edx: apicId });
    out.push({ function: fn, index: 1, flags, eax: idBits(cpus), ebx: cpus, ecx: (LEVEL_CORE << 8) | 1, edx: apicId });
    out.push({ function: fn, index: 2, flags, eax: 0, ebx: 0, ecx: (LEVEL_INVALID << 8) | 2, edx: apicId });
  }
  return out;
}

/** Kernel arguments that match the PVM template for kernels that probe features themselves. */
export const PVM_KERNEL_ARGS = 'noxsave clearcpuid=popcnt,smap,smep';
