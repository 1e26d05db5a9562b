/**
 * vCPU threads and the hand-off between them and device emulation.
 *
 * Threads: the main thread owns everything — the KVM fds, guest memory, both buses, every
 * device — and runs the event loop (console streams, timers, the control socket). Each vCPU
 * has one worker_thread (vcpu-worker.ts) that does nothing but KVM_RUN on its vCPU fd. Devices
 * are therefore single-threaded and need no locks.
 *
 * Hand-off: kvm_run is mmap'ed once by the main thread; the worker views the same page by
 * address. When KVM_RUN returns a PIO/MMIO exit, the worker sets its control word
 * STATE = EXIT_PENDING and blocks in Atomics.wait. The main thread, parked in
 * Atomics.waitAsync on that word, wakes, performs the access straight on kvm_run (for a read
 * it writes the data KVM will complete the instruction with), sets STATE = RUNNING and
 * notifies; the worker re-enters KVM_RUN. No message is posted on this path. Exits that end
 * the vCPU (HLT without irqchip, shutdown, system events, internal errors) are reported by
 * postMessage and end the worker.
 *
 * Pause/stop: the main thread sets REQUEST and kicks the worker with a real-time signal
 * (tgkill). The signal is blocked on the worker except inside KVM_RUN (KVM_SET_SIGNAL_MASK),
 * so it interrupts a running guest (EINTR) or, if sent while the worker is outside KVM_RUN,
 * makes the next KVM_RUN return at once; the worker then consumes it with sigtimedwait. A
 * paused worker sets STATE = PAUSED and waits on REQUEST.
 *
 * Teardown: stop() ends every worker (their threads exit); the machine then unmaps kvm_run,
 * closes the vCPU and VM fds and unmaps guest memory (machine.ts).
 */
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import * as libc from '../kvm/libc.js';
import type { Vcpu } from '../kvm/vcpu.js';
import {
  CTL_EXITS,
  CTL_GP_INJECTED,
  CTL_INTS,
  CTL_REQUEST,
  CTL_STATE,
  CTL_TID,
  Request,
  State,
  controlView,
  waitAsync,
  type VcpuWorkerData,
} from './vcpu-control.js';
import type { WorkerReport } from './vcpu-worker.js';

export type VcpuResult = WorkerReport['end'];

let kickSignal = 0;
/** The real-time signal that kicks vCPU threads; its no-op handler is installed once per process. */
export function vcpuKickSignal(): number {
  if (!kickSignal) {
    kickSignal = libc.sigrtmin() + 4;
    libc.installNoopSignalHandler(kickSignal);
  }
  return kickSignal;
}

export function allocateControl(vcpus: number): SharedArrayBuffer {
  return new SharedArrayBuffer(vcpus * CTL_INTS * 4);
}

/**
 * The worker script. Built code runs vcpu-worker.js directly. From sources (tsx, vitest) the
 * worker first registers tsx's loader in its own thread, then imports vcpu-worker.ts.
 */
function createWorker(workerData: VcpuWorkerData): Worker {
  const opts = { workerData, stdout: false, stderr: false };
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./vcpu-worker.js', import.meta.url), opts);
  const tsxApi = pathToFileURL(
    createRequire(import.meta.url)
      .resolve('tsx/esm/api')
      .replace(/\.cjs$/, '.mjs'),
  ).href;
  const script = new URL('./vcpu-worker.ts', import.meta.url).href;
  const boot = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(script)}); });`;
  return new Worker(boot, { ...opts, eval: true });
}

/**
 * The main thread's half of the hand-off: whenever the worker parks an exit (EXIT_PENDING),
 * perform it and let the worker go on. Returns when the worker has stopped.
 */
export async function serveDeviceExits(ctl: Int32Array, onExit: () => void, onError: (e: unknown) => void): Promise<void> {
  for (;;) {
    const st = Atomics.load(ctl, CTL_STATE);
    if (st === State.STOPPED) return;
    if (st === State.EXIT_PENDING) {
      try {
        onExit();
      } catch (e) {
        onError(e);
      }
      Atomics.store(ctl, CTL_STATE, State.RUNNING);
      Atomics.notify(ctl, CTL_STATE);
      continue;
    }
    const r = waitAsync(ctl, CTL_STATE, st);
    if (r.async) await r.value;
  }
}

export interface VcpuThreadOptions {
  /** performs a device exit on kvm_run (main thread); throwing ends the machine */
  onDeviceExit: (vcpu: Vcpu) => void;
  onError: (e: unknown) => void;
  guardPio: boolean;
}

export class VcpuThread {
  private worker: Worker | undefined;
  private readonly ctl: Int32Array;
  private report: VcpuResult | undefined;
  readonly ended: Promise<VcpuResult>;
  private resolveEnded!: (r: VcpuResult) => void;

  constructor(
    readonly vcpu: Vcpu,
    private readonly sab: SharedArrayBuffer,
    private readonly opts: VcpuThreadOptions,
  ) {
    this.ctl = controlView(sab, vcpu.id);
    this.ended = new Promise((r) => (this.resolveEnded = r));
  }

  get exits(): number {
    return Atomics.load(this.ctl, CTL_EXITS) >>> 0;
  }
  get gpInjected(): number {
    return Atomics.load(this.ctl, CTL_GP_INJECTED);
  }
  get state(): number {
    return Atomics.load(this.ctl, CTL_STATE);
  }

  /** Starts the worker; resolves once it is about to enter KVM_RUN. */
  async start(): Promise<void> {
    const data: VcpuWorkerData = {
      fd: this.vcpu.fd,
      id: this.vcpu.id,
      runAddr: this.vcpu.runAddr,
      runSize: this.vcpu.runSize,
      ctl: this.sab,
      kickSignal: vcpuKickSignal(),
      guardPio: this.opts.guardPio,
    };
    const w = createWorker(data);
    this.worker = w;
    w.on('message', (m: WorkerReport) => {
      if (m.type === 'end') this.report = m.end;
    });
    w.on('error', (e) => {
      this.report ??= { kind: 'error', detail: `vCPU ${this.vcpu.id} worker: ${e.message}` };
    });
    w.on('exit', () => {
      this.resolveEnded(this.report ?? { kind: 'error', detail: `vCPU ${this.vcpu.id} worker exited without a report` });
    });
    while (this.state === State.STARTING) {
      const r = waitAsync(this.ctl, CTL_STATE, State.STARTING, 50);
      if (r.async) await r.value;
      if (this.report) return;
    }
    // serveDeviceExits hands every failure to onError; its promise only says the worker stopped
    void this.serve();
  }

  private serve(): Promise<void> {
    return serveDeviceExits(this.ctl, () => this.opts.onDeviceExit(this.vcpu), this.opts.onError);
  }

  kick(): void {
    const tid = Atomics.load(this.ctl, CTL_TID);
    if (tid && this.state !== State.STOPPED) {
      try {
        libc.tgkill(libc.getpid(), tid, vcpuKickSignal());
      } catch (e) {
        if (!(e instanceof libc.SysError && e.code === 'ESRCH')) throw e; // thread already gone
      }
    }
  }

  async pause(): Promise<void> {
    Atomics.store(this.ctl, CTL_REQUEST, Request.PAUSE);
    this.kick();
    for (;;) {
      const st = this.state;
      if (st === State.PAUSED || st === State.STOPPED) return;
      const r = waitAsync(this.ctl, CTL_STATE, st, 100);
      if (r.async) await r.value;
      if (this.state === st) this.kick(); // the kick raced with a device exit: send another
    }
  }

  resume(): void {
    Atomics.store(this.ctl, CTL_REQUEST, Request.NONE);
    Atomics.notify(this.ctl, CTL_REQUEST);
  }

  /** Ends the worker thread; resolves with how the vCPU ended. */
  async stop(): Promise<VcpuResult> {
    if (!this.worker) return { kind: 'stopped' };
    Atomics.store(this.ctl, CTL_REQUEST, Request.STOP);
    Atomics.notify(this.ctl, CTL_REQUEST);
    const t = setInterval(() => this.kick(), 100);
    this.kick();
    try {
      return await this.ended;
    } finally {
      clearInterval(t);
    }
  }
}
