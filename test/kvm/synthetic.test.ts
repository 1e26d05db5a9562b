/**
 * Synthetic guests on real KVM (hardware or PVM). These need /dev/kvm: where it is missing,
 * beforeAll fails every test with "missing /dev/kvm".
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { Kvm } from '../../src/kvm/kvm.js';
import { KvmExit, KVM_EXIT_IO_OUT, kvmRun } from '../../src/kvm/structs.js';
import { GuestMemory } from '../../src/vmm/memory.js';
import * as libc from '../../src/kvm/libc.js';
import { Machine, type FlatImage, type MachineEnd } from '../../src/vmm/machine.js';
import { MiB } from '../../src/vmm/layout.js';
import {
  requireKvmDevice,
  printGuest,
  stringIoGuest,
  mmioGuest,
  smpGuest,
  apTrampoline,
  userPioGuest,
  outHltGuest,
  REAL_LOAD,
  FLAT_LOAD,
  AP_TRAMPOLINE,
  spinGuest,
  notifyGuest,
} from '../fixtures/guests/guests.js';

class Collect extends Writable {
  chunks: Buffer[] = [];
  override _write(c: Buffer, _e: BufferEncoding, cb: () => void) {
    this.chunks.push(c);
    cb();
  }
  get text() {
    return Buffer.concat(this.chunks).toString('latin1');
  }
}

async function runImage(
  image: FlatImage,
  opts: { cpus?: number; before?: (m: Machine) => void } = {},
): Promise<{ end: MachineEnd; out: string; machine: Machine }> {
  const out = new Collect();
  const machine = await Machine.create({ image, memMiB: 64, cpus: opts.cpus ?? 1, console: { output: out } });
  opts.before?.(machine);
  const end = await machine.run();
  return { end, out: out.text, machine };
}

const flat = (bytes: Uint8Array, mode: FlatImage['mode']): FlatImage => {
  const loadAddr = mode === 'real' ? REAL_LOAD : FLAT_LOAD;
  return { bytes, loadAddr, entry: loadAddr, mode };
};

beforeAll(() => requireKvmDevice());

describe('KVM through the thin wrappers', () => {
  it('real-mode OUT then HLT without an irqchip: KVM_EXIT_IO with the byte, then KVM_EXIT_HLT', () => {
    const kvm = Kvm.open();
    expect(kvm.apiVersion()).toBe(12);
    const vm = kvm.createVm();
    const mem = GuestMemory.create(16 * MiB);
    try {
      vm.setUserMemoryRegion({
        slot: 0,
        flags: 0,
        guest_phys_addr: 0n,
        memory_size: BigInt(mem.size),
        userspace_addr: BigInt(mem.hostAddress),
      });
      mem.slice(REAL_LOAD, 16).set(outHltGuest());
      const vcpu = vm.createVcpu(0);
      const s = vcpu.getSregs();
      s.cs = { ...s.cs, base: 0n, selector: 0 };
      vcpu.setSregs(s);
      vcpu.setRegs({ rip: BigInt(REAL_LOAD), rflags: 2n });
      expect(vcpu.runOnce()).toBe(KvmExit.IO);
      const run = kvmRun.decode(vcpu.run) as { io: { direction: number; port: number; size: number; data_offset: bigint } };
      expect(run.io).toMatchObject({ direction: KVM_EXIT_IO_OUT, port: 0x3f8, size: 1 });
      expect(vcpu.runBytes[Number(run.io.data_offset)]).toBe(72);
      expect(vcpu.runOnce()).toBe(KvmExit.HLT);
      expect(vcpu.getRegs().rip).toBe(BigInt(REAL_LOAD + 7));
      vcpu.close();
    } finally {
      vm.close();
      mem.close();
      kvm.close();
    }
  });
});

describe('Machine with synthetic guests', () => {
  it.each(['real', 'protected', 'long'] as const)('%s-mode entry prints on the serial port and resets through the i8042', async (mode) => {
    const { end, out } = await runImage(flat(printGuest(mode, `${mode}\n`), mode));
    expect(out).toBe(`${mode}\n`);
    expect(end.kind).toBe('rebooted');
  });

  it('string port I/O (rep outsb)', async () => {
    const { end, out } = await runImage(flat(stringIoGuest('string io\n'), 'long'));
    expect(out).toBe('string io\n');
    expect(end.kind).toBe('rebooted');
  });

  it('MMIO reads and writes reach the device on the MMIO bus', async () => {
    const writes: number[] = [];
    const { end, out } = await runImage(flat(mmioGuest(), 'long'), {
      before: (m) =>
        m.mmio.insert(0xd0000000, 0x1000, 'probe', {
          read: (off, d) => d.fill(off === 4 ? 0x4d : 0),
          write: (off, d) => writes.push(off, new DataView(d.buffer, d.byteOffset, d.byteLength).getUint32(0, true)),
        }),
    });
    expect(writes).toEqual([0, 0x12345678]);
    expect(out).toBe('M');
    expect(end.kind).toBe('rebooted');
  });

  it('an MMIO device with an ioeventfd: notify writes reach the eventfd without exits', async () => {
    const out = new Collect();
    const accesses: string[] = [];
    const machine = await Machine.create({
      image: flat(notifyGuest(), 'long'),
      memMiB: 64,
      cpus: 1,
      console: { output: out },
      mmioDevices: [
        {
          name: 'notify-probe',
          create: (ctx) => {
            expect([ctx.base, ctx.irq]).toEqual([0xd0000000, 5]);
            const fd = ctx.ioeventfd(0x50, 4);
            return {
              read: (off, d) => {
                const b = new Uint8Array(8);
                const n = libc.read(fd, b) === 8 ? Number(new DataView(b.buffer).getBigUint64(0, true)) : 0;
                accesses.push(`r${off}`);
                d.fill(0x30 + n);
              },
              write: (off) => accesses.push(`w${off}`),
            };
          },
        },
      ],
    });
    const end = await machine.run();
    expect(out.text).toBe('3');
    expect(accesses).toEqual(['r0']);
    expect(end.kind).toBe('rebooted');
  });

  it('two vCPUs: the BSP starts the AP with INIT/SIPI, both reach the console', async () => {
    const { end, out } = await runImage(flat(smpGuest(), 'long'), {
      cpus: 2,
      before: (m) => m.guestMemory!.slice(AP_TRAMPOLINE, 64).set(apTrampoline()),
    });
    expect(out).toBe('ABC');
    expect(end.kind).toBe('rebooted');
  });

  it('port I/O from guest user mode gets #GP instead of reaching the device', async () => {
    const { end, out } = await runImage(flat(userPioGuest(), 'long'));
    expect(out).toBe('KG');
    expect(end.kind).toBe('rebooted');
  });

  it('a spinning guest is paused, resumed and stopped by kicking its vCPU thread', async () => {
    const out = new Collect();
    const machine = await Machine.create({ image: flat(spinGuest(), 'long'), memMiB: 64, cpus: 2, console: { output: out } });
    const running = machine.run();
    const t0 = Date.now();
    while (out.text !== 'P') {
      if (Date.now() - t0 > 60_000) throw new Error('guest did not print P');
      await new Promise((r) => setTimeout(r, 10));
    }
    await machine.pause();
    machine.resume();
    await machine.pause();
    machine.resume();
    machine.stop('test');
    const end = await running;
    expect(end).toMatchObject({ kind: 'stopped', detail: 'test' });
  });

  it('create and destroy 100 VMs leaves no fd, mapping or thread behind', async () => {
    const count = () => ({
      fds: readdirSync('/proc/self/fd').length,
      maps: readFileSync('/proc/self/maps', 'utf8').split('\n').length,
      threads: readdirSync('/proc/self/task').length,
    });
    const image = flat(printGuest('long', '.'), 'long');
    await runImage(image); // warm up: koffi, the worker loader
    const before = count();
    for (let i = 0; i < 100; i++) {
      const { end } = await runImage(image);
      expect(end.kind).toBe('rebooted');
    }
    const after = count();
    expect(after.fds).toBe(before.fds);
    expect(after.threads).toBeLessThanOrEqual(before.threads);
    // V8 may map or unmap heap pages meanwhile: allow slack, but not one mapping per VM.
    expect(after.maps - before.maps).toBeLessThan(50);
  });
});
