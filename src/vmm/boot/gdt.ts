/**
 * The boot GDT and the conversion of its descriptors to the kvm_segment KVM_SET_SREGS wants.
 * Selectors follow Linux's boot protocol: __BOOT_CS = 0x10, __BOOT_DS = 0x18; the TSS (which
 * VMX requires to be usable) at 0x20.
 */
import type { KvmSegment } from '../../kvm/structs.js';
import type { GuestRam } from '../memory.js';

/** Access/flags words as Linux's GDT_ENTRY takes them: (flags nibble << 12) | access byte. */
export const GDT_FLAGS_CODE64 = 0xa09b; // G, L, present, DPL 0, code exec/read, accessed
export const GDT_FLAGS_CODE32 = 0xc09b; // G, D/B, present, DPL 0, code exec/read, accessed
export const GDT_FLAGS_DATA = 0xc093; // G, D/B, present, DPL 0, data read/write, accessed
export const GDT_FLAGS_TSS64 = 0x808b; // G, present, busy TSS
export const GDT_FLAGS_TSS32 = 0x008b; // present, busy 32-bit TSS, byte granular

export const BOOT_CS = 0x10;
export const BOOT_DS = 0x18;
export const BOOT_TSS = 0x20;

/** Linux's GDT_ENTRY(flags, base, limit). */
export function gdtEntry(flags: number, base: number, limit: number): bigint {
  const b = BigInt(base >>> 0);
  const l = BigInt(limit >>> 0);
  const fl = BigInt(flags & 0xf0ff);
  return ((b & 0xff000000n) << 32n) | ((b & 0x00ffffffn) << 16n) | (l & 0xffffn) | ((l & 0xf0000n) << 32n) | (fl << 40n);
}

/** Decodes a descriptor into the segment register state it loads (limit scaled by G). */
export function segmentFromEntry(index: number, e: bigint): KvmSegment {
  const bits = (shift: bigint, mask: bigint) => Number((e >> shift) & mask);
  const g = bits(55n, 1n);
  const rawLimit = bits(0n, 0xffffn) | (bits(48n, 0xfn) << 16);
  const present = bits(47n, 1n);
  return {
    base: BigInt(bits(16n, 0xffffffn) | (bits(56n, 0xffn) << 24)) & 0xffffffffn,
    limit: g ? ((rawLimit << 12) | 0xfff) >>> 0 : rawLimit,
    selector: index * 8,
    type: bits(40n, 0xfn),
    s: bits(44n, 1n),
    dpl: bits(45n, 3n),
    present,
    avl: bits(52n, 1n),
    l: bits(53n, 1n),
    db: bits(54n, 1n),
    g,
    unusable: present ? 0 : 1,
  };
}

export type BootMode = 'long' | 'protected';

/** Entries 0..5: null, null, code (0x10), data (0x18), TSS (0x20, 16 bytes in long mode). */
export function bootGdt(mode: BootMode): bigint[] {
  return mode === 'long'
    ? [0n, 0n, gdtEntry(GDT_FLAGS_CODE64, 0, 0xfffff), gdtEntry(GDT_FLAGS_DATA, 0, 0xfffff), gdtEntry(GDT_FLAGS_TSS64, 0, 0xfffff), 0n]
    : [0n, 0n, gdtEntry(GDT_FLAGS_CODE32, 0, 0xfffff), gdtEntry(GDT_FLAGS_DATA, 0, 0xfffff), gdtEntry(GDT_FLAGS_TSS32, 0, 0x67), 0n];
}

export function writeGdt(mem: GuestRam, gpa: number, entries: bigint[]): void {
  const b = mem.slice(gpa, entries.length * 8);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  entries.forEach((e, i) => v.setBigUint64(i * 8, e, true));
}

/** The segment registers for a GDT built by bootGdt. */
export function bootSegments(gdt: bigint[]): { code: KvmSegment; data: KvmSegment; tss: KvmSegment } {
  return {
    code: segmentFromEntry(BOOT_CS / 8, gdt[BOOT_CS / 8]!),
    data: segmentFromEntry(BOOT_DS / 8, gdt[BOOT_DS / 8]!),
    tss: segmentFromEntry(BOOT_TSS / 8, gdt[BOOT_TSS / 8]!),
  };
}
