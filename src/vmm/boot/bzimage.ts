/**
 * bzImage (Documentation/arch/x86/boot.rst): the real-mode setup sectors followed by the
 * protected-mode kernel. We only use the 64-bit entry: the protected-mode part is loaded at
 * 1 MiB (or pref_address if relocatable) and entered at +0x200 in long mode with RSI pointing
 * at a zero page that carries the file's setup header.
 */
import { FormatError } from '../../errors.js';
import type { GuestRam } from '../memory.js';
import { setupHeader, SETUP_HEADER_OFFSET, BOOT_FLAG_MAGIC, HDRS_MAGIC, XLF_KERNEL_64 } from './boot-params.js';
import { HIMEM_START } from '../layout.js';

/** The 64-bit entry point is 0x200 bytes into the protected-mode kernel. */
export const STARTUP_64_OFFSET = 0x200;
/** Boot protocol 2.12 introduced xloadflags (XLF_KERNEL_64). */
export const MIN_BOOT_PROTOCOL = 0x020c;

export interface BzImageInfo {
  version: number;
  setupSects: number;
  /** the setup header as the file has it: copied into the zero page */
  setupHeaderBytes: Uint8Array;
  kernelOffset: number;
  initrdAddrMax: number;
  cmdlineSize: number;
  relocatable: boolean;
  prefAddress: number;
  initSize: number;
}

export function isBzImage(data: Uint8Array): boolean {
  if (data.length < 0x206) return false;
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return v.getUint16(0x1fe, true) === BOOT_FLAG_MAGIC && v.getUint32(0x202, true) === HDRS_MAGIC;
}

export function parseBzImage(data: Uint8Array, name = 'kernel'): BzImageInfo {
  if (!isBzImage(data)) throw new FormatError(`${name}: not a bzImage (no 0xAA55 boot flag and "HdrS" header)`);
  const h = setupHeader.decode(data, SETUP_HEADER_OFFSET) as Record<string, number | bigint>;
  const version = h.version as number;
  if (version < MIN_BOOT_PROTOCOL) throw new FormatError(`${name}: boot protocol ${version.toString(16)} is older than 2.12`);
  if (!((h.xloadflags as number) & XLF_KERNEL_64)) throw new FormatError(`${name}: bzImage has no 64-bit entry (XLF_KERNEL_64)`);
  const setupSects = (h.setup_sects as number) || 4;
  const kernelOffset = (setupSects + 1) * 512;
  if (kernelOffset >= data.length) throw new FormatError(`${name}: setup sectors run past the end of the file`);
  // The header's own length: the jump at 0x200 is a short jmp whose displacement byte ends it.
  const hdrEnd = Math.min(0x202 + data[0x201]!, SETUP_HEADER_OFFSET + setupHeader.size);
  return {
    version,
    setupSects,
    setupHeaderBytes: data.slice(SETUP_HEADER_OFFSET, hdrEnd),
    kernelOffset,
    initrdAddrMax: h.initrd_addr_max as number,
    cmdlineSize: h.cmdline_size as number,
    relocatable: (h.relocatable_kernel as number) !== 0,
    prefAddress: Number(h.pref_address),
    initSize: h.init_size as number,
  };
}

export interface BzImageLoad {
  info: BzImageInfo;
  loadAddr: number;
  entry: number;
  end: number;
}

/** Loads the protected-mode kernel; the decompressor needs init_size bytes from the load address. */
export function loadBzImage(data: Uint8Array, mem: GuestRam, name = 'kernel'): BzImageLoad {
  const info = parseBzImage(data, name);
  const loadAddr = info.relocatable && info.prefAddress >= HIMEM_START ? info.prefAddress : HIMEM_START;
  const payload = data.subarray(info.kernelOffset);
  const span = Math.max(payload.length, info.initSize);
  let dst: Uint8Array;
  try {
    dst = mem.slice(loadAddr, span);
  } catch (e) {
    throw new FormatError(
      `${name}: kernel needs 0x${span.toString(16)} bytes at 0x${loadAddr.toString(16)}, more than guest RAM`,
      undefined,
      { cause: e },
    );
  }
  dst.set(payload);
  return { info, loadAddr, entry: loadAddr + STARTUP_64_OFFSET, end: loadAddr + span };
}
