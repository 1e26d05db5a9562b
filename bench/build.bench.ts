/**
 * `DOCKER_BUILDKIT=0 docker build` end to end through the docker CLI: tvm's classic builder
 * (container isolation) versus Debian's docker.io dockerd legacy builder, on the same busybox
 * image and the same contexts, in one run:
 *
 *   cold     a 6-step Dockerfile (ENV, WORKDIR, COPY, RUN, COPY, CMD) with --no-cache
 *   cached   the same build again: every step from the cache          (goal <= 0.5x)
 *   changed  one COPY'd file changed: the steps from that COPY on run again
 *   10k      COPY of a 10,000-file context (--no-cache)                (cold goal <= 1.0x)
 *
 * Runs alternate tvm / docker so load from other processes hits both; reports min, median and
 * the ratio tvm/docker of the medians.
 *
 *   npx tsx bench/build.bench.ts [--runs N]
 *
 * dockerd runs on its own socket, data-root and exec-root, with --bridge=none (RUN steps use
 * --network none on both sides). Needs root, /usr/local/bin/docker (CLI), /usr/sbin/dockerd.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
const RUNS = opt('runs', 5);

requireTools([
  [DOCKER, 'docker-ce-cli (the docker CLI)'],
  [DOCKERD, 'docker.io'],
  ['/usr/sbin/runc', 'runc'],
]);
const missing = missingRealParts();
if (missing.length > 0) throw new Error(`tvm parts missing: ${missing.join(', ')}`);

const work = mkdtempSync(path.join(tmpdir(), 'tvm-bench-build-'));
process.env.DOCKER_BUILDKIT = '0';
const docker = (host: string, cmd: string[]) => timedDocker(host, path.join(work, 'cfg'), cmd);

// the 6-step context
const six = path.join(work, 'six');
mkdirSync(path.join(six, 'src'), { recursive: true });
for (let i = 0; i < 20; i++) writeFileSync(path.join(six, 'src', `f${i}.txt`), `file ${i}\n`.repeat(100));
writeFileSync(path.join(six, 'app.conf'), 'v=1\n');
writeFileSync(
  path.join(six, 'Dockerfile'),
  [
    'FROM busybox',
    'ENV APP=/app',
    'WORKDIR /app',
    'COPY src/ ./src/',
    'RUN cat src/*.txt | wc -l > lines',
    'COPY app.conf ./',
    'CMD ["cat", "app.conf"]',
  ].join('\n'),
);
// the 10k-file context
const big = path.join(work, 'big');
for (let d = 0; d < 100; d++) {
  mkdirSync(path.join(big, 'files', `d${d}`), { recursive: true });
  for (let f = 0; f < 100; f++) writeFileSync(path.join(big, 'files', `d${d}`, `f${f}`), `${d}/${f}\n`);
}
writeFileSync(path.join(big, 'Dockerfile'), 'FROM busybox\nCOPY files /files\n');

const tvm = await startTestDaemon();
let dockerd: ReferenceDockerd | undefined;
try {
  dockerd = await startReferenceDockerd(work, 'tvmbenchbuild');
  writeFileSync(path.join(work, 'busybox.tar'), await busyboxDockerArchive());
  const hosts = { tvm: tvm.host, docker: dockerd.host };
  for (const [name, host] of Object.entries(hosts)) {
    const l = docker(host, ['load', '-i', path.join(work, 'busybox.tar')]);
    if (l.code !== 0) throw new Error(`${name}: docker load failed: ${l.err}`);
  }
  const build = (host: string, ctx: string, extra: string[] = []) => {
    const r = docker(host, ['build', '--network', 'none', '-q', ...extra, '-t', 'bench-build', ctx]);
    if (r.code !== 0) throw new Error(`docker build on ${host} exited ${r.code}: ${r.err}`);
    return r.ms;
  };
  type Case = 'cold' | 'cached' | 'changed' | '10k';
  const times: Record<Case, Record<'tvm' | 'docker', number[]>> = {
    cold: { tvm: [], docker: [] },
    cached: { tvm: [], docker: [] },
    changed: { tvm: [], docker: [] },
    '10k': { tvm: [], docker: [] },
  };
  for (let i = 0; i < RUNS; i++) {
    for (const name of ['tvm', 'docker'] as const) {
      const host = hosts[name];
      times.cold[name].push(build(host, six, ['--no-cache']));
      times.cached[name].push(build(host, six));
      writeFileSync(path.join(six, 'app.conf'), `v=${i}-${name}-${Date.now()}\n`);
      times.changed[name].push(build(host, six));
      times['10k'][name].push(build(host, big, ['--no-cache']));
    }
  }
  const f = (x: number) => `${x.toFixed(0).padStart(7)} ms`;
  process.stdout.write(
    `DOCKER_BUILDKIT=0 docker build, ${RUNS} runs each, alternating (machine: ${process.env.BENCH_MACHINE ?? 'this host'})\n`,
  );
  process.stdout.write(`case        tvm min   tvm median   dockerd min  dockerd median   ratio (median)\n`);
  for (const c of Object.keys(times) as Case[]) {
    const t = summary(times[c].tvm);
    const d = summary(times[c].docker);
    const goal = c === 'cached' ? ' (goal <= 0.5x)' : c === 'cold' || c === '10k' ? ' (goal <= 1.0x)' : '';
    process.stdout.write(
      `${c.padEnd(8)} ${f(t.min)} ${f(t.median)}   ${f(d.min)}    ${f(d.median)}    ${(t.median / d.median).toFixed(2)}x${goal}\n`,
    );
  }
} finally {
  await dockerd?.stop();
  await tvm.destroy();
  spawnSync('umount', ['-R', path.join(work, 'docker-data')], { stdio: 'ignore' });
  rmSync(work, { recursive: true, force: true });
}
