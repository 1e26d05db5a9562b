import { describe, it, expect } from 'vitest';
import { BufferRam } from '../../../src/vmm/memory.js';
import { MiB, GiB, EBDA_START, CMDLINE_START, MMIO_HOLE_START, ramRegions } from '../../../src/vmm/layout.js';
import { buildE820, validateE820, E820_RAM, E820_RESERVED } from '../../../src/vmm/boot/e820.js';
import { Cmdline } from '../../../src/vmm/boot/cmdline.js';
import {
  bootParams,
  setupHeader,
  buildBootParams,
  SETUP_HEADER_OFFSET,
  E820_TABLE_OFFSET,
  LOADER_TYPE_UNDEFINED,
  HDRS_MAGIC,
} from '../../../src/vmm/boot/boot-params.js';
import { writeIdentityPageTables, walkPageTables } from '../../../src/vmm/boot/page-tables.js';
import {
  gdtEntry,
  segmentFromEntry,
  bootGdt,
  bootSegments,
  writeGdt,
  GDT_FLAGS_CODE64,
  GDT_FLAGS_DATA,
  BOOT_CS,
} from '../../../src/vmm/boot/gdt.js';
import { placeInitrd } from '../../../src/vmm/boot/initrd.js';
import { InvalidParameterError } from '../../../src/errors.js';
import { Layout } from '../../../src/kvm/layout.js';
import { runC, parsePairs } from '../../fixtures/guests/cc.js';

function paths(l: Layout<object>, prefix = ''): string[] {
  const out: string[] = [];
  for (const [name, f] of Object.entries(l.fields)) {
    out.push(prefix + name);
    if (f.type instanceof Layout) out.push(...paths(f.type as Layout<object>, prefix + name + '.'));
  }
  return out;
}

describe('boot_params and setup_header match <asm/bootparam.h>', () => {
  const lines = [
    `printf("bp_size %zu\\n", sizeof(struct boot_params));`,
    `printf("hdr_size %zu\\n", sizeof(struct setup_header));`,
    `printf("e820_size %zu\\n", sizeof(struct boot_e820_entry));`,
  ];
  for (const p of paths(bootParams)) lines.push(`printf("bp.${p} %zu\\n", offsetof(struct boot_params, ${p}));`);
  for (const p of paths(setupHeader)) lines.push(`printf("hdr.${p} %zu\\n", offsetof(struct setup_header, ${p}));`);
  const got = parsePairs(
    runC(`#include <stdio.h>\n#include <stddef.h>\n#include <asm/bootparam.h>\nint main(void){${lines.join('\n')}return 0;}`),
  );
  it('sizes', () => {
    expect(bootParams.size).toBe(got.get('bp_size'));
    expect(setupHeader.size).toBe(got.get('hdr_size'));
    expect(20).toBe(got.get('e820_size'));
  });
  it('every offset', () => {
    for (const p of paths(bootParams)) expect([p, bootParams.offsetOf(p)]).toEqual([p, got.get(`bp.${p}`)]);
    for (const p of paths(setupHeader)) expect([p, setupHeader.offsetOf(p)]).toEqual([p, got.get(`hdr.${p}`)]);
  });
});

describe('e820', () => {
  it('reserves the EBDA and BIOS area and splits around the MMIO hole', () => {
    const map = buildE820(ramRegions(4 * GiB));
    expect(map).toEqual([
      { addr: 0, size: EBDA_START, type: E820_RAM },
      { addr: EBDA_START, size: 0x100000 - EBDA_START, type: E820_RESERVED },
      { addr: 0x100000, size: MMIO_HOLE_START - 0x100000, type: E820_RAM },
      { addr: 4 * GiB, size: 4 * GiB - MMIO_HOLE_START, type: E820_RAM },
    ]);
    expect(buildE820(ramRegions(64 * MiB))).toHaveLength(3);
  });
  it('rejects overlaps, empties and tiny RAM', () => {
    expect(() =>
      validateE820([
        { addr: 0, size: 10, type: 1 },
        { addr: 5, size: 10, type: 1 },
      ]),
    ).toThrow(/overlaps/);
    expect(() => validateE820([{ addr: 0, size: 0, type: 1 }])).toThrow(/empty/);
    expect(() => buildE820([{ guestAddr: 0, size: 0x80000, hostOffset: 0 }])).toThrow(InvalidParameterError);
  });
});

describe('cmdline', () => {
  it('joins, checks and writes NUL-terminated', () => {
    const c = new Cmdline(32).append('console=ttyS0').append('  reboot=k ');
    expect(c.text).toBe('console=ttyS0 reboot=k');
    expect(c.has('reboot')).toBe(true);
    expect(c.has('rebo')).toBe(false);
    const mem = new BufferRam(16 * MiB);
    expect(c.writeTo(mem, CMDLINE_START)).toBe(23);
    expect(mem.slice(CMDLINE_START + 22, 1)[0]).toBe(0);
    expect(() => c.append('x'.repeat(9))).toThrow(/at most 32/);
    expect(c.text).toBe('console=ttyS0 reboot=k');
    expect(() => new Cmdline(64).append('a\nb')).toThrow(/not printable/);
  });
});

describe('zero page', () => {
  it('carries loader type, command line, e820 and a >4 GiB ramdisk split into ext_ fields', () => {
    const e820 = buildE820(ramRegions(64 * MiB));
    const bp = buildBootParams({ cmdlinePtr: CMDLINE_START, cmdlineSize: 100, e820, ramdisk: { addr: 0x1_2000_0000, size: 0x1000 } });
    const d = bootParams.decode(bp) as any;
    expect(d.hdr.type_of_loader).toBe(LOADER_TYPE_UNDEFINED);
    expect(d.hdr.boot_flag).toBe(0xaa55);
    expect(d.hdr.header).toBe(HDRS_MAGIC);
    expect(d.hdr.cmd_line_ptr).toBe(CMDLINE_START);
    expect(d.hdr.cmdline_size).toBe(100);
    expect(d.hdr.ramdisk_image).toBe(0x2000_0000);
    expect(d.ext_ramdisk_image).toBe(1);
    expect(d.hdr.ramdisk_size).toBe(0x1000);
    expect(d.e820_entries).toBe(3);
    const v = new DataView(bp.buffer);
    expect(v.getBigUint64(E820_TABLE_OFFSET + 40, true)).toBe(0x100000n);
    expect(v.getUint32(E820_TABLE_OFFSET + 56, true)).toBe(E820_RAM);
  });
  it('keeps a bzImage setup header', () => {
    const hdr = setupHeader.pack({
      setup_sects: 27,
      boot_flag: 0xaa55,
      header: HDRS_MAGIC,
      version: 0x20f,
      loadflags: 1,
      kernel_alignment: 0x200000,
    });
    const bp = buildBootParams({
      setupHeaderBytes: hdr,
      cmdlinePtr: CMDLINE_START,
      cmdlineSize: 2048,
      e820: buildE820(ramRegions(64 * MiB)),
    });
    expect(bp[SETUP_HEADER_OFFSET]).toBe(27);
    expect((bootParams.decode(bp) as any).hdr.version).toBe(0x20f);
  });
});

describe('identity page tables', () => {
  it('map the first 4 GiB 1:1 with 2 MiB pages and nothing above', () => {
    const mem = new BufferRam(64 * MiB);
    const cr3 = writeIdentityPageTables(mem);
    for (const a of [0n, 0x7000n, 0x1000000n, 0x3fffffffn, 0x40000000n, 0xfee00000n, 0xffffffffn]) {
      expect(walkPageTables(mem, cr3, a)).toBe(a);
    }
    expect(walkPageTables(mem, cr3, 0x1_0000_0000n)).toBeUndefined();
    expect(walkPageTables(mem, cr3, 0xffffffff81000000n)).toBeUndefined();
  });
});

describe('GDT', () => {
  it('encodes as GDT_ENTRY and decodes to kvm_segment', () => {
    expect(gdtEntry(GDT_FLAGS_CODE64, 0, 0xfffff)).toBe(0x00af9b000000ffffn);
    expect(gdtEntry(GDT_FLAGS_DATA, 0, 0xfffff)).toBe(0x00cf93000000ffffn);
    expect(gdtEntry(0x4092, 0x12345678, 0x1234)).toBe(0x12409234_56781234n);
    const cs = segmentFromEntry(2, gdtEntry(GDT_FLAGS_CODE64, 0, 0xfffff));
    expect(cs).toEqual({
      base: 0n,
      limit: 0xffffffff,
      selector: 0x10,
      type: 11,
      s: 1,
      dpl: 0,
      present: 1,
      avl: 0,
      l: 1,
      db: 0,
      g: 1,
      unusable: 0,
    });
    expect(segmentFromEntry(5, gdtEntry(0x4092, 0x12345678, 0x1234))).toMatchObject({
      base: 0x12345678n,
      limit: 0x1234,
      g: 0,
      db: 1,
      type: 2,
    });
  });
  it('boot GDT: long-mode and 32-bit code, data, TSS at the boot protocol selectors', () => {
    const long = bootSegments(bootGdt('long'));
    expect(long.code).toMatchObject({ selector: BOOT_CS, l: 1, db: 0 });
    expect(long.data).toMatchObject({ selector: 0x18, type: 3, db: 1 });
    expect(long.tss).toMatchObject({ selector: 0x20, type: 11, s: 0 });
    const prot = bootSegments(bootGdt('protected'));
    expect(prot.code).toMatchObject({ l: 0, db: 1, limit: 0xffffffff });
    expect(prot.tss).toMatchObject({ limit: 0x67, g: 0, type: 11 });
    const mem = new BufferRam(16 * MiB);
    writeGdt(mem, 0x500, bootGdt('long'));
    expect(new DataView(mem.buffer.buffer).getBigUint64(0x510, true)).toBe(0x00af9b000000ffffn);
  });
});

describe('initrd placement', () => {
  it('goes page aligned at the top of low RAM, under initrd_addr_max, above the kernel', () => {
    expect(placeInitrd({ size: 5000, lowRamEnd: 64 * MiB, kernelEnd: 20 * MiB })).toBe(64 * MiB - 8192);
    expect(placeInitrd({ size: 4096, lowRamEnd: 4 * GiB, kernelEnd: 20 * MiB, initrdAddrMax: 0x37ffffff })).toBe(0x38000000 - 4096);
    expect(() => placeInitrd({ size: 60 * MiB, lowRamEnd: 64 * MiB, kernelEnd: 20 * MiB })).toThrow(/more memory/);
  });
});
