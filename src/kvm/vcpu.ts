/**
 * A vCPU fd and its mmap'ed struct kvm_run: one thin method per vCPU ioctl, no policy.
 * `Vcpu.attach` maps kvm_run; `Vcpu.borrow` lets a worker thread use an fd and mapping that
 * another thread of the process owns (the owner closes them).
 */
import * as libc from './libc.js';
import {
  KVM_GET_FPU,
  KVM_GET_LAPIC,
  KVM_GET_MP_STATE,
  KVM_GET_MSRS,
  KVM_GET_REGS,
  KVM_GET_SREGS,
  KVM_GET_VCPU_EVENTS,
  KVM_GET_XCRS,
  KVM_RUN,
  KVM_SET_CPUID2,
  KVM_SET_FPU,
  KVM_SET_LAPIC,
  KVM_SET_MP_STATE,
  KVM_SET_MSRS,
  KVM_SET_REGS,
  KVM_SET_SIGNAL_MASK,
  KVM_SET_SREGS,
  KVM_SET_VCPU_EVENTS,
  KVM_SET_XCRS,
} from './ioctl.js';
import {
  KVM_CPUID2_ENTRIES,
  KVM_MSRS_ENTRIES,
  kvmCpuid2,
  kvmCpuidEntry2,
  kvmFpu,
  kvmLapicState,
  kvmMpState,
  kvmMsrEntry,
  kvmMsrs,
  kvmRegs,
  kvmRun,
  kvmSignalMask,
  kvmSregs,
  kvmVcpuEvents,
  kvmXcrs,
  type KvmCpuidEntry2,
  type KvmFpu,
  type KvmMsrEntry,
  type KvmRegs,
  type KvmSregs,
  type KvmVcpuEvents,
  type KvmXcrs,
} from './structs.js';

const RUN_EXIT_REASON = kvmRun.offsetOf('exit_reason');
const RUN_IMMEDIATE_EXIT = kvmRun.offsetOf('immediate_exit');

export class Vcpu {
  private closed = false;
  /** The vCPU's struct kvm_run, shared with the kernel. */
  readonly run: DataView;
  readonly runBytes: Uint8Array;

  private constructor(
    readonly fd: number,
    readonly id: number,
    readonly runAddr: number,
    readonly runSize: number,
    private readonly owner: boolean,
  ) {
    const ab = libc.viewAddress(runAddr, runSize);
    this.run = new DataView(ab);
    this.runBytes = new Uint8Array(ab);
  }

  static attach(fd: number, id: number, runSize: number): Vcpu {
    const addr = libc.mmap(0, runSize, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED, fd, 0);
    return new Vcpu(fd, id, addr, runSize, true);
  }
  static borrow(fd: number, id: number, runAddr: number, runSize: number): Vcpu {
    return new Vcpu(fd, id, runAddr, runSize, false);
  }

  /** KVM_RUN; returns kvm_run.exit_reason. Throws SysError (EINTR included). */
  runOnce(): number {
    libc.ioctl(this.fd, KVM_RUN, 0, 'KVM_RUN');
    return this.run.getUint32(RUN_EXIT_REASON, true);
  }
  /** KVM_RUN without exceptions: the exit reason, or -errno (e.g. -EINTR after a kick). */
  runRaw(): number {
    const r = libc.ioctlRaw(this.fd, KVM_RUN, 0);
    return r < 0 ? r : this.run.getUint32(RUN_EXIT_REASON, true);
  }
  get exitReason(): number {
    return this.run.getUint32(RUN_EXIT_REASON, true);
  }
  setImmediateExit(on: boolean): void {
    this.run.setUint8(RUN_IMMEDIATE_EXIT, on ? 1 : 0);
  }

  getRegs(): KvmRegs {
    const b = kvmRegs.alloc();
    libc.ioctlPtr(this.fd, KVM_GET_REGS, b, 'KVM_GET_REGS');
    return kvmRegs.decode(b);
  }
  setRegs(r: Partial<KvmRegs>): void {
    libc.ioctlPtr(this.fd, KVM_SET_REGS, kvmRegs.pack(r), 'KVM_SET_REGS');
  }
  getSregs(): KvmSregs {
    const b = kvmSregs.alloc();
    libc.ioctlPtr(this.fd, KVM_GET_SREGS, b, 'KVM_GET_SREGS');
    return kvmSregs.decode(b);
  }
  /** Sets the complete sregs (read-modify-write with getSregs to change a few). */
  setSregs(s: KvmSregs): void {
    libc.ioctlPtr(this.fd, KVM_SET_SREGS, kvmSregs.pack(s), 'KVM_SET_SREGS');
  }
  getFpu(): KvmFpu {
    const b = kvmFpu.alloc();
    libc.ioctlPtr(this.fd, KVM_GET_FPU, b, 'KVM_GET_FPU');
    return kvmFpu.decode(b);
  }
  setFpu(f: Partial<KvmFpu>): void {
    libc.ioctlPtr(this.fd, KVM_SET_FPU, kvmFpu.pack(f), 'KVM_SET_FPU');
  }
  /** KVM_GET_MSRS: returns the entries the kernel filled (it stops at the first it cannot read). */
  getMsrs(indices: number[]): KvmMsrEntry[] {
    const b = new Uint8Array(KVM_MSRS_ENTRIES + indices.length * kvmMsrEntry.size);
    kvmMsrs.encode(b, { nmsrs: indices.length });
    indices.forEach((index, i) => kvmMsrEntry.encode(b, { index }, KVM_MSRS_ENTRIES + i * kvmMsrEntry.size));
    const n = libc.ioctlPtr(this.fd, KVM_GET_MSRS, b, 'KVM_GET_MSRS');
    return Array.from({ length: n }, (_, i) => kvmMsrEntry.decode(b, KVM_MSRS_ENTRIES + i * kvmMsrEntry.size));
  }
  /** KVM_SET_MSRS: returns how many were written (it stops at the first refusal). */
  setMsrs(entries: KvmMsrEntry[]): number {
    const b = new Uint8Array(KVM_MSRS_ENTRIES + entries.length * kvmMsrEntry.size);
    kvmMsrs.encode(b, { nmsrs: entries.length });
    entries.forEach((e, i) => kvmMsrEntry.encode(b, e, KVM_MSRS_ENTRIES + i * kvmMsrEntry.size));
    return libc.ioctlPtr(this.fd, KVM_SET_MSRS, b, 'KVM_SET_MSRS');
  }
  setCpuid2(entries: KvmCpuidEntry2[]): void {
    const b = new Uint8Array(KVM_CPUID2_ENTRIES + entries.length * kvmCpuidEntry2.size);
    kvmCpuid2.encode(b, { nent: entries.length });
    entries.forEach((e, i) => kvmCpuidEntry2.encode(b, e, KVM_CPUID2_ENTRIES + i * kvmCpuidEntry2.size));
    libc.ioctlPtr(this.fd, KVM_SET_CPUID2, b, 'KVM_SET_CPUID2');
  }
  getLapic(): Uint8Array {
    const b = kvmLapicState.alloc();
    libc.ioctlPtr(this.fd, KVM_GET_LAPIC, b, 'KVM_GET_LAPIC');
    return b;
  }
  setLapic(regs: Uint8Array): void {
    libc.ioctlPtr(this.fd, KVM_SET_LAPIC, kvmLapicState.pack({ regs }), 'KVM_SET_LAPIC');
  }
  getVcpuEvents(): KvmVcpuEvents {
    const b = kvmVcpuEvents.alloc();
    libc.ioctlPtr(this.fd, KVM_GET_VCPU_EVENTS, b, 'KVM_GET_VCPU_EVENTS');
    return kvmVcpuEvents.decode(b);
  }
  setVcpuEvents(e: Partial<KvmVcpuEvents>): void {
    libc.ioctlPtr(this.fd, KVM_SET_VCPU_EVENTS, kvmVcpuEvents.pack(e), 'KVM_SET_VCPU_EVENTS');
  }
  getMpState(): number {
    const b = kvmMpState.alloc();
    libc.ioctlPtr(this.fd, KVM_GET_MP_STATE, b, 'KVM_GET_MP_STATE');
    return kvmMpState.decode(b).mp_state;
  }
  setMpState(mpState: number): void {
    libc.ioctlPtr(this.fd, KVM_SET_MP_STATE, kvmMpState.pack({ mp_state: mpState }), 'KVM_SET_MP_STATE');
  }
  getXcrs(): KvmXcrs {
    const b = kvmXcrs.alloc();
    libc.ioctlPtr(this.fd, KVM_GET_XCRS, b, 'KVM_GET_XCRS');
    return kvmXcrs.decode(b);
  }
  setXcrs(x: KvmXcrs): void {
    libc.ioctlPtr(this.fd, KVM_SET_XCRS, kvmXcrs.pack(x), 'KVM_SET_XCRS');
  }
  /** KVM_SET_SIGNAL_MASK: the signal mask in force while inside KVM_RUN (kernel sigset, 8 bytes). */
  setSignalMask(kernelSigset: Uint8Array): void {
    const b = new Uint8Array(kvmSignalMask.size + kernelSigset.length);
    kvmSignalMask.encode(b, { len: kernelSigset.length });
    b.set(kernelSigset, kvmSignalMask.size);
    libc.ioctlPtr(this.fd, KVM_SET_SIGNAL_MASK, b, 'KVM_SET_SIGNAL_MASK');
  }

  close(): void {
    if (this.closed || !this.owner) return;
    this.closed = true;
    libc.munmap(this.runAddr, this.runSize);
    libc.close(this.fd);
  }
}
