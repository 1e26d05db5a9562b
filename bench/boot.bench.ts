/**
 * Boot time: tvm's VMM vs QEMU `-M microvm -enable-kvm`, same kernel, initramfs, command line,
 * memory and vCPUs, N boots each, alternating, in one run. Measured from process start to the
 * first console line containing the marker, and to process exit (the guest must end itself:
 * the default command line uses reboot=t, a triple fault, which ends both VMMs on hardware
 * KVM; on PVM that path is an internal error and QEMU does not exit, which is reported).
 *
 * Usage: npx tsx bench/boot.bench.ts [--kernel PATH] [--initrd PATH] [--append ARGS]
 *          [--marker TEXT] [--mem MiB] [--cpus N] [--boots N] [--timeout S]
 * Kernel default: the newest ~/.cache/tvm/kernels/<*>/vmlinux.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { homedir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isPvmHost } from '../src/kvm/detect.js';
import { buildKernelCmdline } from '../src/vmm/kernel-args.js';

if (!existsSync('/dev/kvm')) {
  console.error('missing /dev/kvm: this benchmark boots a Linux guest on KVM');
  process.exit(2);
}

function arg(name: string, def?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}
function defaultKernel(): string | undefined {
  const root = path.join(homedir(), '.cache/tvm/kernels');
  if (!existsSync(root)) return undefined;
  const ks = readdirSync(root)
    .map((d) => path.join(root, d, 'vmlinux'))
    .filter((p) => existsSync(p));
  return ks.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
}

const kernel = arg('kernel') ?? defaultKernel();
if (!kernel || !existsSync(kernel)) {
  console.error('missing kernel: pass --kernel PATH or build one into ~/.cache/tvm/kernels/<version>/vmlinux');
  process.exit(2);
}
const initrd = arg('initrd');
const marker = arg('marker', 'Run /init')!;
const mem = arg('mem', '256')!;
const cpus = arg('cpus', '1')!;
const boots = Number(arg('boots', '3'));
const timeoutS = Number(arg('timeout', '300'));
const pvm = isPvmHost();
const label = pvm ? 'PVM' : 'hardware KVM';
// One command line for both: ours with its defaults spelled out, so QEMU gets the very same text.
const cmdline = buildKernelCmdline(arg('append', 'reboot=t')!, pvm ? 'pvm' : 'hardware', 2048).text;

const here = path.dirname(fileURLToPath(import.meta.url));
const vmmEntry = path.join(here, '../src/vmm/vmm-process.ts');

const tvmCmd = [
  'node',
  [
    '--import',
    'tsx',
    vmmEntry,
    'run',
    '--kernel',
    kernel,
    ...(initrd ? ['--initrd', initrd] : []),
    '--append',
    cmdline,
    '--mem',
    mem,
    '--cpus',
    cpus,
  ],
] as const;
const qemuCpu = pvm ? 'host,-xsave,-popcnt,-smap,-smep,-arch-capabilities' : 'host';
const qemuCmd = [
  'qemu-system-x86_64',
  [
    '-M',
    'microvm',
    '-enable-kvm',
    '-cpu',
    qemuCpu,
    '-m',
    mem,
    '-smp',
    cpus,
    '-nodefaults',
    '-no-user-config',
    '-nographic',
    '-serial',
    'stdio',
    '-no-reboot',
    '-kernel',
    kernel,
    ...(initrd ? ['-initrd', initrd] : []),
    '-append',
    cmdline,
  ],
] as const;

interface Sample {
  marker?: number;
  exit?: number;
  status: string;
}

function boot(cmd: string, args: readonly string[]): Promise<Sample> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const ms = () => Number(process.hrtime.bigint() - t0) / 1e6;
    const p = spawn(cmd, args as string[], { stdio: ['ignore', 'pipe', 'pipe'], cwd: path.join(here, '..') });
    const s: Sample = { status: '' };
    let buf = '';
    p.stdout.on('data', (d: Buffer) => {
      if (s.marker !== undefined) return;
      buf += d.toString('latin1');
      if (buf.includes(marker)) s.marker = ms();
      buf = buf.slice(-marker.length);
    });
    const timer = setTimeout(() => {
      s.status = 'did not exit (killed)';
      p.kill('SIGKILL');
    }, timeoutS * 1000);
    p.on('exit', (code, sig) => {
      clearTimeout(timer);
      if (!s.status) {
        s.exit = ms();
        s.status = sig ? `signal ${sig}` : `exit ${code}`;
      }
      resolve(s);
    });
  });
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const results: Record<'tvm' | 'qemu', Sample[]> = { tvm: [], qemu: [] };
console.log(
  `boot benchmark (${label}): kernel ${kernel}${initrd ? `, initrd ${initrd}` : ''}, ${mem} MiB, ${cpus} vCPU, marker ${JSON.stringify(marker)}`,
);
console.log(`command line: ${cmdline}`);
for (let i = 0; i < boots; i++) {
  for (const [name, [cmd, args]] of [
    ['tvm', tvmCmd],
    ['qemu', qemuCmd],
  ] as const) {
    const s = await boot(cmd, args);
    results[name].push(s);
    console.log(`  ${name} #${i + 1}: marker ${s.marker?.toFixed(0) ?? '-'} ms, end ${s.exit?.toFixed(0) ?? '-'} ms (${s.status})`);
  }
}
const m = (n: 'tvm' | 'qemu', k: 'marker' | 'exit') => mean(results[n].map((s) => s[k]).filter((x): x is number => x !== undefined));
console.log(`\n           to marker (ms)   to exit (ms)`);
console.log(`tvm        ${m('tvm', 'marker').toFixed(0).padStart(12)}   ${m('tvm', 'exit').toFixed(0).padStart(12)}`);
console.log(`qemu       ${m('qemu', 'marker').toFixed(0).padStart(12)}   ${m('qemu', 'exit').toFixed(0).padStart(12)}`);
console.log(
  `tvm/qemu   ${(m('tvm', 'marker') / m('qemu', 'marker')).toFixed(2).padStart(12)}   ${(m('tvm', 'exit') / m('qemu', 'exit')).toFixed(2).padStart(12)}   (${label}; < 1 means tvm is faster)`,
);
