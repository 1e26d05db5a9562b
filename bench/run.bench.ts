/**
 * `docker run --rm busybox true`, end to end through the docker CLI: tvm daemon (container
 * isolation: tvm-agent supervisor, namespaces, cgroups, overlay on the ext4 base disk) versus
 * Debian's docker.io dockerd + containerd + runc, in one run, on the same busybox image.
 * Runs alternate tvm / docker so load from other processes hits both; reports min, median,
 * p95 and the ratio tvm/docker (goal <= 1.0x).
 *
 *   npx tsx bench/run.bench.ts [--runs N] [--warmup N]
 *
 * dockerd runs on its own socket, data-root and exec-root, with --bridge=none --iptables=false;
 * it is started and stopped here. Needs root, /usr/local/bin/docker (CLI), /usr/sbin/dockerd.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startTestDaemon, missingRealParts, DOCKER } from '../test/fixtures/daemon.js';
import { busyboxDockerArchive } from '../test/fixtures/fake-images.js';
import { DOCKERD, requireTools, startReferenceDockerd, timedDocker, type ReferenceDockerd } from './lib/reference-dockerd.js';
import { summary } from './lib/stats.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? Number(args[i + 1]) : dflt;
};
const RUNS = opt('runs', 15);
const WARMUP = opt('warmup', 2);

requireTools([
  [DOCKER, 'docker-ce-cli (the docker CLI)'],
  [DOCKERD, 'docker.io'],
  ['/usr/sbin/runc', 'runc'],
]);
const missing = missingRealParts();
if (missing.length > 0) throw new Error(`tvm parts missing: ${missing.join(', ')}`);

const work = mkdtempSync(path.join(tmpdir(), 'tvm-bench-run-'));

const docker = (host: string, cmd: string[], input?: Buffer) => timedDocker(host, path.join(work, 'cfg'), cmd, input);

const tvm = await startTestDaemon();
let dockerd: ReferenceDockerd | undefined;
try {
  dockerd = await startReferenceDockerd(work, 'tvmbench');
  const archive = await busyboxDockerArchive();
  writeFileSync(path.join(work, 'busybox.tar'), archive);
  const hosts = { tvm: tvm.host, docker: dockerd.host };
  for (const [name, host] of Object.entries(hosts)) {
    const l = docker(host, ['load', '-i', path.join(work, 'busybox.tar')]);
    if (l.code !== 0) throw new Error(`${name}: docker load failed: ${l.err}`);
    const check = docker(host, ['run', '--rm', 'busybox', 'echo', 'ok']);
    if (check.code !== 0 || check.out.trim() !== 'ok') throw new Error(`${name}: docker run does not work: ${check.err}`);
  }
  const times: Record<'tvm' | 'docker', number[]> = { tvm: [], docker: [] };
  for (let i = 0; i < WARMUP + RUNS; i++) {
    for (const name of ['tvm', 'docker'] as const) {
      const r = docker(hosts[name], ['run', '--rm', 'busybox', 'true']);
      if (r.code !== 0) throw new Error(`${name}: docker run --rm busybox true exited ${r.code}: ${r.err}`);
      if (i >= WARMUP) times[name].push(r.ms);
    }
  }
  const t = summary(times.tvm);
  const d = summary(times.docker);
  const f = (x: number) => `${x.toFixed(0).padStart(6)} ms`;
  process.stdout.write(`docker run --rm busybox true, ${RUNS} runs each (after ${WARMUP} warm-up), alternating\n`);
  process.stdout.write(`                    min      median         p95\n`);
  process.stdout.write(`tvm (container) ${f(t.min)}   ${f(t.median)}   ${f(t.p95)}\n`);
  process.stdout.write(`dockerd + runc  ${f(d.min)}   ${f(d.median)}   ${f(d.p95)}\n`);
  process.stdout.write(
    `ratio tvm/docker  min ${(t.min / d.min).toFixed(2)}x  median ${(t.median / d.median).toFixed(2)}x  p95 ${(t.p95 / d.p95).toFixed(2)}x  (goal <= 1.0x)\n`,
  );
} finally {
  await dockerd?.stop();
  await tvm.destroy();
  spawnSync('umount', ['-R', path.join(work, 'docker-data')], { stdio: 'ignore' });
  rmSync(work, { recursive: true, force: true });
}
