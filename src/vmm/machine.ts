/**
 * A microVM: KVM VM with in-kernel irqchip and PIT, guest RAM, a Linux kernel loaded for the
 * 64-bit boot protocol (ELF vmlinux or bzImage) or the PVH entry, the 8250 console and the
 * i8042 reset line, one worker thread per vCPU. `run()` resolves with how the guest ended.
 */
import { readFile } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { Kvm } from '../kvm/kvm.js';
import type { Vm } from '../kvm/vm.js';
import type { Vcpu } from '../kvm/vcpu.js';
import * as libc from '../kvm/libc.js';
import { KvmCap, KvmExit, KVM_PIT_SPEAKER_DUMMY, KVM_IOEVENTFD_FLAG_DATAMATCH, type KvmSregs } from '../kvm/structs.js';
import { InvalidParameterError, TvmError } from '../errors.js';
import { buildStep } from './build-steps.js';
import { GuestMemory, type GuestRam } from './memory.js';
import * as L from './layout.js';
import { isElf, loadElf } from './boot/elf.js';
import { isBzImage, loadBzImage } from './boot/bzimage.js';
import { buildBootParams } from './boot/boot-params.js';
import { buildE820 } from './boot/e820.js';
import { writeIdentityPageTables } from './boot/page-tables.js';
import { bootGdt, bootSegments, writeGdt, type BootMode } from './boot/gdt.js';
import { writeMptable } from './boot/mptable.js';
import { writePvhStartInfo } from './boot/pvh.js';
import { placeInitrd } from './boot/initrd.js';
import { buildKernelCmdline } from './kernel-args.js';
import { buildCpuid } from './cpuid.js';
import { bootMsrs, writeMsrsEach } from './msrs.js';
import { Bus, type BusDevice } from './devices/bus.js';
import { Serial, COM1_PORT, COM1_IRQ, SERIAL_PORT_LEN } from './devices/serial.js';
import { I8042, I8042_DATA_PORT, I8042_PORT_LEN } from './devices/i8042.js';
import { dispatchIo, dispatchMmio, exitReason, type IoStats } from './vcpu-exit.js';
import { VcpuThread, allocateControl, type VcpuResult } from './vcpu-loop.js';

/**
 * A flat binary entered directly in the given CPU mode: for synthetic guests (tests,
 * benchmarks). Long mode gets the identity page tables and boot GDT; protected mode the flat
 * 32-bit GDT; real mode CS = DS = 0, so `entry` must be below 64 KiB.
 */
export interface FlatImage {
  bytes: Uint8Array;
  loadAddr: number;
  entry: number;
  mode: 'real' | 'protected' | 'long';
}

/** What an MMIO device gets when the machine places it (its window, its interrupt line). */
export interface MmioDeviceContext {
  base: number;
  size: number;
  irq: number;
  /** edge on the device's IRQ line (an irqfd write) */
  raiseIrq: () => void;
  memory: GuestRam;
  /**
   * Registers KVM_IOEVENTFD for a guest write of `len` bytes at base+offset (optionally only
   * of value `datamatch`) and returns the eventfd: such writes never exit to user space. The
   * machine closes it at teardown.
   */
  ioeventfd: (offset: number, len: 1 | 2 | 4 | 8, datamatch?: bigint) => number;
}

/** A device in the MMIO hole, e.g. a virtio-mmio transport (src/vmm/devices/virtio). */
export interface MmioDeviceSpec {
  name: string;
  create: (ctx: MmioDeviceContext) => BusDevice;
  /** announce it to Linux as `virtio_mmio.device=4K@<base>:<irq>` */
  virtio?: boolean;
}

/** The kernel argument that declares a virtio-mmio device (drivers/virtio/virtio_mmio.c). */
export function virtioMmioArg(base: number, size: number, irq: number): string {
  const sz = size % 1024 === 0 ? `${size / 1024}K` : String(size);
  return `virtio_mmio.device=${sz}@0x${base.toString(16)}:${irq}`;
}

export interface MachineConfig {
  /** devices placed one per 4 KiB window from 0xd0000000, IRQs from 5 */
  mmioDevices?: MmioDeviceSpec[];
  /** an ELF vmlinux or a bzImage (path or bytes); or `image` */
  kernel?: string | Uint8Array;
  image?: FlatImage;
  initrd?: string | Uint8Array;
  /** user's kernel arguments; machine defaults are added for keys not given (kernel-args.ts) */
  cmdline?: string;
  memMiB: number;
  cpus: number;
  /** 'linux64' (default): enter startup_64 in long mode; 'pvh': the ELF's 32-bit PVH entry */
  boot?: 'linux64' | 'pvh';
  console?: { output: Writable; input?: Readable };
  /** KVM device (tests) */
  device?: string;
  /** diagnostic lines (refused MSRs, unhandled accesses) */
  log?: (line: string) => void;
}

export type MachineEndKind = 'rebooted' | 'halted' | 'shutdown' | 'crashed' | 'internal-error' | 'fail-entry' | 'stopped' | 'error';
export interface MachineEnd {
  kind: MachineEndKind;
  detail: string;
  /** which vCPU reported it (none for device-initiated ends such as the i8042 reset) */
  vcpu?: number;
  exits: number;
}

export class MachineError extends TvmError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_VMM', message, 500, options);
  }
}

const MAX_CPUS = 254;
const CR0_PE = 1n << 0n;
const CR0_ET = 1n << 4n;
const CR0_PG = 1n << 31n;
const CR4_PAE = 1n << 5n;
const EFER_LME = 1n << 8n;
const EFER_LMA = 1n << 10n;
const APIC_LVT0 = 0x350;
const APIC_LVT1 = 0x360;
const APIC_MODE_EXTINT = 0x7;
const APIC_MODE_NMI = 0x4;
/** x86 COMMAND_LINE_SIZE for kernels that do not say (vmlinux has no setup header). */
const DEFAULT_CMDLINE_SIZE = 2048;

async function bytesOf(src: string | Uint8Array, what: string): Promise<Uint8Array> {
  if (typeof src !== 'string') return src;
  try {
    return new Uint8Array(await readFile(src));
  } catch (e) {
    throw new InvalidParameterError(`${what} ${src}: ${(e as Error).message}`, 'ERR_INVALID_PARAMETER', { cause: e });
  }
}

export function validateMachineConfig(c: MachineConfig): void {
  if (!Number.isInteger(c.cpus) || c.cpus < 1 || c.cpus > MAX_CPUS) throw new InvalidParameterError(`--cpus ${c.cpus}: 1..${MAX_CPUS}`);
  if (!Number.isInteger(c.memMiB) || c.memMiB < 32 || c.memMiB % 2 !== 0)
    throw new InvalidParameterError(`--mem ${c.memMiB}: an even number of MiB, at least 32`);
}

/** Segment register state for the boot CPU (Linux boot protocol or PVH). */
export function bootSregs(base: KvmSregs, mode: BootMode, cr3: number): KvmSregs {
  const gdt = bootGdt(mode);
  const seg = bootSegments(gdt);
  const s: KvmSregs = { ...base, cs: seg.code, ds: seg.data, es: seg.data, fs: seg.data, gs: seg.data, ss: seg.data, tr: seg.tss };
  s.gdt = { base: BigInt(L.BOOT_GDT_START), limit: gdt.length * 8 - 1 };
  s.idt = { base: BigInt(L.BOOT_IDT_START), limit: 7 };
  if (mode === 'long') {
    s.cr0 = base.cr0 | CR0_PE | CR0_PG | CR0_ET;
    s.cr3 = BigInt(cr3);
    s.cr4 = base.cr4 | CR4_PAE;
    s.efer = base.efer | EFER_LME | EFER_LMA;
  } else {
    s.cr0 = (base.cr0 | CR0_PE | CR0_ET) & ~CR0_PG;
    s.cr4 = 0n;
    s.efer = 0n;
  }
  return s;
}

function setLapicLint(vcpu: Vcpu): void {
  const regs = vcpu.getLapic();
  const v = new DataView(regs.buffer, regs.byteOffset, regs.byteLength);
  const set = (off: number, mode: number) => v.setUint32(off, (v.getUint32(off, true) & ~0x700) | (mode << 8), true);
  set(APIC_LVT0, APIC_MODE_EXTINT);
  set(APIC_LVT1, APIC_MODE_NMI);
  vcpu.setLapic(regs);
}

export class Machine {
  private kvm?: Kvm;
  private vm?: Vm;
  private memory?: GuestMemory;
  private vcpus: Vcpu[] = [];
  private threads: VcpuThread[] = [];
  private eventfds: number[] = [];
  readonly pio = new Bus('pio');
  readonly mmio = new Bus('mmio');
  readonly stats: IoStats = { unhandledPio: 0, unhandledMmio: 0 };
  private serial?: Serial;
  private endRequest?: MachineEnd;
  private wakeEnd?: () => void;
  private ended = false;
  private consoleCleanup?: () => void;

  private constructor(readonly config: MachineConfig) {}

  /** Builds the whole VM; on failure releases everything it acquired. */
  static async create(config: MachineConfig): Promise<Machine> {
    validateMachineConfig(config);
    if ((config.kernel === undefined) === (config.image === undefined))
      throw new InvalidParameterError('give either a kernel or a flat image');
    const kernel = config.kernel !== undefined ? await bytesOf(config.kernel, 'kernel') : undefined;
    const initrd = config.initrd !== undefined ? await bytesOf(config.initrd, 'initrd') : undefined;
    const m = new Machine(config);
    try {
      if (kernel) m.build(kernel, initrd);
      else m.buildFlat(config.image!);
      return m;
    } catch (e) {
      m.release();
      throw e;
    }
  }

  private log(line: string): void {
    this.config.log?.(line);
  }

  /** KVM VM, irqchip, PIT, RAM slots, console and i8042, vCPUs with CPUID/MSRs/LAPIC, devices: one named step each. */
  private buildCommon(): { kvm: Kvm; vm: Vm; mem: GuestMemory } {
    const c = this.config;
    const kvm = buildStep('kvm', () => this.openKvm());
    const vm = buildStep('vm', () => this.createVm(kvm));
    const mem = buildStep('memory', () => this.createMemory(vm));
    buildStep('legacy-devices', () => this.addLegacyDevices());
    buildStep('vcpus', () => this.createVcpus(kvm, vm, mem));
    buildStep('mmio-devices', () => this.placeMmioDevices(c.mmioDevices ?? [], vm, mem));
    return { kvm, vm, mem };
  }

  private openKvm(): Kvm {
    const kvm = (this.kvm = Kvm.open(this.config.device));
    for (const [name, cap] of [
      ['IRQCHIP', KvmCap.IRQCHIP],
      ['USER_MEMORY', KvmCap.USER_MEMORY],
      ['SET_TSS_ADDR', KvmCap.SET_TSS_ADDR],
      ['PIT2', KvmCap.PIT2],
      ['IRQFD', KvmCap.IRQFD],
      ['IOEVENTFD', KvmCap.IOEVENTFD],
    ] as const) {
      if (!kvm.checkExtension(cap)) throw new MachineError(`KVM lacks KVM_CAP_${name}`);
    }
    return kvm;
  }

  private createVm(kvm: Kvm): Vm {
    const vm = (this.vm = kvm.createVm());
    vm.setTssAddr(L.KVM_TSS_ADDR);
    try {
      vm.setIdentityMapAddr(BigInt(L.KVM_IDENTITY_MAP_ADDR));
    } catch (e) {
      // Only VMX without unrestricted guest needs it; PVM does not implement it.
      if (kvm.flavor !== 'pvm') throw e;
    }
    vm.createIrqchip();
    vm.createPit2(KVM_PIT_SPEAKER_DUMMY);
    return vm;
  }

  private createMemory(vm: Vm): GuestMemory {
    const mem = (this.memory = GuestMemory.create(this.config.memMiB * L.MiB));
    mem.regions.forEach((r, slot) =>
      vm.setUserMemoryRegion({
        slot,
        flags: 0,
        guest_phys_addr: BigInt(r.guestAddr),
        memory_size: BigInt(r.size),
        userspace_addr: BigInt(mem.regionHostAddress(r)),
      }),
    );
    return mem;
  }

  /** The serial console (COM1) and the i8042 whose reset line ends the machine. */
  private addLegacyDevices(): void {
    const serialIrq = this.irqfd(COM1_IRQ);
    this.serial = new Serial({
      sink: (b) => this.consoleOut(b),
      raiseIrq: () => libc.eventfdSignal(serialIrq),
      onInputSpace: () => this.resumeInput?.(),
    });
    this.pio.insert(COM1_PORT, SERIAL_PORT_LEN, 'serial0', this.serial);
    this.pio.insert(
      I8042_DATA_PORT,
      I8042_PORT_LEN,
      'i8042',
      new I8042(() => this.requestEnd({ kind: 'rebooted', detail: 'i8042 reset (guest reboot)', exits: 0 })),
    );
  }

  /** vCPUs with CPUID, MSRs and LAPIC LINT pins set, and the MP table that lists them. */
  private createVcpus(kvm: Kvm, vm: Vm, mem: GuestMemory): void {
    const c = this.config;
    const supported = kvm.supportedCpuid();
    for (let i = 0; i < c.cpus; i++) {
      const vcpu = vm.createVcpu(i);
      this.vcpus.push(vcpu);
      vcpu.setCpuid2(buildCpuid(supported, { cpus: c.cpus, cpuIndex: i, flavor: kvm.flavor }));
      const refused = writeMsrsEach((e) => vcpu.setMsrs(e), bootMsrs());
      if (refused.length) this.log(`vCPU ${i}: KVM refused MSRs ${refused.map((r) => '0x' + r.index.toString(16)).join(', ')}`);
      setLapicLint(vcpu);
    }
    this.vcpus[0]!.setFpu({ fcw: 0x37f, mxcsr: 0x1f80 });
    writeMptable(mem, L.MPTABLE_START, c.cpus);
  }

  /** Kernel arguments for the virtio-mmio devices placed. */
  private virtioArgs: string[] = [];

  private placeMmioDevices(specs: MmioDeviceSpec[], vm: Vm, mem: GuestMemory): void {
    const maxDevices = L.IRQ_MAX - L.VIRTIO_IRQ_START + 1;
    if (specs.length > maxDevices) throw new InvalidParameterError(`${specs.length} MMIO devices, at most ${maxDevices}`);
    specs.forEach((spec, i) => {
      const base = L.VIRTIO_MMIO_START + i * L.VIRTIO_MMIO_SIZE;
      const irq = L.VIRTIO_IRQ_START + i;
      const irqFd = this.irqfd(irq);
      const device = spec.create({
        base,
        size: L.VIRTIO_MMIO_SIZE,
        irq,
        memory: mem,
        raiseIrq: () => libc.eventfdSignal(irqFd),
        ioeventfd: (offset, len, datamatch) => {
          if (offset < 0 || offset + len > L.VIRTIO_MMIO_SIZE)
            throw new InvalidParameterError(`${spec.name}: ioeventfd at offset ${offset} outside its window`);
          const fd = libc.eventfd(0, libc.EFD_CLOEXEC | libc.EFD_NONBLOCK);
          this.eventfds.push(fd);
          vm.ioeventfd({
            datamatch: datamatch ?? 0n,
            addr: BigInt(base + offset),
            len,
            fd,
            flags: datamatch !== undefined ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0,
          });
          return fd;
        },
      });
      this.mmio.insert(base, L.VIRTIO_MMIO_SIZE, spec.name, device);
      if (spec.virtio) this.virtioArgs.push(virtioMmioArg(base, L.VIRTIO_MMIO_SIZE, irq));
    });
  }

  private buildFlat(img: FlatImage): void {
    const { mem } = this.buildCommon();
    mem.slice(img.loadAddr, img.bytes.length).set(img.bytes);
    const bsp = this.vcpus[0]!;
    const base = bsp.getSregs();
    if (img.mode === 'real') {
      if (img.entry > 0xffff) throw new InvalidParameterError('real-mode entry must be below 64 KiB');
      const seg = (s: KvmSregs['cs']) => ({ ...s, base: 0n, selector: 0 });
      bsp.setSregs({ ...base, cs: seg(base.cs), ds: seg(base.ds), es: seg(base.es), ss: seg(base.ss), fs: seg(base.fs), gs: seg(base.gs) });
      bsp.setRegs({ rflags: 2n, rip: BigInt(img.entry), rsp: BigInt(L.BOOT_STACK_POINTER) });
      return;
    }
    const mode: BootMode = img.mode === 'long' ? 'long' : 'protected';
    writeGdt(mem, L.BOOT_GDT_START, bootGdt(mode));
    mem.slice(L.BOOT_IDT_START, 8).fill(0);
    const cr3 = mode === 'long' ? writeIdentityPageTables(mem) : 0;
    bsp.setSregs(bootSregs(base, mode, cr3));
    bsp.setRegs({ rflags: 2n, rip: BigInt(img.entry), rsp: BigInt(L.BOOT_STACK_POINTER) });
  }

  private build(kernel: Uint8Array, initrd: Uint8Array | undefined): void {
    const { kvm, mem } = this.buildCommon();
    const boot = buildStep('kernel', () => this.loadKernel(kvm, mem, kernel, initrd));
    buildStep('boot-cpu', () => this.setBootCpu(boot));
  }

  /** Kernel, initramfs, command line and the boot tables (GDT, page tables, zero page or PVH start info). */
  private loadKernel(
    kvm: Kvm,
    mem: GuestMemory,
    kernel: Uint8Array,
    initrd: Uint8Array | undefined,
  ): { mode: BootMode; entry: number; cr3: number } {
    const c = this.config;
    // Kernel.
    const wantPvh = c.boot === 'pvh';
    let entry: number;
    let kernelEnd: number;
    let mode: BootMode = 'long';
    let setupHeaderBytes: Uint8Array | undefined;
    let cmdlineSize = DEFAULT_CMDLINE_SIZE;
    let initrdAddrMax: number | undefined;
    if (isElf(kernel)) {
      const r = loadElf(kernel, mem);
      kernelEnd = r.end;
      if (wantPvh) {
        if (r.pvhEntry === undefined)
          throw new InvalidParameterError(
            'kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY): build it with CONFIG_PVH=y or boot it with the 64-bit protocol',
          );
        entry = r.pvhEntry;
        mode = 'protected';
      } else {
        entry = r.entry;
      }
    } else if (isBzImage(kernel)) {
      if (wantPvh) throw new InvalidParameterError('PVH boot needs an ELF vmlinux, not a bzImage');
      const r = loadBzImage(kernel, mem);
      entry = r.entry;
      kernelEnd = r.end;
      setupHeaderBytes = r.info.setupHeaderBytes;
      cmdlineSize = r.info.cmdlineSize + 1;
      initrdAddrMax = r.info.initrdAddrMax;
    } else {
      throw new InvalidParameterError('kernel is neither an ELF vmlinux nor a bzImage');
    }

    // Initramfs, command line, tables.
    const low = mem.regions[0]!;
    let ramdisk: { addr: number; size: number } | undefined;
    if (initrd) {
      const addr = placeInitrd({ size: initrd.length, lowRamEnd: low.size, kernelEnd, initrdAddrMax });
      mem.slice(addr, initrd.length).set(initrd);
      ramdisk = { addr, size: initrd.length };
    }
    const cmdline = buildKernelCmdline(
      [...this.virtioArgs, c.cmdline ?? ''].join(' '),
      kvm.flavor,
      Math.min(cmdlineSize, L.CMDLINE_MAX_SIZE),
    );
    const cmdlineLen = cmdline.writeTo(mem, L.CMDLINE_START);
    this.log(`kernel command line: ${cmdline.text}`);
    const e820 = buildE820(mem.regions);
    const gdt = bootGdt(mode);
    writeGdt(mem, L.BOOT_GDT_START, gdt);
    mem.slice(L.BOOT_IDT_START, 8).fill(0);
    let cr3 = 0;
    if (mode === 'long') {
      cr3 = writeIdentityPageTables(mem);
      mem
        .slice(L.ZERO_PAGE_START, 4096)
        .set(buildBootParams({ setupHeaderBytes, cmdlinePtr: L.CMDLINE_START, cmdlineSize: cmdlineLen, e820, ramdisk }));
    } else {
      writePvhStartInfo(mem, { cmdlinePaddr: L.CMDLINE_START, e820, initrd: ramdisk });
    }
    return { mode, entry, cr3 };
  }

  private setBootCpu({ mode, entry, cr3 }: { mode: BootMode; entry: number; cr3: number }): void {
    const bsp = this.vcpus[0]!;
    bsp.setSregs(bootSregs(bsp.getSregs(), mode, cr3));
    bsp.setRegs(
      mode === 'long'
        ? {
            rflags: 2n,
            rip: BigInt(entry),
            rsp: BigInt(L.BOOT_STACK_POINTER),
            rbp: BigInt(L.BOOT_STACK_POINTER),
            rsi: BigInt(L.ZERO_PAGE_START),
          }
        : { rflags: 2n, rip: BigInt(entry), rbx: BigInt(L.PVH_INFO_START) },
    );
  }

  private irqfd(gsi: number): number {
    const fd = libc.eventfd(0, libc.EFD_CLOEXEC | libc.EFD_NONBLOCK);
    this.eventfds.push(fd);
    this.vm!.irqfd({ fd, gsi, flags: 0, resamplefd: 0 });
    return fd;
  }

  private resumeInput?: () => void;
  private consolePending: number[] = [];
  private consoleFlushScheduled = false;

  /** Console bytes arrive one per exit: batch them into one stream write per event-loop turn. */
  private consoleOut(b: Uint8Array): void {
    if (!this.config.console) return;
    for (const x of b) this.consolePending.push(x);
    if (this.consoleFlushScheduled) return;
    this.consoleFlushScheduled = true;
    setImmediate(() => this.flushConsole());
  }

  private flushConsole(): void {
    this.consoleFlushScheduled = false;
    if (!this.consolePending.length) return;
    const bytes = Uint8Array.from(this.consolePending);
    this.consolePending = [];
    this.config.console?.output.write(bytes);
  }

  private attachConsoleInput(input: Readable): void {
    let pending: Uint8Array | undefined;
    const onData = (chunk: Buffer) => {
      const b = new Uint8Array(chunk);
      const n = this.serial!.enqueue(b);
      if (n < b.length) {
        pending = b.subarray(n);
        input.pause();
      }
    };
    this.resumeInput = () => {
      if (!pending) return;
      const n = this.serial!.enqueue(pending);
      pending = n < pending.length ? pending.subarray(n) : undefined;
      if (!pending) input.resume();
    };
    input.on('data', onData);
    this.consoleCleanup = () => {
      input.off('data', onData);
      input.pause();
    };
  }

  private onDeviceExit(vcpu: Vcpu): void {
    const reason = exitReason(vcpu.run);
    if (reason === KvmExit.IO) dispatchIo(vcpu.runBytes, this.pio, this.stats);
    else if (reason === KvmExit.MMIO) dispatchMmio(vcpu.runBytes, this.mmio, this.stats);
  }

  private requestEnd(end: MachineEnd): void {
    this.endRequest ??= end;
    this.wakeEnd?.();
  }

  /** Runs the guest until it ends; then tears everything down. Call once. */
  async run(): Promise<MachineEnd> {
    if (this.ended || this.threads.length) throw new MachineError('machine already ran');
    const sab = allocateControl(this.vcpus.length);
    const endSignal = new Promise<void>((r) => (this.wakeEnd = r));
    if (this.endRequest) this.wakeEnd?.();
    if (this.config.console?.input) this.attachConsoleInput(this.config.console.input);
    try {
      for (const v of this.vcpus) {
        const t = new VcpuThread(v, sab, {
          guardPio: true,
          onDeviceExit: (vc) => this.onDeviceExit(vc),
          onError: (e) => this.requestEnd({ kind: 'error', detail: `device emulation failed: ${(e as Error).message}`, exits: 0 }),
        });
        this.threads.push(t);
        // a vCPU's ended only resolves (its failure is a VcpuResult)
        void t.ended.then((r) => this.requestEnd(this.endOf(r, v.id)));
        await t.start();
      }
      await endSignal;
    } finally {
      await this.teardown();
    }
    const end = this.endRequest!;
    end.exits = this.threads.reduce((n, t) => n + t.exits, 0);
    return end;
  }

  /** Asks the machine to stop (e.g. on SIGTERM); run() then resolves with kind 'stopped'. */
  stop(detail = 'stopped by the host'): void {
    this.requestEnd({ kind: 'stopped', detail, exits: 0 });
  }

  async pause(): Promise<void> {
    await Promise.all(this.threads.map((t) => t.pause()));
  }
  resume(): void {
    for (const t of this.threads) t.resume();
  }

  private endOf(r: VcpuResult, vcpu: number): MachineEnd {
    switch (r.kind) {
      case 'halted':
        return { kind: 'halted', detail: 'vCPU halted', vcpu, exits: 0 };
      case 'stopped':
        return { kind: 'stopped', detail: 'stopped by the host', vcpu, exits: 0 };
      case 'unexpected-exit':
        return { kind: 'error', detail: r.detail, vcpu, exits: 0 };
      default:
        return { kind: r.kind, detail: r.detail, vcpu, exits: 0 };
    }
  }

  private async teardown(): Promise<void> {
    this.consoleCleanup?.();
    await Promise.all(this.threads.map((t) => t.stop()));
    this.flushConsole();
    this.release();
  }

  /** Closes every fd and mapping (idempotent). */
  private release(): void {
    if (this.ended) return;
    this.ended = true;
    for (const v of this.vcpus) v.close();
    for (const fd of this.eventfds) libc.close(fd);
    this.vm?.close();
    this.memory?.close();
    this.kvm?.close();
    this.vcpus = [];
    this.eventfds = [];
  }

  /** Guest memory (for tests and snapshots); undefined after teardown. */
  get guestMemory(): GuestMemory | undefined {
    return this.ended ? undefined : this.memory;
  }
}
