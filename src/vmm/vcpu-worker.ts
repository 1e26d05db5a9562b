/**
 * A vCPU thread's entry: sets up the kick signal and runs vcpuLoop (vcpu-worker-loop.ts) on
 * the vCPU the main thread created. Device exits go to the main thread through the control
 * block and kvm_run (vcpu-loop.ts); PIO from guest user mode is refused here, on the vCPU's
 * own thread, before any device sees it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Vcpu } from '../kvm/vcpu.js';
import * as libc from '../kvm/libc.js';
import { CTL_TID, controlView, type VcpuWorkerData } from './vcpu-control.js';
import { vcpuLoop, markStopped, type WorkerEnd } from './vcpu-worker-loop.js';

export type WorkerReport = { type: 'end'; end: WorkerEnd };

function main(d: VcpuWorkerData, ctl: Int32Array): WorkerEnd {
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
  return vcpuLoop(vcpu, ctl, {
    guardPio: d.guardPio,
    consumeKick: () => void libc.sigtimedwaitNow(kick),
    describeErrno: (errno) => new libc.SysError('ioctl', errno, 'KVM_RUN').message,
  });
}

const data = workerData as VcpuWorkerData;
const ctl = controlView(data.ctl, data.id);
let end: WorkerEnd;
try {
  end = main(data, ctl);
} catch (e) {
  end = { kind: 'error', detail: e instanceof Error ? e.message : String(e) };
}
parentPort!.postMessage({ type: 'end', end } satisfies WorkerReport);
markStopped(ctl);
