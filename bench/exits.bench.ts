/**
 * Exits per second by reason (PIO, MMIO) with a synthetic guest, three ways in one run:
 *   C      a plain C VMM doing KVM_RUN in a loop (compiled here with gcc),
 *   node   our Kvm/Vcpu wrappers in a loop on the main thread (FFI cost only),
 *   tvm    the Machine: vCPU worker thread + Atomics hand-off + bus dispatch (what guests get).
 * Reported as exits/s and as ratios to C. Label: PVM or hardware KVM.
 * Usage: npx tsx bench/exits.bench.ts [rounds]   (needs /dev/kvm; prints "missing /dev/kvm" otherwise)
 */
import { existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Kvm } from '../src/kvm/kvm.js';
import { KvmExit, kvmRun } from '../src/kvm/structs.js';
import { GuestMemory } from '../src/vmm/memory.js';
import { Machine } from '../src/vmm/machine.js';
import { bootSregs } from '../src/vmm/machine.js';
import { MiB } from '../src/vmm/layout.js';
import { isPvmHost } from '../src/kvm/detect.js';
import { exitLoopGuest, FLAT_LOAD } from '../test/fixtures/guests/guests.js';

if (!existsSync('/dev/kvm')) {
  console.error('missing /dev/kvm: this benchmark runs synthetic guests on KVM');
  process.exit(2);
}
const ROUNDS = Number(process.argv[2] ?? 20000);
const label = isPvmHost() ? 'PVM' : 'hardware KVM';

const C_SOURCE = `
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
  int kvm = open("/dev/kvm", O_RDWR), vm = ioctl(kvm, KVM_CREATE_VM, 0);
  size_t memsz = 64u << 20;
  uint8_t *m = mmap(0, memsz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  FILE *f = fopen(argv[1], "rb"); fread(m + ${FLAT_LOAD}, 1, 1 << 20, f); fclose(f);
  struct kvm_userspace_memory_region r = {0, 0, 0, memsz, (uint64_t)m};
  ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r);
  int cpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  struct kvm_run *run = mmap(0, ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0), PROT_READ | PROT_WRITE, MAP_SHARED, cpu, 0);
  struct kvm_sregs s; ioctl(cpu, KVM_GET_SREGS, &s);
  s.cr0 |= 1;
  struct kvm_segment cs = {.base = 0, .limit = 0xffffffff, .selector = 0x10, .type = 11, .present = 1, .db = 1, .s = 1, .g = 1};
  struct kvm_segment ds = {.base = 0, .limit = 0xffffffff, .selector = 0x18, .type = 3, .present = 1, .db = 1, .s = 1, .g = 1};
  s.cs = cs; s.ds = s.es = s.fs = s.gs = s.ss = ds;
  ioctl(cpu, KVM_SET_SREGS, &s);
  struct kvm_regs g = {0}; g.rip = ${FLAT_LOAD}; g.rflags = 2; ioctl(cpu, KVM_SET_REGS, &g);
  struct timespec a, b; clock_gettime(CLOCK_MONOTONIC, &a);
  long exits = 0;
  for (;;) {
    if (ioctl(cpu, KVM_RUN, 0) < 0) { perror("KVM_RUN"); return 1; }
    exits++;
    if (run->exit_reason == KVM_EXIT_IO && run->io.port == 0x64) break;
    if (run->exit_reason != KVM_EXIT_IO && run->exit_reason != KVM_EXIT_MMIO) { fprintf(stderr, "exit %d\\n", run->exit_reason); return 1; }
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%ld %.6f\\n", exits, (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
  return 0;
}`;

function runC(dir: string, guest: Uint8Array): { exits: number; seconds: number } {
  writeFileSync(path.join(dir, 'guest.bin'), guest);
  const [exits, seconds] = execFileSync(path.join(dir, 'exits'), [path.join(dir, 'guest.bin')], { encoding: 'utf8' })
    .trim()
    .split(' ');
  return { exits: Number(exits), seconds: Number(seconds) };
}

function runNodeLoop(guest: Uint8Array): { exits: number; seconds: number } {
  const kvm = Kvm.open();
  const vm = kvm.createVm();
  const mem = GuestMemory.create(64 * MiB);
  const vcpu = vm.createVcpu(0);
  try {
    vm.setUserMemoryRegion({
      slot: 0,
      flags: 0,
      guest_phys_addr: 0n,
      memory_size: BigInt(mem.size),
      userspace_addr: BigInt(mem.hostAddress),
    });
    mem.slice(FLAT_LOAD, guest.length).set(guest);
    const s = bootSregs(vcpu.getSregs(), 'protected', 0);
    vcpu.setSregs(s);
    vcpu.setRegs({ rip: BigInt(FLAT_LOAD), rflags: 2n });
    const portOff = kvmRun.offsetOf('io.port');
    const t0 = process.hrtime.bigint();
    let exits = 0;
    for (;;) {
      const r = vcpu.runOnce();
      exits++;
      if (r === KvmExit.IO && vcpu.run.getUint16(portOff, true) === 0x64) break;
      if (r !== KvmExit.IO && r !== KvmExit.MMIO) throw new Error(`exit ${r}`);
    }
    return { exits, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
  } finally {
    vcpu.close();
    vm.close();
    mem.close();
    kvm.close();
  }
}

async function runMachine(guest: Uint8Array): Promise<{ exits: number; seconds: number }> {
  const sink = new Writable({ write: (_c, _e, cb) => cb() });
  const m = await Machine.create({
    image: { bytes: guest, loadAddr: FLAT_LOAD, entry: FLAT_LOAD, mode: 'protected' },
    memMiB: 64,
    cpus: 1,
    console: { output: sink },
  });
  const t0 = process.hrtime.bigint();
  const end = await m.run();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (end.kind !== 'rebooted') throw new Error(`guest ended ${end.kind}: ${end.detail}`);
  return { exits: end.exits, seconds };
}

const dir = mkdtempSync(path.join(tmpdir(), 'tvm-exits-'));
try {
  writeFileSync(path.join(dir, 'exits.c'), C_SOURCE);
  execFileSync('gcc', ['-O2', '-o', path.join(dir, 'exits'), path.join(dir, 'exits.c')]);
  console.log(`exits benchmark (${label}, ${ROUNDS} exits per run, 1 vCPU)`);
  console.log('reason  C exits/s   node loop exits/s (ratio)   tvm Machine exits/s (ratio)');
  for (const kind of ['pio', 'mmio'] as const) {
    const guest = exitLoopGuest(kind, ROUNDS);
    const c = runC(dir, guest);
    const n = runNodeLoop(guest);
    const t = await runMachine(guest);
    const rate = (r: { exits: number; seconds: number }) => r.exits / r.seconds;
    console.log(
      `${kind.padEnd(6)}  ${rate(c).toFixed(0).padStart(9)}   ${rate(n).toFixed(0).padStart(9)} (${(rate(n) / rate(c)).toFixed(2)})           ${rate(t).toFixed(0).padStart(9)} (${(rate(t) / rate(c)).toFixed(2)})`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
