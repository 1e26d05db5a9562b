/**
 * Guest RAM as the vhost-user front end shares it (SET_MEM_TABLE): each region is a file
 * descriptor (QEMU's memfd) mapped here MAP_SHARED, so device models read and write the very
 * pages the guest sees. Descriptor addresses are guest-physical and go through `slice` like
 * any GuestRam; ring addresses arrive as the front end's own virtual addresses and are turned
 * into guest-physical ones once, with `gpaOfUserAddr`.
 *
 * The region fds are closed right after mmap (the mapping keeps the memory); the mappings go
 * at `close`, which the backend calls when a new table replaces this one or it shuts down.
 */
import * as libc from '../../../../kvm/libc.js';
import { GuestMemoryError, type GuestRam } from '../../../memory.js';
import type { RamRegion } from '../../../layout.js';
import type { VhostUserMemoryRegion } from './messages.js';

interface Mapped {
  guestAddr: number;
  size: number;
  userAddr: number;
  /** where the region starts in its fd */
  offset: number;
  /** our mapping of [0, mmap_offset + size) of the region's fd */
  addr: number;
  mapLen: number;
  view: Uint8Array;
}

const PAGE = 4096;
/** Guest-physical and user addresses must stay exact as doubles. */
const MAX_ADDR = 2 ** 52;

export class VhostUserMemory implements GuestRam {
  readonly size: number;
  readonly regions: readonly RamRegion[];
  private mapped: Mapped[];
  private closed = false;

  private constructor(mapped: Mapped[]) {
    this.mapped = mapped;
    this.size = mapped.reduce((n, m) => n + m.size, 0);
    this.regions = mapped.map((m) => ({ guestAddr: m.guestAddr, size: m.size, hostOffset: m.offset }));
  }

  /**
   * Maps every region of a SET_MEM_TABLE. Takes ownership of every region fd (closed here,
   * on success and on failure); a region that overlaps another, or is empty, or whose
   * numbers do not fit, is refused and nothing stays mapped.
   */
  static map(regions: readonly (VhostUserMemoryRegion & { fd: number })[]): VhostUserMemory {
    const mapped: Mapped[] = [];
    try {
      for (const r of regions) {
        const guestAddr = Number(r.guest_phys_addr);
        const size = Number(r.memory_size);
        const userAddr = Number(r.userspace_addr);
        const offset = Number(r.mmap_offset);
        const what = `memory region gpa 0x${r.guest_phys_addr.toString(16)} size 0x${r.memory_size.toString(16)} offset 0x${r.mmap_offset.toString(16)}`;
        if (size <= 0 || guestAddr + size > MAX_ADDR || userAddr + size > MAX_ADDR || offset + size > MAX_ADDR || offset % PAGE !== 0) {
          throw new GuestMemoryError(`${what}: not a usable region`);
        }
        for (const m of mapped) {
          if (guestAddr < m.guestAddr + m.size && m.guestAddr < guestAddr + size)
            throw new GuestMemoryError(`${what}: overlaps another region`);
        }
        const mapLen = offset + size;
        const addr = libc.mmap(0, mapLen, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED | libc.MAP_NORESERVE, r.fd, 0);
        mapped.push({ guestAddr, size, userAddr, offset, addr, mapLen, view: new Uint8Array(libc.viewAddress(addr + offset, size)) });
      }
      return new VhostUserMemory(mapped);
    } catch (e) {
      for (const m of mapped) libc.munmap(m.addr, m.mapLen);
      throw e;
    } finally {
      for (const r of regions) libc.close(r.fd);
    }
  }

  slice(gpa: number, len: number): Uint8Array {
    if (this.closed) throw new GuestMemoryError('guest memory is closed');
    if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(len) || gpa < 0 || len < 0) {
      throw new GuestMemoryError(`guest range 0x${gpa.toString(16)}+${len} is not a valid address range`);
    }
    for (const m of this.mapped) {
      if (gpa >= m.guestAddr && gpa + len <= m.guestAddr + m.size) {
        const off = gpa - m.guestAddr;
        return m.view.subarray(off, off + len);
      }
    }
    throw new GuestMemoryError(`guest range 0x${gpa.toString(16)}..0x${(gpa + len).toString(16)} is outside guest RAM`);
  }

  /** The guest-physical address of the front end's virtual address `uva` (ring addresses). */
  gpaOfUserAddr(uva: bigint): number {
    const a = Number(uva);
    for (const m of this.mapped) {
      if (a >= m.userAddr && a < m.userAddr + m.size) return m.guestAddr + (a - m.userAddr);
    }
    throw new GuestMemoryError(`front-end address 0x${uva.toString(16)} is outside every memory region`);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const mapped = this.mapped;
    this.mapped = [];
    for (const m of mapped) libc.munmap(m.addr, m.mapLen);
  }
}
