import { describe, it, expect } from 'vitest';
import { kvmRun, KvmExit, KvmSystemEvent } from '../../../src/kvm/structs.js';
import { dispatchIo, dispatchMmio, terminalExit, isDeviceExit, type IoStats } from '../../../src/vmm/vcpu-exit.js';
import { Bus } from '../../../src/vmm/devices/bus.js';
import { Serial, COM1_PORT } from '../../../src/vmm/devices/serial.js';
import { buildKernelCmdline } from '../../../src/vmm/kernel-args.js';
import { exitStatusOf } from '../../../src/vmm/main.js';
import { bootSregs, validateMachineConfig, virtioMmioArg } from '../../../src/vmm/machine.js';
import { kvmSregs } from '../../../src/kvm/structs.js';

const RUN_SIZE = 4096 * 3;
function run(v: Record<string, unknown>): Uint8Array {
  const b = new Uint8Array(RUN_SIZE);
  kvmRun.encode(b, v);
  return b;
}
const view = (b: Uint8Array) => new DataView(b.buffer);

describe('exit dispatch', () => {
  it('performs string PIO out to the serial port from the kvm_run data area', () => {
    const out: number[] = [];
    const pio = new Bus('pio');
    pio.insert(COM1_PORT, 8, 'serial', new Serial({ sink: (b) => out.push(...b), raiseIrq: () => {} }));
    const b = run({ exit_reason: KvmExit.IO, io: { direction: 1, size: 1, port: COM1_PORT, count: 3, data_offset: 4096n } });
    b.set(Buffer.from('abc'), 4096);
    dispatchIo(b, pio);
    expect(Buffer.from(out).toString()).toBe('abc');
  });
  it('answers PIO reads in place, all ones where nothing is', () => {
    const pio = new Bus('pio');
    pio.insert(COM1_PORT, 8, 'serial', new Serial({ sink: () => {}, raiseIrq: () => {} }));
    const stats: IoStats = { unhandledPio: 0, unhandledMmio: 0 };
    const b = run({ exit_reason: KvmExit.IO, io: { direction: 0, size: 1, port: COM1_PORT + 5, count: 1, data_offset: 4096n } });
    dispatchIo(b, pio, stats);
    expect(b[4096]).toBe(0x60); // LSR: THRE | TEMT
    const c = run({ exit_reason: KvmExit.IO, io: { direction: 0, size: 2, port: 0x70, count: 1, data_offset: 4096n } });
    dispatchIo(c, pio, stats);
    expect([c[4096], c[4097]]).toEqual([0xff, 0xff]);
    expect(stats.unhandledPio).toBe(1);
    const bad = run({ exit_reason: KvmExit.IO, io: { direction: 0, size: 4, port: 0x70, count: 3000, data_offset: 4096n } });
    expect(() => dispatchIo(bad, pio)).toThrow(RangeError);
  });
  it('performs MMIO reads and writes; unclaimed reads are zero', () => {
    const mmio = new Bus('mmio');
    const writes: number[][] = [];
    mmio.insert(0xd0000000, 0x1000, 'dev', { read: (off, d) => d.fill(off & 0xff), write: (off, d) => writes.push([off, ...d]) });
    const w = run({ exit_reason: KvmExit.MMIO, mmio: { phys_addr: 0xd0000010n, data: [1, 2, 3, 4], len: 4, is_write: 1 } });
    expect(dispatchMmio(w, mmio)).toBe(0xd0000010);
    expect(writes).toEqual([[0x10, 1, 2, 3, 4]]);
    const r = run({ exit_reason: KvmExit.MMIO, mmio: { phys_addr: 0xd0000020n, len: 2, is_write: 0 } });
    dispatchMmio(r, mmio);
    const d = kvmRun.offsetOf('mmio.data');
    expect([r[d], r[d + 1]]).toEqual([0x20, 0x20]);
    const u = run({ exit_reason: KvmExit.MMIO, mmio: { phys_addr: 0xe0000000n, data: [9, 9], len: 2, is_write: 0 } });
    dispatchMmio(u, mmio);
    expect([u[d], u[d + 1]]).toEqual([0, 0]);
  });
  it('classifies terminal exits with KVM details', () => {
    expect(isDeviceExit(KvmExit.IO) && isDeviceExit(KvmExit.MMIO) && !isDeviceExit(KvmExit.HLT)).toBe(true);
    expect(terminalExit(view(run({ exit_reason: KvmExit.HLT })))).toEqual({ kind: 'halted' });
    expect(terminalExit(view(run({ exit_reason: KvmExit.SHUTDOWN })))!.kind).toBe('shutdown');
    expect(
      terminalExit(view(run({ exit_reason: KvmExit.SYSTEM_EVENT, system_event: { type: KvmSystemEvent.RESET, ndata: 0 } })))!.kind,
    ).toBe('rebooted');
    const ie = terminalExit(
      view(run({ exit_reason: KvmExit.INTERNAL_ERROR, internal: { suberror: 1, ndata: 2, data: [0xf0n, 0x1234n] } })),
    );
    expect(ie).toMatchObject({ kind: 'internal-error', suberror: 1, data: [0xf0n, 0x1234n] });
    expect((ie as { detail: string }).detail).toBe('KVM internal error. Suberror: 1 (emulation failure) data: 0xf0 0x1234');
    expect(
      (
        terminalExit(view(run({ exit_reason: KvmExit.FAIL_ENTRY, fail_entry: { hardware_entry_failure_reason: 0x21n, cpu: 1 } }))) as {
          detail: string;
        }
      ).detail,
    ).toMatch(/0x21 on cpu 1/);
    expect(terminalExit(view(run({ exit_reason: KvmExit.IO })))).toBeUndefined();
    expect(terminalExit(view(run({ exit_reason: KvmExit.INTR })))).toBeUndefined();
    expect(terminalExit(view(run({ exit_reason: 99 })))!.kind).toBe('unexpected-exit');
  });
});

describe('machine pieces without KVM', () => {
  it('adds default kernel arguments only where the user gave none', () => {
    expect(buildKernelCmdline('root=/dev/vda', 'hardware', 2048).text).toBe(
      'console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd root=/dev/vda',
    );
    const pvm = buildKernelCmdline('console=hvc0 reboot=t clearcpuid=x', 'pvm', 2048).text;
    expect(pvm).toBe('panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd noxsave console=hvc0 reboot=t clearcpuid=x');
    expect(() => buildKernelCmdline('x'.repeat(2100), 'hardware', 2048)).toThrow(/at most 2048/);
  });
  it('maps guest ends to exit statuses', () => {
    expect(exitStatusOf({ kind: 'rebooted', detail: '', exits: 0 })).toBe(0);
    expect(exitStatusOf({ kind: 'internal-error', detail: '', exits: 0 })).toBe(3);
  });
  it('builds long-mode and PVH register state', () => {
    const base = kvmSregs.decode(kvmSregs.alloc());
    const l = bootSregs(base, 'long', 0x9000);
    expect([l.cr0 & 0x80000001n, l.cr3, l.cr4 & 0x20n, l.efer & 0x500n]).toEqual([0x80000001n, 0x9000n, 0x20n, 0x500n]);
    expect([l.cs.selector, l.cs.l, l.ss.selector, l.tr.selector, l.gdt.base, l.gdt.limit]).toEqual([0x10, 1, 0x18, 0x20, 0x500n, 47]);
    const p = bootSregs(base, 'protected', 0);
    expect([p.cr0 & 0x80000001n, p.efer, p.cs.db, p.cs.l]).toEqual([1n, 0n, 1, 0]);
  });
  it('declares virtio-mmio devices on the kernel command line', () => {
    expect(virtioMmioArg(0xd0000000, 0x1000, 5)).toBe('virtio_mmio.device=4K@0xd0000000:5');
    expect(virtioMmioArg(0xd0001000, 0x200, 6)).toBe('virtio_mmio.device=512@0xd0001000:6');
  });
  it('validates the configuration', () => {
    expect(() => validateMachineConfig({ memMiB: 16, cpus: 1 })).toThrow(/--mem 16/);
    expect(() => validateMachineConfig({ memMiB: 64, cpus: 0 })).toThrow(/--cpus 0/);
    expect(() => validateMachineConfig({ memMiB: 64, cpus: 255 })).toThrow(/--cpus 255/);
  });
});
