/**
 * The tvm CLI's own cost (issue 18): `tvm --help`, and `tvm run --rm bb true` next to
 * `docker run --rm bb true` through the docker CLI against the same tvm daemon (container
 * isolation), each from the compiled build (dist/, what bin/tvm.js runs) and from the sources
 * through tsx (what it ran before); then the daemon's start-to-ready time both ways.
 * Runs interleave, so load from other processes hits every variant alike; medians.
 *
 *   npx tsx bench/cli.bench.ts [--runs N] [--warmup N]
 *
 * Goals: `tvm run` <= 1.2x `docker run`, `tvm --help` <= 100 ms (compiled).
 * Builds dist/ first (scripts/build-js.ts), so the compiled numbers are of these sources.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildJs } from '../scripts/build-js.js';
import { DOCKER, REPO, missingRealParts, startTestDaemon } from '../test/fixtures/daemon.js';
import { busyboxDockerArchive } from '../test/fixtures/fake-images.js';
import { requireTools, timedDocker } from './lib/reference-dockerd.js';
import { summary } from './lib/stats.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? Number(args[i + 1]) : dflt;
};
const RUNS = opt('runs', 8);
const WARMUP = opt('warmup', 1);
const TVM = path.join(REPO, 'bin', 'tvm.js');

requireTools([[DOCKER, 'docker-ce-cli (the docker CLI)']]);
const missing = missingRealParts();
if (missing.length > 0) throw new Error(`tvm parts missing: ${missing.join(', ')}`);

const built = await buildJs();
process.stdout.write(`dist/: ${built.files} modules compiled in ${(built.ms / 1000).toFixed(1)} s\n`);

const work = mkdtempSync(path.join(tmpdir(), 'tvm-bench-cli-'));

/** One `tvm` call, timed end to end (node's own start included). */
function timedTvm(host: string, cmd: string[], fromSources: boolean): { ms: number; code: number; err: string } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [TVM, ...cmd], {
    env: { ...process.env, TVM_HOST: host, TVM_FROM_SOURCES: fromSources ? '1' : '0' },
    encoding: 'utf8',
  });
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, code: r.status ?? -1, err: r.stderr };
}

function answers(sock: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(sock);
    s.once('connect', () => s.end('GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    let data = '';
    s.on('data', (d) => (data += d.toString()));
    s.once('close', () => resolve(data.startsWith('HTTP/1.1 200')));
    s.once('error', () => resolve(false));
  });
}

/** `tvm daemon` on a fresh data root: ms from spawn to its first answer to /_ping, then stopped. */
async function daemonStartMs(n: number, fromSources: boolean): Promise<number> {
  const base = path.join(work, `daemon-${n}-${fromSources ? 'src' : 'dist'}`);
  const sock = path.join(base, 'tvm.sock');
  const t0 = process.hrtime.bigint();
  const child = spawn(
    process.execPath,
    [
      TVM,
      'daemon',
      '-H',
      `unix://${sock}`,
      '--data-root',
      path.join(base, 'data'),
      '--exec-root',
      path.join(base, 'run'),
      '--bridge',
      'none',
    ],
    {
      cwd: REPO,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, TVM_FROM_SOURCES: fromSources ? '1' : '0' },
    },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`tvm daemon exited during start:\n${stderr}`);
      if (await answers(sock)) return Number(process.hrtime.bigint() - t0) / 1e6;
      await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    child.kill('SIGTERM');
    await exited;
    rmSync(base, { recursive: true, force: true });
  }
}

const tvm = await startTestDaemon();
try {
  const cfg = path.join(work, 'cfg');
  writeFileSync(path.join(work, 'bb.tar'), await busyboxDockerArchive('bb:latest'));
  const l = timedDocker(tvm.host, cfg, ['load', '-i', path.join(work, 'bb.tar')]);
  if (l.code !== 0) throw new Error(`docker load failed: ${l.err}`);

  const variants: Record<string, () => { ms: number; code: number; err: string }> = {
    'docker run --rm bb true': () => timedDocker(tvm.host, cfg, ['run', '--rm', 'bb', 'true']),
    'tvm run --rm bb true': () => timedTvm(tvm.host, ['run', '--rm', 'bb', 'true'], false),
    'tvm run --rm bb true (tsx)': () => timedTvm(tvm.host, ['run', '--rm', 'bb', 'true'], true),
    'tvm --help': () => timedTvm(tvm.host, ['--help'], false),
    'tvm --help (tsx)': () => timedTvm(tvm.host, ['--help'], true),
    // the floor under any Node CLI on this machine at this load
    'node -e 0': () => {
      const t0 = process.hrtime.bigint();
      const r = spawnSync(process.execPath, ['-e', '0']);
      return { ms: Number(process.hrtime.bigint() - t0) / 1e6, code: r.status ?? -1, err: '' };
    },
  };
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
  for (let i = 0; i < WARMUP + RUNS; i++) {
    for (const [name, run] of Object.entries(variants)) {
      const r = run();
      if (r.code !== 0) throw new Error(`${name} exited ${r.code}: ${r.err}`);
      if (i >= WARMUP) times[name]!.push(r.ms);
    }
  }
  const starts: Record<string, number[]> = { 'tvm daemon start-to-ready': [], 'tvm daemon start-to-ready (tsx)': [] };
  for (let i = 0; i < Math.min(RUNS, 5); i++) {
    starts['tvm daemon start-to-ready']!.push(await daemonStartMs(i, false));
    starts['tvm daemon start-to-ready (tsx)']!.push(await daemonStartMs(i, true));
  }

  const f = (x: number) => `${x.toFixed(0).padStart(6)} ms`;
  process.stdout.write(`${RUNS} runs each (after ${WARMUP} warm-up), interleaved; tvm daemon: container isolation, compiled\n`);
  process.stdout.write(`${''.padEnd(34)}    min     median        p95\n`);
  for (const [name, xs] of [...Object.entries(times), ...Object.entries(starts)]) {
    const s = summary(xs);
    process.stdout.write(`${name.padEnd(34)}${f(s.min)} ${f(s.median)} ${f(s.p95)}\n`);
  }
  const med = (k: string) => summary(times[k]!).median;
  process.stdout.write(
    `tvm run / docker run (median): ${(med('tvm run --rm bb true') / med('docker run --rm bb true')).toFixed(2)}x (goal <= 1.2x); `,
  );
  process.stdout.write(`tvm --help median ${med('tvm --help').toFixed(0)} ms (goal <= 100 ms)\n`);
} finally {
  await tvm.destroy();
  rmSync(work, { recursive: true, force: true });
}
