/**
 * `docker run --rm busybox true` through the docker CLI against one tvm daemon, with
 * --isolation=vm and --isolation=container, and as the floor of this platform QEMU booting
 * the same kernel on the same backend with an /init that powers off at once (no agent, no
 * disk, no vhost-user). Interleaved runs; min/median/p95; ratios vm/floor (goal here on tcg:
 * <= 1.5x) and vm/container. Then the split of a VM run from the supervisor's boot marks, and
 * 4 VMs started at once: total time and peak RSS of the daemon, the supervisors and QEMU.
 * Every figure is labelled with its backend (tcg: QEMU's software CPU; kvm: tvm's VMM).
 *
 *   npx tsx bench/vm-run.bench.ts [--runs N] [--warmup N]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { startTestDaemon, missingRealParts, DOCKER } from '../test/fixtures/daemon.js';
import { busyboxDockerArchive } from '../test/fixtures/fake-images.js';
import { buildStaticProgram } from '../test/fixtures/tcg.js';
import { buildInitramfs } from '../src/disks/initramfs.js';
import { findKernel } from '../src/vmm/kernel-artifacts.js';
import { chooseVmBackend } from '../src/vmm/launch/backend.js';
import { qemuMicrovmArgs } from '../src/vmm/tcg/qemu-args.js';
import { TCG_KERNEL_ARGS } from '../src/vmm/launch/tcg.js';
import { requireTools, timedDocker } from './lib/reference-dockerd.js';
import { summary } from './lib/stats.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? Number(args[i + 1]) : dflt;
};
const RUNS = opt('runs', 10);
const WARMUP = opt('warmup', 1);

requireTools([[DOCKER, 'docker-ce-cli (the docker CLI)']]);
const missing = missingRealParts();
if (missing.length > 0) throw new Error(`tvm parts missing: ${missing.join(', ')}`);
const choice = chooseVmBackend('auto');
if (!choice) throw new Error('no VM backend on this host: needs /dev/kvm or qemu-system-x86_64');
const backend = choice.backend;
const machine = `${cpus().length} CPUs (${cpus()[0]?.model.trim()})`;

const work = mkdtempSync(path.join(tmpdir(), 'tvm-bench-vm-'));
const here = path.dirname(new URL(import.meta.url).pathname);

/** The floor: the same kernel on QEMU with an /init that reboots at once. */
async function floorRun(kernel: string, initrd: string): Promise<number> {
  const t = process.hrtime.bigint();
  const qemuArgs = qemuMicrovmArgs({ kernel, initrd, cmdline: `${TCG_KERNEL_ARGS} quiet`, memoryMiB: 256, vcpus: 1, vhostUser: [] });
  if (backend === 'kvm') qemuArgs.splice(qemuArgs.indexOf('tcg'), 1, 'kvm');
  const code = await new Promise<number | null>((resolve) => {
    const p = spawn('qemu-system-x86_64', qemuArgs, { stdio: 'ignore' });
    p.once('exit', (c) => resolve(c));
  });
  if (code !== 0) throw new Error(`the floor QEMU exited ${code}`);
  return Number(process.hrtime.bigint() - t) / 1e6;
}

/** RSS in KiB of the processes whose command line contains `needle`. */
function rssOf(needle: string): number {
  let kib = 0;
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (!readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(needle)) continue;
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${e}/status`, 'utf8'));
      kib += Number(m?.[1] ?? 0);
    } catch {
      // gone meanwhile
    }
  }
  return kib;
}

const tvm = await startTestDaemon();
try {
  const kernel = await findKernel();
  const poweroff = buildStaticProgram(path.join(here, 'lib', 'poweroff.c'), work);
  const floorInitrd = path.join(work, 'poweroff.cpio');
  writeFileSync(floorInitrd, buildInitramfs({ init: poweroff }));
  // the image the VM isolation boots on either backend (PVH entry)
  const kernelImage = kernel.vmlinux;

  const docker = (cmd: string[]) => timedDocker(tvm.host, path.join(work, 'cfg'), cmd);
  writeFileSync(path.join(work, 'busybox.tar'), await busyboxDockerArchive());
  if (docker(['load', '-i', path.join(work, 'busybox.tar')]).code !== 0) throw new Error('docker load failed');
  for (const iso of ['vm', 'container']) {
    const check = docker(['run', '--rm', `--isolation=${iso}`, 'busybox', 'echo', 'ok']);
    if (check.code !== 0 || check.out.trim() !== 'ok') throw new Error(`--isolation=${iso}: docker run does not work: ${check.err}`);
  }

  const times: Record<'vm' | 'container' | 'floor', number[]> = { vm: [], container: [], floor: [] };
  for (let i = 0; i < WARMUP + RUNS; i++) {
    for (const iso of ['vm', 'container'] as const) {
      const r = docker(['run', '--rm', `--isolation=${iso}`, 'busybox', 'true']);
      if (r.code !== 0) throw new Error(`--isolation=${iso}: exited ${r.code}: ${r.err}`);
      if (i >= WARMUP) times[iso].push(r.ms);
    }
    const f = await floorRun(kernelImage, floorInitrd);
    if (i >= WARMUP) times.floor.push(f);
  }

  // the split: the supervisor's marks (ms after it started) for a few runs kept until read
  const splits: Record<string, number>[] = [];
  for (let i = 0; i < 3; i++) {
    const r = docker(['run', '--isolation=vm', 'busybox', 'true']);
    const id = docker(['ps', '-lq', '--no-trunc']).out.trim();
    const boot = JSON.parse(readFileSync(path.join(tvm.dataRoot, 'containers', id, 'boot.json'), 'utf8')) as {
      marks: Record<string, number>;
    };
    splits.push({ ...boot.marks, total: r.ms });
    docker(['rm', id]);
  }

  // 4 VMs at once, each living ~3 s so they overlap; RSS sampled every 100 ms
  let peak = { daemon: 0, supervisors: 0, qemu: 0 };
  const daemonPid = tvm.pid();
  const sampler = setInterval(() => {
    const daemon = daemonPid ? Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${daemonPid}/status`, 'utf8'))?.[1] ?? 0) : 0;
    const sample = { daemon, supervisors: rssOf('supervisor-main'), qemu: rssOf('qemu-system-x86_64') };
    if (sample.supervisors + sample.qemu > peak.supervisors + peak.qemu) peak = sample;
  }, 100);
  const t4 = process.hrtime.bigint();
  await Promise.all(
    [0, 1, 2, 3].map(
      () =>
        new Promise<void>((resolve, reject) => {
          const p = spawn(DOCKER, ['run', '--rm', '--isolation=vm', 'busybox', 'sleep', '3'], {
            env: { ...process.env, DOCKER_HOST: tvm.host, DOCKER_CONFIG: path.join(work, 'cfg') },
            stdio: 'ignore',
          });
          p.once('exit', (c) => (c === 0 ? resolve() : reject(new Error(`a concurrent VM run exited ${c}`))));
        }),
    ),
  );
  const total4 = Number(process.hrtime.bigint() - t4) / 1e6;
  clearInterval(sampler);

  const fmt = (x: number) => `${x.toFixed(0).padStart(6)} ms`;
  const out = (s: string) => process.stdout.write(s + '\n');
  const v = summary(times.vm);
  const c = summary(times.container);
  const fl = summary(times.floor);
  out(`VM isolation, backend ${backend} (${choice.reason}); machine: ${machine}`);
  out(`docker run --rm busybox true, ${RUNS} runs each after ${WARMUP} warm-up, interleaved`);
  out(`                                   min      median         p95`);
  out(`tvm --isolation=vm (${backend})       ${fmt(v.min)}   ${fmt(v.median)}   ${fmt(v.p95)}`);
  out(`tvm --isolation=container       ${fmt(c.min)}   ${fmt(c.median)}   ${fmt(c.p95)}`);
  out(`floor: QEMU ${backend} boot+poweroff   ${fmt(fl.min)}   ${fmt(fl.median)}   ${fmt(fl.p95)}`);
  out(
    `ratio vm/floor      min ${(v.min / fl.min).toFixed(2)}x  median ${(v.median / fl.median).toFixed(2)}x  p95 ${(v.p95 / fl.p95).toFixed(2)}x  (goal on tcg <= 1.5x)`,
  );
  out(`ratio vm/container  min ${(v.min / c.min).toFixed(2)}x  median ${(v.median / c.median).toFixed(2)}x`);
  const keys = ['processStart', 'backendStarted', 'kernelFirstLine', 'kernelToInit', 'agentReady', 'created', 'total'];
  out(
    `split of a VM run (${backend}; processStart: the daemon's spawn of the supervisor, or its order to the standby one, to the supervisor's first line; the rest: ms after that line; total: the docker CLI's wall time), 3 runs:`,
  );
  out(`  ${keys.map((k) => k.padStart(16)).join('')}`);
  for (const s of splits) out(`  ${keys.map((k) => String(Math.round(s[k] ?? NaN)).padStart(16)).join('')}`);
  out(
    `4 VMs at once (${backend}, each 'sleep 3'): total ${fmt(total4)}; at the peak: daemon ${Math.round(peak.daemon / 1024)} MiB, supervisors ${Math.round(peak.supervisors / 1024)} MiB (${Math.round(peak.supervisors / 4 / 1024)} MiB per VM), QEMU ${Math.round(peak.qemu / 1024)} MiB (${Math.round(peak.qemu / 4 / 1024)} MiB per VM, guest RAM touched included)`,
  );
} finally {
  await tvm.destroy();
  rmSync(work, { recursive: true, force: true });
}
