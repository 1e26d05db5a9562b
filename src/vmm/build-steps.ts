/**
 * The steps of building a microVM, each failing with its own code (as Firecracker's
 * builder.rs answers with a StartMicrovmError variant per step) instead of one catch-all:
 * a failure names the step, keeps what failed as its cause, and a bad argument (a 4xx, the
 * caller's to fix) passes through unchanged.
 */
import { TvmError, type ErrorCode } from '../errors.js';

export type BuildStep = 'kvm' | 'vm' | 'memory' | 'legacy-devices' | 'vcpus' | 'mmio-devices' | 'kernel' | 'boot-cpu';

const STEPS: Record<BuildStep, { code: ErrorCode; doing: string }> = {
  kvm: { code: 'ERR_VMM_KVM', doing: 'opening KVM' },
  vm: { code: 'ERR_VMM_CREATE_VM', doing: 'creating the VM (TSS, irqchip, PIT)' },
  memory: { code: 'ERR_VMM_MEMORY', doing: 'setting up guest memory' },
  'legacy-devices': { code: 'ERR_VMM_LEGACY_DEVICES', doing: 'adding the serial console and i8042' },
  vcpus: { code: 'ERR_VMM_VCPUS', doing: 'creating the vCPUs' },
  'mmio-devices': { code: 'ERR_VMM_DEVICES', doing: 'attaching the virtio-mmio devices' },
  kernel: { code: 'ERR_VMM_KERNEL', doing: 'loading the kernel, initramfs and boot tables' },
  'boot-cpu': { code: 'ERR_VMM_BOOT_CPU', doing: 'setting the boot vCPU registers' },
};

export class VmBuildError extends TvmError {
  constructor(
    readonly step: BuildStep,
    cause: unknown,
  ) {
    super(STEPS[step].code, `${STEPS[step].doing}: ${cause instanceof Error ? cause.message : String(cause)}`, 500, { cause });
  }
}

/** Runs one build step; a failure other than a bad argument becomes that step's VmBuildError. */
export function buildStep<T>(step: BuildStep, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof TvmError && e.status < 500) throw e;
    throw new VmBuildError(step, e);
  }
}
