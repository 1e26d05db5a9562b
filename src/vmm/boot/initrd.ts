/** Where the initramfs goes: as high in low RAM as the kernel allows, page aligned, above the kernel. */
import { InvalidParameterError } from '../../errors.js';

export const PAGE_SIZE = 4096;

export function placeInitrd(opts: { size: number; lowRamEnd: number; kernelEnd: number; initrdAddrMax?: number }): number {
  const limit = Math.min(opts.lowRamEnd, (opts.initrdAddrMax ?? 0x7fffffff) + 1);
  const addr = Math.floor((limit - opts.size) / PAGE_SIZE) * PAGE_SIZE;
  if (opts.size <= 0 || addr < opts.kernelEnd) {
    throw new InvalidParameterError(
      `initrd of ${opts.size} bytes does not fit between the kernel (ends at 0x${opts.kernelEnd.toString(16)}) and 0x${limit.toString(16)}: give the VM more memory`,
    );
  }
  return addr;
}
