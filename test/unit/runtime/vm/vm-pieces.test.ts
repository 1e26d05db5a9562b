/**
 * The VM isolation's pure parts: guest sizing, what is refused, the launch record, the
 * per-VM initramfs (the agent archive with the VM's own files appended), backend choice.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { InvalidParameterError } from '../../../../src/errors.js';
import { readCpio } from '../../../../src/disks/cpio.js';
import {
  guestCpus,
  guestMemoryMiB,
  validateVmSpec,
  vmDiskSize,
  GUEST_MEMORY_MARGIN_MIB,
  DEFAULT_GUEST_MEMORY_MIB,
} from '../../../../src/runtime/vm/isolation.js';
import { agentInitramfs, writeVmInitramfs } from '../../../../src/runtime/vm/initrd.js';
import { readLaunchConfig } from '../../../../src/runtime/vm/launch-config.js';
import { chooseVmBackend } from '../../../../src/vmm/launch/backend.js';
import type { ContainerSpec } from '../../../../src/runtime/types.js';
import { containerSpec } from '../../../fixtures/spec.js';
import { scratchDir } from '../../../fixtures/scratch.js';

const MiB = 1024 * 1024;

function spec(over: Partial<ContainerSpec> = {}): ContainerSpec {
  return containerSpec({ id: 'a'.repeat(64), isolation: 'vm', imageId: `sha256:${'b'.repeat(64)}`, stateDir: '/x', ...over });
}

describe('guest sizing', () => {
  it('gives the default RAM without --memory and limit + margin with it, 2 MiB aligned', () => {
    expect(guestMemoryMiB(undefined)).toBe(DEFAULT_GUEST_MEMORY_MIB);
    expect(guestMemoryMiB(64 * MiB)).toBe(Math.max(128, 64 + GUEST_MEMORY_MARGIN_MIB));
    expect(guestMemoryMiB(512 * MiB)).toBe(512 + GUEST_MEMORY_MARGIN_MIB);
    expect(guestMemoryMiB(512 * MiB + 1) % 2).toBe(0);
    expect(guestMemoryMiB(4 * MiB)).toBe(128);
  });
  it('rounds --cpus up to whole vCPUs, within the host', () => {
    expect(guestCpus(undefined, 8)).toBe(1);
    expect(guestCpus(0.5e9, 8)).toBe(1);
    expect(guestCpus(1.5e9, 8)).toBe(2);
    expect(guestCpus(16e9, 4)).toBe(4);
  });
});

describe('what --isolation=vm refuses (never ignores)', () => {
  it('refuses host directories, networks other than none, devices', () => {
    expect(() => validateVmSpec(spec())).not.toThrow();
    expect(() => validateVmSpec(spec({ mounts: [{ type: 'tmpfs', source: '', destination: '/t', readonly: false }] }))).not.toThrow();
    expect(() => validateVmSpec(spec({ mounts: [{ type: 'bind', source: '/etc', destination: '/e', readonly: true }] }))).toThrow(
      /bind mounts \(\/e\) are not supported with --isolation=vm/,
    );
    expect(() => validateVmSpec(spec({ mounts: [{ type: 'volume', source: '/v', destination: '/d', readonly: false }] }))).toThrow(
      /named volumes/,
    );
    expect(() => validateVmSpec(spec({ network: 'host' }))).toThrow(InvalidParameterError);
    expect(() => validateVmSpec(spec({ network: 'container' }))).toThrow(
      /--network container:<name\|id> is not supported with --isolation=vm: a microVM has its own network stack/,
    );
    expect(() => validateVmSpec(spec({ network: 'bridge' }))).not.toThrow();
    expect(() => validateVmSpec(spec({ storage: { sizeBytes: 1 << 30 } }))).not.toThrow();
    expect(() =>
      validateVmSpec(
        spec({ processOptions: { devices: [{ pathOnHost: '/dev/fuse', pathInContainer: '/dev/fuse', permissions: 'rwm' }] } }),
      ),
    ).toThrow(/--device/);
  });
});

describe('the VM disk size', () => {
  it('is the image disk, or larger with --storage-opt size (MiB aligned), never smaller', () => {
    expect(vmDiskSize(1 << 30, undefined)).toBe(1 << 30);
    expect(vmDiskSize(1 << 30, 2 * (1 << 30) + 1)).toBe(2 * (1 << 30) + MiB);
    expect(() => vmDiskSize(1 << 30, 512 * MiB)).toThrow(/can only be larger/);
  });
});

describe('the VM initramfs', () => {
  it('is the cached agent archive (keyed by the agent) followed by the VM files at their own paths', async () => {
    const dir = scratchDir('tvm-initrd-');
    const agent = path.join(dir, 'tvm-agent');
    writeFileSync(agent, Buffer.from('\x7fELF fake agent'));
    const base = await agentInitramfs(agent, path.join(dir, 'cache'));
    expect(await agentInitramfs(agent, path.join(dir, 'cache'))).toBe(base);
    writeFileSync(agent, Buffer.from('\x7fELF another agent'));
    expect(await agentInitramfs(agent, path.join(dir, 'cache'))).not.toBe(base);

    const out = path.join(dir, 'initrd.cpio');
    await writeVmInitramfs(base, [{ path: '/var/lib/tvm/containers/c1/hosts', data: Buffer.from('127.0.0.1 localhost\n') }], out);
    const bytes = readFileSync(out);
    const first = readCpio(readFileSync(base));
    expect(first.find((r) => r.path === 'init')?.data?.toString()).toBe('\x7fELF fake agent');
    for (const d of ['proc', 'sys', 'dev', 'run', 'tmp', 'dev/console']) expect(first.some((r) => r.path === d)).toBe(true);
    // the second archive starts right after the first (the kernel unpacks them in order)
    const second = readCpio(bytes.subarray(readFileSync(base).length));
    expect(second.find((r) => r.path === 'var/lib/tvm/containers/c1/hosts')?.data?.toString()).toBe('127.0.0.1 localhost\n');
    expect(second.some((r) => r.path === 'var/lib/tvm/containers/c1')).toBe(true);
  });
});

describe('launch.json', () => {
  it('is refused when incomplete or of an unknown version', async () => {
    const dir = scratchDir('tvm-launch-');
    const good = {
      version: 1,
      backend: 'tcg',
      kernel: '/k',
      initrd: '/i',
      cmdline: '',
      memMiB: 256,
      cpus: 1,
      disk: '/d',
      diskId: 'x',
      cid: 3,
      spec: {},
      logPath: '/l',
      bootTimeoutMs: 1000,
    };
    writeFileSync(path.join(dir, 'launch.json'), JSON.stringify(good));
    expect((await readLaunchConfig(dir)).backend).toBe('tcg');
    for (const bad of [
      { ...good, version: 2 },
      { ...good, backend: 'xen' },
      { ...good, memMiB: 0 },
      { ...good, kernel: undefined },
      { ...good, cpus: 1.5 },
    ]) {
      writeFileSync(path.join(dir, 'launch.json'), JSON.stringify(bad));
      await expect(readLaunchConfig(dir)).rejects.toThrow(/launch config|must be a positive integer|missing/);
    }
  });
});

describe('backend choice', () => {
  it('picks kvm when the device is usable, else tcg when QEMU is on PATH, else none; a forced one must work', () => {
    const dir = scratchDir('tvm-backend-');
    const bin = path.join(dir, 'bin');
    mkdirSync(bin);
    const fakeKvm = path.join(dir, 'kvm');
    writeFileSync(fakeKvm, '');
    expect(chooseVmBackend('auto', { kvmDevice: fakeKvm, envPath: bin })?.backend).toBe('kvm');
    expect(chooseVmBackend('auto', { kvmDevice: path.join(dir, 'nokvm'), envPath: bin })).toBeUndefined();
    writeFileSync(path.join(bin, 'qemu-system-x86_64'), '#!/bin/sh\n');
    chmodSync(path.join(bin, 'qemu-system-x86_64'), 0o755);
    expect(chooseVmBackend('auto', { kvmDevice: path.join(dir, 'nokvm'), envPath: bin })?.backend).toBe('tcg');
    expect(chooseVmBackend('tcg', { kvmDevice: fakeKvm, envPath: bin })?.backend).toBe('tcg');
    expect(() => chooseVmBackend('kvm', { kvmDevice: path.join(dir, 'nokvm'), envPath: bin })).toThrow(/nokvm/);
    expect(() => chooseVmBackend('tcg', { kvmDevice: fakeKvm, envPath: path.join(dir, 'empty') })).toThrow(/qemu-system-x86/);
  });
});
