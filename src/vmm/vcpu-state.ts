/**
 * Saving and restoring a vCPU's architectural state (the base of snapshots): registers,
 * segment/control registers, FPU/SSE, XCRs, local APIC, pending events, MP state and the MSRs
 * KVM lists. The record is plain and versioned; each piece is the kernel struct's bytes
 * (base64), so nothing is lost in translation. MSRs are written one at a time because
 * KVM_SET_MSRS stops at the first refusal (PVM refuses some: docs/platform-kvm.md point 6);
 * refusals are returned, not hidden.
 */
import {
  kvmRegs,
  kvmSregs,
  kvmFpu,
  kvmXcrs,
  kvmVcpuEvents,
  type KvmRegs,
  type KvmSregs,
  type KvmFpu,
  type KvmXcrs,
  type KvmVcpuEvents,
  type KvmMsrEntry,
} from '../kvm/structs.js';
import { FormatError } from '../errors.js';

export const VCPU_STATE_VERSION = 1;

export interface VcpuStateRecord {
  version: number;
  id: number;
  regs: string;
  sregs: string;
  fpu: string;
  xcrs?: string;
  lapic: string;
  events: string;
  mpState: number;
  /** [index, value as hex] */
  msrs: [number, string][];
}

/** The vCPU operations state save/restore needs (Vcpu implements them). */
export interface StatefulVcpu {
  readonly id: number;
  getRegs(): KvmRegs;
  setRegs(r: KvmRegs): void;
  getSregs(): KvmSregs;
  setSregs(s: KvmSregs): void;
  getFpu(): KvmFpu;
  setFpu(f: KvmFpu): void;
  getXcrs(): KvmXcrs;
  setXcrs(x: KvmXcrs): void;
  getLapic(): Uint8Array;
  setLapic(regs: Uint8Array): void;
  getVcpuEvents(): KvmVcpuEvents;
  setVcpuEvents(e: KvmVcpuEvents): void;
  getMpState(): number;
  setMpState(s: number): void;
  getMsrs(indices: number[]): KvmMsrEntry[];
  setMsrs(e: KvmMsrEntry[]): number;
}

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
function unb64(s: unknown, size: number, what: string): Uint8Array {
  if (typeof s !== 'string') throw new FormatError(`vCPU state: ${what} missing`);
  const b = new Uint8Array(Buffer.from(s, 'base64'));
  if (b.length !== size) throw new FormatError(`vCPU state: ${what} is ${b.length} bytes, expected ${size}`);
  return b;
}

/** Reads the state; the vCPU must not be running (pause the machine first). */
export function saveVcpuState(vcpu: StatefulVcpu, msrIndices: number[], opts: { xcrs: boolean }): VcpuStateRecord {
  // MSRs one at a time too: KVM_GET_MSRS also stops at the first MSR it cannot read.
  const msrs: [number, string][] = [];
  for (const index of msrIndices) {
    const got = vcpu.getMsrs([index]);
    if (got.length === 1) msrs.push([index, got[0]!.data.toString(16)]);
  }
  return {
    version: VCPU_STATE_VERSION,
    id: vcpu.id,
    mpState: vcpu.getMpState(),
    regs: b64(kvmRegs.pack(vcpu.getRegs())),
    sregs: b64(kvmSregs.pack(vcpu.getSregs())),
    fpu: b64(kvmFpu.pack(vcpu.getFpu())),
    xcrs: opts.xcrs ? b64(kvmXcrs.pack(vcpu.getXcrs())) : undefined,
    lapic: b64(vcpu.getLapic()),
    events: b64(kvmVcpuEvents.pack(vcpu.getVcpuEvents())),
    msrs,
  };
}

export function validateVcpuState(r: VcpuStateRecord): void {
  if (!r || typeof r !== 'object') throw new FormatError('vCPU state: not an object');
  if (r.version !== VCPU_STATE_VERSION)
    throw new FormatError(`vCPU state version ${String(r.version)}, this VMM reads ${VCPU_STATE_VERSION}`);
  if (!Number.isInteger(r.id) || !Number.isInteger(r.mpState)) throw new FormatError('vCPU state: id and mpState must be integers');
  unb64(r.regs, kvmRegs.size, 'regs');
  unb64(r.sregs, kvmSregs.size, 'sregs');
  unb64(r.fpu, kvmFpu.size, 'fpu');
  if (r.xcrs !== undefined) unb64(r.xcrs, kvmXcrs.size, 'xcrs');
  unb64(r.lapic, 1024, 'lapic');
  unb64(r.events, kvmVcpuEvents.size, 'events');
  if (
    !Array.isArray(r.msrs) ||
    r.msrs.some((m) => !Array.isArray(m) || !Number.isInteger(m[0]) || typeof m[1] !== 'string' || !/^[0-9a-f]{1,16}$/.test(m[1]))
  ) {
    throw new FormatError('vCPU state: msrs must be [index, hex value] pairs');
  }
}

/**
 * Writes a saved state into a fresh vCPU (CPUID already set). Order: MP state, registers,
 * segment state, FPU, XCRs, LAPIC, MSRs, then pending events last so nothing resets them.
 * Returns the MSRs KVM refused.
 */
export function restoreVcpuState(vcpu: StatefulVcpu, r: VcpuStateRecord): number[] {
  validateVcpuState(r);
  vcpu.setMpState(r.mpState);
  vcpu.setRegs(kvmRegs.decode(unb64(r.regs, kvmRegs.size, 'regs')));
  vcpu.setSregs(kvmSregs.decode(unb64(r.sregs, kvmSregs.size, 'sregs')));
  vcpu.setFpu(kvmFpu.decode(unb64(r.fpu, kvmFpu.size, 'fpu')));
  if (r.xcrs !== undefined) vcpu.setXcrs(kvmXcrs.decode(unb64(r.xcrs, kvmXcrs.size, 'xcrs')));
  vcpu.setLapic(unb64(r.lapic, 1024, 'lapic'));
  const refused: number[] = [];
  for (const [index, hex] of r.msrs) if (vcpu.setMsrs([{ index, data: BigInt('0x' + hex) }]) !== 1) refused.push(index);
  vcpu.setVcpuEvents(kvmVcpuEvents.decode(unb64(r.events, kvmVcpuEvents.size, 'events')));
  return refused;
}
