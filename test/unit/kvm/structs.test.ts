import { describe, it, expect } from 'vitest';
import { ALL_LAYOUTS, kvmRegs, kvmSregs, kvmRun, kvmVcpuEvents, kvmIoeventfd } from '../../../src/kvm/structs.js';
import { Layout, sizeOfType } from '../../../src/kvm/layout.js';
import { FormatError } from '../../../src/errors.js';
import { runC, parsePairs } from '../../fixtures/guests/cc.js';

/** Every member path of a layout, recursing into nested (anonymous or named) structs. */
function paths(l: Layout<object>, prefix = ''): string[] {
  const out: string[] = [];
  for (const [name, f] of Object.entries(l.fields)) {
    const p = prefix + name;
    out.push(p);
    if (f.type instanceof Layout) out.push(...paths(f.type as Layout<object>, p + '.'));
  }
  return out;
}

describe('KVM struct layouts match gcc sizeof/offsetof', () => {
  const lines: string[] = [];
  for (const l of ALL_LAYOUTS) {
    lines.push(`printf("${l.cName}|sizeof %zu\\n", sizeof(${l.cName}));`);
    for (const p of paths(l)) lines.push(`printf("${l.cName}|${p} %zu\\n", offsetof(${l.cName}, ${p}));`);
    for (const [name, f] of Object.entries(l.fields)) {
      lines.push(`printf("${l.cName}|${name}#size %zu\\n", sizeof(((${l.cName}*)0)->${name}));`);
      void f;
    }
  }
  const src = `#include <stdio.h>\n#include <stddef.h>\n#include <linux/kvm.h>\nint main(void){\n${lines.join('\n')}\nreturn 0;}\n`;
  const got = new Map([...parsePairs(runC(src).replaceAll('struct ', 'struct_'))]);
  const key = (l: Layout<object>, s: string) => `${l.cName!.replace('struct ', 'struct_')}|${s}`;

  it.each(ALL_LAYOUTS.map((l) => [l.cName, l] as const))('%s', (_n, l) => {
    expect(l.size).toBe(got.get(key(l, 'sizeof')));
    for (const p of paths(l)) expect([p, l.offsetOf(p)]).toEqual([p, got.get(key(l, p))]);
    // Variable-length tails (entries[], indices[], sigset[]) are zero-sized in C and absent here.
    for (const [name, f] of Object.entries(l.fields)) expect([name, sizeOfType(f.type)]).toEqual([name, got.get(key(l, `${name}#size`))]);
  });
});

describe('layout encode/decode', () => {
  it('round-trips registers as bigint', () => {
    const b = kvmRegs.pack({ rip: 0xffffffff81000000n, rsi: 0x7000n, rflags: 2n });
    const r = kvmRegs.decode(b);
    expect(r.rip).toBe(0xffffffff81000000n);
    expect(r.rsi).toBe(0x7000n);
    expect(r.rax).toBe(0n);
  });
  it('encodes nested segments at their offsets', () => {
    const b = kvmSregs.alloc();
    kvmSregs.encode(b, {
      cs: { base: 0n, limit: 0xffffffff, selector: 0x10, type: 11, present: 1, dpl: 3, db: 0, s: 1, l: 1, g: 1, avl: 0, unusable: 0 },
    });
    expect(b[kvmSregs.offsetOf('cs.dpl')]).toBe(3);
    expect(b[kvmSregs.offsetOf('cs.l')]).toBe(1);
    expect(kvmSregs.decode(b).cs.selector).toBe(0x10);
  });
  it('decodes the io exit from kvm_run', () => {
    const b = new Uint8Array(kvmRun.size);
    kvmRun.encode(b, { exit_reason: 2, io: { direction: 1, size: 1, port: 0x3f8, count: 1, data_offset: 4096n } });
    const r = kvmRun.decode(b) as { exit_reason: number; io: { port: number; data_offset: bigint } };
    expect(r.exit_reason).toBe(2);
    expect(r.io.port).toBe(0x3f8);
    expect(r.io.data_offset).toBe(4096n);
  });
  it('partial encode leaves other fields', () => {
    const b = kvmVcpuEvents.alloc();
    kvmVcpuEvents.encode(b, { exception: { injected: 1, nr: 13, has_error_code: 1, pending: 0, error_code: 0 } });
    kvmVcpuEvents.encode(b, { flags: 4 });
    const e = kvmVcpuEvents.decode(b);
    expect(e.exception.nr).toBe(13);
    expect(e.flags).toBe(4);
  });
  it('rejects a buffer too small and non-integers', () => {
    expect(() => kvmRegs.decode(new Uint8Array(10))).toThrow(FormatError);
    expect(() => kvmIoeventfd.pack({ len: 1.5 })).toThrow(FormatError);
    expect(() => kvmRegs.pack({ rip: 'x' as never })).toThrow(/kvm_regs.rip/);
  });
});
