/**
 * Issue 18: the VM build fails with a step-specific code (Firecracker's StartMicrovmError per
 * step) rather than one catch-all; a bad argument (4xx) passes through as it is.
 */
import { describe, it, expect } from 'vitest';
import { buildStep, VmBuildError } from '../../../src/vmm/build-steps.js';
import { InvalidParameterError } from '../../../src/errors.js';
import { SysError } from '../../../src/kvm/libc.js';
import { Machine } from '../../../src/vmm/machine.js';

describe('VM build steps', () => {
  it('a system failure becomes the step error, naming the step and keeping the cause', () => {
    const cause = new SysError('ioctl', 12, 'KVM_CREATE_VCPU');
    let err: unknown;
    try {
      buildStep('vcpus', () => {
        throw cause;
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VmBuildError);
    expect((err as VmBuildError).code).toBe('ERR_VMM_VCPUS');
    expect((err as VmBuildError).step).toBe('vcpus');
    expect((err as VmBuildError).status).toBe(500);
    expect((err as Error).message).toBe('creating the vCPUs: ioctl (KVM_CREATE_VCPU) failed: ENOMEM');
    expect((err as Error).cause).toBe(cause);
  });

  it('a bad argument passes through unchanged', () => {
    const bad = new InvalidParameterError('10 MMIO devices, at most 8');
    expect(() =>
      buildStep('mmio-devices', () => {
        throw bad;
      }),
    ).toThrow(bad);
  });

  it('returns what the step made', () => {
    expect(buildStep('memory', () => 42)).toBe(42);
  });

  it('Machine.create without a usable KVM device fails in the kvm step', async () => {
    const err = await Machine.create({
      image: { bytes: new Uint8Array([0xf4]), loadAddr: 0x1000, entry: 0x1000, mode: 'real' },
      memMiB: 32,
      cpus: 1,
      device: '/nonexistent/tvm-split-kvm',
    }).catch((e: unknown) => e);
    expect((err as VmBuildError).code).toBe('ERR_VMM_KVM');
    expect((err as Error).message).toMatch(/^opening KVM: missing \/nonexistent\/tvm-split-kvm/);
  });
});
