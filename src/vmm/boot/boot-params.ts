/**
 * Linux's struct boot_params (the "zero page", Documentation/arch/x86/zero-page.rst) and the
 * struct setup_header inside it (Documentation/arch/x86/boot.rst), as offset tables with the
 * header's names. test/unit/vmm/boot-params.test.ts pins them against <asm/bootparam.h>.
 */
import { Layout, arrayOf, type Field, type FieldType } from '../../kvm/layout.js';
import type { E820Entry } from './e820.js';
import { validateE820 } from './e820.js';
import { FormatError } from '../../errors.js';

const f = (offset: number, type: FieldType): Field => ({ offset, type });

export const BOOT_PARAMS_SIZE = 4096;
export const SETUP_HEADER_OFFSET = 0x1f1;
export const BOOT_FLAG_MAGIC = 0xaa55;
export const HDRS_MAGIC = 0x53726448; // "HdrS"
/** type_of_loader 0xff: "undefined" boot loader, as every VMM without an assigned ID uses. */
export const LOADER_TYPE_UNDEFINED = 0xff;
export const LOADFLAGS_LOADED_HIGH = 0x01;
export const LOADFLAGS_KEEP_SEGMENTS = 0x40;
export const LOADFLAGS_CAN_USE_HEAP = 0x80;
export const XLF_KERNEL_64 = 1 << 0;
export const XLF_CAN_BE_LOADED_ABOVE_4G = 1 << 1;

/** struct setup_header, offsets relative to its start (0x1f1 in boot_params). */
export const setupHeader = new Layout('struct setup_header', 0x7b, {
  setup_sects: f(0x00, 'u8'),
  root_flags: f(0x01, 'u16'),
  syssize: f(0x03, 'u32'),
  ram_size: f(0x07, 'u16'),
  vid_mode: f(0x09, 'u16'),
  root_dev: f(0x0b, 'u16'),
  boot_flag: f(0x0d, 'u16'),
  jump: f(0x0f, 'u16'),
  header: f(0x11, 'u32'),
  version: f(0x15, 'u16'),
  realmode_swtch: f(0x17, 'u32'),
  start_sys_seg: f(0x1b, 'u16'),
  kernel_version: f(0x1d, 'u16'),
  type_of_loader: f(0x1f, 'u8'),
  loadflags: f(0x20, 'u8'),
  setup_move_size: f(0x21, 'u16'),
  code32_start: f(0x23, 'u32'),
  ramdisk_image: f(0x27, 'u32'),
  ramdisk_size: f(0x2b, 'u32'),
  bootsect_kludge: f(0x2f, 'u32'),
  heap_end_ptr: f(0x33, 'u16'),
  ext_loader_ver: f(0x35, 'u8'),
  ext_loader_type: f(0x36, 'u8'),
  cmd_line_ptr: f(0x37, 'u32'),
  initrd_addr_max: f(0x3b, 'u32'),
  kernel_alignment: f(0x3f, 'u32'),
  relocatable_kernel: f(0x43, 'u8'),
  min_alignment: f(0x44, 'u8'),
  xloadflags: f(0x45, 'u16'),
  cmdline_size: f(0x47, 'u32'),
  hardware_subarch: f(0x4b, 'u32'),
  hardware_subarch_data: f(0x4f, 'u64'),
  payload_offset: f(0x57, 'u32'),
  payload_length: f(0x5b, 'u32'),
  setup_data: f(0x5f, 'u64'),
  pref_address: f(0x67, 'u64'),
  init_size: f(0x6f, 'u32'),
  handover_offset: f(0x73, 'u32'),
  kernel_info_offset: f(0x77, 'u32'),
});

export const bootE820Entry = new Layout('struct boot_e820_entry', 20, { addr: f(0, 'u64'), size: f(8, 'u64'), type: f(16, 'u32') });

export const E820_TABLE_OFFSET = 0x2d0;
export const bootParams = new Layout('struct boot_params', BOOT_PARAMS_SIZE, {
  tboot_addr: f(0x058, 'u64'),
  acpi_rsdp_addr: f(0x070, 'u64'),
  ext_ramdisk_image: f(0x0c0, 'u32'),
  ext_ramdisk_size: f(0x0c4, 'u32'),
  ext_cmd_line_ptr: f(0x0c8, 'u32'),
  alt_mem_k: f(0x1e0, 'u32'),
  scratch: f(0x1e4, 'u32'),
  e820_entries: f(0x1e8, 'u8'),
  eddbuf_entries: f(0x1e9, 'u8'),
  edd_mbr_sig_buf_entries: f(0x1ea, 'u8'),
  kbd_status: f(0x1eb, 'u8'),
  secure_boot: f(0x1ec, 'u8'),
  sentinel: f(0x1ef, 'u8'),
  hdr: f(SETUP_HEADER_OFFSET, setupHeader),
  e820_table: f(E820_TABLE_OFFSET, arrayOf(bootE820Entry, 128)),
});

export interface BootParamsInput {
  /** the setup header bytes from a bzImage (bzimage.ts), or none for a vmlinux ELF */
  setupHeaderBytes?: Uint8Array;
  cmdlinePtr: number;
  cmdlineSize: number;
  e820: readonly E820Entry[];
  ramdisk?: { addr: number; size: number };
}

/** Builds the zero page. Addresses are split into the low 32 bits and the ext_ fields. */
export function buildBootParams(input: BootParamsInput): Uint8Array {
  validateE820(input.e820);
  const bp = new Uint8Array(BOOT_PARAMS_SIZE);
  if (input.setupHeaderBytes) {
    if (input.setupHeaderBytes.length > BOOT_PARAMS_SIZE - SETUP_HEADER_OFFSET) throw new FormatError('setup header too long');
    bp.set(input.setupHeaderBytes, SETUP_HEADER_OFFSET);
  } else {
    bootParams.encode(bp, { hdr: { boot_flag: BOOT_FLAG_MAGIC, header: HDRS_MAGIC, kernel_alignment: 0x0100_0000 } });
  }
  const hdr = (bootParams.decode(bp) as { hdr: Record<string, number> }).hdr;
  const split = (v: number) => [v % 2 ** 32, Math.floor(v / 2 ** 32)] as const;
  const [cmdLo, cmdHi] = split(input.cmdlinePtr);
  const bpv: Record<string, unknown> = {
    hdr: {
      type_of_loader: LOADER_TYPE_UNDEFINED,
      loadflags: (hdr.loadflags! | LOADFLAGS_LOADED_HIGH | LOADFLAGS_CAN_USE_HEAP) & ~LOADFLAGS_KEEP_SEGMENTS,
      heap_end_ptr: 0xfe00,
      cmd_line_ptr: cmdLo,
      cmdline_size: input.cmdlineSize,
      ramdisk_image: 0,
      ramdisk_size: 0,
    },
    ext_cmd_line_ptr: cmdHi,
    e820_entries: input.e820.length,
    e820_table: input.e820.map((e) => ({ addr: BigInt(e.addr), size: BigInt(e.size), type: e.type })),
  };
  if (input.ramdisk) {
    const [ia, ib] = split(input.ramdisk.addr);
    const [sa, sb] = split(input.ramdisk.size);
    Object.assign(bpv.hdr as object, { ramdisk_image: ia, ramdisk_size: sa });
    bpv.ext_ramdisk_image = ib;
    bpv.ext_ramdisk_size = sb;
  }
  bootParams.encode(bp, bpv);
  return bp;
}
