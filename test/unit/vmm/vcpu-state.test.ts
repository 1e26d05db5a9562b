import { describe, it, expect } from 'vitest';
import {
  saveVcpuState,
  restoreVcpuState,
  validateVcpuState,
  type StatefulVcpu,
  type VcpuStateRecord,
} from '../../../src/vmm/vcpu-state.js';
import { kvmRegs, kvmSregs, kvmFpu, kvmXcrs, kvmVcpuEvents, type KvmMsrEntry } from '../../../src/kvm/structs.js';
import { FormatError } from '../../../src/errors.js';

/** A vCPU that keeps what it is given, logs calls, and refuses one MSR. */
function fakeVcpu(id: number, refuse = -1) {
  const calls: string[] = [];
  const st = {
    regs: kvmRegs.decode(kvmRegs.alloc()),
    sregs: kvmSregs.decode(kvmSregs.alloc()),
    fpu: kvmFpu.decode(kvmFpu.alloc()),
    xcrs: kvmXcrs.decode(kvmXcrs.alloc()),
    lapic: new Uint8Array(1024) as Uint8Array,
    events: kvmVcpuEvents.decode(kvmVcpuEvents.alloc()),
    mp: 0,
    msrs: new Map<number, bigint>(),
  };
  const v: StatefulVcpu = {
    id,
    getRegs: () => st.regs,
    setRegs: (r) => {
      calls.push('regs');
      st.regs = r;
    },
    getSregs: () => st.sregs,
    setSregs: (s) => {
      calls.push('sregs');
      st.sregs = s;
    },
    getFpu: () => st.fpu,
    setFpu: (f) => {
      calls.push('fpu');
      st.fpu = f;
    },
    getXcrs: () => st.xcrs,
    setXcrs: (x) => {
      calls.push('xcrs');
      st.xcrs = x;
    },
    getLapic: () => st.lapic,
    setLapic: (l) => {
      calls.push('lapic');
      st.lapic = l;
    },
    getVcpuEvents: () => st.events,
    setVcpuEvents: (e) => {
      calls.push('events');
      st.events = e;
    },
    getMpState: () => st.mp,
    setMpState: (m) => {
      calls.push('mp');
      st.mp = m;
    },
    getMsrs: (idx: number[]) => idx.filter((i) => st.msrs.has(i)).map((i) => ({ index: i, data: st.msrs.get(i)! })),
    setMsrs: (e: KvmMsrEntry[]) => {
      calls.push(`msr ${e[0]!.index.toString(16)}`);
      if (e[0]!.index === refuse) return 0;
      st.msrs.set(e[0]!.index, e[0]!.data);
      return 1;
    },
  };
  return { v, st, calls };
}

describe('vCPU state', () => {
  it('round-trips through JSON into a new vCPU, events last, refused MSRs reported', () => {
    const a = fakeVcpu(0);
    a.st.regs.rip = 0xffffffff81000123n;
    a.st.regs.rflags = 0x246n;
    a.st.sregs.cs = { ...a.st.sregs.cs, selector: 0x33, dpl: 3, l: 1 };
    a.st.sregs.cr3 = 0x1234000n;
    a.st.fpu.mxcsr = 0x1f80;
    a.st.lapic[0x20] = 7;
    a.st.events.exception = { injected: 1, nr: 14, has_error_code: 1, pending: 0, error_code: 6 };
    a.st.mp = 3;
    a.st.msrs.set(0xc0000082, 0xffffffff81800000n);
    a.st.msrs.set(0x4b564d06, 0n);
    const rec = saveVcpuState(a.v, [0xc0000082, 0x4b564d06, 0x999], { xcrs: true });
    expect(rec.msrs).toEqual([
      [0xc0000082, 'ffffffff81800000'],
      [0x4b564d06, '0'],
    ]);
    const json = JSON.parse(JSON.stringify(rec)) as VcpuStateRecord;
    const b = fakeVcpu(0, 0x4b564d06);
    expect(restoreVcpuState(b.v, json)).toEqual([0x4b564d06]);
    expect(b.calls).toEqual(['mp', 'regs', 'sregs', 'fpu', 'xcrs', 'lapic', 'msr c0000082', 'msr 4b564d06', 'events']);
    expect(b.st.regs.rip).toBe(0xffffffff81000123n);
    expect(b.st.sregs.cs).toMatchObject({ selector: 0x33, dpl: 3, l: 1 });
    expect(b.st.sregs.cr3).toBe(0x1234000n);
    expect(b.st.fpu.mxcsr).toBe(0x1f80);
    expect(b.st.lapic[0x20]).toBe(7);
    expect(b.st.events.exception).toEqual({ injected: 1, nr: 14, has_error_code: 1, pending: 0, error_code: 6 });
    expect(b.st.mp).toBe(3);
    expect(b.st.msrs.get(0xc0000082)).toBe(0xffffffff81800000n);
  });
  it('rejects other versions, truncated pieces and bad MSR entries, touching nothing', () => {
    const rec = saveVcpuState(fakeVcpu(1).v, [], { xcrs: false });
    expect(rec.xcrs).toBeUndefined();
    const b = fakeVcpu(1);
    expect(() => restoreVcpuState(b.v, { ...rec, version: 2 })).toThrow(/version 2/);
    expect(() => restoreVcpuState(b.v, { ...rec, regs: Buffer.alloc(100).toString('base64') })).toThrow(/regs is 100 bytes/);
    expect(() => validateVcpuState({ ...rec, msrs: [[1, 'xyz']] })).toThrow(FormatError);
    expect(b.calls).toEqual([]);
  });
});
