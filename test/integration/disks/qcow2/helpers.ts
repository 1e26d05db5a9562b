import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FileIo } from '../../../../src/disks/raw.js';

/** Fails (never skips) when a tool the test needs is missing. */
export function requireTool(tool: string, pkg = 'qemu-utils'): void {
  const r = spawnSync('sh', ['-c', `command -v ${tool}`]);
  if (r.status !== 0) throw new Error(`missing tool: ${tool} (Debian package ${pkg}); install it to run the qcow2 interop tests`);
}

export function run(cmd: string, args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function runOk(cmd: string, args: string[]): string {
  const r = run(cmd, args);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

export interface CheckResult {
  status: number;
  corruptions: number;
  leaks: number;
  checkErrors: number;
  raw: string;
}

/** `qemu-img check`: exit 0 clean, 3 leaks only, 2 corruptions, 1 check failed. */
export function qemuCheck(image: string): CheckResult {
  const r = run('qemu-img', ['check', '--output=json', image]);
  let j: Record<string, number> = {};
  try {
    j = JSON.parse(r.stdout);
  } catch {
    // leave empty: status says the rest
  }
  return {
    status: r.status,
    corruptions: j.corruptions ?? 0,
    leaks: j.leaks ?? 0,
    checkErrors: j['check-errors'] ?? 0,
    raw: r.stdout + r.stderr,
  };
}

export function qemuCompare(a: string, b: string): { identical: boolean; out: string } {
  const r = run('qemu-img', ['compare', a, b]);
  return { identical: r.status === 0, out: r.stdout + r.stderr };
}

const made: string[] = [];

export function tempDir(tag: string): string {
  const d = mkdtempSync(path.join(tmpdir(), `tvm-qcow2-${tag}-`));
  made.push(d);
  return d;
}

/** Removes every directory tempDir made (call from afterAll). */
export function removeTempDirs(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** Deterministic PRNG (mulberry32) so failures can be replayed from the seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A raw base disk whose every 4 KiB block has a distinct byte pattern. */
export function makeBase(file: string, size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4096) {
    const tag = i / 4096;
    for (let j = 0; j < 4096 && i + j < size; j += 4) b.writeUInt32BE((tag * 2654435761 + j) >>> 0, i + j);
  }
  writeFileSync(file, b);
  return b;
}

export class CrashError extends Error {
  constructor() {
    super('simulated crash');
  }
}

/**
 * Power-failure model: writes stay "in flight" until fsync. After `crashAfter` pwrites the
 * next pwrite throws; `crash()` then lands an arbitrary (seeded) subset of the in-flight
 * writes on the real file, in arbitrary order, as a disk with a volatile cache may.
 */
export class CrashingFileIo implements FileIo {
  private pending: { buf: Uint8Array; pos: number }[] = [];
  private writes = 0;
  crashed = false;

  constructor(
    private readonly inner: FileIo,
    private readonly crashAfter: number,
    private readonly rand: () => number,
  ) {}

  get path(): string {
    return this.inner.path;
  }

  pread(buf: Uint8Array, position: number): number {
    if (this.crashed) throw new CrashError();
    let n = this.inner.pread(buf, position);
    for (const w of this.pending) {
      const s = Math.max(position, w.pos);
      const e = Math.min(position + buf.length, w.pos + w.buf.length);
      if (s < e) {
        buf.set(w.buf.subarray(s - w.pos, e - w.pos), s - position);
        n = Math.max(n, e - position);
      }
    }
    return n;
  }

  pwrite(buf: Uint8Array, position: number): void {
    if (this.crashed) throw new CrashError();
    if (this.writes++ >= this.crashAfter) {
      this.crash();
      throw new CrashError();
    }
    // copy: the caller may reuse its buffer (Buffer#slice would not copy)
    this.pending.push({ buf: Uint8Array.prototype.slice.call(buf), pos: position });
  }

  fsync(): void {
    if (this.crashed) throw new CrashError();
    for (const w of this.pending) this.inner.pwrite(w.buf, w.pos);
    this.pending = [];
    this.inner.fsync();
  }

  size(): number {
    let s = this.inner.size();
    for (const w of this.pending) s = Math.max(s, w.pos + w.buf.length);
    return s;
  }

  truncate(length: number): void {
    this.fsync();
    this.inner.truncate(length);
  }

  crash(): void {
    if (this.crashed) return;
    this.crashed = true;
    const landed = this.pending.filter(() => this.rand() < 0.5);
    for (let i = landed.length - 1; i > 0; i--) {
      const j = Math.floor(this.rand() * (i + 1));
      [landed[i], landed[j]] = [landed[j]!, landed[i]!];
    }
    for (const w of landed) this.inner.pwrite(w.buf, w.pos);
    this.pending = [];
    this.inner.close();
  }

  close(): void {
    if (this.crashed) return;
    this.fsync();
    this.inner.close();
  }
}
