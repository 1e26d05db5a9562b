import { describe, it, expect } from 'vitest';
import { Bus, type BusDevice } from '../../../src/vmm/devices/bus.js';
import * as S from '../../../src/vmm/devices/serial.js';
import { Serial } from '../../../src/vmm/devices/serial.js';
import * as K from '../../../src/vmm/devices/i8042.js';
import { I8042 } from '../../../src/vmm/devices/i8042.js';
import { guardPio, currentPrivilegeLevel, GP_VECTOR } from '../../../src/vmm/pio-guard.js';
import { kvmSregs, kvmVcpuEvents, type KvmVcpuEvents } from '../../../src/kvm/structs.js';
import { ConflictError } from '../../../src/errors.js';

class Recorder implements BusDevice {
  log: string[] = [];
  read(off: number, d: Uint8Array) {
    this.log.push(`r${off}/${d.length}`);
    d.fill(0xab);
  }
  write(off: number, d: Uint8Array) {
    this.log.push(`w${off}=${[...d].join(',')}`);
  }
}

describe('bus', () => {
  it('dispatches by range with offsets relative to the base', () => {
    const bus = new Bus('pio');
    const a = new Recorder();
    const b = new Recorder();
    bus.insert(0x3f8, 8, 'serial', a);
    bus.insert(0x60, 5, 'i8042', b);
    const d = new Uint8Array(1);
    expect(bus.read(0x3fd, d)).toBe(true);
    expect(d[0]).toBe(0xab);
    expect(bus.write(0x64, Uint8Array.of(0xfe))).toBe(true);
    expect(a.log).toEqual(['r5/1']);
    expect(b.log).toEqual(['w4=254']);
    expect(bus.read(0x80, d)).toBe(false);
    expect(bus.read(0x3ff, new Uint8Array(2))).toBe(false); // straddles the end
    expect(bus.devices.map((r) => r.name)).toEqual(['i8042', 'serial']);
  });
  it('rejects overlaps and bad ranges', () => {
    const bus = new Bus('mmio');
    bus.insert(0xd0000000, 0x1000, 'virtio0', new Recorder());
    expect(() => bus.insert(0xd0000800, 0x1000, 'virtio1', new Recorder())).toThrow(ConflictError);
    expect(() => bus.insert(0xcffff000, 0x1001, 'x', new Recorder())).toThrow(/overlaps virtio0/);
    expect(() => bus.insert(0, 0, 'x', new Recorder())).toThrow(/bad range/);
    expect(() => new Bus('pio').insert(0xfffe, 4, 'x', new Recorder())).toThrow(/past port/);
    expect(bus.remove(0xd0000000)).toBe(true);
    bus.insert(0xd0000800, 0x1000, 'virtio1', new Recorder());
  });
});

function uart() {
  const out: number[] = [];
  let irqs = 0;
  let space = 0;
  const s = new Serial({ sink: (b) => out.push(...b), raiseIrq: () => irqs++, onInputSpace: () => space++ });
  return { s, out, irqs: () => irqs, space: () => space };
}

describe('16550A serial', () => {
  it('transmits bytes and reports THR empty', () => {
    const { s, out } = uart();
    for (const c of 'hi\n') s.writeReg(S.UART_TX, c.charCodeAt(0));
    expect(Buffer.from(out).toString()).toBe('hi\n');
    expect(s.readReg(S.UART_LSR) & (S.UART_LSR_THRE | S.UART_LSR_TEMT)).toBe(S.UART_LSR_THRE | S.UART_LSR_TEMT);
  });
  it('programs the divisor latch under DLAB without transmitting', () => {
    const { s, out } = uart();
    s.writeReg(S.UART_LCR, S.UART_LCR_DLAB | 0x03);
    s.writeReg(S.UART_DLL, 1);
    s.writeReg(S.UART_DLM, 0);
    expect(s.readReg(S.UART_DLL)).toBe(1);
    s.writeReg(S.UART_LCR, 0x03);
    expect(out).toEqual([]);
    expect(s.readReg(S.UART_IER)).toBe(0);
    expect(s.readReg(S.UART_LCR)).toBe(3);
  });
  it('raises and acknowledges the THR-empty interrupt as Linux probes it', () => {
    const { s, irqs } = uart();
    expect(s.readReg(S.UART_IIR)).toBe(S.UART_IIR_NO_INT);
    s.writeReg(S.UART_IER, S.UART_IER_THRI);
    expect(irqs()).toBe(1);
    expect(s.readReg(S.UART_IIR)).toBe(S.UART_IIR_THRI);
    expect(s.readReg(S.UART_IIR)).toBe(S.UART_IIR_NO_INT); // reading IIR acknowledged it
    s.writeReg(S.UART_TX, 0x41);
    expect(irqs()).toBe(2);
    expect(s.readReg(S.UART_IIR)).toBe(S.UART_IIR_THRI);
  });
  it('receives input with data-ready interrupts, FIFO bits in IIR, bounded queue', () => {
    const { s, irqs, space } = uart();
    s.writeReg(S.UART_FCR, S.UART_FCR_ENABLE_FIFO);
    s.writeReg(S.UART_IER, S.UART_IER_RDI);
    expect(s.enqueue(Buffer.from('ab'))).toBe(2);
    expect(irqs()).toBe(1);
    expect(s.readReg(S.UART_IIR)).toBe(S.UART_IIR_RDI | S.UART_IIR_FIFO_ENABLED);
    expect(s.readReg(S.UART_LSR) & S.UART_LSR_DR).toBe(S.UART_LSR_DR);
    expect(String.fromCharCode(s.readReg(S.UART_RX), s.readReg(S.UART_RX))).toBe('ab');
    expect(s.readReg(S.UART_LSR) & S.UART_LSR_DR).toBe(0);
    expect(space()).toBe(1);
    expect(s.enqueue(new Uint8Array(S.RX_CAPACITY + 10))).toBe(S.RX_CAPACITY);
    expect(s.enqueue(Uint8Array.of(1))).toBe(0);
    s.writeReg(S.UART_FCR, S.UART_FCR_ENABLE_FIFO | S.UART_FCR_CLEAR_RCVR);
    expect(s.rxSpace).toBe(S.RX_CAPACITY);
  });
  it('loops back transmit to receive and modem lines in loopback mode', () => {
    const { s, out } = uart();
    s.writeReg(S.UART_MCR, S.UART_MCR_LOOP | S.UART_MCR_RTS | S.UART_MCR_OUT2);
    s.writeReg(S.UART_TX, 0x5a);
    expect(out).toEqual([]);
    expect(s.readReg(S.UART_RX)).toBe(0x5a);
    expect(s.readReg(S.UART_MSR)).toBe(S.UART_MSR_CTS | S.UART_MSR_DCD);
    expect(s.enqueue(Uint8Array.of(1))).toBe(0);
  });
  it('keeps the scratch register and saves/restores state', () => {
    const { s } = uart();
    s.writeReg(S.UART_SCR, 0x42);
    s.enqueue(Uint8Array.of(7));
    const { s: t } = uart();
    t.restore(s.save());
    expect(t.readReg(S.UART_SCR)).toBe(0x42);
    expect(t.readReg(S.UART_RX)).toBe(7);
  });
});

describe('i8042', () => {
  it('passes Linux probe: self test, interface test, command byte', () => {
    const k = new I8042(() => {});
    k.writePort(K.I8042_COMMAND_PORT, K.CMD_SELF_TEST);
    expect(k.readPort(K.I8042_COMMAND_PORT) & K.STATUS_OBF).toBe(K.STATUS_OBF);
    expect(k.readPort(K.I8042_DATA_PORT)).toBe(K.SELF_TEST_OK);
    expect(k.readPort(K.I8042_COMMAND_PORT) & (K.STATUS_OBF | K.STATUS_IBF)).toBe(0);
    k.writePort(K.I8042_COMMAND_PORT, K.CMD_KBD_TEST);
    expect(k.readPort(K.I8042_DATA_PORT)).toBe(0);
    k.writePort(K.I8042_COMMAND_PORT, K.CMD_WRITE_CTR);
    k.writePort(K.I8042_DATA_PORT, 0x47);
    k.writePort(K.I8042_COMMAND_PORT, K.CMD_READ_CTR);
    expect(k.readPort(K.I8042_DATA_PORT)).toBe(0x47);
    k.writePort(K.I8042_DATA_PORT, 0xff);
    expect(k.readPort(K.I8042_DATA_PORT)).toBe(K.KBD_ACK);
  });
  it('requests a reset on 0xfe and on the output port reset bit', () => {
    let resets = 0;
    const k = new I8042(() => resets++);
    k.write(4, Uint8Array.of(K.CMD_PULSE_RESET));
    expect(resets).toBe(1);
    k.writePort(K.I8042_COMMAND_PORT, K.CMD_WRITE_OUTPUT_PORT);
    k.writePort(K.I8042_DATA_PORT, K.OUTPUT_PORT_A20 | K.OUTPUT_PORT_RESET);
    expect(resets).toBe(1);
    k.writePort(K.I8042_COMMAND_PORT, K.CMD_WRITE_OUTPUT_PORT);
    k.writePort(K.I8042_DATA_PORT, K.OUTPUT_PORT_A20);
    expect(resets).toBe(2);
    k.writePort(K.I8042_COMMAND_PORT, 0xff); // pulse nothing
    expect(resets).toBe(2);
  });
});

function fakeVcpu(cs: { selector: number; dpl: number }, cr0 = 0x80050033n) {
  const sregs = kvmSregs.decode(kvmSregs.alloc());
  sregs.cr0 = cr0;
  sregs.cs = { ...sregs.cs, ...cs };
  const events = kvmVcpuEvents.decode(kvmVcpuEvents.pack({ nmi: { injected: 0, pending: 1, masked: 1 }, flags: 0 }));
  const set: Partial<KvmVcpuEvents>[] = [];
  return {
    vcpu: {
      getSregs: () => sregs,
      getVcpuEvents: () => structuredClone(events),
      setVcpuEvents: (e: Partial<KvmVcpuEvents>) => set.push(e),
    },
    set,
  };
}

describe('PIO guard', () => {
  it('allows kernel-mode and real-mode port I/O', () => {
    expect(guardPio(fakeVcpu({ selector: 0x10, dpl: 0 }).vcpu)).toBe('allow');
    expect(guardPio(fakeVcpu({ selector: 0xf003, dpl: 3 }, 0x10n).vcpu)).toBe('allow'); // real mode
  });
  it('injects #GP(0) for CPL 3 and keeps the other event state', () => {
    const { vcpu, set } = fakeVcpu({ selector: 0x33, dpl: 3 });
    expect(guardPio(vcpu)).toBe('gp-injected');
    expect(set).toHaveLength(1);
    expect(set[0]!.exception).toEqual({ injected: 1, nr: GP_VECTOR, has_error_code: 1, pending: 0, error_code: 0 });
    expect(set[0]!.flags).toBe(0);
    expect(set[0]!.nmi!.masked).toBe(1);
  });
  it('takes the stricter of CS.DPL and CS.RPL', () => {
    expect(currentPrivilegeLevel({ cr0: 1n, cs: { selector: 0x2b, dpl: 0 } as never })).toBe(3);
    expect(currentPrivilegeLevel({ cr0: 1n, cs: { selector: 0x10, dpl: 3 } as never })).toBe(3);
  });
});
