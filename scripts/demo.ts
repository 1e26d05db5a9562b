/**
 * npm run demo: runs what exists, end to end, and prints boot times.
 *  1. starts `tvm daemon` on a private socket and data root,
 *  2. imports a busybox image built from this machine's busybox-static (no Docker Hub here),
 *  3. runs a container with --isolation=container through our CLI and through the docker CLI,
 *  4. runs a container with --isolation=vm (its own guest kernel; backend kvm where /dev/kvm
 *     is usable, else tcg: QEMU's software CPU with tvm's devices over vhost-user),
 *  5. where /dev/kvm exists, boots our guest kernel in our VMM alone and times it.
 * Every figure says where it was measured.
 */
import { execa } from 'execa';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { busyboxRootfsTar, APPLETS, requireBusybox } from '../test/fixtures/rootfs.js';
import { buildInitramfs, busyboxEntries } from '../src/disks/initramfs.js';
import { findKernel } from '../src/vmm/kernel-artifacts.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TVM = path.join(REPO, 'bin', 'tvm.js');
const DOCKER = '/usr/local/bin/docker';
const RUNS = Number(process.env.DEMO_RUNS ?? 5);
const work = path.join(os.tmpdir(), `tvm-demo-${process.pid}`);
const socket = path.join(work, 'tvm.sock');
const host = `unix://${socket}`;
const env = { ...process.env, TVM_HOST: host, DOCKER_HOST: host };

const say = (s: string) => console.log(`\x1b[1m[demo]\x1b[0m ${s}`);
const ms = (ns: bigint) => Number(ns / 1000n) / 1000;

function machineLabel(): string {
  if (!existsSync('/dev/kvm')) return 'no /dev/kvm';
  return existsSync('/sys/module/kvm_pvm') ? 'PVM-backed KVM' : 'hardware KVM';
}

function summary(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const median = s[Math.floor(s.length / 2)]!;
  return `min ${s[0]!.toFixed(1)} ms, median ${median.toFixed(1)} ms over ${s.length} runs`;
}

async function waitForSocket(daemon: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (daemon.exitCode !== null) throw new Error(`tvm daemon exited with ${daemon.exitCode}`);
    const r = await execa(process.execPath, [TVM, 'version'], { env, reject: false });
    if (r.exitCode === 0) return;
    await new Promise((res) => setTimeout(res, 200));
  }
  throw new Error('tvm daemon did not answer in time');
}

async function timed(cmd: string, args: string[]): Promise<{ ms: number; stdout: string }> {
  const t0 = process.hrtime.bigint();
  const r = await execa(cmd, args, { env });
  return { ms: ms(process.hrtime.bigint() - t0), stdout: r.stdout };
}

async function containerIsolation(): Promise<number[]> {
  say(`importing a busybox image (rootfs from ${requireBusybox()}) as demo/busybox:latest`);
  const tarPath = path.join(work, 'busybox-rootfs.tar');
  await writeFile(tarPath, await busyboxRootfsTar());
  await execa(process.execPath, [TVM, 'import', '-c', 'CMD ["sh"]', tarPath, 'demo/busybox:latest'], { env, stdio: 'inherit' });

  say('first run builds the image base disk (ext4, our writer) once; not counted');
  await execa(process.execPath, [TVM, 'run', '--rm', '--isolation=container', 'demo/busybox', 'true'], { env, stdio: 'inherit' });

  say(`tvm run --rm --isolation=container demo/busybox echo hello  (x${RUNS})`);
  const ours: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await timed(process.execPath, [
      TVM,
      'run',
      '--rm',
      '--isolation=container',
      'demo/busybox',
      'echo',
      'hello from a container',
    ]);
    if (i === 0) console.log(`    ${r.stdout}`);
    ours.push(r.ms);
  }
  say(`  tvm CLI: ${summary(ours)} (process start to exit, includes Node start-up of the CLI)`);

  if (existsSync(DOCKER)) {
    say(`docker run --rm --isolation=container demo/busybox echo hello  (x${RUNS}, the real docker CLI against tvm)`);
    const viaDocker: number[] = [];
    for (let i = 0; i < RUNS; i++)
      viaDocker.push((await timed(DOCKER, ['run', '--rm', '--isolation=container', 'demo/busybox', 'echo', 'hello'])).ms);
    say(`  docker CLI: ${summary(viaDocker)}`);
    return viaDocker;
  }
  return ours;
}

async function vmBackend(): Promise<string> {
  const r = await execa(process.execPath, [TVM, 'info'], { env, reject: false });
  return /VM backend:\s*(\S+)/.exec(r.stdout)?.[1] ?? 'unknown';
}

async function vmIsolation(): Promise<{ times: number[]; backend: string }> {
  const backend = await vmBackend();
  const label =
    backend === 'tcg'
      ? "tcg: QEMU's software CPU with tvm's devices over vhost-user (no /dev/kvm here)"
      : `${backend}: tvm's VMM on ${machineLabel()}`;
  say(`--isolation=vm runs each container in its own microVM; backend ${label}`);
  say('first VM run (not counted)');
  const first = await execa(
    process.execPath,
    [TVM, 'run', '--rm', '--isolation=vm', 'demo/busybox', 'sh', '-c', 'echo "guest kernel $(uname -r), host kernel ' + os.release() + '"'],
    { env, reject: false },
  );
  console.log(`    ${(first.stdout || first.stderr).trim()}`);
  if (first.exitCode !== 0) throw new Error(`--isolation=vm failed: ${first.stderr}`);
  say(`tvm run --rm --isolation=vm demo/busybox echo hello  (x${RUNS})`);
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await timed(process.execPath, [TVM, 'run', '--rm', '--isolation=vm', 'demo/busybox', 'echo', 'hello from a VM']);
    if (i === 0) console.log(`    ${r.stdout}`);
    times.push(r.ms);
  }
  if (existsSync(DOCKER)) {
    say(`docker run --rm --isolation=vm demo/busybox echo hello  (x${RUNS}, the real docker CLI against tvm)`);
    const viaDocker: number[] = [];
    for (let i = 0; i < RUNS; i++)
      viaDocker.push((await timed(DOCKER, ['run', '--rm', '--isolation=vm', 'demo/busybox', 'echo', 'hello'])).ms);
    say(`  docker CLI: ${summary(viaDocker)}`);
    return { times: viaDocker, backend };
  }
  return { times, backend };
}

async function vmmBoot(): Promise<number | undefined> {
  if (!existsSync('/dev/kvm')) {
    say('our VMM booting our kernel: not run: /dev/kvm is missing on this machine');
    if (existsSync('/sys/module/kvm_pvm'))
      console.log('    (kvm_pvm is loaded but did not bind: this machine is itself a PVM guest; see dmesg)');
    return undefined;
  }
  const kernel = await findKernel();
  const marker = 'TVM-DEMO-GUEST-UP';
  const init = `#!/bin/busybox sh\n/bin/busybox echo ${marker}\n/bin/busybox reboot -f\n`;
  const initrd = path.join(work, 'demo-initrd.cpio');
  await writeFile(
    initrd,
    buildInitramfs({ init, files: busyboxEntries(readFileSync(requireBusybox()), APPLETS), dirs: ['proc', 'sys', 'tmp'] }),
  );
  say(`our VMM booting our kernel (${machineLabel()}, 1 vCPU, 128 MiB); on PVM a boot takes minutes`);
  const t0 = process.hrtime.bigint();
  let atMarker: number | undefined;
  const vmm = spawn(process.execPath, [TVM, 'vmm', 'run', '--kernel', kernel.vmlinux, '--initrd', initrd, '--mem', '128'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  vmm.stdout.on('data', (b: Buffer) => {
    process.stdout.write(b);
    if (atMarker === undefined && b.toString().includes(marker)) atMarker = ms(process.hrtime.bigint() - t0);
  });
  const code = await new Promise<number>((res) => vmm.on('exit', (c) => res(c ?? 1)));
  say(`  VMM exit ${code}; marker after ${atMarker?.toFixed(0) ?? 'never'} ms (${machineLabel()})`);
  return atMarker;
}

async function main(): Promise<void> {
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  // A private data root per run, removed at the end: the demo leaves no images behind.
  const dataRoot = process.env.TVM_DEMO_DATA ?? path.join(work, 'data');
  say(`starting tvm daemon on ${host} (data root ${dataRoot})`);
  const daemon = spawn(process.execPath, [TVM, 'daemon', '-H', host, '--data-root', dataRoot, '--exec-root', path.join(work, 'run')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let daemonLog = '';
  daemon.stderr.on('data', (b: Buffer) => (daemonLog += b.toString()));
  try {
    await waitForSocket(daemon, 30_000);
    const container = await containerIsolation();
    await vmIsolation();
    const vm = await vmIsolation();
    const vmm = await vmmBoot();
    console.log('');
    say('boot times (docker run --rm ... echo, process start to exit; this machine: ' + os.cpus().length + ' cores)');
    console.log(`    --isolation=container   ${summary(container)}`);
    console.log(
      `    --isolation=vm          ${summary(vm.times)}  [backend ${vm.backend}${vm.backend === 'tcg' ? ': software CPU, not a KVM figure' : ''}]`,
    );
    if (vmm !== undefined) console.log(`    our VMM alone           kernel boot to /init marker ${vmm.toFixed(0)} ms (${machineLabel()})`);
  } catch (e) {
    console.error(daemonLog.split('\n').slice(-20).join('\n'));
    throw e;
  } finally {
    daemon.kill('SIGTERM');
    await new Promise((res) => daemon.on('exit', res));
    // Every container was --rm, so no base disk is mounted any more; if one still is, keep the files.
    await rm(work, { recursive: true, force: true }).catch((e: Error) => say(`left ${work} behind: ${e.message}`));
  }
}

await main();
