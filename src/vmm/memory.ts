/**
 * Guest RAM: one host mapping (a memfd, so a snapshot can be written from it and restored
 * with MAP_PRIVATE later, or anonymous shared memory), split into KVM slots around the 32-bit
 * MMIO hole. Device emulation reads and writes it through `slice`, which translates a
 * guest-physical range to a view and refuses anything outside RAM or spanning two regions.
 *
 * Worker threads re-create views of the same memory from `hostAddress` (libc.viewAddress):
 * the mapping is process-wide, only the JS ArrayBuffer is per thread.
 */
import * as libc from '../kvm/libc.js';
import { InvalidParameterError, TvmError } from '../errors.js';
import { ramRegions, type RamRegion, MiB } from './layout.js';

export class GuestMemoryError extends TvmError {
  constructor(message: string) {
    super('ERR_GUEST_MEMORY', message, 500);
  }
}

/** What loaders and devices need: translation of a guest-physical range to bytes. */
export interface GuestRam {
  readonly size: number;
  readonly regions: readonly RamRegion[];
  slice(gpa: number, len: number): Uint8Array;
}

function translate(regions: readonly RamRegion[], views: Uint8Array[], gpa: number, len: number): Uint8Array {
  if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(len) || gpa < 0 || len < 0) {
    throw new GuestMemoryError(`guest range 0x${gpa.toString(16)}+${len} is not a valid address range`);
  }
  for (let i = 0; i < regions.length; i++) {
    const r = regions[i]!;
    if (gpa >= r.guestAddr && gpa + len <= r.guestAddr + r.size) {
      const off = gpa - r.guestAddr;
      return views[i]!.subarray(off, off + len);
    }
  }
  throw new GuestMemoryError(`guest range 0x${gpa.toString(16)}..0x${(gpa + len).toString(16)} is outside guest RAM`);
}

/** Guest RAM over a plain buffer: for unit tests of loaders and devices. */
export class BufferRam implements GuestRam {
  readonly regions: readonly RamRegion[];
  readonly buffer: Uint8Array;
  private readonly views: Uint8Array[];
  constructor(readonly size: number) {
    this.regions = ramRegions(size);
    this.buffer = new Uint8Array(size);
    this.views = this.regions.map((r) => this.buffer.subarray(r.hostOffset, r.hostOffset + r.size));
  }
  slice(gpa: number, len: number): Uint8Array {
    return translate(this.regions, this.views, gpa, len);
  }
}

export interface GuestMemoryOptions {
  /** memfd (default) or anonymous shared memory */
  backing?: 'memfd' | 'anonymous';
  /** ask for transparent huge pages (MADV_HUGEPAGE); ignored where the kernel refuses */
  hugepages?: boolean;
}

export class GuestMemory implements GuestRam {
  readonly regions: readonly RamRegion[];
  private views: Uint8Array[];
  private closed = false;

  private constructor(
    readonly size: number,
    readonly hostAddress: number,
    readonly fd: number,
    private readonly owner = true,
  ) {
    this.regions = ramRegions(size);
    const ab = libc.viewAddress(hostAddress, size);
    this.views = this.regions.map((r) => new Uint8Array(ab, r.hostOffset, r.size));
  }

  static create(bytes: number, opts: GuestMemoryOptions = {}): GuestMemory {
    if (!Number.isSafeInteger(bytes) || bytes < 16 * MiB || bytes % (2 * MiB) !== 0) {
      throw new InvalidParameterError(`guest memory: ${bytes} bytes; need a multiple of 2 MiB, at least 16 MiB`);
    }
    let fd = -1;
    let addr = 0;
    try {
      if ((opts.backing ?? 'memfd') === 'memfd') {
        fd = libc.memfdCreate('tvm-guest-ram');
        libc.ftruncate(fd, bytes);
        addr = libc.mmap(0, bytes, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED | libc.MAP_NORESERVE, fd, 0);
      } else {
        addr = libc.mmap(0, bytes, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED | libc.MAP_ANONYMOUS | libc.MAP_NORESERVE, -1, 0);
      }
      if (opts.hugepages ?? true) {
        try {
          libc.madvise(addr, bytes, libc.MADV_HUGEPAGE);
        } catch {
          // THP disabled or shmem THP off: normal pages work, only slower.
        }
      }
      libc.madvise(addr, bytes, libc.MADV_DONTDUMP);
      return new GuestMemory(bytes, addr, fd);
    } catch (e) {
      if (addr) libc.munmap(addr, bytes);
      if (fd >= 0) libc.close(fd);
      throw e;
    }
  }

  /**
   * Views guest RAM that another thread of this process mapped (pass `hostAddress` and `size`
   * in workerData). The result does not own the mapping: close() only drops the views.
   */
  static attach(hostAddress: number, size: number): GuestMemory {
    return new GuestMemory(size, hostAddress, -1, false);
  }

  slice(gpa: number, len: number): Uint8Array {
    if (this.closed) throw new GuestMemoryError('guest memory is closed');
    return translate(this.regions, this.views, gpa, len);
  }

  /** Host address of a region's first byte (for KVM_SET_USER_MEMORY_REGION). */
  regionHostAddress(r: RamRegion): number {
    return this.hostAddress + r.hostOffset;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.views = [];
    if (!this.owner) return;
    libc.munmap(this.hostAddress, this.size);
    if (this.fd >= 0) libc.close(this.fd);
  }
}
