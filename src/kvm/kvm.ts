/** The /dev/kvm system fd: one thin method per system ioctl, no policy. */
import * as libc from './libc.js';
import {
  KVM_CHECK_EXTENSION,
  KVM_CREATE_VM,
  KVM_GET_API_VERSION,
  KVM_GET_MSR_INDEX_LIST,
  KVM_GET_SUPPORTED_CPUID,
  KVM_GET_VCPU_MMAP_SIZE,
} from './ioctl.js';
import {
  KVM_API_VERSION,
  KVM_CPUID2_ENTRIES,
  KVM_MSR_LIST_INDICES,
  kvmCpuid2,
  kvmCpuidEntry2,
  kvmMsrList,
  type KvmCpuidEntry2,
} from './structs.js';
import { requireKvm, KVM_DEVICE, KvmUnavailableError, type KvmFlavor } from './detect.js';
import { Vm } from './vm.js';

const E2BIG = 7;

export class Kvm {
  private closed = false;
  private constructor(
    readonly fd: number,
    readonly flavor: KvmFlavor,
  ) {}

  static open(device = KVM_DEVICE): Kvm {
    const host = requireKvm(device);
    const fd = libc.open(device, libc.O_RDWR);
    const kvm = new Kvm(fd, host.flavor);
    const v = kvm.apiVersion();
    if (v !== KVM_API_VERSION) {
      kvm.close();
      throw new KvmUnavailableError(`${device}: KVM API version ${v}, expected ${KVM_API_VERSION}`);
    }
    return kvm;
  }

  apiVersion(): number {
    return libc.ioctl(this.fd, KVM_GET_API_VERSION, 0, 'KVM_GET_API_VERSION');
  }
  checkExtension(cap: number): number {
    return libc.ioctl(this.fd, KVM_CHECK_EXTENSION, cap, 'KVM_CHECK_EXTENSION');
  }
  vcpuMmapSize(): number {
    return libc.ioctl(this.fd, KVM_GET_VCPU_MMAP_SIZE, 0, 'KVM_GET_VCPU_MMAP_SIZE');
  }
  createVm(type = 0): Vm {
    const fd = libc.ioctl(this.fd, KVM_CREATE_VM, type, 'KVM_CREATE_VM');
    return new Vm(fd, this.vcpuMmapSize());
  }

  /** KVM_GET_SUPPORTED_CPUID, growing the buffer while the kernel answers E2BIG. */
  supportedCpuid(): KvmCpuidEntry2[] {
    for (let max = 128; max <= 4096; max *= 2) {
      const buf = new Uint8Array(KVM_CPUID2_ENTRIES + max * kvmCpuidEntry2.size);
      kvmCpuid2.encode(buf, { nent: max });
      try {
        libc.ioctlPtr(this.fd, KVM_GET_SUPPORTED_CPUID, buf, 'KVM_GET_SUPPORTED_CPUID');
      } catch (e) {
        if (e instanceof libc.SysError && e.errno === E2BIG) continue;
        throw e;
      }
      const n = kvmCpuid2.decode(buf).nent;
      const out: KvmCpuidEntry2[] = [];
      for (let i = 0; i < n; i++) out.push(kvmCpuidEntry2.decode(buf, KVM_CPUID2_ENTRIES + i * kvmCpuidEntry2.size));
      return out;
    }
    throw new KvmUnavailableError('KVM_GET_SUPPORTED_CPUID: more than 4096 entries');
  }

  /** KVM_GET_MSR_INDEX_LIST: the MSRs a snapshot must save. */
  msrIndexList(): number[] {
    for (let max = 256; max <= 8192; max *= 2) {
      const buf = new Uint8Array(KVM_MSR_LIST_INDICES + max * 4);
      kvmMsrList.encode(buf, { nmsrs: max });
      try {
        libc.ioctlPtr(this.fd, KVM_GET_MSR_INDEX_LIST, buf, 'KVM_GET_MSR_INDEX_LIST');
      } catch (e) {
        if (e instanceof libc.SysError && e.errno === E2BIG) continue;
        throw e;
      }
      const n = kvmMsrList.decode(buf).nmsrs;
      const v = new DataView(buf.buffer);
      return Array.from({ length: n }, (_, i) => v.getUint32(KVM_MSR_LIST_INDICES + i * 4, true));
    }
    throw new KvmUnavailableError('KVM_GET_MSR_INDEX_LIST: more than 8192 MSRs');
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    libc.close(this.fd);
  }
}
