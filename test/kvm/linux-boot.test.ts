/**
 * Boots the project's guest kernel (kernels/build.sh) with `tvm vmm run` as a separate
 * process: busybox initramfs, /init prints a marker and reboots; the VMM must show the console
 * on stdout and exit 0 when the guest reboots through the i8042. One boot with the 64-bit
 * entry on 1 vCPU, one through the PVH entry on 2 vCPUs. Minutes on PVM (kernel mode emulated).
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireKvmDevice, requireGuestKernel, busyboxInitramfs } from '../fixtures/guests/guests.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MARKER = 'TVM-GUEST-UP';
let kernel = '';
let dir = '';
let initrd = '';

beforeAll(() => {
  requireKvmDevice();
  kernel = requireGuestKernel();
  dir = mkdtempSync(path.join(tmpdir(), 'tvm-linux-boot-'));
  initrd = path.join(dir, 'initramfs.cpio');
  writeFileSync(
    initrd,
    busyboxInitramfs(`#!/bin/sh\necho ${MARKER} cpus=$(/bin/busybox nproc) $(/bin/busybox uname -r)\n/bin/busybox reboot -f\n`),
  );
  return () => rmSync(dir, { recursive: true, force: true });
});

function vmmRun(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/vmm/vmm-process.ts'), 'run', ...args], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString('latin1')));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('tvm vmm run boots the guest kernel', () => {
  it('64-bit entry, 1 vCPU: console on stdout, guest reboot ends the VMM with status 0', async () => {
    const r = await vmmRun(['--kernel', kernel, '--initrd', initrd, '--mem', '128', '--cpus', '1']);
    expect(r.stdout).toContain(`${MARKER} cpus=1`);
    expect(r.stderr).toContain('guest rebooted');
    expect(r.code).toBe(0);
  });
  it('PVH entry, 2 vCPUs', async () => {
    const r = await vmmRun(['--kernel', kernel, '--initrd', initrd, '--mem', '128', '--cpus', '2', '--boot', 'pvh']);
    expect(r.stdout).toContain(`${MARKER} cpus=2`);
    expect(r.code).toBe(0);
  });
});
