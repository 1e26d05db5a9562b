/**
 * Identity page tables for entering the 64-bit kernel: PML4[0] -> PDPT, PDPT[i] -> PD i,
 * each PD maps 1 GiB with 2 MiB pages. Linux's 64-bit boot protocol requires the kernel, the
 * zero page and the command line to be identity mapped; startup_64 builds its own tables.
 */
import type { GuestRam } from '../memory.js';
import { PML4_START, PDPT_START, PD_START, IDENTITY_MAP_GIB, GiB } from '../layout.js';
import { InvalidParameterError } from '../../errors.js';

export const PTE_PRESENT = 1n << 0n;
export const PTE_RW = 1n << 1n;
export const PTE_USER = 1n << 2n;
export const PTE_PS = 1n << 7n;
const ENTRIES = 512;
const PAGE_2M = 2n * 1024n * 1024n;

export interface PageTableLayout {
  pml4: number;
  pdpt: number;
  pd: number;
  gib: number;
}
export const DEFAULT_PAGE_TABLES: PageTableLayout = { pml4: PML4_START, pdpt: PDPT_START, pd: PD_START, gib: IDENTITY_MAP_GIB };

/** A zeroed page of guest memory as a DataView. */
function page(mem: GuestRam, gpa: number): DataView {
  const b = mem.slice(gpa, 4096).fill(0);
  return new DataView(b.buffer, b.byteOffset, 4096);
}

/** Writes the tables; returns the value for CR3. */
export function writeIdentityPageTables(mem: GuestRam, l: PageTableLayout = DEFAULT_PAGE_TABLES): number {
  if (l.gib < 1 || l.gib > ENTRIES) throw new InvalidParameterError(`identity map of ${l.gib} GiB`);
  const pml4 = page(mem, l.pml4);
  const pdpt = page(mem, l.pdpt);
  pml4.setBigUint64(0, BigInt(l.pdpt) | PTE_PRESENT | PTE_RW, true);
  for (let g = 0; g < l.gib; g++) {
    const pdAddr = l.pd + g * 4096;
    pdpt.setBigUint64(g * 8, BigInt(pdAddr) | PTE_PRESENT | PTE_RW, true);
    const pd = page(mem, pdAddr);
    for (let i = 0; i < ENTRIES; i++) {
      const phys = BigInt(g) * BigInt(GiB) + BigInt(i) * PAGE_2M;
      pd.setBigUint64(i * 8, phys | PTE_PRESENT | PTE_RW | PTE_PS, true);
    }
  }
  return l.pml4;
}

/** A 4-level walk (4 KiB, 2 MiB and 1 GiB pages) over guest memory; undefined if unmapped. */
export function walkPageTables(mem: GuestRam, cr3: number, vaddr: bigint): bigint | undefined {
  const read = (table: bigint, idx: bigint) => {
    const b = mem.slice(Number(table) + Number(idx) * 8, 8);
    return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
  };
  const ADDR = 0x000f_ffff_ffff_f000n;
  let table = BigInt(cr3) & ADDR;
  const shifts = [39n, 30n, 21n, 12n];
  for (let level = 0; level < 4; level++) {
    const e = read(table, (vaddr >> shifts[level]!) & 0x1ffn);
    if (!(e & PTE_PRESENT)) return undefined;
    if ((level === 1 || level === 2) && e & PTE_PS) {
      const mask = (1n << shifts[level]!) - 1n;
      return (e & ADDR & ~mask) | (vaddr & mask);
    }
    table = e & ADDR;
  }
  return table | (vaddr & 0xfffn);
}
