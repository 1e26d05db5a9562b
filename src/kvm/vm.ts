/** A VM fd: one thin method per VM ioctl, no policy. Closing it does not close its vCPUs. */
import * as libc from './libc.js';
import {
  KVM_CREATE_IRQCHIP,
  KVM_CREATE_PIT2,
  KVM_CREATE_VCPU,
  KVM_GET_CLOCK,
  KVM_GET_IRQCHIP,
  KVM_GET_PIT2,
  KVM_IOEVENTFD,
  KVM_IRQFD,
  KVM_IRQ_LINE,
  KVM_SET_CLOCK,
  KVM_SET_IDENTITY_MAP_ADDR,
  KVM_SET_IRQCHIP,
  KVM_SET_PIT2,
  KVM_SET_TSS_ADDR,
  KVM_SET_USER_MEMORY_REGION,
} from './ioctl.js';
import {
  kvmClockData,
  kvmIoeventfd,
  kvmIrqchip,
  kvmIrqfd,
  kvmIrqLevel,
  kvmPitConfig,
  kvmPitState2,
  kvmUserspaceMemoryRegion,
  type KvmClockData,
  type KvmIoeventfd,
  type KvmIrqchip,
  type KvmIrqfd,
  type KvmUserspaceMemoryRegion,
} from './structs.js';
import { Vcpu } from './vcpu.js';

export class Vm {
  private closed = false;
  constructor(
    readonly fd: number,
    readonly vcpuMmapSize: number,
  ) {}

  setUserMemoryRegion(r: KvmUserspaceMemoryRegion): void {
    libc.ioctlPtr(this.fd, KVM_SET_USER_MEMORY_REGION, kvmUserspaceMemoryRegion.pack(r), 'KVM_SET_USER_MEMORY_REGION');
  }
  setTssAddr(addr: number): void {
    libc.ioctl(this.fd, KVM_SET_TSS_ADDR, addr, 'KVM_SET_TSS_ADDR');
  }
  setIdentityMapAddr(addr: bigint): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, addr, true);
    libc.ioctlPtr(this.fd, KVM_SET_IDENTITY_MAP_ADDR, b, 'KVM_SET_IDENTITY_MAP_ADDR');
  }
  createIrqchip(): void {
    libc.ioctl(this.fd, KVM_CREATE_IRQCHIP, 0, 'KVM_CREATE_IRQCHIP');
  }
  createPit2(flags: number): void {
    libc.ioctlPtr(this.fd, KVM_CREATE_PIT2, kvmPitConfig.pack({ flags }), 'KVM_CREATE_PIT2');
  }
  irqLine(irq: number, level: 0 | 1): void {
    libc.ioctlPtr(this.fd, KVM_IRQ_LINE, kvmIrqLevel.pack({ irq, level }), 'KVM_IRQ_LINE');
  }
  irqfd(a: KvmIrqfd): void {
    libc.ioctlPtr(this.fd, KVM_IRQFD, kvmIrqfd.pack(a), 'KVM_IRQFD');
  }
  ioeventfd(a: KvmIoeventfd): void {
    libc.ioctlPtr(this.fd, KVM_IOEVENTFD, kvmIoeventfd.pack(a), 'KVM_IOEVENTFD');
  }
  getClock(): KvmClockData {
    const b = kvmClockData.alloc();
    libc.ioctlPtr(this.fd, KVM_GET_CLOCK, b, 'KVM_GET_CLOCK');
    return kvmClockData.decode(b);
  }
  setClock(c: Partial<KvmClockData>): void {
    libc.ioctlPtr(this.fd, KVM_SET_CLOCK, kvmClockData.pack(c), 'KVM_SET_CLOCK');
  }
  getIrqchip(chipId: number): KvmIrqchip {
    const b = kvmIrqchip.pack({ chip_id: chipId });
    libc.ioctlPtr(this.fd, KVM_GET_IRQCHIP, b, 'KVM_GET_IRQCHIP');
    return kvmIrqchip.decode(b);
  }
  setIrqchip(c: KvmIrqchip): void {
    libc.ioctlPtr(this.fd, KVM_SET_IRQCHIP, kvmIrqchip.pack(c), 'KVM_SET_IRQCHIP');
  }
  /** Raw struct kvm_pit_state2 bytes (saved and restored as they are). */
  getPit2(): Uint8Array {
    const b = kvmPitState2.alloc();
    libc.ioctlPtr(this.fd, KVM_GET_PIT2, b, 'KVM_GET_PIT2');
    return b;
  }
  setPit2(state: Uint8Array): void {
    libc.ioctlPtr(this.fd, KVM_SET_PIT2, state, 'KVM_SET_PIT2');
  }
  createVcpu(id: number): Vcpu {
    const fd = libc.ioctl(this.fd, KVM_CREATE_VCPU, id, 'KVM_CREATE_VCPU');
    try {
      return Vcpu.attach(fd, id, this.vcpuMmapSize);
    } catch (e) {
      libc.close(fd);
      throw e;
    }
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    libc.close(this.fd);
  }
}
