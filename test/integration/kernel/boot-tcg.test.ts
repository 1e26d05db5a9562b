/**
 * One boot of our guest kernel under QEMU's software emulator (TCG), with an initramfs our cpio
 * writer makes, and many checks on that one boot: the console output of an /init script that
 * exercises the kernel's configuration (proc, namespaces, cgroup v2, overlayfs, seccomp) and
 * the PVM syscall bridge (test/fixtures/guest-programs/bridge.c), then `reboot -f`, which must
 * end QEMU (-no-reboot).
 *
 * Under TCG a user-mode jump to entry_SYSCALL_64 faults exactly as PVM's SYSCALL does, so the
 * bridge patch runs here although this machine has no /dev/kvm.
 *
 * The first run on a fresh machine builds the kernel (10+ minutes); later runs use the cache.
 * Timings printed here are TCG figures, not PVM or hardware KVM ones.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildKernel, kernelsDir, parseKernelConfig, systemMapSymbol, type KernelArtifacts } from '../../../src/vmm/kernel-artifacts.js';
import { buildInitramfs, busyboxEntries } from '../../../src/disks/initramfs.js';
import { readCpio } from '../../../src/disks/cpio.js';
import { APPLETS, requireBusybox } from '../../fixtures/rootfs.js';
import { bootTcg, buildStaticProgram, consoleLine, KERNEL_BUILD_MS, QEMU, requireTool, type TcgBoot } from '../../fixtures/tcg.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const BRIDGE_SOURCE = path.resolve(here, '../../fixtures/guest-programs/bridge.c');
const MARKER = `m${process.pid}x${Date.now().toString(36)}`;
/** Generous: TCG on a shared 2-core machine. A hung guest fails the test instead of CI. */
const BOOT_TIMEOUT_MS = 420_000;
/** A fresh CI machine builds the kernel first, hence far above the default hook timeout. */
const BUILD_AND_BOOT_TIMEOUT_MS = KERNEL_BUILD_MS + BOOT_TIMEOUT_MS;

function initScript(entry: string): string {
  // Every check prints a TVM-* line the test asserts on; failures print what went wrong.
  return `#!/bin/sh
export PATH=/bin
echo TVM-INIT-START
mount -t proc proc /proc || echo TVM-FAIL-proc
mount -t sysfs sysfs /sys || echo TVM-FAIL-sysfs
mount -t devtmpfs devtmpfs /dev || echo TVM-FAIL-devtmpfs
read cmdline < /proc/cmdline
case " $cmdline " in *" tvm.marker=${MARKER} "*) echo TVM-CMDLINE-OK ;; *) echo "TVM-CMDLINE-BAD $cmdline" ;; esac
echo "TVM-UNAME $(uname -r)"
echo "TVM-UNAME-V $(uname -v)"
echo "TVM-NPROC $(nproc)"
echo "TVM-CONSOLE $(cat /proc/consoles)"
unshare -p -f --mount-proc sh -c 'echo TVM-PIDNS pid=$$ init=$(cat /proc/1/comm)'
unshare -u sh -c 'hostname inner && echo TVM-UTSNS inner=$(hostname)'
echo "TVM-UTSNS outer=$(hostname)"
unshare -n sh -c 'echo TVM-NETNS links=$(ip -o link | wc -l)'
unshare -U -r sh -c 'echo TVM-USERNS uid=$(id -u)'
unshare -i -m sh -c 'echo TVM-IPC-MNT-NS ok'
echo "TVM-NS $(ls /proc/self/ns | tr '\\n' ' ')"
mkdir -p /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && echo "TVM-CGROUP2 $(cat /sys/fs/cgroup/cgroup.controllers)"
mount -t tmpfs tmpfs /tmp && mkdir /tmp/l /tmp/u /tmp/w /tmp/m && echo lower > /tmp/l/f &&
  mount -t overlay overlay -o lowerdir=/tmp/l,upperdir=/tmp/u,workdir=/tmp/w /tmp/m &&
  echo upper > /tmp/m/g && echo "TVM-OVERLAY $(cat /tmp/m/f) $(cat /tmp/u/g)"
grep Seccomp: /proc/self/status | sed 's/^/TVM-/'
ls /dev/pts >/dev/null 2>&1; mkdir -p /dev/pts && mount -t devpts devpts /dev/pts && test -c /dev/ptmx && echo TVM-PTY ok
/bin/bridge ${entry}
echo "TVM-BRIDGE-EXIT $?"
echo TVM-INIT-DONE
reboot -f
echo TVM-FAIL-reboot-returned
`;
}

interface Boot extends TcgBoot {
  msToInit: number | undefined;
  msToDone: number | undefined;
}

let kernel: KernelArtifacts;
let boot: Boot;

beforeAll(async () => {
  requireTool(QEMU, ['--version'], 'qemu-system-x86', 'the TCG boot test');
  requireBusybox();
  // Builds on the first run (progress to stderr), instant afterwards.
  kernel = await buildKernel({ onProgress: (l) => process.stderr.write(`[kernel] ${l}\n`) });
  const entry = (await systemMapSymbol(kernel.systemMap, 'entry_SYSCALL_64')).toString(16);

  const dir = mkdtempSync(path.join(tmpdir(), 'tvm-boot-tcg-'));
  try {
    const initramfs = buildInitramfs({
      init: initScript(entry),
      dirs: ['proc', 'sys', 'tmp', 'root', 'etc'],
      files: [
        ...busyboxEntries(readFileSync(requireBusybox()), [...new Set([...APPLETS, 'unshare', 'ip', 'grep', 'sed', 'nproc'])]),
        { path: 'bin/bridge', type: 'file', mode: 0o755, data: buildStaticProgram(BRIDGE_SOURCE, dir) },
      ],
    });
    const initrd = path.join(dir, 'initramfs.cpio');
    writeFileSync(initrd, initramfs);

    const b = await bootTcg({
      kernel: kernel.vmlinux,
      initrd,
      memoryMiB: 128,
      timeoutMs: BOOT_TIMEOUT_MS,
      append: `tvm.marker=${MARKER}`,
      watch: ['TVM-INIT-START', 'TVM-INIT-DONE'],
    });
    const msToInit = b.marks['TVM-INIT-START'];
    const msToDone = b.marks['TVM-INIT-DONE'];
    boot = { ...b, msToInit, msToDone };
    process.stderr.write(
      `[boot-tcg] QEMU TCG (not PVM, not hardware KVM): /init after ${msToInit} ms, init done after ${msToDone} ms, ` +
        `QEMU exited after ${boot.msTotal} ms; initramfs ${initramfs.length} bytes\n`,
    );
    // The round trip through our reader is part of what this boot proves about the writer.
    expect(readCpio(initramfs).some((e) => e.path === 'init')).toBe(true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, BUILD_AND_BOOT_TIMEOUT_MS);

const line = (prefix: string): string => consoleLine(boot, prefix, 6000);

describe('guest kernel under QEMU TCG', () => {
  it('boots to /init and QEMU exits on reboot -f', () => {
    expect(boot.timedOut, boot.console.slice(-4000)).toBe(false);
    line('TVM-INIT-START');
    line('TVM-INIT-DONE');
    expect(boot.console).not.toContain('TVM-FAIL');
    expect(boot.exitCode).toBe(0);
  });

  it('boots cleanly: no warnings, oopses or console problems', () => {
    for (const bad of ['WARNING:', 'BUG:', 'Oops', 'Call Trace', 'Kernel panic', 'unable to open an initial console']) {
      expect(boot.console, bad).not.toContain(bad);
    }
  });

  it('passes the command line and reports our release and fixed build identity', () => {
    line('TVM-CMDLINE-OK');
    expect(line('TVM-UNAME ')).toMatch(/^TVM-UNAME 6\.1\.\d+/);
    expect(line('TVM-UNAME-V ')).toBe('TVM-UNAME-V #1 SMP Mon Jan  1 00:00:00 UTC 2024');
    expect(line('TVM-CONSOLE ')).toContain('ttyS0');
  });

  it('brings up both vCPUs (MP table, no ACPI)', () => {
    expect(line('TVM-NPROC ')).toBe('TVM-NPROC 2');
  });

  it('has the namespaces containers need', () => {
    expect(line('TVM-PIDNS ')).toBe('TVM-PIDNS pid=1 init=sh');
    expect(line('TVM-UTSNS inner')).toBe('TVM-UTSNS inner=inner');
    expect(line('TVM-UTSNS outer')).not.toContain('inner');
    expect(line('TVM-NETNS ')).toBe('TVM-NETNS links=1');
    expect(line('TVM-USERNS ')).toBe('TVM-USERNS uid=0');
    line('TVM-IPC-MNT-NS ok');
    // busybox unshare has no -C; the cgroup namespace shows in /proc/self/ns like the others.
    expect(line('TVM-NS ').split(' ').slice(1)).toEqual(expect.arrayContaining(['cgroup', 'ipc', 'mnt', 'net', 'pid', 'user', 'uts']));
  });

  it('has cgroup v2 with the cpuset, cpu, memory and pids controllers', () => {
    const controllers = line('TVM-CGROUP2 ').split(' ').slice(1);
    expect(controllers).toEqual(expect.arrayContaining(['cpuset', 'cpu', 'memory', 'pids']));
  });

  it('has tmpfs, overlayfs, seccomp and UNIX98 PTYs', () => {
    expect(line('TVM-OVERLAY ')).toBe('TVM-OVERLAY lower upper');
    expect(line('TVM-Seccomp:')).toMatch(/^TVM-Seccomp:\s+0$/);
    line('TVM-PTY ok');
  });

  it('runs syscalls through the PVM syscall bridge (user-mode jmp to entry_SYSCALL_64), with signals and restart', () => {
    expect(boot.console).not.toContain('BRIDGE FAIL');
    expect(line('BRIDGE getpid ')).toMatch(/^BRIDGE getpid bridged=(\d+) direct=\1$/);
    line('BRIDGE write via bridge');
    line('BRIDGE pass IOPL stays 0');
    line('BRIDGE pass 1000 bridged getpid calls');
    // Exit-to-user work on the bridge's exit path: signal delivery and syscall restart.
    expect(line('BRIDGE signal+SA_RESTART ')).toBe('BRIDGE signal+SA_RESTART read=1 handler=1');
    expect(line('BRIDGE signal read=')).toBe('BRIDGE signal read=-4 handler=1');
    line('BRIDGE OK');
    expect(line('TVM-BRIDGE-EXIT ')).toBe('TVM-BRIDGE-EXIT 0');
  });

  it('was built with the configuration PVM needs', () => {
    const config = parseKernelConfig(readFileSync(kernel.config, 'utf8'));
    const want: Record<string, string | undefined> = {
      CONFIG_PTP_1588_CLOCK_KVM: undefined, // hangs at boot on PVM
      CONFIG_PTP_1588_CLOCK: undefined,
      CONFIG_LEGACY_PTYS: undefined, // 76 s pty_init on PVM
      CONFIG_IPV6: undefined,
      CONFIG_MODULES: undefined,
      CONFIG_PCI: undefined,
      CONFIG_ACPI: undefined,
      CONFIG_RD_GZIP: undefined,
      CONFIG_RANDOMIZE_BASE: undefined,
      CONFIG_PVH: 'y',
      CONFIG_KVM_GUEST: 'y',
      CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES: 'y',
      CONFIG_VIRTIO_BLK: 'y',
      CONFIG_VIRTIO_NET: 'y',
      CONFIG_VIRTIO_VSOCKETS: 'y',
      CONFIG_HW_RANDOM_VIRTIO: 'y',
      CONFIG_SERIAL_8250_NR_UARTS: '1',
      CONFIG_SERIAL_8250_RUNTIME_UARTS: '1',
    };
    for (const [k, v] of Object.entries(want)) {
      const have = config.get(k);
      if (v === undefined) expect(have === undefined || have === 'n', `${k}=${have}`).toBe(true);
      else expect(have, k).toBe(v);
    }
    // And the build's own check, against the config that was really built.
    execFileSync('bash', [path.join(kernelsDir(), 'check-config.sh'), path.join(kernelsDir(), 'config-fragment'), kernel.config], {
      stdio: 'pipe',
    });
  });
});
