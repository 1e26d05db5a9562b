/**
 * The KVM structs tvm exchanges with the kernel (x86_64, <linux/kvm.h> and <asm/kvm.h>), as
 * explicit offset tables with the headers' member names. Sizes and offsets are pinned by
 * test/unit/kvm/structs.test.ts against gcc's sizeof/offsetof.
 */
import { Layout, arrayOf, type FieldType, type Field } from './layout.js';

const f = (offset: number, type: FieldType): Field => ({ offset, type });

// ---- exit reasons and constants (linux/kvm.h) ----
export const KVM_API_VERSION = 12;
export const KvmExit = {
  UNKNOWN: 0,
  EXCEPTION: 1,
  IO: 2,
  HYPERCALL: 3,
  DEBUG: 4,
  HLT: 5,
  MMIO: 6,
  IRQ_WINDOW_OPEN: 7,
  SHUTDOWN: 8,
  FAIL_ENTRY: 9,
  INTR: 10,
  SET_TPR: 11,
  TPR_ACCESS: 12,
  NMI: 16,
  INTERNAL_ERROR: 17,
  SYSTEM_EVENT: 24,
  IOAPIC_EOI: 26,
  X86_RDMSR: 29,
  X86_WRMSR: 30,
} as const;
export const KVM_EXIT_IO_IN = 0;
export const KVM_EXIT_IO_OUT = 1;
export const KvmInternalError = { EMULATION: 1, SIMUL_EX: 2, DELIVERY_EV: 3, UNEXPECTED_EXIT_REASON: 4 } as const;
export const KvmSystemEvent = { SHUTDOWN: 1, RESET: 2, CRASH: 3, WAKEUP: 4, SUSPEND: 5 } as const;
export const KvmMpState = { RUNNABLE: 0, UNINITIALIZED: 1, INIT_RECEIVED: 2, HALTED: 3, SIPI_RECEIVED: 4 } as const;
export const KVM_VCPUEVENT_VALID_NMI_PENDING = 0x1;
export const KVM_VCPUEVENT_VALID_SIPI_VECTOR = 0x2;
export const KVM_VCPUEVENT_VALID_SHADOW = 0x4;
export const KVM_PIT_SPEAKER_DUMMY = 1;
export const KVM_IOEVENTFD_FLAG_DATAMATCH = 1 << 0;
export const KVM_IOEVENTFD_FLAG_PIO = 1 << 1;
export const KVM_IOEVENTFD_FLAG_DEASSIGN = 1 << 2;
export const KVM_IRQFD_FLAG_DEASSIGN = 1 << 0;
export const KVM_IRQFD_FLAG_RESAMPLE = 1 << 1;
export const KVM_MEM_LOG_DIRTY_PAGES = 1 << 0;
export const KVM_MEM_READONLY = 1 << 1;
export const KvmIrqchipId = { PIC_MASTER: 0, PIC_SLAVE: 1, IOAPIC: 2 } as const;
export const KvmCap = {
  IRQCHIP: 0,
  HLT: 1,
  USER_MEMORY: 3,
  SET_TSS_ADDR: 4,
  EXT_CPUID: 7,
  PIT: 11,
  NOP_IO_DELAY: 12,
  MP_STATE: 14,
  IOEVENTFD: 36,
  SET_IDENTITY_MAP_ADDR: 37,
  PIT2: 33,
  IRQFD: 32,
  VCPU_EVENTS: 41,
  XSAVE: 55,
  XCRS: 56,
  IMMEDIATE_EXIT: 136,
  NR_VCPUS: 9,
  MAX_VCPUS: 66,
  NR_MEMSLOTS: 10,
} as const;

// ---- kvm_run ----
export const kvmRunIo = new Layout(null, 16, {
  direction: f(0, 'u8'),
  size: f(1, 'u8'),
  port: f(2, 'u16'),
  count: f(4, 'u32'),
  data_offset: f(8, 'u64'),
});
export const kvmRunMmio = new Layout(null, 24, {
  phys_addr: f(0, 'u64'),
  data: f(8, arrayOf('u8', 8)),
  len: f(16, 'u32'),
  is_write: f(20, 'u8'),
});
export const kvmRunFailEntry = new Layout(null, 16, { hardware_entry_failure_reason: f(0, 'u64'), cpu: f(8, 'u32') });
export const kvmRunInternal = new Layout(null, 136, { suberror: f(0, 'u32'), ndata: f(4, 'u32'), data: f(8, arrayOf('u64', 16)) });
export const kvmRunSystemEvent = new Layout(null, 136, { type: f(0, 'u32'), ndata: f(4, 'u32'), data: f(8, arrayOf('u64', 16)) });
export const kvmRunEx = new Layout(null, 8, { exception: f(0, 'u32'), error_code: f(4, 'u32') });
export const kvmRunHw = new Layout(null, 8, { hardware_exit_reason: f(0, 'u64') });

/** Offset of the exit union inside kvm_run. */
export const KVM_RUN_EXIT_UNION = 32;
export const kvmRun = new Layout('struct kvm_run', 2352, {
  request_interrupt_window: f(0, 'u8'),
  immediate_exit: f(1, 'u8'),
  exit_reason: f(8, 'u32'),
  ready_for_interrupt_injection: f(12, 'u8'),
  if_flag: f(13, 'u8'),
  flags: f(14, 'u16'),
  cr8: f(16, 'u64'),
  apic_base: f(24, 'u64'),
  hw: f(32, kvmRunHw),
  fail_entry: f(32, kvmRunFailEntry),
  ex: f(32, kvmRunEx),
  io: f(32, kvmRunIo),
  mmio: f(32, kvmRunMmio),
  internal: f(32, kvmRunInternal),
  system_event: f(32, kvmRunSystemEvent),
  kvm_valid_regs: f(288, 'u64'),
  kvm_dirty_regs: f(296, 'u64'),
});

// ---- registers ----
export interface KvmRegs {
  rax: bigint;
  rbx: bigint;
  rcx: bigint;
  rdx: bigint;
  rsi: bigint;
  rdi: bigint;
  rsp: bigint;
  rbp: bigint;
  r8: bigint;
  r9: bigint;
  r10: bigint;
  r11: bigint;
  r12: bigint;
  r13: bigint;
  r14: bigint;
  r15: bigint;
  rip: bigint;
  rflags: bigint;
}
const REG_NAMES = [
  'rax',
  'rbx',
  'rcx',
  'rdx',
  'rsi',
  'rdi',
  'rsp',
  'rbp',
  'r8',
  'r9',
  'r10',
  'r11',
  'r12',
  'r13',
  'r14',
  'r15',
  'rip',
  'rflags',
] as const;
export const kvmRegs = new Layout<KvmRegs>('struct kvm_regs', 144, Object.fromEntries(REG_NAMES.map((n, i) => [n, f(i * 8, 'u64')])));

export interface KvmSegment {
  base: bigint;
  limit: number;
  selector: number;
  type: number;
  present: number;
  dpl: number;
  db: number;
  s: number;
  l: number;
  g: number;
  avl: number;
  unusable: number;
}
export const kvmSegment = new Layout<KvmSegment>('struct kvm_segment', 24, {
  base: f(0, 'u64'),
  limit: f(8, 'u32'),
  selector: f(12, 'u16'),
  type: f(14, 'u8'),
  present: f(15, 'u8'),
  dpl: f(16, 'u8'),
  db: f(17, 'u8'),
  s: f(18, 'u8'),
  l: f(19, 'u8'),
  g: f(20, 'u8'),
  avl: f(21, 'u8'),
  unusable: f(22, 'u8'),
  padding: f(23, 'u8'),
});
export interface KvmDtable {
  base: bigint;
  limit: number;
}
export const kvmDtable = new Layout<KvmDtable>('struct kvm_dtable', 16, {
  base: f(0, 'u64'),
  limit: f(8, 'u16'),
  padding: f(10, arrayOf('u16', 3)),
});
export interface KvmSregs {
  cs: KvmSegment;
  ds: KvmSegment;
  es: KvmSegment;
  fs: KvmSegment;
  gs: KvmSegment;
  ss: KvmSegment;
  tr: KvmSegment;
  ldt: KvmSegment;
  gdt: KvmDtable;
  idt: KvmDtable;
  cr0: bigint;
  cr2: bigint;
  cr3: bigint;
  cr4: bigint;
  cr8: bigint;
  efer: bigint;
  apic_base: bigint;
  interrupt_bitmap: bigint[];
}
export const kvmSregs = new Layout<KvmSregs>('struct kvm_sregs', 312, {
  cs: f(0, kvmSegment),
  ds: f(24, kvmSegment),
  es: f(48, kvmSegment),
  fs: f(72, kvmSegment),
  gs: f(96, kvmSegment),
  ss: f(120, kvmSegment),
  tr: f(144, kvmSegment),
  ldt: f(168, kvmSegment),
  gdt: f(192, kvmDtable),
  idt: f(208, kvmDtable),
  cr0: f(224, 'u64'),
  cr2: f(232, 'u64'),
  cr3: f(240, 'u64'),
  cr4: f(248, 'u64'),
  cr8: f(256, 'u64'),
  efer: f(264, 'u64'),
  apic_base: f(272, 'u64'),
  interrupt_bitmap: f(280, arrayOf('u64', 4)),
});

export interface KvmFpu {
  fpr: Uint8Array;
  fcw: number;
  fsw: number;
  ftwx: number;
  last_opcode: number;
  last_ip: bigint;
  last_dp: bigint;
  xmm: Uint8Array;
  mxcsr: number;
}
export const kvmFpu = new Layout<KvmFpu>('struct kvm_fpu', 416, {
  fpr: f(0, arrayOf('u8', 128)),
  fcw: f(128, 'u16'),
  fsw: f(130, 'u16'),
  ftwx: f(132, 'u8'),
  pad1: f(133, 'u8'),
  last_opcode: f(134, 'u16'),
  last_ip: f(136, 'u64'),
  last_dp: f(144, 'u64'),
  xmm: f(152, arrayOf('u8', 256)),
  mxcsr: f(408, 'u32'),
  pad2: f(412, 'u32'),
});

// ---- memory, cpuid, msrs ----
export interface KvmUserspaceMemoryRegion {
  slot: number;
  flags: number;
  guest_phys_addr: bigint;
  memory_size: bigint;
  userspace_addr: bigint;
}
export const kvmUserspaceMemoryRegion = new Layout<KvmUserspaceMemoryRegion>('struct kvm_userspace_memory_region', 32, {
  slot: f(0, 'u32'),
  flags: f(4, 'u32'),
  guest_phys_addr: f(8, 'u64'),
  memory_size: f(16, 'u64'),
  userspace_addr: f(24, 'u64'),
});

export interface KvmCpuidEntry2 {
  function: number;
  index: number;
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}
export const KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1 << 0;
export const kvmCpuidEntry2 = new Layout<KvmCpuidEntry2>('struct kvm_cpuid_entry2', 40, {
  function: f(0, 'u32'),
  index: f(4, 'u32'),
  flags: f(8, 'u32'),
  eax: f(12, 'u32'),
  ebx: f(16, 'u32'),
  ecx: f(20, 'u32'),
  edx: f(24, 'u32'),
  padding: f(28, arrayOf('u32', 3)),
});
/** Header of struct kvm_cpuid2; `entries` (kvm_cpuid_entry2[nent]) follow at offset 8. */
export const kvmCpuid2 = new Layout<{ nent: number }>('struct kvm_cpuid2', 8, { nent: f(0, 'u32'), padding: f(4, 'u32') });
export const KVM_CPUID2_ENTRIES = 8;

export interface KvmMsrEntry {
  index: number;
  data: bigint;
}
export const kvmMsrEntry = new Layout<KvmMsrEntry>('struct kvm_msr_entry', 16, {
  index: f(0, 'u32'),
  reserved: f(4, 'u32'),
  data: f(8, 'u64'),
});
/** Header of struct kvm_msrs; entries (kvm_msr_entry[nmsrs]) follow at offset 8. */
export const kvmMsrs = new Layout<{ nmsrs: number }>('struct kvm_msrs', 8, { nmsrs: f(0, 'u32'), pad: f(4, 'u32') });
export const KVM_MSRS_ENTRIES = 8;
/** Header of struct kvm_msr_list; indices (u32[nmsrs]) follow at offset 4. */
export const kvmMsrList = new Layout<{ nmsrs: number }>('struct kvm_msr_list', 4, { nmsrs: f(0, 'u32') });
export const KVM_MSR_LIST_INDICES = 4;

// ---- interrupt controller, timers, eventfds ----
export const KVM_APIC_REG_SIZE = 1024;
export const kvmLapicState = new Layout<{ regs: Uint8Array }>('struct kvm_lapic_state', 1024, { regs: f(0, arrayOf('u8', 1024)) });

export const kvmPitConfig = new Layout<{ flags: number }>('struct kvm_pit_config', 64, {
  flags: f(0, 'u32'),
  pad: f(4, arrayOf('u32', 15)),
});

export const kvmPitChannelState = new Layout('struct kvm_pit_channel_state', 24, {
  count: f(0, 'u32'),
  latched_count: f(4, 'u16'),
  count_latched: f(6, 'u8'),
  status_latched: f(7, 'u8'),
  status: f(8, 'u8'),
  read_state: f(9, 'u8'),
  write_state: f(10, 'u8'),
  write_latch: f(11, 'u8'),
  rw_mode: f(12, 'u8'),
  mode: f(13, 'u8'),
  bcd: f(14, 'u8'),
  gate: f(15, 'u8'),
  count_load_time: f(16, 'i64'),
});
export const kvmPitState2 = new Layout('struct kvm_pit_state2', 112, {
  channels: f(0, arrayOf(kvmPitChannelState, 3)),
  flags: f(72, 'u32'),
  reserved: f(76, arrayOf('u32', 9)),
});

export interface KvmIrqchip {
  chip_id: number;
  chip: Uint8Array;
}
export const kvmIrqchip = new Layout<KvmIrqchip>('struct kvm_irqchip', 520, {
  chip_id: f(0, 'u32'),
  pad: f(4, 'u32'),
  chip: f(8, arrayOf('u8', 512)),
});

export interface KvmIrqfd {
  fd: number;
  gsi: number;
  flags: number;
  resamplefd: number;
}
export const kvmIrqfd = new Layout<KvmIrqfd>('struct kvm_irqfd', 32, {
  fd: f(0, 'u32'),
  gsi: f(4, 'u32'),
  flags: f(8, 'u32'),
  resamplefd: f(12, 'u32'),
  pad: f(16, arrayOf('u8', 16)),
});

export interface KvmIoeventfd {
  datamatch: bigint;
  addr: bigint;
  len: number;
  fd: number;
  flags: number;
}
export const kvmIoeventfd = new Layout<KvmIoeventfd>('struct kvm_ioeventfd', 64, {
  datamatch: f(0, 'u64'),
  addr: f(8, 'u64'),
  len: f(16, 'u32'),
  fd: f(20, 'i32'),
  flags: f(24, 'u32'),
  pad: f(28, arrayOf('u8', 36)),
});

export interface KvmIrqLevel {
  irq: number;
  level: number;
}
export const kvmIrqLevel = new Layout<KvmIrqLevel>('struct kvm_irq_level', 8, {
  irq: f(0, 'u32'),
  status: f(0, 'i32'),
  level: f(4, 'u32'),
});

// ---- vcpu events, mp state, clock, xcrs ----
export interface KvmVcpuEvents {
  exception: { injected: number; nr: number; has_error_code: number; pending: number; error_code: number };
  interrupt: { injected: number; nr: number; soft: number; shadow: number };
  nmi: { injected: number; pending: number; masked: number };
  sipi_vector: number;
  flags: number;
  smi: { smm: number; pending: number; smm_inside_nmi: number; latched_init: number };
  triple_fault: { pending: number };
  exception_has_payload: number;
  exception_payload: bigint;
}
export const kvmVcpuEvents = new Layout<KvmVcpuEvents>('struct kvm_vcpu_events', 64, {
  exception: f(
    0,
    new Layout(null, 8, { injected: f(0, 'u8'), nr: f(1, 'u8'), has_error_code: f(2, 'u8'), pending: f(3, 'u8'), error_code: f(4, 'u32') }),
  ),
  interrupt: f(8, new Layout(null, 4, { injected: f(0, 'u8'), nr: f(1, 'u8'), soft: f(2, 'u8'), shadow: f(3, 'u8') })),
  nmi: f(12, new Layout(null, 4, { injected: f(0, 'u8'), pending: f(1, 'u8'), masked: f(2, 'u8'), pad: f(3, 'u8') })),
  sipi_vector: f(16, 'u32'),
  flags: f(20, 'u32'),
  smi: f(24, new Layout(null, 4, { smm: f(0, 'u8'), pending: f(1, 'u8'), smm_inside_nmi: f(2, 'u8'), latched_init: f(3, 'u8') })),
  triple_fault: f(28, new Layout(null, 1, { pending: f(0, 'u8') })),
  reserved: f(29, arrayOf('u8', 26)),
  exception_has_payload: f(55, 'u8'),
  exception_payload: f(56, 'u64'),
});

export const kvmMpState = new Layout<{ mp_state: number }>('struct kvm_mp_state', 4, { mp_state: f(0, 'u32') });

export interface KvmClockData {
  clock: bigint;
  flags: number;
  realtime: bigint;
  host_tsc: bigint;
}
export const kvmClockData = new Layout<KvmClockData>('struct kvm_clock_data', 48, {
  clock: f(0, 'u64'),
  flags: f(8, 'u32'),
  pad0: f(12, 'u32'),
  realtime: f(16, 'u64'),
  host_tsc: f(24, 'u64'),
  pad: f(32, arrayOf('u32', 4)),
});

export const kvmXcr = new Layout('struct kvm_xcr', 16, { xcr: f(0, 'u32'), reserved: f(4, 'u32'), value: f(8, 'u64') });
export interface KvmXcrs {
  nr_xcrs: number;
  flags: number;
  xcrs: { xcr: number; value: bigint }[];
}
export const kvmXcrs = new Layout<KvmXcrs>('struct kvm_xcrs', 392, {
  nr_xcrs: f(0, 'u32'),
  flags: f(4, 'u32'),
  xcrs: f(8, arrayOf(kvmXcr, 16)),
  padding: f(264, arrayOf('u64', 16)),
});

/** struct kvm_signal_mask header; the sigset bytes follow at offset 4. */
export const kvmSignalMask = new Layout<{ len: number }>('struct kvm_signal_mask', 4, { len: f(0, 'u32') });

/** Every layout with a C name, for the layout test. */
export const ALL_LAYOUTS: Layout<object>[] = [
  kvmRun,
  kvmRegs,
  kvmSegment,
  kvmDtable,
  kvmSregs,
  kvmFpu,
  kvmUserspaceMemoryRegion,
  kvmCpuidEntry2,
  kvmCpuid2,
  kvmMsrEntry,
  kvmMsrs,
  kvmMsrList,
  kvmLapicState,
  kvmPitConfig,
  kvmPitChannelState,
  kvmPitState2,
  kvmIrqchip,
  kvmIrqfd,
  kvmIoeventfd,
  kvmIrqLevel,
  kvmVcpuEvents,
  kvmMpState,
  kvmClockData,
  kvmXcr,
  kvmXcrs,
  kvmSignalMask,
] as Layout<object>[];
