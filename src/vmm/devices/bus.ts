/**
 * The port I/O and MMIO buses: non-overlapping address ranges, each owned by one device,
 * looked up by binary search on every exit. A device sees offsets relative to its base.
 */
import { ConflictError, InvalidParameterError } from '../../errors.js';

export interface BusDevice {
  /** fill `data` (1, 2, 4 or 8 bytes) with the value read at `offset` */
  read(offset: number, data: Uint8Array): void;
  write(offset: number, data: Uint8Array): void;
}

export interface BusRange {
  base: number;
  len: number;
  name: string;
  device: BusDevice;
}

export class Bus {
  private ranges: BusRange[] = [];
  constructor(readonly kind: 'pio' | 'mmio') {}

  insert(base: number, len: number, name: string, device: BusDevice): void {
    if (!Number.isSafeInteger(base) || !Number.isSafeInteger(len) || base < 0 || len <= 0) {
      throw new InvalidParameterError(`${this.kind} bus: bad range 0x${base.toString(16)}+${len} for ${name}`);
    }
    if (this.kind === 'pio' && base + len > 0x10000)
      throw new InvalidParameterError(`pio bus: ${name} at 0x${base.toString(16)}+${len} is past port 0xffff`);
    for (const r of this.ranges) {
      if (base < r.base + r.len && r.base < base + len) {
        throw new ConflictError(
          `${this.kind} bus: ${name} at 0x${base.toString(16)}+0x${len.toString(16)} overlaps ${r.name} at 0x${r.base.toString(16)}+0x${r.len.toString(16)}`,
          'ERR_BUS_OVERLAP',
        );
      }
    }
    this.ranges.push({ base, len, name, device });
    this.ranges.sort((a, b) => a.base - b.base);
  }

  remove(base: number): boolean {
    const i = this.ranges.findIndex((r) => r.base === base);
    if (i < 0) return false;
    this.ranges.splice(i, 1);
    return true;
  }

  /** The range holding all of [addr, addr+len), if one does. */
  find(addr: number, len = 1): BusRange | undefined {
    let lo = 0;
    let hi = this.ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = this.ranges[mid]!;
      if (addr < r.base) hi = mid - 1;
      else if (addr >= r.base + r.len) lo = mid + 1;
      else return addr + len <= r.base + r.len ? r : undefined;
    }
    return undefined;
  }

  /** Dispatches a read; false when no device claims the whole access. */
  read(addr: number, data: Uint8Array): boolean {
    const r = this.find(addr, data.length);
    if (!r) return false;
    r.device.read(addr - r.base, data);
    return true;
  }

  write(addr: number, data: Uint8Array): boolean {
    const r = this.find(addr, data.length);
    if (!r) return false;
    r.device.write(addr - r.base, data);
    return true;
  }

  get devices(): readonly BusRange[] {
    return this.ranges;
  }
}
