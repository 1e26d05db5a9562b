/**
 * Bridge networking, tvm daemon versus Debian's docker.io dockerd, each in a network namespace
 * made here (so neither touches the host's bridges or iptables), both on their default bridge:
 *   1. start-path cost: `docker run --rm busybox true` on the default bridge (namespace, veth,
 *      address, rules; and their removal), and with `-p 18500:80` (a published port);
 *   2. TCP throughput: N MiB from the host side to a container through a published port on
 *      127.0.0.1 (both: kernel DNAT; dockerd with --userland-proxy=false, see
 *      reference-dockerd.ts), and to the container's bridge address directly (both: the
 *      kernel's bridge and veth).
 * Runs alternate tvm / docker; reports min, median, p95 and ratios.
 *
 *   npx tsx bench/network.bench.ts [--runs N] [--warmup N] [--mib N]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startTestDaemon, missingRealParts, DOCKER } from '../test/fixtures/daemon.js';
import { busyboxDockerArchive } from '../test/fixtures/fake-images.js';
import {
  DOCKERD,
  makeNetns,
  requireTools,
  startReferenceDockerd,
  timedDocker,
  type ReferenceDockerd,
  type TimedRun,
} from './lib/reference-dockerd.js';
import { summary } from './lib/stats.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? Number(args[i + 1]) : dflt;
};
const RUNS = opt('runs', 6);
const WARMUP = opt('warmup', 2);
const MIB = opt('mib', 256);

requireTools([
  [DOCKER, 'docker-ce-cli (the docker CLI)'],
  [DOCKERD, 'docker.io'],
  ['/usr/sbin/runc', 'runc'],
  ['/usr/bin/nsenter', 'util-linux'],
  ['/usr/sbin/iptables', 'iptables'],
]);
const missing = missingRealParts();
if (missing.length > 0) throw new Error(`tvm parts missing: ${missing.join(', ')}`);

const work = mkdtempSync(path.join(tmpdir(), 'tvm-bench-net-'));
const docker = (host: string, cmd: string[]): TimedRun => timedDocker(host, path.join(work, 'cfg'), cmd, undefined, 120_000);
const dockerNetns = path.join(work, 'dockerd-netns');
makeNetns(dockerNetns);

/** Sends MIB MiB from the side's namespace to addr:port (busybox nc), timed; the receiver is `nc -l` in a container. */
function send(netns: string, addr: string, port: number): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('nsenter', [`--net=${netns}`, 'sh', '-c', `head -c ${MIB * 1024 * 1024} /dev/zero | busybox nc ${addr} ${port}`], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.status !== 0) throw new Error(`sending to ${addr}:${port} failed: ${r.stderr}`);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

const tvm = await startTestDaemon({ network: true, daemonArgs: ['--bip', '10.231.0.1/24'] });
let dockerd: ReferenceDockerd | undefined;
try {
  dockerd = await startReferenceDockerd(work, 'tvmbenchnet', { netns: dockerNetns, bip: '10.232.0.1/24' });
  writeFileSync(path.join(work, 'busybox.tar'), await busyboxDockerArchive());
  const sides = {
    tvm: { host: tvm.host, netns: `/proc/${tvm.pid()}/ns/net` },
    docker: { host: dockerd.host, netns: dockerNetns },
  };
  for (const [name, s] of Object.entries(sides)) {
    const l = docker(s.host, ['load', '-i', path.join(work, 'busybox.tar')]);
    if (l.code !== 0) throw new Error(`${name}: docker load failed: ${l.err}`);
    const check = docker(s.host, ['run', '--rm', 'busybox', 'sh', '-c', 'busybox ip -4 -o addr show eth0']);
    if (check.code !== 0 || !check.out.includes('inet '))
      throw new Error(`${name}: a container on the default bridge has no address: ${check.err}${check.out}`);
  }
  const start: Record<string, Record<'tvm' | 'docker', number[]>> = { bridge: { tvm: [], docker: [] }, published: { tvm: [], docker: [] } };
  for (let i = 0; i < WARMUP + RUNS; i++) {
    for (const name of ['tvm', 'docker'] as const) {
      const a = docker(sides[name].host, ['run', '--rm', 'busybox', 'true']);
      const b = docker(sides[name].host, ['run', '--rm', '-p', '18500:80', 'busybox', 'true']);
      if (a.code !== 0 || b.code !== 0) throw new Error(`${name}: docker run failed: ${a.err}${b.err}`);
      process.stderr.write(`start ${i} ${name}: ${a.ms.toFixed(0)} ms, with -p ${b.ms.toFixed(0)} ms\n`);
      if (i >= WARMUP) {
        start.bridge![name].push(a.ms);
        start.published![name].push(b.ms);
      }
    }
  }
  // Debian's dockerd 20.10 stops answering after about 20 containers in a network namespace
  // here (a run or rm never returns): a fresh one serves the throughput runs
  await dockerd.stop();
  dockerd = await startReferenceDockerd(work, 'tvmbenchnet', { netns: dockerNetns, bip: '10.232.0.1/24' });
  sides.docker.host = dockerd.host;
  // throughput: one receiver container per side, restarted for each transfer
  const tput: Record<string, Record<'tvm' | 'docker', number[]>> = { published: { tvm: [], docker: [] }, direct: { tvm: [], docker: [] } };
  const tputRuns = Math.max(3, Math.ceil(RUNS / 2));
  for (let i = 0; i < tputRuns + 1; i++) {
    for (const name of ['tvm', 'docker'] as const) {
      const s = sides[name];
      for (const how of ['published', 'direct'] as const) {
        const id = docker(s.host, [
          'run',
          '-d',
          '-p',
          '127.0.0.1:18600:5001',
          'busybox',
          'sh',
          '-c',
          'busybox nc -l -p 5001 > /dev/null',
        ]).out.trim();
        const ip = docker(s.host, ['inspect', '-f', '{{.NetworkSettings.IPAddress}}', id]).out.trim();
        // the listener is up once the container runs its nc: give it a moment, as a client would retry
        spawnSync('sleep', ['0.3']);
        const ms = how === 'published' ? send(s.netns, '127.0.0.1', 18600) : send(s.netns, ip, 5001);
        docker(s.host, ['rm', '-f', id]);
        if (i > 0) tput[how]![name].push(MIB / (ms / 1000));
      }
    }
  }
  const f = (x: number) => `${x.toFixed(0).padStart(6)} ms`;
  const out = process.stdout;
  out.write(`docker run --rm busybox true, ${RUNS} runs each (after ${WARMUP} warm-up), alternating\n`);
  for (const [what, times] of Object.entries(start)) {
    const t = summary(times.tvm);
    const d = summary(times.docker);
    out.write(`  ${what === 'bridge' ? 'default bridge       ' : 'bridge + -p port:80  '}     min      median         p95\n`);
    out.write(`  tvm                  ${f(t.min)}   ${f(t.median)}   ${f(t.p95)}\n`);
    out.write(`  dockerd + runc       ${f(d.min)}   ${f(d.median)}   ${f(d.p95)}\n`);
    out.write(
      `  ratio tvm/docker     min ${(t.min / d.min).toFixed(2)}x  median ${(t.median / d.median).toFixed(2)}x  p95 ${(t.p95 / d.p95).toFixed(2)}x  (goal <= 1.0x)\n`,
    );
  }
  out.write(`TCP throughput, ${MIB} MiB host -> container (busybox nc), ${tputRuns} runs each, MiB/s (higher is better)\n`);
  for (const [what, rates] of Object.entries(tput)) {
    const t = summary(rates.tvm);
    const d = summary(rates.docker);
    const g = (x: number) => `${x.toFixed(0).padStart(7)}`;
    out.write(`  ${what === 'published' ? 'published 127.0.0.1  ' : 'to the bridge address'}   min  median\n`);
    out.write(`  tvm                  ${g(t.min)} ${g(t.median)}\n`);
    out.write(`  dockerd              ${g(d.min)} ${g(d.median)}\n`);
    out.write(`  ratio tvm/docker     median ${(t.median / d.median).toFixed(2)}x  (goal >= 1.0x)\n`);
  }
} finally {
  await dockerd?.stop();
  await tvm.destroy();
  spawnSync('umount', ['-R', path.join(work, 'docker-data')], { stdio: 'ignore' });
  spawnSync('umount', [dockerNetns], { stdio: 'ignore' });
  rmSync(work, { recursive: true, force: true });
}
