/**
 * The control block shared by a vCPU worker and the main thread: a few Int32 slots per vCPU
 * in one SharedArrayBuffer, changed with Atomics and waited on with Atomics.wait (worker) /
 * Atomics.waitAsync (main). See vcpu-loop.ts for the protocol.
 */
export const CTL_INTS = 8;
export const CTL_STATE = 0;
export const CTL_REQUEST = 1;
export const CTL_TID = 2;
export const CTL_EXITS = 3;
export const CTL_GP_INJECTED = 4;

export const State = { STARTING: 0, RUNNING: 1, EXIT_PENDING: 2, PAUSED: 3, STOPPED: 4 } as const;
export const Request = { NONE: 0, PAUSE: 1, STOP: 2 } as const;

export interface VcpuWorkerData {
  fd: number;
  id: number;
  runAddr: number;
  runSize: number;
  ctl: SharedArrayBuffer;
  kickSignal: number;
  /** check the CPL on PIO exits (pio-guard.ts) */
  guardPio: boolean;
}

export function controlView(sab: SharedArrayBuffer, index: number): Int32Array {
  return new Int32Array(sab, index * CTL_INTS * 4, CTL_INTS);
}

type WaitAsyncResult = { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
/** Atomics.waitAsync (Node >= 16; typed here because the project's lib is ES2022). */
export const waitAsync = (
  Atomics as unknown as {
    waitAsync: (a: Int32Array, index: number, value: number, timeoutMs?: number) => WaitAsyncResult;
  }
).waitAsync;
