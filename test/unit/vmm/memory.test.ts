import { describe, it, expect } from 'vitest';
import { Worker } from 'node:worker_threads';
import { readdirSync, readlinkSync } from 'node:fs';
import { GuestMemory, BufferRam, GuestMemoryError } from '../../../src/vmm/memory.js';
import { MiB, GiB, MMIO_HOLE_START, HIGH_RAM_START, ramRegions } from '../../../src/vmm/layout.js';
import { InvalidParameterError } from '../../../src/errors.js';

describe('memory map', () => {
  it('puts RAM below the MMIO hole and the rest above 4 GiB', () => {
    expect(ramRegions(256 * MiB)).toEqual([{ guestAddr: 0, size: 256 * MiB, hostOffset: 0 }]);
    expect(ramRegions(4 * GiB)).toEqual([
      { guestAddr: 0, size: MMIO_HOLE_START, hostOffset: 0 },
      { guestAddr: HIGH_RAM_START, size: 4 * GiB - MMIO_HOLE_START, hostOffset: MMIO_HOLE_START },
    ]);
  });
});

describe('guest memory', () => {
  it('translates guest-physical ranges with bounds checks', () => {
    const ram = new BufferRam(32 * MiB);
    ram.slice(0x1000, 4).set([1, 2, 3, 4]);
    expect([...ram.buffer.subarray(0x1000, 0x1004)]).toEqual([1, 2, 3, 4]);
    expect(() => ram.slice(32 * MiB - 2, 4)).toThrow(GuestMemoryError);
    expect(() => ram.slice(-1, 1)).toThrow(/not a valid address range/);
    expect(() => ram.slice(0.5, 1)).toThrow(GuestMemoryError);
  });
  it('memfd-backed RAM is visible from a worker thread through its address, and close releases the fd', async () => {
    const memfds = () =>
      readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`).startsWith('/memfd:tvm-guest-ram');
        } catch {
          return false;
        }
      }).length;
    const before = memfds();
    const mem = GuestMemory.create(32 * MiB);
    expect(memfds()).toBe(before + 1);
    mem.slice(0x200000, 5).set(Buffer.from('hello'));
    const tsxApi = new URL('../../../node_modules/tsx/dist/esm/api/index.mjs', import.meta.url).href;
    const mod = new URL('../../../src/vmm/memory.ts', import.meta.url).href;
    const code = `const { workerData, parentPort } = require('node:worker_threads');
      import(${JSON.stringify(tsxApi)}).then(async (t) => { t.register(); const { GuestMemory } = await import(${JSON.stringify(mod)});
        const m = GuestMemory.attach(workerData.addr, workerData.size);
        const got = Buffer.from(m.slice(0x200000, 5)).toString();
        m.slice(0x300000, 2).set([0x4f, 0x4b]);
        m.close();
        parentPort.postMessage(got); });`;
    const w = new Worker(code, { eval: true, workerData: { addr: mem.hostAddress, size: mem.size } });
    const got = await new Promise((resolve, reject) => {
      w.on('message', resolve);
      w.on('error', reject);
    });
    expect(got).toBe('hello');
    expect(Buffer.from(mem.slice(0x300000, 2)).toString()).toBe('OK');
    mem.close();
    expect(memfds()).toBe(before);
    expect(() => mem.slice(0, 1)).toThrow(/closed/);
  });
  it('refuses sizes that are not whole 2 MiB pages or too small', () => {
    expect(() => GuestMemory.create(MiB)).toThrow(InvalidParameterError);
    expect(() => GuestMemory.create(33 * MiB)).toThrow(/multiple of 2 MiB/);
  });
});
