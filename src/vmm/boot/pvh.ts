/**
 * The PVH boot ABI (xen/include/public/arch-x86/hvm/start_info.h): the kernel is entered at
 * XEN_ELFNOTE_PHYS32_ENTRY in 32-bit protected mode, paging off, with EBX pointing at
 * struct hvm_start_info, which gives the command line, the modules (our initramfs) and the
 * memory map. Not in linux-libc-dev: the offsets come from the Xen header and are pinned by
 * test/unit/vmm/pvh.test.ts.
 */
import { Layout, type Field, type FieldType } from '../../kvm/layout.js';
import { InvalidParameterError } from '../../errors.js';
import type { GuestRam } from '../memory.js';
import type { E820Entry } from './e820.js';
import { validateE820 } from './e820.js';
import { PVH_INFO_START, PVH_MEMMAP_START, PVH_MEMMAP_MAX_ENTRIES, PVH_MODLIST_START } from '../layout.js';

const f = (offset: number, type: FieldType): Field => ({ offset, type });

export const XEN_HVM_START_MAGIC_VALUE = 0x336ec578;
export const HVM_START_INFO_VERSION = 1;

export const hvmStartInfo = new Layout('struct hvm_start_info', 56, {
  magic: f(0, 'u32'),
  version: f(4, 'u32'),
  flags: f(8, 'u32'),
  nr_modules: f(12, 'u32'),
  modlist_paddr: f(16, 'u64'),
  cmdline_paddr: f(24, 'u64'),
  rsdp_paddr: f(32, 'u64'),
  memmap_paddr: f(40, 'u64'),
  memmap_entries: f(48, 'u32'),
  reserved: f(52, 'u32'),
});
export const hvmModlistEntry = new Layout('struct hvm_modlist_entry', 32, {
  paddr: f(0, 'u64'),
  size: f(8, 'u64'),
  cmdline_paddr: f(16, 'u64'),
  reserved: f(24, 'u64'),
});
export const hvmMemmapTableEntry = new Layout('struct hvm_memmap_table_entry', 24, {
  addr: f(0, 'u64'),
  size: f(8, 'u64'),
  type: f(16, 'u32'),
  reserved: f(20, 'u32'),
});

export interface PvhInput {
  cmdlinePaddr: number;
  e820: readonly E820Entry[];
  initrd?: { addr: number; size: number };
}

/** Writes start info, module list and memory map; returns the start info address (for EBX). */
export function writePvhStartInfo(mem: GuestRam, input: PvhInput): number {
  validateE820(input.e820);
  if (input.e820.length > PVH_MEMMAP_MAX_ENTRIES) throw new InvalidParameterError(`PVH memory map: ${input.e820.length} entries`);
  const mm = mem.slice(PVH_MEMMAP_START, input.e820.length * hvmMemmapTableEntry.size);
  input.e820.forEach((e, i) =>
    hvmMemmapTableEntry.encode(mm, { addr: BigInt(e.addr), size: BigInt(e.size), type: e.type, reserved: 0 }, i * hvmMemmapTableEntry.size),
  );
  if (input.initrd) {
    hvmModlistEntry.encode(mem.slice(PVH_MODLIST_START, hvmModlistEntry.size), {
      paddr: BigInt(input.initrd.addr),
      size: BigInt(input.initrd.size),
      cmdline_paddr: 0n,
      reserved: 0n,
    });
  }
  const info = mem.slice(PVH_INFO_START, hvmStartInfo.size).fill(0);
  hvmStartInfo.encode(info, {
    magic: XEN_HVM_START_MAGIC_VALUE,
    version: HVM_START_INFO_VERSION,
    flags: 0,
    nr_modules: input.initrd ? 1 : 0,
    modlist_paddr: input.initrd ? BigInt(PVH_MODLIST_START) : 0n,
    cmdline_paddr: BigInt(input.cmdlinePaddr),
    rsdp_paddr: 0n,
    memmap_paddr: BigInt(PVH_MEMMAP_START),
    memmap_entries: input.e820.length,
  });
  return PVH_INFO_START;
}
