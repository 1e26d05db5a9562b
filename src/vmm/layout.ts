/**
 * The microVM's guest-physical memory map. Low memory holds the boot structures at fixed
 * addresses (below the EBDA, where Linux expects nothing of ours to be reclaimed before it has
 * read it); RAM runs from 1 MiB up to the 32-bit MMIO hole and continues above 4 GiB.
 */
export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** Boot GDT (boot/gdt.ts) and an empty IDT. */
export const BOOT_GDT_START = 0x500;
export const BOOT_GDT_MAX_ENTRIES = 8;
export const BOOT_IDT_START = 0x540;
/** PVH hvm_start_info, its memory map and module list (boot/pvh.ts). */
export const PVH_INFO_START = 0x6000;
export const PVH_MODLIST_START = 0x6040;
export const PVH_MEMMAP_START = 0x6080;
export const PVH_MEMMAP_MAX_ENTRIES = 128;
/** Linux's struct boot_params ("zero page"). */
export const ZERO_PAGE_START = 0x7000;
/** Initial stack for the boot CPU (grows down below the page tables). */
export const BOOT_STACK_POINTER = 0x8ff0;
/** Identity page tables (boot/page-tables.ts): PML4, PDPT, then one PD per mapped GiB. */
export const PML4_START = 0x9000;
export const PDPT_START = 0xa000;
export const PD_START = 0xb000;
export const IDENTITY_MAP_GIB = 4;
/** Kernel command line. */
export const CMDLINE_START = 0x20000;
export const CMDLINE_MAX_SIZE = 4096;
/** Extended BIOS data area: where Linux looks for the MP floating pointer first. */
export const EBDA_START = 0x9fc00;
export const MPTABLE_START = EBDA_START;
/** Legacy VGA/BIOS area, reserved in the e820 map. */
export const BIOS_END = 0x100000;
export const HIMEM_START = 0x100000;
/** The 32-bit MMIO hole: virtio-mmio devices, IOAPIC, LAPIC. */
export const MMIO_HOLE_START = 0xd000_0000;
export const MMIO_HOLE_END = 0x1_0000_0000;
export const HIGH_RAM_START = 0x1_0000_0000;
/** KVM's private pages on Intel (TSS: 3 pages, identity map: 1 page), just below the IOAPIC. */
export const KVM_TSS_ADDR = 0xfffb_d000;
export const KVM_IDENTITY_MAP_ADDR = 0xfffb_c000;
export const IOAPIC_ADDR = 0xfec0_0000;
export const LAPIC_ADDR = 0xfee0_0000;
/** virtio-mmio device windows start here, one 4 KiB window per device. */
export const VIRTIO_MMIO_START = MMIO_HOLE_START;
export const VIRTIO_MMIO_SIZE = 0x1000;
/** First IRQ line handed to virtio-mmio devices (legacy ISA lines below are taken). */
export const VIRTIO_IRQ_START = 5;
export const IRQ_MAX = 23;

export interface RamRegion {
  guestAddr: number;
  size: number;
  /** offset of the region in the single host mapping */
  hostOffset: number;
}

/** Splits `bytes` of RAM around the MMIO hole. */
export function ramRegions(bytes: number): RamRegion[] {
  const low = Math.min(bytes, MMIO_HOLE_START);
  const regions: RamRegion[] = [{ guestAddr: 0, size: low, hostOffset: 0 }];
  if (bytes > low) regions.push({ guestAddr: HIGH_RAM_START, size: bytes - low, hostOffset: low });
  return regions;
}
