/**
 * ELF64 vmlinux loader: copies each PT_LOAD segment to its physical address (p_paddr; Linux
 * links at 0xffffffff81000000 virtual, 0x1000000 physical), zero-fills up to p_memsz, and
 * reads the PVH entry point from the XEN_ELFNOTE_PHYS32_ENTRY note. It only loads bytes into
 * guest memory; registers are the machine's business.
 */
import { FormatError } from '../../errors.js';
import type { GuestRam } from '../memory.js';
import { HIMEM_START } from '../layout.js';

// ELF header (Elf64_Ehdr) offsets, System V gABI.
const EI_CLASS = 4;
const EI_DATA = 5;
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const E_TYPE = 16;
const E_MACHINE = 18;
const E_ENTRY = 24;
const E_PHOFF = 32;
const E_PHENTSIZE = 54;
const E_PHNUM = 56;
const ET_EXEC = 2;
const EM_X86_64 = 62;
const EHDR_SIZE = 64;
// Program header (Elf64_Phdr) offsets.
const P_TYPE = 0;
const P_OFFSET = 8;
const P_PADDR = 24;
const P_FILESZ = 32;
const P_MEMSZ = 40;
const PHDR_SIZE = 56;
export const PT_LOAD = 1;
export const PT_NOTE = 4;
/** Xen's note type for the 32-bit PVH entry point (xen/include/public/elfnote.h). */
export const XEN_ELFNOTE_PHYS32_ENTRY = 18;

export interface ElfLoadResult {
  /** e_entry: the 64-bit entry (startup_64's physical address for vmlinux) */
  entry: number;
  /** XEN_ELFNOTE_PHYS32_ENTRY, when the kernel has CONFIG_PVH */
  pvhEntry?: number;
  /** lowest and highest (exclusive) physical addresses loaded */
  start: number;
  end: number;
}

export function isElf(data: Uint8Array): boolean {
  return data.length >= 4 && data[0] === 0x7f && data[1] === 0x45 && data[2] === 0x4c && data[3] === 0x46;
}

function u64(v: DataView, off: number, what: string): number {
  const n = v.getBigUint64(off, true);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(`ELF: ${what} 0x${n.toString(16)} is out of range`);
  return Number(n);
}

export function loadElf(data: Uint8Array, mem: GuestRam, name = 'kernel'): ElfLoadResult {
  if (!isElf(data) || data.length < EHDR_SIZE) throw new FormatError(`${name}: not an ELF file`);
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (data[EI_CLASS] !== ELFCLASS64 || data[EI_DATA] !== ELFDATA2LSB) throw new FormatError(`${name}: not a little-endian ELF64 file`);
  if (v.getUint16(E_MACHINE, true) !== EM_X86_64)
    throw new FormatError(`${name}: ELF machine ${v.getUint16(E_MACHINE, true)} is not x86_64`);
  if (v.getUint16(E_TYPE, true) !== ET_EXEC) throw new FormatError(`${name}: ELF is not an executable (ET_EXEC)`);
  const phoff = u64(v, E_PHOFF, 'e_phoff');
  const phentsize = v.getUint16(E_PHENTSIZE, true);
  const phnum = v.getUint16(E_PHNUM, true);
  if (phentsize !== PHDR_SIZE) throw new FormatError(`${name}: program header size ${phentsize}, expected ${PHDR_SIZE}`);
  if (phnum === 0 || phoff + phnum * PHDR_SIZE > data.length) throw new FormatError(`${name}: program headers outside the file`);

  let start = Infinity;
  let end = 0;
  let pvhEntry: number | undefined;
  let loads = 0;
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * PHDR_SIZE;
    const type = v.getUint32(ph + P_TYPE, true);
    const offset = u64(v, ph + P_OFFSET, 'p_offset');
    const filesz = u64(v, ph + P_FILESZ, 'p_filesz');
    if (offset + filesz > data.length) throw new FormatError(`${name}: segment ${i} extends past the end of the file`);
    if (type === PT_LOAD) {
      const paddr = u64(v, ph + P_PADDR, 'p_paddr');
      const memsz = u64(v, ph + P_MEMSZ, 'p_memsz');
      if (memsz < filesz) throw new FormatError(`${name}: segment ${i} has p_memsz < p_filesz`);
      if (paddr < HIMEM_START) throw new FormatError(`${name}: segment ${i} at 0x${paddr.toString(16)} is below 1 MiB`);
      let dst: Uint8Array;
      try {
        dst = mem.slice(paddr, memsz);
      } catch (e) {
        throw new FormatError(
          `${name}: segment ${i} (0x${paddr.toString(16)}+0x${memsz.toString(16)}) does not fit in guest RAM`,
          undefined,
          { cause: e },
        );
      }
      dst.set(data.subarray(offset, offset + filesz));
      dst.fill(0, filesz);
      start = Math.min(start, paddr);
      end = Math.max(end, paddr + memsz);
      loads++;
    } else if (type === PT_NOTE) {
      const e = findPvhEntry(data.subarray(offset, offset + filesz));
      if (e !== undefined) pvhEntry = e;
    }
  }
  if (loads === 0) throw new FormatError(`${name}: no PT_LOAD segment`);
  return { entry: u64(v, E_ENTRY, 'e_entry'), pvhEntry, start, end };
}

/** Walks ELF notes (namesz, descsz, type, name, desc; 4-byte aligned) for Xen's PHYS32_ENTRY. */
export function findPvhEntry(notes: Uint8Array): number | undefined {
  const v = new DataView(notes.buffer, notes.byteOffset, notes.byteLength);
  const align4 = (n: number) => (n + 3) & ~3;
  let off = 0;
  while (off + 12 <= notes.length) {
    const namesz = v.getUint32(off, true);
    const descsz = v.getUint32(off + 4, true);
    const type = v.getUint32(off + 8, true);
    const nameOff = off + 12;
    const descOff = nameOff + align4(namesz);
    const next = descOff + align4(descsz);
    if (next > notes.length) throw new FormatError('ELF note extends past its segment');
    const noteName = String.fromCharCode(...notes.subarray(nameOff, nameOff + Math.max(0, namesz - 1)));
    if (noteName === 'Xen' && type === XEN_ELFNOTE_PHYS32_ENTRY) {
      if (descsz === 4) return v.getUint32(descOff, true);
      if (descsz === 8) return Number(v.getBigUint64(descOff, true));
      throw new FormatError(`XEN_ELFNOTE_PHYS32_ENTRY has ${descsz} bytes`);
    }
    off = next;
  }
  return undefined;
}
