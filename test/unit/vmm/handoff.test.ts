/**
 * The vCPU hand-off without KVM: the real worker loop (vcpuLoop) runs in a real worker thread
 * against a scripted vCPU whose kvm_run lives in a SharedArrayBuffer; the main thread serves
 * its exits with the real serveDeviceExits, dispatchIo/dispatchMmio, a 16550A and an MMIO
 * device. Covers device exits both ways, the CPL-3 PIO guard, pause/resume and the end report.
 */
import { describe, it, expect } from 'vitest';
import { Worker } from 'node:worker_threads';
import { allocateControl, serveDeviceExits } from '../../../src/vmm/vcpu-loop.js';
import { controlView, CTL_EXITS, CTL_GP_INJECTED, CTL_REQUEST, CTL_STATE, Request, State } from '../../../src/vmm/vcpu-control.js';
import { dispatchIo, dispatchMmio, exitReason } from '../../../src/vmm/vcpu-exit.js';
import { Bus } from '../../../src/vmm/devices/bus.js';
import { Serial, COM1_PORT } from '../../../src/vmm/devices/serial.js';
import { KvmExit } from '../../../src/kvm/structs.js';
import { until } from '../../fixtures/wait.js';

const tsxApi = new URL('../../../node_modules/tsx/dist/esm/api/index.mjs', import.meta.url).href;
const loopMod = new URL('../../../src/vmm/vcpu-worker-loop.ts', import.meta.url).href;
const structsMod = new URL('../../../src/kvm/structs.ts', import.meta.url).href;

// The scripted vCPU: each runRaw() plays the next step into kvm_run, as KVM would.
const WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
import(${JSON.stringify(tsxApi)}).then(async (t) => {
  t.register();
  const { vcpuLoop, markStopped } = await import(${JSON.stringify(loopMod)});
  const S = await import(${JSON.stringify(structsMod)});
  const { ctlSab, runSab, kickSab, script } = workerData;
  const ctl = new Int32Array(ctlSab, 0, 8);
  const kick = new Int32Array(kickSab);
  const run = new DataView(runSab);
  const bytes = new Uint8Array(runSab);
  let i = 0, cpl = 0, mmioValue = -1, gpEvents = 0;
  const vcpu = {
    run,
    runRaw() {
      if (i > 0 && script[i - 1].type === 'mmio-read') mmioValue = run.getUint32(S.kvmRun.offsetOf('mmio.data'), true);
      const s = script[i++];
      cpl = s.cpl ?? 0;
      if (s.type === 'spin') { while (Atomics.load(kick, 0) === 0) Atomics.wait(kick, 0, 0); Atomics.store(kick, 0, 0); return -4; }
      if (s.type === 'hlt') { S.kvmRun.encode(run, { exit_reason: S.KvmExit.HLT }); return S.KvmExit.HLT; }
      if (s.type === 'out') {
        S.kvmRun.encode(run, { exit_reason: S.KvmExit.IO, io: { direction: 1, size: 1, port: s.port, count: 1, data_offset: 4096n } });
        bytes[4096] = s.byte;
        return S.KvmExit.IO;
      }
      S.kvmRun.encode(run, { exit_reason: S.KvmExit.MMIO, mmio: { phys_addr: BigInt(s.addr), len: 4, is_write: 0, data: [0,0,0,0,0,0,0,0] } });
      return S.KvmExit.MMIO;
    },
    getSregs: () => ({ cr0: 1n, cs: { dpl: cpl, selector: 0x10 | cpl } }),
    getVcpuEvents: () => S.kvmVcpuEvents.decode(S.kvmVcpuEvents.alloc()),
    setVcpuEvents: (e) => { if (e.exception.nr === 13) gpEvents++; },
  };
  const end = vcpuLoop(vcpu, ctl, { guardPio: true, consumeKick: () => {}, describeErrno: (n) => 'errno ' + n });
  parentPort.postMessage({ end, mmioValue, gpEvents });
  markStopped(ctl);
});
`;

describe('vCPU hand-off (worker loop <-> main thread devices)', () => {
  it('serves PIO and MMIO exits, refuses CPL-3 PIO, pauses, resumes and reports the end', async () => {
    const ctlSab = allocateControl(1);
    const ctl = controlView(ctlSab, 0);
    const runSab = new SharedArrayBuffer(3 * 4096);
    const kickSab = new SharedArrayBuffer(4);
    const kick = new Int32Array(kickSab);
    const script = [
      { type: 'out', port: COM1_PORT, byte: 0x68 },
      { type: 'out', port: COM1_PORT, byte: 0x58, cpl: 3 },
      { type: 'out', port: COM1_PORT, byte: 0x69 },
      { type: 'mmio-read', addr: 0xd0000008 },
      { type: 'spin' },
      { type: 'hlt' },
    ];
    Atomics.store(ctl, CTL_REQUEST, Request.PAUSE); // start paused: nothing may run before resume
    const out: number[] = [];
    const pio = new Bus('pio');
    pio.insert(COM1_PORT, 8, 'serial', new Serial({ sink: (b) => out.push(...b), raiseIrq: () => {} }));
    const mmio = new Bus('mmio');
    mmio.insert(0xd0000000, 0x1000, 'dev', {
      read: (off, d) => new DataView(d.buffer, d.byteOffset, d.byteLength).setUint32(0, 0x11220000 + off, true),
      write: () => {},
    });
    const runBytes = new Uint8Array(runSab);
    const runView = new DataView(runSab);
    const errors: unknown[] = [];

    const w = new Worker(WORKER, { eval: true, workerData: { ctlSab, runSab, kickSab, script } });
    const report = new Promise<{ end: { kind: string }; mmioValue: number; gpEvents: number }>((resolve, reject) => {
      w.on('message', resolve);
      w.on('error', reject);
    });
    await until('the worker to start', () => Atomics.load(ctl, CTL_STATE) !== State.STARTING);
    const served = serveDeviceExits(
      ctl,
      () => {
        if (exitReason(runView) === KvmExit.IO) dispatchIo(runBytes, pio);
        else dispatchMmio(runBytes, mmio);
      },
      (e) => errors.push(e),
    );

    await until('PAUSED', () => Atomics.load(ctl, CTL_STATE) === State.PAUSED);
    expect(Atomics.load(ctl, CTL_EXITS)).toBe(0);

    Atomics.store(ctl, CTL_REQUEST, Request.NONE);
    Atomics.notify(ctl, CTL_REQUEST);
    await until('four exits', () => Atomics.load(ctl, CTL_EXITS) === 4);
    Atomics.store(ctl, CTL_REQUEST, Request.PAUSE);
    Atomics.store(kick, 0, 1);
    Atomics.notify(kick, 0);
    await until('PAUSED again', () => Atomics.load(ctl, CTL_STATE) === State.PAUSED);
    expect(Buffer.from(out).toString()).toBe('hi');

    Atomics.store(ctl, CTL_REQUEST, Request.NONE);
    Atomics.notify(ctl, CTL_REQUEST);
    const r = await report;
    await served;
    expect(r.end).toEqual({ kind: 'halted' });
    expect(r.mmioValue).toBe(0x11220008);
    expect(r.gpEvents).toBe(1);
    expect(Atomics.load(ctl, CTL_GP_INJECTED)).toBe(1);
    expect(Atomics.load(ctl, CTL_EXITS)).toBe(5);
    expect(Atomics.load(ctl, CTL_STATE)).toBe(State.STOPPED);
    expect(errors).toEqual([]);
  });
});
