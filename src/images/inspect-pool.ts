/**
 * Layer inspection on a second core. A pull's main thread receives, hashes and writes the
 * compressed blob; the inflate + diff-ID hash + tar walk of the same bytes (the larger half of
 * the work) runs in a small pool of worker threads fed with copies of the chunks. Small layers
 * stay on the main thread: a message round trip costs more than inspecting them.
 *
 * Both kinds offer the same `LayerInspection` interface, so callers do not know which they got.
 */
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import os from 'node:os';
import { FormatError, TvmError, type ErrorCode } from '../errors.js';
import { LayerInspector, type LayerFacts } from './layer-inspect.js';
import type { Compression } from './layer.js';

export interface LayerInspection {
  /** a promise means: wait before writing more */
  write(chunk: Buffer): Promise<void> | undefined | void;
  /**
   * Like write, for a buffer from messageBuffer() that the caller gives up: a worker gets it
   * without a copy (and hands it back for reuse); inline, it is inspected and reused at once.
   */
  writeOwned(buf: Buffer): Promise<void> | undefined | void;
  end(): Promise<LayerFacts>;
  abort(): void;
  /** with `hashBlob`: the sha256 of the chunks written, known once end() was called (also when inspection fails) */
  blobDigest?(): Promise<string>;
}

export type ToWorker =
  | { op: 'start'; id: number; what: string; deferLinks: boolean; hashBlob: boolean }
  | { op: 'data'; id: number; chunk: Uint8Array }
  | { op: 'end'; id: number }
  | { op: 'abort'; id: number };

export type FromWorker =
  | { op: 'ack'; id: number; bytes: number; memory?: ArrayBuffer }
  | {
      op: 'done';
      id: number;
      facts: {
        compression: Compression;
        diffId: string;
        size: number;
        entries: number;
        paths: string[];
        dangling: { name: string; target: string }[];
      };
      blobDigest?: string;
    }
  | { op: 'error'; id: number; message: string; code: string; name: string; blobDigest?: string };

/** compressed layers at least this large go to a worker */
export const WORKER_MIN_BYTES = 4 << 20;
/** bytes gathered into one message (fewer, larger messages; one copy each) */
const MESSAGE_BYTES = 1 << 20;
/** bytes sent but not yet inspected before the sender waits */
const MAX_IN_FLIGHT = 4 << 20;
/** message buffers: a batch plus one more network read fits */
const MESSAGE_CAPACITY = MESSAGE_BYTES + (256 << 10);
/**
 * Message memory the workers handed back, reused for the next messages: on a VM every first
 * touch of fresh pages is a costly fault (15 us each on a PVM guest), and a pull would
 * otherwise fault in its whole size. A pull of several large layers keeps about this many in
 * use at once; they are let go after SPARE_IDLE_MS without use, so an idle daemon holds none.
 */
const spareMemory: ArrayBuffer[] = [];
const MAX_SPARE = 32;
export const SPARE_IDLE_MS = 30_000;
let lastUse = 0;
let idleTimer: NodeJS.Timeout | undefined;

function releaseWhenIdle(): void {
  if (idleTimer) return;
  idleTimer = setTimeout(() => {
    idleTimer = undefined;
    if (Date.now() - lastUse >= SPARE_IDLE_MS) spareMemory.length = 0;
    else releaseWhenIdle();
  }, SPARE_IDLE_MS);
  idleTimer.unref();
}

function keepSpare(ab: ArrayBuffer): void {
  if (ab.byteLength !== MESSAGE_CAPACITY || spareMemory.length >= MAX_SPARE) return;
  spareMemory.push(ab);
  releaseWhenIdle();
}

/** Spare message buffers held now (for tests). */
export function spareMessageBuffers(): number {
  return spareMemory.length;
}

function messageMemory(bytes: number): Buffer {
  if (bytes > MESSAGE_CAPACITY) return Buffer.allocUnsafeSlow(bytes);
  lastUse = Date.now();
  const ab = spareMemory.pop();
  // allocUnsafeSlow: memory of its own (transferable), not zero-filled
  return ab ? Buffer.from(ab, 0, bytes) : Buffer.allocUnsafeSlow(MESSAGE_CAPACITY).subarray(0, bytes);
}

/** A whole message buffer (MESSAGE_CAPACITY bytes) to fill and pass to writeOwned. */
export function messageBuffer(): Buffer {
  return messageMemory(MESSAGE_CAPACITY);
}

function recycle(buf: Buffer): void {
  if (buf.byteOffset === 0) keepSpare(buf.buffer as ArrayBuffer);
}

interface Job {
  onAck(bytes: number, memory?: ArrayBuffer): void;
  onDone(f: LayerFacts, blobDigest?: string): void;
  onError(e: Error, blobDigest?: string): void;
}

class PoolWorker {
  readonly jobs = new Map<number, Job>();
  private readonly worker: Worker;
  dead: Error | undefined;

  constructor(onExit: (w: PoolWorker) => void) {
    this.worker = spawnWorker();
    this.worker.unref();
    this.worker.on('message', (m: FromWorker) => {
      const job = this.jobs.get(m.id);
      if (!job) return;
      if (m.op === 'ack') job.onAck(m.bytes, m.memory);
      else if (m.op === 'done') {
        this.finish(m.id);
        job.onDone({ ...m.facts, paths: new Set(m.facts.paths) }, m.blobDigest);
      } else {
        this.finish(m.id);
        job.onError(rebuildError(m), m.blobDigest);
      }
    });
    const die = (e: Error) => {
      this.dead ??= e;
      onExit(this);
      for (const [id, job] of this.jobs) {
        this.jobs.delete(id);
        job.onError(new TvmError('ERR_LAYER_INSPECT', `layer inspection worker failed: ${e.message}`, 500, { cause: e }));
      }
    };
    this.worker.on('error', die);
    this.worker.on('exit', (code) => die(new Error(`exited with code ${code}`)));
  }

  post(m: ToWorker, transfer?: ArrayBuffer[]): void {
    this.worker.postMessage(m, transfer);
  }

  add(id: number, job: Job): void {
    // a worker with work keeps the process alive; an idle one does not
    if (this.jobs.size === 0) this.worker.ref();
    this.jobs.set(id, job);
  }

  finish(id: number): void {
    this.jobs.delete(id);
    if (this.jobs.size === 0) this.worker.unref();
  }
}

/** From built code the worker is a .js file; from sources (tsx, vitest) it registers tsx first. */
function spawnWorker(): Worker {
  const opts = { stdout: false, stderr: false };
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./layer-inspect-worker.js', import.meta.url), opts);
  const tsxApi = pathToFileURL(
    createRequire(import.meta.url)
      .resolve('tsx/esm/api')
      .replace(/\.cjs$/, '.mjs'),
  ).href;
  const script = new URL('./layer-inspect-worker.ts', import.meta.url).href;
  return new Worker(`import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(script)}); });`, {
    ...opts,
    eval: true,
  });
}

function rebuildError(m: Extract<FromWorker, { op: 'error' }>): Error {
  if (m.name === 'FormatError' || m.name === 'DigestMismatchError' || m.name === 'SizeMismatchError')
    return new FormatError(m.message, m.code as ErrorCode);
  // the worker sends the code of the TvmError it caught
  return new TvmError(m.code as ErrorCode, m.message, 500);
}

/**
 * One worker per core, at most two: the main thread's share (receive, copy, write) is the
 * smaller one, and with two workers two of the (three concurrent) layers inflate at once.
 */
const POOL_SIZE = Math.max(1, Math.min(2, os.availableParallelism()));
const pool: PoolWorker[] = [];
let nextId = 1;

function pickWorker(): PoolWorker {
  const live = pool.filter((w) => !w.dead);
  if (live.length < POOL_SIZE) {
    const w = new PoolWorker((dead) => {
      const i = pool.indexOf(dead);
      if (i >= 0) pool.splice(i, 1);
    });
    pool.push(w);
    return w;
  }
  return live.reduce((a, b) => (b.jobs.size < a.jobs.size ? b : a));
}

class RemoteInspector implements LayerInspection {
  private readonly id = nextId++;
  private readonly w: PoolWorker;
  private batch: Buffer[] = [];
  private batchLen = 0;
  private inFlight = 0;
  private waiter: (() => void) | undefined;
  private failure: Error | undefined;
  private readonly result: Promise<LayerFacts>;
  private readonly digest: Promise<string>;

  constructor(what: string, deferLinks: boolean, hashBlob: boolean) {
    this.w = pickWorker();
    let resolve!: (f: LayerFacts) => void;
    let reject!: (e: Error) => void;
    this.result = new Promise<LayerFacts>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // observed only so an early rejection is not 'unhandled': it is awaited, and its error reported, where it is used
    this.result.catch(() => {});
    let digestResolve!: (d: string) => void;
    let digestReject!: (e: Error) => void;
    this.digest = new Promise<string>((res, rej) => {
      digestResolve = res;
      digestReject = rej;
    });
    // observed only so an early rejection is not 'unhandled': it is awaited, and its error reported, where it is used
    this.digest.catch(() => {});
    this.w.add(this.id, {
      onAck: (bytes, memory) => {
        if (memory) keepSpare(memory);
        this.inFlight -= bytes;
        if (this.inFlight <= MAX_IN_FLIGHT / 2) this.wake();
      },
      onDone: (f, d) => {
        if (d) digestResolve(d);
        else digestReject(new TvmError('ERR_LAYER_INSPECT', `${what}: the worker did not hash the blob`, 500));
        resolve(f);
      },
      onError: (e, d) => {
        this.failure ??= e;
        this.wake();
        if (d) digestResolve(d);
        else digestReject(e);
        reject(e);
      },
    });
    this.w.post({ op: 'start', id: this.id, what, deferLinks, hashBlob });
    if (hashBlob) this.blobDigest = () => this.digest;
  }

  blobDigest?: () => Promise<string>;

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  private flush(): void {
    if (this.batchLen === 0) return;
    // one copy into memory of our own (reused when the worker hands it back), which is then
    // moved, not copied again, to the worker
    const view = messageMemory(this.batchLen);
    let off = 0;
    for (const b of this.batch) {
      view.set(b, off);
      off += b.length;
    }
    this.inFlight += this.batchLen;
    this.batch = [];
    this.batchLen = 0;
    this.w.post({ op: 'data', id: this.id, chunk: view }, [view.buffer as ArrayBuffer]);
  }

  writeOwned(buf: Buffer): Promise<void> | undefined {
    if (this.failure) throw this.failure;
    this.flush();
    if (buf.byteLength === 0) {
      recycle(buf);
      return undefined;
    }
    const whole = buf.byteOffset === 0 && (buf.buffer as ArrayBuffer).byteLength === MESSAGE_CAPACITY;
    // a buffer not from messageBuffer() goes the copying way
    if (!whole) return this.write(buf);
    this.inFlight += buf.byteLength;
    this.w.post({ op: 'data', id: this.id, chunk: buf }, [buf.buffer as ArrayBuffer]);
    if (this.inFlight <= MAX_IN_FLIGHT) return undefined;
    return new Promise<void>((resolve) => (this.waiter = resolve));
  }

  write(chunk: Buffer): Promise<void> | undefined {
    if (this.failure) throw this.failure;
    this.batch.push(chunk);
    this.batchLen += chunk.length;
    if (this.batchLen < MESSAGE_BYTES) return undefined;
    this.flush();
    if (this.inFlight <= MAX_IN_FLIGHT) return undefined;
    return new Promise<void>((resolve) => (this.waiter = resolve));
  }

  private ended = false;

  async end(): Promise<LayerFacts> {
    if (this.failure) throw this.failure;
    if (!this.ended) {
      this.ended = true;
      this.flush();
      this.w.post({ op: 'end', id: this.id });
    }
    return this.result;
  }

  abort(): void {
    if (!this.w.jobs.has(this.id)) return;
    this.w.finish(this.id);
    this.w.post({ op: 'abort', id: this.id });
    this.failure ??= new FormatError('inspection aborted', 'ERR_ABORTED');
    this.wake();
  }
}

/**
 * An inspection for a layer blob of `size` bytes: in a worker when large, inline otherwise.
 * With `hashBlob` a worker inspection also hashes the blob itself (see `blobDigest`).
 */
export function inspectionFor(what: string, size: number, opts: { deferLinks?: boolean; hashBlob?: boolean } = {}): LayerInspection {
  if (size >= WORKER_MIN_BYTES) return new RemoteInspector(what, opts.deferLinks ?? false, opts.hashBlob ?? false);
  const ins = new LayerInspector(what, new Set(), { deferLinks: opts.deferLinks ?? false });
  return {
    write: (c) => ins.write(c),
    writeOwned: (buf) => {
      try {
        ins.write(buf);
      } finally {
        recycle(buf);
      }
    },
    end: () => ins.end(),
    abort: () => ins.abort(),
  };
}
