import { describe, it, expect, afterEach } from 'vitest';
import * as libc from '../../../../src/kvm/libc.js';
import { VhostUserMemory } from '../../../../src/vmm/devices/virtio/vhost-user/memory.js';
import { GuestMemoryError } from '../../../../src/vmm/memory.js';

const MiB = 1024 * 1024;
const VA = 0x7f12_0000_0000n;
const open: number[] = [];
afterEach(() => {
  for (const fd of open.splice(0)) libc.close(fd);
});

/** A memfd of `bytes` with a view of it on our side (the "front end" writes through it). */
function memfd(bytes: number) {
  const fd = libc.memfdCreate('tvm-vhost-mem-test');
  open.push(fd);
  libc.ftruncate(fd, bytes);
  const addr = libc.mmap(0, bytes, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED, fd, 0);
  return { fd, bytes: new Uint8Array(libc.viewAddress(addr, bytes)), unmap: () => libc.munmap(addr, bytes) };
}
/** What the backend receives: its own copies of the fd, one per region. */
const dup = (fd: number, n: number) => Array.from({ length: n }, () => libc.open(`/proc/self/fd/${fd}`, libc.O_RDWR));

describe('VhostUserMemory', () => {
  it('maps two regions of one memfd (low RAM, then RAM above a hole) and translates both address kinds', () => {
    const m = memfd(4 * MiB);
    const [a, b] = dup(m.fd, 2);
    const mem = VhostUserMemory.map([
      { guest_phys_addr: 0n, memory_size: BigInt(1 * MiB), userspace_addr: VA, mmap_offset: 0n, fd: a! },
      { guest_phys_addr: 0x1_0000_0000n, memory_size: BigInt(3 * MiB), userspace_addr: VA + BigInt(MiB), mmap_offset: BigInt(MiB), fd: b! },
    ]);
    try {
      expect(mem.size).toBe(4 * MiB);
      expect(mem.regions).toEqual([
        { guestAddr: 0, size: MiB, hostOffset: 0 },
        { guestAddr: 0x1_0000_0000, size: 3 * MiB, hostOffset: MiB },
      ]);
      m.bytes[100] = 0xab;
      m.bytes[MiB + 5] = 0xcd;
      expect(mem.slice(100, 1)[0]).toBe(0xab);
      expect(mem.slice(0x1_0000_0005, 1)[0]).toBe(0xcd);
      mem.slice(0x1_0000_0006, 1)[0] = 0xef; // shared: the front end sees our writes
      expect(m.bytes[MiB + 6]).toBe(0xef);
      expect(mem.gpaOfUserAddr(VA + 0x10n)).toBe(0x10);
      expect(mem.gpaOfUserAddr(VA + BigInt(MiB) + 0x20n)).toBe(0x1_0000_0020);
      expect(() => mem.slice(MiB - 2, 4)).toThrow(GuestMemoryError); // spans the hole
      expect(() => mem.slice(2 * MiB, 1)).toThrow(/outside guest RAM/);
      expect(() => mem.gpaOfUserAddr(VA - 1n)).toThrow(/outside every memory region/);
      expect(() => mem.gpaOfUserAddr(VA + BigInt(4 * MiB))).toThrow(/outside every memory region/);
    } finally {
      mem.close();
      m.unmap();
    }
    expect(() => mem.slice(0, 1)).toThrow(/closed/);
    mem.close(); // idempotent
  });

  it('closes every region fd it was given, on success and on refusal', async () => {
    const { readdirSync } = await import('node:fs');
    const count = () => readdirSync('/proc/self/fd').length;
    const m = memfd(2 * MiB);
    const before = count();
    VhostUserMemory.map(
      dup(m.fd, 1).map((fd) => ({ guest_phys_addr: 0n, memory_size: BigInt(MiB), userspace_addr: VA, mmap_offset: 0n, fd })),
    ).close();
    expect(count()).toBe(before);
    const fds = dup(m.fd, 2);
    expect(() =>
      VhostUserMemory.map([
        { guest_phys_addr: 0n, memory_size: BigInt(MiB), userspace_addr: VA, mmap_offset: 0n, fd: fds[0]! },
        { guest_phys_addr: BigInt(MiB / 2), memory_size: BigInt(MiB), userspace_addr: VA, mmap_offset: 0n, fd: fds[1]! },
      ]),
    ).toThrow(/overlaps another region/);
    expect(count()).toBe(before);
    for (const bad of [{ memory_size: 0n }, { mmap_offset: 17n }, { guest_phys_addr: 1n << 60n }]) {
      const [fd] = dup(m.fd, 1);
      expect(() =>
        VhostUserMemory.map([{ guest_phys_addr: 0n, memory_size: BigInt(MiB), userspace_addr: VA, mmap_offset: 0n, ...bad, fd: fd! }]),
      ).toThrow(/not a usable region/);
    }
    expect(count()).toBe(before);
    m.unmap();
  });
});
