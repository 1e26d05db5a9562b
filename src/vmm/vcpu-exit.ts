/**
 * Decoding a vCPU exit from struct kvm_run and carrying out port I/O and MMIO against the
 * buses. Pure functions over the kvm_run bytes, so they are unit-tested without KVM; the main
 * thread calls them while the vCPU's worker waits (vcpu-loop.ts).
 */
import { kvmRun, KvmExit, KVM_EXIT_IO_OUT, KvmSystemEvent, KvmInternalError } from '../kvm/structs.js';
import type { Bus } from './devices/bus.js';

const O = {
  exitReason: kvmRun.offsetOf('exit_reason'),
  ioDirection: kvmRun.offsetOf('io.direction'),
  ioSize: kvmRun.offsetOf('io.size'),
  ioPort: kvmRun.offsetOf('io.port'),
  ioCount: kvmRun.offsetOf('io.count'),
  ioDataOffset: kvmRun.offsetOf('io.data_offset'),
  mmioPhysAddr: kvmRun.offsetOf('mmio.phys_addr'),
  mmioData: kvmRun.offsetOf('mmio.data'),
  mmioLen: kvmRun.offsetOf('mmio.len'),
  mmioIsWrite: kvmRun.offsetOf('mmio.is_write'),
};

export type VcpuEnd =
  | { kind: 'halted' }
  | { kind: 'shutdown'; detail: string }
  | { kind: 'rebooted'; detail: string }
  | { kind: 'crashed'; detail: string }
  | { kind: 'internal-error'; suberror: number; data: bigint[]; detail: string }
  | { kind: 'fail-entry'; reason: bigint; detail: string }
  | { kind: 'unexpected-exit'; reason: number; detail: string };

const INTERNAL_NAMES: Record<number, string> = {
  [KvmInternalError.EMULATION]: 'emulation failure',
  [KvmInternalError.SIMUL_EX]: 'simultaneous exceptions',
  [KvmInternalError.DELIVERY_EV]: 'event delivery failed',
  [KvmInternalError.UNEXPECTED_EXIT_REASON]: 'unexpected exit reason',
};

/** Exits the device model serves (the worker hands them to the main thread). */
export function isDeviceExit(reason: number): boolean {
  return reason === KvmExit.IO || reason === KvmExit.MMIO;
}

/** For exits that end the vCPU: what happened, with KVM's details. Undefined for others. */
export function terminalExit(run: DataView): VcpuEnd | undefined {
  const reason = run.getUint32(O.exitReason, true);
  switch (reason) {
    case KvmExit.HLT:
      return { kind: 'halted' };
    case KvmExit.SHUTDOWN:
      return { kind: 'shutdown', detail: 'triple fault (KVM_EXIT_SHUTDOWN)' };
    case KvmExit.SYSTEM_EVENT: {
      const r = kvmRun.decode(run) as { system_event: { type: number; data: bigint[] } };
      const t = r.system_event.type;
      if (t === KvmSystemEvent.RESET) return { kind: 'rebooted', detail: 'system event: reset' };
      if (t === KvmSystemEvent.SHUTDOWN) return { kind: 'shutdown', detail: 'system event: shutdown' };
      return { kind: 'crashed', detail: `system event type ${t}` };
    }
    case KvmExit.INTERNAL_ERROR: {
      const r = kvmRun.decode(run) as { internal: { suberror: number; ndata: number; data: bigint[] } };
      const { suberror, ndata } = r.internal;
      const data = r.internal.data.slice(0, Math.min(ndata, 16));
      const name = INTERNAL_NAMES[suberror] ?? 'unknown';
      return {
        kind: 'internal-error',
        suberror,
        data,
        detail: `KVM internal error. Suberror: ${suberror} (${name})${data.length ? ` data: ${data.map((d) => '0x' + d.toString(16)).join(' ')}` : ''}`,
      };
    }
    case KvmExit.FAIL_ENTRY: {
      const r = kvmRun.decode(run) as { fail_entry: { hardware_entry_failure_reason: bigint; cpu: number } };
      return {
        kind: 'fail-entry',
        reason: r.fail_entry.hardware_entry_failure_reason,
        detail: `KVM_EXIT_FAIL_ENTRY: hardware entry failure reason 0x${r.fail_entry.hardware_entry_failure_reason.toString(16)} on cpu ${r.fail_entry.cpu}`,
      };
    }
    case KvmExit.IO:
    case KvmExit.MMIO:
    case KvmExit.INTR:
    case KvmExit.IRQ_WINDOW_OPEN:
      return undefined;
    default:
      return { kind: 'unexpected-exit', reason, detail: `unexpected KVM exit reason ${reason}` };
  }
}

export interface IoStats {
  unhandledPio: number;
  unhandledMmio: number;
}

/**
 * Performs a KVM_EXIT_IO: `count` accesses of `size` bytes at data_offset in the kvm_run page.
 * Reads nobody claims return all ones (an ISA bus with nothing on it); writes are dropped.
 */
export function dispatchIo(runBytes: Uint8Array, pio: Bus, stats?: IoStats): void {
  const run = new DataView(runBytes.buffer, runBytes.byteOffset, runBytes.byteLength);
  const out = run.getUint8(O.ioDirection) === KVM_EXIT_IO_OUT;
  const size = run.getUint8(O.ioSize);
  const port = run.getUint16(O.ioPort, true);
  const count = run.getUint32(O.ioCount, true);
  const off = Number(run.getBigUint64(O.ioDataOffset, true));
  if (off + size * count > runBytes.length) throw new RangeError(`KVM_EXIT_IO data at ${off}+${size * count} is outside kvm_run`);
  for (let i = 0; i < count; i++) {
    const data = runBytes.subarray(off + i * size, off + (i + 1) * size);
    const ok = out ? pio.write(port, data) : pio.read(port, data);
    if (!ok) {
      if (!out) data.fill(0xff);
      if (stats) stats.unhandledPio++;
    }
  }
}

/** Performs a KVM_EXIT_MMIO; unclaimed reads return zeros. Returns the address touched. */
export function dispatchMmio(runBytes: Uint8Array, mmio: Bus, stats?: IoStats): number {
  const run = new DataView(runBytes.buffer, runBytes.byteOffset, runBytes.byteLength);
  const addr = Number(run.getBigUint64(O.mmioPhysAddr, true));
  const len = Math.min(run.getUint32(O.mmioLen, true), 8);
  const data = runBytes.subarray(O.mmioData, O.mmioData + len);
  const ok = run.getUint8(O.mmioIsWrite) ? mmio.write(addr, data) : mmio.read(addr, data);
  if (!ok) {
    if (!run.getUint8(O.mmioIsWrite)) data.fill(0);
    if (stats) stats.unhandledMmio++;
  }
  return addr;
}

export function exitReason(run: DataView): number {
  return run.getUint32(O.exitReason, true);
}
