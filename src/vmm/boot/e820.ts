/** The BIOS e820 memory map the VMM reports to Linux (boot_params) and to PVH (memmap). */
import { InvalidParameterError } from '../../errors.js';
import { BIOS_END, EBDA_START, type RamRegion } from '../layout.js';

export const E820_RAM = 1;
export const E820_RESERVED = 2;
export const E820_ACPI = 3;
export const E820_NVS = 4;
export const E820_UNUSABLE = 5;
/** boot_params.e820_table holds at most this many entries (E820_MAX_ENTRIES_ZEROPAGE). */
export const E820_MAX_ENTRIES_ZEROPAGE = 128;

export interface E820Entry {
  addr: number;
  size: number;
  type: number;
}

/**
 * RAM below the EBDA, the EBDA + legacy BIOS area reserved, RAM from 1 MiB to the end of each
 * region. The MP table lives in the reserved EBDA, so the kernel never reuses it as RAM.
 */
export function buildE820(regions: readonly RamRegion[]): E820Entry[] {
  const low = regions[0];
  if (!low || low.guestAddr !== 0 || low.size <= BIOS_END) {
    throw new InvalidParameterError('e820: guest RAM must start at 0 and extend past 1 MiB');
  }
  const map: E820Entry[] = [
    { addr: 0, size: EBDA_START, type: E820_RAM },
    { addr: EBDA_START, size: BIOS_END - EBDA_START, type: E820_RESERVED },
    { addr: BIOS_END, size: low.size - BIOS_END, type: E820_RAM },
  ];
  for (const r of regions.slice(1)) map.push({ addr: r.guestAddr, size: r.size, type: E820_RAM });
  validateE820(map);
  return map;
}

/** Sorted, non-empty, non-overlapping, and few enough for the zero page. */
export function validateE820(map: readonly E820Entry[]): void {
  if (map.length > E820_MAX_ENTRIES_ZEROPAGE)
    throw new InvalidParameterError(`e820: ${map.length} entries, at most ${E820_MAX_ENTRIES_ZEROPAGE}`);
  let end = 0;
  for (const e of map) {
    if (e.size <= 0) throw new InvalidParameterError(`e820: empty entry at 0x${e.addr.toString(16)}`);
    if (e.addr < end) throw new InvalidParameterError(`e820: entry at 0x${e.addr.toString(16)} overlaps or is out of order`);
    end = e.addr + e.size;
  }
}
