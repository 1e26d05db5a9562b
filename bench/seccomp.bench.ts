/**
 * Cost of tvm's seccomp filter (Docker's default profile compiled by src/runtime/seccomp-compile.ts),
 * side by side with the reference: the same syscalls with no filter at all. A static probe
 * (test/fixtures/seccomp/probe.c) installs the program and times N calls each of getpid (near
 * the top of the table), openat2 (allowed, far down it) and keyctl (refused with EPERM).
 * Also the time to resolve + compile the profile, which happens at every container start.
 *
 *   npx tsx bench/seccomp.bench.ts [calls-per-syscall] [rounds]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeProgram } from '../src/runtime/bpf.js';
import { compileSeccomp } from '../src/runtime/seccomp-compile.js';
import { DEFAULT_PROFILE } from '../src/runtime/seccomp-default.js';
import { resolveProfile } from '../src/runtime/seccomp-profile.js';
import { DOCKER_DEFAULT_CAPS } from '../src/runtime/seccomp.js';

const N = Number(process.argv[2] ?? 200_000);
const ROUNDS = Number(process.argv[3] ?? 5);
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function probeRun(probe: string, filter: string): Map<string, number> {
  const out = execFileSync(probe, ['bench', filter, String(N)], { encoding: 'utf8' });
  return new Map(
    out
      .trim()
      .split('\n')
      .map((l) => [l.split(' ')[0]!, Number(l.split(' ')[1])] as [string, number]),
  );
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'tvm-seccomp-bench-'));
try {
  const probe = path.join(dir, 'probe');
  try {
    execFileSync('musl-gcc', ['-static', '-O2', '-o', probe, path.join(repo, 'test/fixtures/seccomp/probe.c')], { stdio: 'pipe' });
  } catch (e) {
    throw new Error(`this benchmark needs musl-gcc (musl-tools) to build its probe: ${(e as Error).message}`);
  }
  const caps = new Set<string>(DOCKER_DEFAULT_CAPS);
  const compileMs: number[] = [];
  let prog = compileSeccomp(resolveProfile(DEFAULT_PROFILE, { caps }));
  for (let i = 0; i < 200; i++) {
    const t = process.hrtime.bigint();
    prog = compileSeccomp(resolveProfile(DEFAULT_PROFILE, { caps }));
    compileMs.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  const filterFile = path.join(dir, 'default.bpf');
  writeFileSync(filterFile, encodeProgram(prog));

  const none: Record<string, number[]> = {};
  const tvm: Record<string, number[]> = {};
  for (let r = 0; r < ROUNDS; r++) {
    // interleaved so that machine noise hits both sides alike
    for (const [k, v] of probeRun(probe, '-')) (none[k] ??= []).push(v);
    for (const [k, v] of probeRun(probe, filterFile)) (tvm[k] ??= []).push(v);
  }
  console.log(
    `seccomp, Docker's default profile: ${prog.length} BPF instructions; resolve + compile median ${median(compileMs).toFixed(2)} ms`,
  );
  console.log(`ns per syscall, ${N} calls x ${ROUNDS} rounds, medians: no filter (reference) | tvm filter | ratio`);
  for (const k of Object.keys(none)) {
    const a = median(none[k]!);
    const b = median(tvm[k]!);
    console.log(`  ${k.padEnd(8)} ${a.toFixed(1).padStart(8)} ${b.toFixed(1).padStart(10)}   x${(b / a).toFixed(3)}`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
