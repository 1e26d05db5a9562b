import { describe, it, expect } from 'vitest';
import { buildCpuid, idBits, Leaf1Ecx, Leaf1Edx, Leaf7Ebx, Leaf7Edx } from '../../../src/vmm/cpuid.js';
import { bootMsrs, writeMsrsEach, MSR_MTRR_DEF_TYPE, MSR_KVM_ASYNC_PF_INT } from '../../../src/vmm/msrs.js';
import type { KvmCpuidEntry2 } from '../../../src/kvm/structs.js';

// Shaped like KVM_GET_SUPPORTED_CPUID output on an Intel host (representative values, abridged to
// the leaves the template touches).
const RECORDED: KvmCpuidEntry2[] = [
  { function: 0x0, index: 0, flags: 0, eax: 0x1f, ebx: 0x756e6547, ecx: 0x6c65746e, edx: 0x49656e69 },
  { function: 0x1, index: 0, flags: 0, eax: 0x806ec, ebx: 0x00000800, ecx: 0xf7fa3223, edx: 0x0789fbff },
  { function: 0x4, index: 0, flags: 1, eax: 0x1c004121, ebx: 0x01c0003f, ecx: 0x3f, edx: 0 },
  { function: 0x4, index: 3, flags: 1, eax: 0x1c03c163, ebx: 0x03c0003f, ecx: 0x1fff, edx: 6 },
  { function: 0x7, index: 0, flags: 1, eax: 0, ebx: 0x029c6fbf, ecx: 0x40000000, edx: 0xbc000400 },
  { function: 0xb, index: 0, flags: 1, eax: 1, ebx: 2, ecx: 0x100, edx: 3 },
  { function: 0xd, index: 0, flags: 1, eax: 0x7, ebx: 0x340, ecx: 0x340, edx: 0 },
  { function: 0x1f, index: 0, flags: 1, eax: 1, ebx: 2, ecx: 0x100, edx: 3 },
  { function: 0x40000000, index: 0, flags: 0, eax: 0x40000001, ebx: 0x4b4d564b, ecx: 0x564b4d56, edx: 0x4d },
  { function: 0x80000008, index: 0, flags: 0, eax: 0x3027, ebx: 0, ecx: 0, edx: 0 },
];
const leaf = (es: KvmCpuidEntry2[], fn: number, index = 0) => es.find((e) => e.function === fn && e.index === index)!;

describe('CPUID template', () => {
  it('sets APIC ID, logical count, HTT and the hypervisor bit per vCPU', () => {
    const e = buildCpuid(RECORDED, { cpus: 4, cpuIndex: 2, flavor: 'hardware' });
    const l1 = leaf(e, 1);
    expect(l1.ebx >>> 24).toBe(2);
    expect((l1.ebx >> 16) & 0xff).toBe(4);
    expect(l1.ebx & 0xffff).toBe(0x0800);
    expect(l1.edx & Leaf1Edx.HTT).toBeTruthy();
    expect(l1.ecx & Leaf1Ecx.HYPERVISOR).toBeTruthy();
    expect(leaf(buildCpuid(RECORDED, { cpus: 1, cpuIndex: 0, flavor: 'hardware' }), 1).edx & Leaf1Edx.HTT).toBe(0);
  });
  it('keeps every feature on hardware KVM', () => {
    const e = buildCpuid(RECORDED, { cpus: 1, cpuIndex: 0, flavor: 'hardware' });
    expect(leaf(e, 1).ecx & Leaf1Ecx.XSAVE).toBeTruthy();
    expect(leaf(e, 1).ecx & Leaf1Ecx.POPCNT).toBeTruthy();
    expect(leaf(e, 7).ebx & Leaf7Ebx.SMEP).toBeTruthy();
    expect(leaf(e, 7).ebx & Leaf7Ebx.SMAP).toBeTruthy();
    expect(leaf(e, 7).edx & Leaf7Edx.ARCH_CAPABILITIES).toBeTruthy();
    expect(e.some((x) => x.function === 0xd)).toBe(true);
  });
  it('hides XSAVE, POPCNT, SMEP, SMAP and arch-capabilities on PVM', () => {
    const e = buildCpuid(RECORDED, { cpus: 2, cpuIndex: 0, flavor: 'pvm' });
    const l1 = leaf(e, 1);
    expect(l1.ecx & (Leaf1Ecx.XSAVE | Leaf1Ecx.OSXSAVE | Leaf1Ecx.POPCNT)).toBe(0);
    expect(l1.ecx & Leaf1Ecx.HYPERVISOR).toBeTruthy();
    expect(leaf(e, 7).ebx & (Leaf7Ebx.SMEP | Leaf7Ebx.SMAP)).toBe(0);
    expect(leaf(e, 7).ebx & Leaf7Ebx.AVX2).toBeTruthy();
    expect(leaf(e, 7).edx & Leaf7Edx.ARCH_CAPABILITIES).toBe(0);
    expect(e.some((x) => x.function === 0xd)).toBe(false);
    expect(RECORDED[1]!.ecx & Leaf1Ecx.XSAVE).toBeTruthy(); // input untouched
  });
  it('describes one package of N single-thread cores in leaves 4, 0xb, 0x1f, 0x80000008', () => {
    const e = buildCpuid(RECORDED, { cpus: 3, cpuIndex: 1, flavor: 'hardware' });
    expect(leaf(e, 4, 0).eax >>> 26).toBe(2);
    expect((leaf(e, 4, 0).eax >> 14) & 0xfff).toBe(0);
    expect((leaf(e, 4, 3).eax >> 14) & 0xfff).toBe(2);
    for (const fn of [0xb, 0x1f]) {
      expect(e.filter((x) => x.function === fn).map((x) => [x.index, x.eax, x.ebx, x.ecx, x.edx])).toEqual([
        [0, 0, 1, 0x100, 1],
        [1, 2, 3, 0x201, 1],
        [2, 0, 0, 2, 1],
      ]);
    }
    expect(leaf(e, 0x80000008).ecx).toBe(2 | (2 << 12));
    expect(idBits(1)).toBe(0);
    expect(idBits(4)).toBe(2);
    expect(idBits(5)).toBe(3);
  });
  it('rejects bad topology', () => {
    expect(() => buildCpuid(RECORDED, { cpus: 2, cpuIndex: 2, flavor: 'hardware' })).toThrow(/index 2 of 2/);
    expect(() => buildCpuid(RECORDED, { cpus: 0, cpuIndex: 0, flavor: 'hardware' })).toThrow(/0 vCPUs/);
  });
});

describe('boot MSRs', () => {
  it('enable MTRRs with write-back default', () => {
    expect(bootMsrs().find((m) => m.index === MSR_MTRR_DEF_TYPE)!.data).toBe(0x806n);
  });
  it('are written one at a time and refusals are reported', () => {
    const written: number[] = [];
    const refused = writeMsrsEach(
      (es) => {
        if (es[0]!.index === MSR_KVM_ASYNC_PF_INT) return 0;
        written.push(es[0]!.index);
        return 1;
      },
      [
        { index: 0x10, data: 0n },
        { index: MSR_KVM_ASYNC_PF_INT, data: 0n },
        { index: 0x1a0, data: 1n },
      ],
    );
    expect(written).toEqual([0x10, 0x1a0]);
    expect(refused).toEqual([{ index: MSR_KVM_ASYNC_PF_INT, data: 0n }]);
  });
});
