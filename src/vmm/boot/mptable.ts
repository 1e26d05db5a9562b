/**
 * Intel MultiProcessor Specification 1.4 tables (no ACPI in our guests): the MP floating
 * pointer in the EBDA, then the configuration table with one processor entry per vCPU, the ISA
 * bus, the IOAPIC, an interrupt entry per IOAPIC pin and the two local interrupt lines. Linux
 * finds the CPUs and the IOAPIC from it (arch/x86/kernel/mpparse.c).
 */
import { Layout, arrayOf, type Field, type FieldType } from '../../kvm/layout.js';
import { InvalidParameterError } from '../../errors.js';
import type { GuestRam } from '../memory.js';
import { IOAPIC_ADDR, LAPIC_ADDR, IRQ_MAX, BIOS_END } from '../layout.js';

const f = (offset: number, type: FieldType): Field => ({ offset, type });

export const MPF_SIGNATURE = '_MP_';
export const MPC_SIGNATURE = 'PCMP';
export const MP_SPEC_REV = 4;
export const MP_PROCESSOR = 0;
export const MP_BUS = 1;
export const MP_IOAPIC = 2;
export const MP_INTSRC = 3;
export const MP_LINTSRC = 4;
export const CPU_ENABLED = 1;
export const CPU_BOOTPROCESSOR = 2;
export const MP_APIC_VERSION = 0x14;
export const MP_IOAPIC_VERSION = 0x11;
export const MPC_APIC_USABLE = 1;
export const MP_INT = 0;
export const MP_NMI = 1;
export const MP_EXTINT = 3;
export const MP_IRQDIR_DEFAULT = 0;
export const BUS_ID_ISA = 0;
/** family 6 in the signature; APIC and FPU in the feature flags. */
export const CPU_SIGNATURE = 0x600;
export const CPU_FEATURE_FPU = 0x001;
export const CPU_FEATURE_APIC = 0x200;
export const MAX_CPUS = 254;

export const mpfIntel = new Layout('struct mpf_intel', 16, {
  signature: f(0, arrayOf('u8', 4)),
  physptr: f(4, 'u32'),
  length: f(8, 'u8'),
  specification: f(9, 'u8'),
  checksum: f(10, 'u8'),
  feature1: f(11, 'u8'),
  feature2: f(12, 'u8'),
  feature3: f(13, 'u8'),
  feature4: f(14, 'u8'),
  feature5: f(15, 'u8'),
});
export const mpcTable = new Layout('struct mpc_table', 44, {
  signature: f(0, arrayOf('u8', 4)),
  length: f(4, 'u16'),
  spec: f(6, 'u8'),
  checksum: f(7, 'u8'),
  oem: f(8, arrayOf('u8', 8)),
  productid: f(16, arrayOf('u8', 12)),
  oemptr: f(28, 'u32'),
  oemsize: f(32, 'u16'),
  oemcount: f(34, 'u16'),
  lapic: f(36, 'u32'),
  reserved: f(40, 'u32'),
});
export const mpcCpu = new Layout('struct mpc_cpu', 20, {
  type: f(0, 'u8'),
  apicid: f(1, 'u8'),
  apicver: f(2, 'u8'),
  cpuflag: f(3, 'u8'),
  cpufeature: f(4, 'u32'),
  featureflag: f(8, 'u32'),
  reserved: f(12, arrayOf('u32', 2)),
});
export const mpcBus = new Layout('struct mpc_bus', 8, { type: f(0, 'u8'), busid: f(1, 'u8'), bustype: f(2, arrayOf('u8', 6)) });
export const mpcIoapic = new Layout('struct mpc_ioapic', 8, {
  type: f(0, 'u8'),
  apicid: f(1, 'u8'),
  apicver: f(2, 'u8'),
  flags: f(3, 'u8'),
  apicaddr: f(4, 'u32'),
});
export const mpcIntsrc = new Layout('struct mpc_intsrc', 8, {
  type: f(0, 'u8'),
  irqtype: f(1, 'u8'),
  irqflag: f(2, 'u16'),
  srcbus: f(4, 'u8'),
  srcbusirq: f(5, 'u8'),
  dstapic: f(6, 'u8'),
  dstirq: f(7, 'u8'),
});
export const mpcLintsrc = new Layout('struct mpc_lintsrc', 8, {
  type: f(0, 'u8'),
  irqtype: f(1, 'u8'),
  irqflag: f(2, 'u16'),
  srcbusid: f(4, 'u8'),
  srcbusirq: f(5, 'u8'),
  destapic: f(6, 'u8'),
  destapiclint: f(7, 'u8'),
});

const ascii = (s: string, n: number) => Array.from({ length: n }, (_, i) => (i < s.length ? s.charCodeAt(i) : 0x20));

export function mptableSize(cpus: number): number {
  return (
    mpfIntel.size + mpcTable.size + cpus * mpcCpu.size + mpcBus.size + mpcIoapic.size + (IRQ_MAX + 1) * mpcIntsrc.size + 2 * mpcLintsrc.size
  );
}

/** Two's complement of the byte sum: makes the bytes sum to 0 mod 256. */
export function checksum(b: Uint8Array): number {
  let s = 0;
  for (const x of b) s = (s + x) & 0xff;
  return (0x100 - s) & 0xff;
}

/** Writes the MP tables at `gpa`; returns their size. The IOAPIC's ID is `cpus`. */
export function writeMptable(mem: GuestRam, gpa: number, cpus: number): number {
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > MAX_CPUS)
    throw new InvalidParameterError(`mptable: ${cpus} vCPUs, supported 1..${MAX_CPUS}`);
  const size = mptableSize(cpus);
  if (gpa + size > BIOS_END) throw new InvalidParameterError(`mptable for ${cpus} vCPUs does not fit below 1 MiB`);
  const buf = mem.slice(gpa, size).fill(0);
  const ioapicId = cpus;
  const tableStart = mpfIntel.size;
  let off = tableStart + mpcTable.size;
  let entries = 0;
  for (let i = 0; i < cpus; i++, entries++, off += mpcCpu.size) {
    mpcCpu.encode(
      buf,
      {
        type: MP_PROCESSOR,
        apicid: i,
        apicver: MP_APIC_VERSION,
        cpuflag: CPU_ENABLED | (i === 0 ? CPU_BOOTPROCESSOR : 0),
        cpufeature: CPU_SIGNATURE,
        featureflag: CPU_FEATURE_APIC | CPU_FEATURE_FPU,
      },
      off,
    );
  }
  mpcBus.encode(buf, { type: MP_BUS, busid: BUS_ID_ISA, bustype: ascii('ISA', 6) }, off);
  off += mpcBus.size;
  entries++;
  mpcIoapic.encode(
    buf,
    { type: MP_IOAPIC, apicid: ioapicId, apicver: MP_IOAPIC_VERSION, flags: MPC_APIC_USABLE, apicaddr: IOAPIC_ADDR },
    off,
  );
  off += mpcIoapic.size;
  entries++;
  for (let irq = 0; irq <= IRQ_MAX; irq++, entries++, off += mpcIntsrc.size) {
    mpcIntsrc.encode(
      buf,
      { type: MP_INTSRC, irqtype: MP_INT, irqflag: MP_IRQDIR_DEFAULT, srcbus: BUS_ID_ISA, srcbusirq: irq, dstapic: ioapicId, dstirq: irq },
      off,
    );
  }
  mpcLintsrc.encode(
    buf,
    { type: MP_LINTSRC, irqtype: MP_EXTINT, irqflag: MP_IRQDIR_DEFAULT, srcbusid: BUS_ID_ISA, srcbusirq: 0, destapic: 0, destapiclint: 0 },
    off,
  );
  off += mpcLintsrc.size;
  entries++;
  mpcLintsrc.encode(
    buf,
    { type: MP_LINTSRC, irqtype: MP_NMI, irqflag: MP_IRQDIR_DEFAULT, srcbusid: BUS_ID_ISA, srcbusirq: 0, destapic: 0xff, destapiclint: 1 },
    off,
  );
  off += mpcLintsrc.size;
  entries++;

  mpcTable.encode(
    buf,
    {
      signature: ascii(MPC_SIGNATURE, 4),
      length: off - tableStart,
      spec: MP_SPEC_REV,
      oem: ascii('TVM', 8),
      productid: ascii('000000000000', 12),
      oemcount: entries,
      lapic: LAPIC_ADDR,
    },
    tableStart,
  );
  buf[tableStart + mpcTable.offsetOf('checksum')] = checksum(buf.subarray(tableStart, off));
  mpfIntel.encode(buf, { signature: ascii(MPF_SIGNATURE, 4), physptr: gpa + tableStart, length: 1, specification: MP_SPEC_REV });
  buf[mpfIntel.offsetOf('checksum')] = checksum(buf.subarray(0, mpfIntel.size));
  return size;
}
