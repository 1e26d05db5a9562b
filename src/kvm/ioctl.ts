/**
 * ioctl request numbers, encoded as <asm-generic/ioctl.h> does (x86: 8-bit nr, 8-bit type,
 * 14-bit size, 2-bit direction), and the KVM requests computed from them with the sizes of
 * our struct layouts. test/unit/kvm/ioctl.test.ts pins every number against <linux/kvm.h>.
 */
import {
  kvmClockData,
  kvmCpuid2,
  kvmFpu,
  kvmIoeventfd,
  kvmIrqchip,
  kvmIrqfd,
  kvmIrqLevel,
  kvmLapicState,
  kvmMpState,
  kvmMsrList,
  kvmMsrs,
  kvmPitConfig,
  kvmPitState2,
  kvmRegs,
  kvmSignalMask,
  kvmSregs,
  kvmUserspaceMemoryRegion,
  kvmVcpuEvents,
  kvmXcrs,
} from './structs.js';

const IOC_NRBITS = 8;
const IOC_TYPEBITS = 8;
const IOC_SIZEBITS = 14;
const IOC_NRSHIFT = 0;
const IOC_TYPESHIFT = IOC_NRSHIFT + IOC_NRBITS;
const IOC_SIZESHIFT = IOC_TYPESHIFT + IOC_TYPEBITS;
const IOC_DIRSHIFT = IOC_SIZESHIFT + IOC_SIZEBITS;
export const IOC_NONE = 0;
export const IOC_WRITE = 1;
export const IOC_READ = 2;

export function _IOC(dir: number, type: number, nr: number, size: number): number {
  if (size >= 1 << IOC_SIZEBITS) throw new RangeError(`ioctl size ${size} does not fit in ${IOC_SIZEBITS} bits`);
  // >>> 0 keeps the result an unsigned 32-bit number (dir READ sets bit 31).
  return ((dir << IOC_DIRSHIFT) | (size << IOC_SIZESHIFT) | (type << IOC_TYPESHIFT) | (nr << IOC_NRSHIFT)) >>> 0;
}
export const _IO = (type: number, nr: number): number => _IOC(IOC_NONE, type, nr, 0);
export const _IOR = (type: number, nr: number, size: number): number => _IOC(IOC_READ, type, nr, size);
export const _IOW = (type: number, nr: number, size: number): number => _IOC(IOC_WRITE, type, nr, size);
export const _IOWR = (type: number, nr: number, size: number): number => _IOC(IOC_READ | IOC_WRITE, type, nr, size);

export const KVMIO = 0xae;

export const KVM_GET_API_VERSION = _IO(KVMIO, 0x00);
export const KVM_CREATE_VM = _IO(KVMIO, 0x01);
export const KVM_GET_MSR_INDEX_LIST = _IOWR(KVMIO, 0x02, kvmMsrList.size);
export const KVM_CHECK_EXTENSION = _IO(KVMIO, 0x03);
export const KVM_GET_VCPU_MMAP_SIZE = _IO(KVMIO, 0x04);
export const KVM_GET_SUPPORTED_CPUID = _IOWR(KVMIO, 0x05, kvmCpuid2.size);

export const KVM_CREATE_VCPU = _IO(KVMIO, 0x41);
export const KVM_SET_USER_MEMORY_REGION = _IOW(KVMIO, 0x46, kvmUserspaceMemoryRegion.size);
export const KVM_SET_TSS_ADDR = _IO(KVMIO, 0x47);
export const KVM_SET_IDENTITY_MAP_ADDR = _IOW(KVMIO, 0x48, 8);
export const KVM_CREATE_IRQCHIP = _IO(KVMIO, 0x60);
export const KVM_IRQ_LINE = _IOW(KVMIO, 0x61, kvmIrqLevel.size);
export const KVM_GET_IRQCHIP = _IOWR(KVMIO, 0x62, kvmIrqchip.size);
export const KVM_SET_IRQCHIP = _IOR(KVMIO, 0x63, kvmIrqchip.size);
export const KVM_IRQFD = _IOW(KVMIO, 0x76, kvmIrqfd.size);
export const KVM_CREATE_PIT2 = _IOW(KVMIO, 0x77, kvmPitConfig.size);
export const KVM_IOEVENTFD = _IOW(KVMIO, 0x79, kvmIoeventfd.size);
export const KVM_SET_CLOCK = _IOW(KVMIO, 0x7b, kvmClockData.size);
export const KVM_GET_CLOCK = _IOR(KVMIO, 0x7c, kvmClockData.size);
export const KVM_GET_PIT2 = _IOR(KVMIO, 0x9f, kvmPitState2.size);
export const KVM_SET_PIT2 = _IOW(KVMIO, 0xa0, kvmPitState2.size);

export const KVM_RUN = _IO(KVMIO, 0x80);
export const KVM_GET_REGS = _IOR(KVMIO, 0x81, kvmRegs.size);
export const KVM_SET_REGS = _IOW(KVMIO, 0x82, kvmRegs.size);
export const KVM_GET_SREGS = _IOR(KVMIO, 0x83, kvmSregs.size);
export const KVM_SET_SREGS = _IOW(KVMIO, 0x84, kvmSregs.size);
export const KVM_GET_MSRS = _IOWR(KVMIO, 0x88, kvmMsrs.size);
export const KVM_SET_MSRS = _IOW(KVMIO, 0x89, kvmMsrs.size);
export const KVM_SET_SIGNAL_MASK = _IOW(KVMIO, 0x8b, kvmSignalMask.size);
export const KVM_GET_FPU = _IOR(KVMIO, 0x8c, kvmFpu.size);
export const KVM_SET_FPU = _IOW(KVMIO, 0x8d, kvmFpu.size);
export const KVM_GET_LAPIC = _IOR(KVMIO, 0x8e, kvmLapicState.size);
export const KVM_SET_LAPIC = _IOW(KVMIO, 0x8f, kvmLapicState.size);
export const KVM_SET_CPUID2 = _IOW(KVMIO, 0x90, kvmCpuid2.size);
export const KVM_GET_MP_STATE = _IOR(KVMIO, 0x98, kvmMpState.size);
export const KVM_SET_MP_STATE = _IOW(KVMIO, 0x99, kvmMpState.size);
export const KVM_GET_VCPU_EVENTS = _IOR(KVMIO, 0x9f, kvmVcpuEvents.size);
export const KVM_SET_VCPU_EVENTS = _IOW(KVMIO, 0xa0, kvmVcpuEvents.size);
export const KVM_GET_XCRS = _IOR(KVMIO, 0xa6, kvmXcrs.size);
export const KVM_SET_XCRS = _IOW(KVMIO, 0xa7, kvmXcrs.size);

/** Every request by its header name, for the pinning test and for error messages. */
export const KVM_IOCTLS: Readonly<Record<string, number>> = {
  KVM_GET_API_VERSION,
  KVM_CREATE_VM,
  KVM_GET_MSR_INDEX_LIST,
  KVM_CHECK_EXTENSION,
  KVM_GET_VCPU_MMAP_SIZE,
  KVM_GET_SUPPORTED_CPUID,
  KVM_CREATE_VCPU,
  KVM_SET_USER_MEMORY_REGION,
  KVM_SET_TSS_ADDR,
  KVM_SET_IDENTITY_MAP_ADDR,
  KVM_CREATE_IRQCHIP,
  KVM_IRQ_LINE,
  KVM_GET_IRQCHIP,
  KVM_SET_IRQCHIP,
  KVM_IRQFD,
  KVM_CREATE_PIT2,
  KVM_IOEVENTFD,
  KVM_SET_CLOCK,
  KVM_GET_CLOCK,
  KVM_GET_PIT2,
  KVM_SET_PIT2,
  KVM_RUN,
  KVM_GET_REGS,
  KVM_SET_REGS,
  KVM_GET_SREGS,
  KVM_SET_SREGS,
  KVM_GET_MSRS,
  KVM_SET_MSRS,
  KVM_SET_SIGNAL_MASK,
  KVM_GET_FPU,
  KVM_SET_FPU,
  KVM_GET_LAPIC,
  KVM_SET_LAPIC,
  KVM_SET_CPUID2,
  KVM_GET_MP_STATE,
  KVM_SET_MP_STATE,
  KVM_GET_VCPU_EVENTS,
  KVM_SET_VCPU_EVENTS,
  KVM_GET_XCRS,
  KVM_SET_XCRS,
};

export function ioctlName(request: number): string {
  for (const [name, n] of Object.entries(KVM_IOCTLS)) if (n === request) return name;
  return `ioctl 0x${request.toString(16)}`;
}
