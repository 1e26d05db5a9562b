/**
 * The loop a vCPU worker runs (vcpu-loop.ts documents the protocol). Kept apart from the
 * worker's entry so that the hand-off can be driven by tests with a scripted vCPU.
 */
import { constants } from 'node:os';
import { KvmExit } from '../kvm/structs.js';
import { guardPio, type GuardedVcpu } from './pio-guard.js';
import { isDeviceExit, terminalExit, type VcpuEnd } from './vcpu-exit.js';
import { CTL_EXITS, CTL_GP_INJECTED, CTL_REQUEST, CTL_STATE, Request, State } from './vcpu-control.js';

export type WorkerEnd = VcpuEnd | { kind: 'stopped' } | { kind: 'error'; detail: string };

export interface LoopVcpu extends GuardedVcpu {
  /** KVM_RUN: the exit reason, or -errno */
  runRaw(): number;
  readonly run: DataView;
}

const EINTR = constants.errno.EINTR;
const EAGAIN = constants.errno.EAGAIN;

export function vcpuLoop(
  vcpu: LoopVcpu,
  ctl: Int32Array,
  opts: { guardPio: boolean; consumeKick: () => void; describeErrno: (errno: number) => string },
): WorkerEnd {
  Atomics.store(ctl, CTL_STATE, State.RUNNING);
  Atomics.notify(ctl, CTL_STATE);
  for (;;) {
    const req = Atomics.load(ctl, CTL_REQUEST);
    if (req === Request.STOP) return { kind: 'stopped' };
    if (req === Request.PAUSE) {
      Atomics.store(ctl, CTL_STATE, State.PAUSED);
      Atomics.notify(ctl, CTL_STATE);
      while (Atomics.load(ctl, CTL_REQUEST) === Request.PAUSE) Atomics.wait(ctl, CTL_REQUEST, Request.PAUSE);
      Atomics.store(ctl, CTL_STATE, State.RUNNING);
      Atomics.notify(ctl, CTL_STATE);
      continue;
    }
    const r = vcpu.runRaw();
    if (r < 0) {
      if (r === -EINTR || r === -EAGAIN) {
        opts.consumeKick();
        continue;
      }
      return { kind: 'error', detail: `KVM_RUN failed: ${opts.describeErrno(-r)}` };
    }
    Atomics.add(ctl, CTL_EXITS, 1);
    if (r === KvmExit.IO && opts.guardPio && guardPio(vcpu) === 'gp-injected') {
      Atomics.add(ctl, CTL_GP_INJECTED, 1);
      continue;
    }
    if (isDeviceExit(r)) {
      Atomics.store(ctl, CTL_STATE, State.EXIT_PENDING);
      Atomics.notify(ctl, CTL_STATE);
      while (Atomics.load(ctl, CTL_STATE) === State.EXIT_PENDING) Atomics.wait(ctl, CTL_STATE, State.EXIT_PENDING);
      continue;
    }
    const end = terminalExit(vcpu.run);
    if (end) return end;
  }
}

/** Marks the worker finished (after its report was posted). */
export function markStopped(ctl: Int32Array): void {
  Atomics.store(ctl, CTL_STATE, State.STOPPED);
  Atomics.notify(ctl, CTL_STATE);
}
