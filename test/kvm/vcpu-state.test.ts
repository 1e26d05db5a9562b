/**
 * Snapshot/restore of vCPU state on real KVM (as tools/pvm-probes/restore.c): at every exit
 * the vCPU state and guest memory are saved, the VM is destroyed, and a brand-new VM resumes
 * from the record (after a JSON round trip). Needs /dev/kvm.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { Kvm } from '../../src/kvm/kvm.js';
import type { Vm } from '../../src/kvm/vm.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import { KvmExit, kvmRun } from '../../src/kvm/structs.js';
import { GuestMemory } from '../../src/vmm/memory.js';
import { MiB, KVM_TSS_ADDR } from '../../src/vmm/layout.js';
import { saveVcpuState, restoreVcpuState, type VcpuStateRecord } from '../../src/vmm/vcpu-state.js';
import { requireKvmDevice, countdownGuest, REAL_LOAD } from '../fixtures/guests/guests.js';

beforeAll(() => requireKvmDevice());

describe('vCPU state save/restore on KVM', () => {
  it('resumes a guest in a new VM at every exit and it finishes', () => {
    const kvm = Kvm.open();
    const cpuid = kvm.supportedCpuid();
    const msrIndices = kvm.msrIndexList();
    const make = (): { vm: Vm; vcpu: Vcpu; mem: GuestMemory } => {
      const vm = kvm.createVm();
      vm.setTssAddr(KVM_TSS_ADDR);
      vm.createIrqchip();
      const mem = GuestMemory.create(16 * MiB);
      vm.setUserMemoryRegion({
        slot: 0,
        flags: 0,
        guest_phys_addr: 0n,
        memory_size: BigInt(mem.size),
        userspace_addr: BigInt(mem.hostAddress),
      });
      const vcpu = vm.createVcpu(0);
      vcpu.setCpuid2(cpuid);
      return { vm, vcpu, mem };
    };
    const destroy = (h: { vm: Vm; vcpu: Vcpu; mem: GuestMemory }) => {
      h.vcpu.close();
      h.vm.close();
      h.mem.close();
    };
    let h = make();
    try {
      h.mem.slice(REAL_LOAD, 64).set(countdownGuest());
      const s = h.vcpu.getSregs();
      s.cs = { ...s.cs, base: 0n, selector: 0 };
      h.vcpu.setSregs(s);
      h.vcpu.setRegs({ rip: BigInt(REAL_LOAD), rflags: 2n });
      const seen: number[] = [];
      const refusedAll = new Set<number>();
      for (let n = 0; n < 20; n++) {
        expect(h.vcpu.runOnce()).toBe(KvmExit.IO);
        const io = (kvmRun.decode(h.vcpu.run) as { io: { port: number; data_offset: bigint } }).io;
        const value = h.vcpu.runBytes[Number(io.data_offset)]!;
        if (io.port === 0xf1) {
          expect(value).toBe(0x99);
          break;
        }
        seen.push(value);
        const rec = JSON.parse(JSON.stringify(saveVcpuState(h.vcpu, msrIndices, { xcrs: false }))) as VcpuStateRecord;
        const ram = h.mem.slice(0, h.mem.size).slice();
        destroy(h);
        h = make();
        h.mem.slice(0, ram.length).set(ram);
        for (const i of restoreVcpuState(h.vcpu, rec)) refusedAll.add(i);
      }
      expect(seen).toEqual([5, 4, 3, 2, 1]);
      // Refusals are allowed (PVM refuses MSR_KVM_ASYNC_PF_INT = 0) but never the basics.
      expect([...refusedAll].filter((i) => i === 0x10 || i === 0xc0000080)).toEqual([]);
    } finally {
      destroy(h);
      kvm.close();
    }
  });
});
