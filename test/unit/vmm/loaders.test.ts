import { describe, it, expect } from 'vitest';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { BufferRam } from '../../../src/vmm/memory.js';
import {
  MiB,
  MPTABLE_START,
  PVH_MEMMAP_START,
  PVH_MODLIST_START,
  PVH_INFO_START,
  CMDLINE_START,
  ramRegions,
} from '../../../src/vmm/layout.js';
import { loadElf, findPvhEntry, isElf } from '../../../src/vmm/boot/elf.js';
import { loadBzImage, parseBzImage, STARTUP_64_OFFSET } from '../../../src/vmm/boot/bzimage.js';
import { setupHeader, SETUP_HEADER_OFFSET, HDRS_MAGIC, XLF_KERNEL_64 } from '../../../src/vmm/boot/boot-params.js';
import { writeMptable, mptableSize, mpfIntel, mpcTable, mpcCpu, mpcIoapic, checksum, MAX_CPUS } from '../../../src/vmm/boot/mptable.js';
import {
  writePvhStartInfo,
  hvmStartInfo,
  hvmMemmapTableEntry,
  hvmModlistEntry,
  XEN_HVM_START_MAGIC_VALUE,
} from '../../../src/vmm/boot/pvh.js';
import { buildE820 } from '../../../src/vmm/boot/e820.js';
import { FormatError } from '../../../src/errors.js';
import { assembleElf } from '../../fixtures/guests/cc.js';
import { scratchDir } from '../../fixtures/scratch.js';

// A vmlinux-shaped ELF: linked high (virtual 0xffffffff81000000), loaded at 16 MiB physical,
// a .bss to zero-fill, and Xen's PHYS32_ENTRY note, as Linux's arch/x86/platform/pvh emits it.
const SRC = `
.section .text, "ax"
.globl _start
_start: .code64
  hlt
  .fill 0x100, 1, 0x90
pvh_start: .code32
  hlt
.section .bss, "aw", @nobits
  .fill 0x3000, 1, 0
.section .note.Xen, "a", @note
  .long 4, 4, 18
  .asciz "Xen"
  .long pvh_start - 0xffffffff80000000
`;
const LDS = `
ENTRY(phys_start)
phys_start = _start - 0xffffffff80000000;
SECTIONS {
  . = 0xffffffff81000000;
  .text : AT(0x1000000) { *(.text) }
  .notes : AT(0x1000000 + SIZEOF(.text)) { *(.note.Xen) }
  .bss : AT(0x1002000) { *(.bss) }
}`;

describe('ELF vmlinux loader', () => {
  const dir = scratchDir('tvm-elf-test-');
  writeFileSync(path.join(dir, 'k.lds'), LDS);
  const elf = assembleElf(SRC, ['-T', path.join(dir, 'k.lds'), '-z', 'max-page-size=4096']);

  it('loads PT_LOAD at p_paddr, zero-fills bss, finds the PVH note', () => {
    expect(isElf(elf)).toBe(true);
    const mem = new BufferRam(64 * MiB);
    mem.slice(0x1002000, 0x3000).fill(0xee);
    const r = loadElf(elf, mem);
    expect(r.entry).toBe(0x1000000);
    expect(r.pvhEntry).toBe(0x1000101);
    expect(r.start).toBe(0x1000000);
    expect(r.end).toBe(0x1005000);
    expect(mem.slice(0x1000000, 2)).toEqual(new Uint8Array([0xf4, 0x90]));
    expect(mem.slice(0x1000101, 1)[0]).toBe(0xf4);
    expect(mem.slice(0x1002000, 0x3000).every((b) => b === 0)).toBe(true);
  });
  it('refuses a kernel that does not fit, truncated files and non-ELF input', () => {
    expect(() => loadElf(elf, new BufferRam(16 * MiB))).toThrow(/does not fit in guest RAM/);
    expect(() => loadElf(elf.subarray(0, 100), new BufferRam(64 * MiB))).toThrow(FormatError);
    expect(() => loadElf(new Uint8Array(64), new BufferRam(64 * MiB))).toThrow(/not an ELF/);
    const bad = elf.slice();
    bad[18] = 3; // EM_386
    expect(() => loadElf(bad, new BufferRam(64 * MiB))).toThrow(/not x86_64/);
  });
  it('parses 8-byte notes and rejects a note running past its segment', () => {
    const n = new Uint8Array(24);
    const v = new DataView(n.buffer);
    v.setUint32(0, 4, true);
    v.setUint32(4, 8, true);
    v.setUint32(8, 18, true);
    n.set([0x58, 0x65, 0x6e, 0], 12);
    v.setBigUint64(16, 0x1234n, true);
    expect(findPvhEntry(n)).toBe(0x1234);
    v.setUint32(4, 64, true);
    expect(() => findPvhEntry(n)).toThrow(/past its segment/);
  });
});

function fakeBzImage(opts: { version?: number; xlf?: number; setupSects?: number; payload?: number } = {}): Uint8Array {
  const setupSects = opts.setupSects ?? 4;
  const payload = opts.payload ?? 8192;
  const img = new Uint8Array((setupSects + 1) * 512 + payload);
  img.set(
    setupHeader.pack({
      setup_sects: setupSects,
      boot_flag: 0xaa55,
      jump: 0x66eb,
      header: HDRS_MAGIC,
      version: opts.version ?? 0x020f,
      xloadflags: opts.xlf ?? XLF_KERNEL_64,
      relocatable_kernel: 1,
      pref_address: 0x1000000n,
      init_size: 0x10000,
      initrd_addr_max: 0x7fffffff,
      cmdline_size: 2047,
    }),
    SETUP_HEADER_OFFSET,
  );
  img[(setupSects + 1) * 512] = 0xf4;
  return img;
}

describe('bzImage', () => {
  it('parses the setup header and loads the protected-mode kernel at pref_address', () => {
    const img = fakeBzImage();
    const info = parseBzImage(img);
    expect(info).toMatchObject({ version: 0x20f, setupSects: 4, kernelOffset: 2560, cmdlineSize: 2047, relocatable: true });
    expect(info.setupHeaderBytes.length).toBe(0x202 + 0x66 - 0x1f1);
    const mem = new BufferRam(64 * MiB);
    const l = loadBzImage(img, mem);
    expect(l.loadAddr).toBe(0x1000000);
    expect(l.entry).toBe(0x1000000 + STARTUP_64_OFFSET);
    expect(l.end).toBe(0x1010000);
    expect(mem.slice(0x1000000, 1)[0]).toBe(0xf4);
  });
  it('rejects old protocols, 32-bit-only kernels and non-bzImages', () => {
    expect(() => parseBzImage(fakeBzImage({ version: 0x0206 }))).toThrow(/older than 2.12/);
    expect(() => parseBzImage(fakeBzImage({ xlf: 0 }))).toThrow(/XLF_KERNEL_64/);
    expect(() => parseBzImage(new Uint8Array(4096))).toThrow(/not a bzImage/);
    expect(() => loadBzImage(fakeBzImage({ payload: 100 }), new BufferRam(16 * MiB))).toThrow(/more than guest RAM/);
  });
});

describe('MP table', () => {
  it('has valid checksums, one entry per CPU, the IOAPIC after the CPUs', () => {
    const mem = new BufferRam(16 * MiB);
    const size = writeMptable(mem, MPTABLE_START, 4);
    expect(size).toBe(mptableSize(4));
    const all = mem.slice(MPTABLE_START, size);
    const mpf = mpfIntel.decode(all) as any;
    expect(String.fromCharCode(...mpf.signature)).toBe('_MP_');
    expect(mpf.physptr).toBe(MPTABLE_START + 16);
    expect(checksum(all.subarray(0, 16))).toBe(0);
    const t = mpcTable.decode(all, 16) as any;
    expect(String.fromCharCode(...t.signature)).toBe('PCMP');
    expect(t.length).toBe(size - 16);
    expect(t.oemcount).toBe(4 + 1 + 1 + 24 + 2);
    expect(t.lapic).toBe(0xfee00000);
    expect(checksum(all.subarray(16, size))).toBe(0);
    const cpus = [0, 1, 2, 3].map((i) => mpcCpu.decode(all, 60 + i * 20) as any);
    expect(cpus.map((c) => [c.type, c.apicid, c.cpuflag])).toEqual([
      [0, 0, 3],
      [0, 1, 1],
      [0, 2, 1],
      [0, 3, 1],
    ]);
    const io = mpcIoapic.decode(all, 60 + 80 + 8) as any;
    expect(io).toMatchObject({ type: 2, apicid: 4, flags: 1, apicaddr: 0xfec00000 });
  });
  it('refuses 0 and too many CPUs', () => {
    const mem = new BufferRam(16 * MiB);
    expect(() => writeMptable(mem, MPTABLE_START, 0)).toThrow(/vCPUs/);
    expect(() => writeMptable(mem, MPTABLE_START, MAX_CPUS + 1)).toThrow(/vCPUs/);
    expect(writeMptable(mem, MPTABLE_START, MAX_CPUS)).toBeGreaterThan(1024);
  });
  it('pins the MP spec 1.4 struct sizes', () => {
    expect([mpfIntel.size, mpcTable.size, mpcCpu.size, mpcIoapic.size]).toEqual([16, 44, 20, 8]);
  });
});

describe('PVH start info', () => {
  it('matches the Xen header layout', () => {
    expect(hvmStartInfo.size).toBe(56);
    expect(hvmStartInfo.offsetOf('memmap_paddr')).toBe(40);
    expect(hvmStartInfo.offsetOf('memmap_entries')).toBe(48);
    expect([hvmModlistEntry.size, hvmMemmapTableEntry.size]).toEqual([32, 24]);
  });
  it('points at the command line, the initrd module and the memory map', () => {
    const mem = new BufferRam(64 * MiB);
    const e820 = buildE820(ramRegions(64 * MiB));
    expect(writePvhStartInfo(mem, { cmdlinePaddr: CMDLINE_START, e820, initrd: { addr: 0x3000000, size: 1234 } })).toBe(PVH_INFO_START);
    const si = hvmStartInfo.decode(mem.slice(PVH_INFO_START, 56)) as any;
    expect(si).toMatchObject({
      magic: XEN_HVM_START_MAGIC_VALUE,
      version: 1,
      nr_modules: 1,
      modlist_paddr: BigInt(PVH_MODLIST_START),
      cmdline_paddr: BigInt(CMDLINE_START),
      memmap_paddr: BigInt(PVH_MEMMAP_START),
      memmap_entries: 3,
    });
    expect(hvmModlistEntry.decode(mem.slice(PVH_MODLIST_START, 32))).toMatchObject({ paddr: 0x3000000n, size: 1234n });
    expect(hvmMemmapTableEntry.decode(mem.slice(PVH_MEMMAP_START + 48, 24))).toMatchObject({ addr: 0x100000n, type: 1 });
  });
});
