/**
 * A vCPU thread: runs KVM_RUN in a loop and nothing else. Device exits are handed to the main
 * thread through the control block and kvm_run itself (vcpu-loop.ts); PIO from guest user mode
 * is refused here, on the vCPU's own thread, before any device sees it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { constants } from 'node:os';
import { Vcpu } from '../kvm/vcpu.js';
import * as libc from '../kvm/libc.js';
import { KvmExit } from '../kvm/structs.js';
import { guardPio } from './pio-guard.js';
import { isDeviceExit, terminalExit, type VcpuEnd } from './vcpu-exit.js';
import { CTL_EXITS, CTL_GP_INJECTED, CTL_REQUEST, CTL_STATE, CTL_TID, Request, State, controlView, type VcpuWorkerData } from './vcpu-control.js';

export type WorkerReport = { type: 'end'; end: VcpuEnd | { kind: 'stopped' } | { kind: 'error'; detail: string } };

const EINTR = constants.errno.EINTR;
const EAGAIN = constants.errno.EAGAIN;

function main(d: VcpuWorkerData): WorkerReport['end'] {
  const ctl = controlView(d.ctl, d.id);
  const vcpu = Vcpu.borrow(d.fd, d.id, d.runAddr, d.runSize);
  // The kick signal stays blocked on this thread except inside KVM_RUN, so a kick sent while
  // the thread is elsewhere stays pending and makes the next KVM_RUN return EINTR at once.
  const kick = libc.sigset([d.kickSignal]);
  const old = new Uint8Array(libc.SIGSET_BYTES);
  libc.pthreadSigmask(libc.SIG_BLOCK, kick, old);
  const inRun = old.slice(0, libc.KERNEL_SIGSET_BYTES);
  inRun[(d.kickSignal - 1) >> 3]! &= ~(1 << ((d.kickSignal - 1) & 7));
  vcpu.setSignalMask(inRun);

  Atomics.store(ctl, CTL_TID, libc.gettid());
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
        libc.sigtimedwaitNow(kick);
        continue;
      }
      return { kind: 'error', detail: `KVM_RUN failed: ${new libc.SysError('ioctl', -r, 'KVM_RUN').message}` };
    }
    Atomics.add(ctl, CTL_EXITS, 1);
    if (r === KvmExit.IO && d.guardPio && guardPio(vcpu) === 'gp-injected') {
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

const data = workerData as VcpuWorkerData;
let end: WorkerReport['end'];
try {
  end = main(data);
} catch (e) {
  end = { kind: 'error', detail: e instanceof Error ? e.message : String(e) };
}
parentPort!.postMessage({ type: 'end', end } satisfies WorkerReport);
const ctl = controlView(data.ctl, data.id);
Atomics.store(ctl, CTL_STATE, State.STOPPED);
Atomics.notify(ctl, CTL_STATE);
