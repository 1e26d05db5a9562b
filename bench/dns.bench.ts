/**
 * The embedded DNS on a user-defined network, tvm daemon versus Debian's docker.io dockerd, each
 * in a network namespace made here (neither touches the host's bridges or iptables; no query
 * leaves them: only peer names are asked, which both servers answer themselves):
 *   1. start-path cost: `docker run --rm --network <user net> busybox true` (tvm: namespace,
 *      veth, and the DNAT of 127.0.0.11 in the container's namespace; dockerd: its resolver
 *      set up inside the namespace);
 *   2. lookup latency: one container asks 127.0.0.11 for a peer's name N times (busybox
 *      nslookup in a loop, in one `docker exec`), the whole loop timed; each nslookup is an A
 *      and an AAAA query over UDP.
 * Runs alternate tvm / docker; reports min, median, p95 and ratios.
 *
 *   npx tsx bench/dns.bench.ts [--runs N] [--warmup N] [--lookups N]
 */
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
  unmountUnder,
} from './lib/reference-dockerd.js';
import { summary } from './lib/stats.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? Number(args[i + 1]) : dflt;
};
// Debian's dockerd 20.10 stops answering after about 20 containers in a network namespace
// (see network.bench.ts): the defaults stay well below
const RUNS = opt('runs', 6);
const WARMUP = opt('warmup', 2);
const LOOKUPS = opt('lookups', 50);

requireTools([
  [DOCKER, 'docker-ce-cli (the docker CLI)'],
  [DOCKERD, 'docker.io'],
  ['/usr/sbin/runc', 'runc'],
  ['/usr/bin/nsenter', 'util-linux'],
  ['/usr/sbin/iptables', 'iptables'],
]);
const missing = missingRealParts();
if (missing.length > 0) throw new Error(`tvm parts missing: ${missing.join(', ')}`);

const work = mkdtempSync(path.join(tmpdir(), 'tvm-bench-dns-'));
const docker = (host: string, cmd: string[]): TimedRun => timedDocker(host, path.join(work, 'cfg'), cmd, undefined, 120_000);
const dockerNetns = path.join(work, 'dockerd-netns');
makeNetns(dockerNetns);

const tvm = await startTestDaemon({ network: true, daemonArgs: ['--bip', '10.241.0.1/24'] });
let dockerd: ReferenceDockerd | undefined;
try {
  dockerd = await startReferenceDockerd(work, 'tvmbenchdns', { netns: dockerNetns, bip: '10.242.0.1/24' });
  writeFileSync(path.join(work, 'busybox.tar'), await busyboxDockerArchive());
  const sides = { tvm: tvm.host, docker: dockerd.host };
  for (const [name, host] of Object.entries(sides)) {
    const must = (cmd: string[]) => {
      const r = docker(host, cmd);
      if (r.code !== 0) throw new Error(`${name}: docker ${cmd.join(' ')}: ${r.err}`);
      return r.out.trim();
    };
    must(['load', '-i', path.join(work, 'busybox.tar')]);
    must(['network', 'create', '--subnet', name === 'tvm' ? '10.243.0.0/24' : '10.244.0.0/24', 'benchdns']);
    must(['run', '-d', '--name', 'peer', '--network', 'benchdns', 'busybox', 'sleep', '3600']);
    must(['run', '-d', '--name', 'asker', '--network', 'benchdns', 'busybox', 'sleep', '3600']);
    const peer = must(['inspect', '-f', '{{.NetworkSettings.Networks.benchdns.IPAddress}}', 'peer']);
    const check = must(['exec', 'asker', 'busybox', 'nslookup', 'peer', '127.0.0.11']);
    if (!check.includes(`Address: ${peer}`) && !check.includes(`Address 1: ${peer}`))
      throw new Error(`${name}: the peer's name does not resolve:\n${check}`);
  }
  const times: Record<'start' | 'lookups', Record<'tvm' | 'docker', number[]>> = {
    start: { tvm: [], docker: [] },
    lookups: { tvm: [], docker: [] },
  };
  const loop = `i=0; while [ $i -lt ${LOOKUPS} ]; do busybox nslookup peer >/dev/null || exit 1; i=$((i+1)); done`;
  for (let i = 0; i < WARMUP + RUNS; i++) {
    for (const name of ['tvm', 'docker'] as const) {
      const a = docker(sides[name], ['run', '--rm', '--network', 'benchdns', 'busybox', 'true']);
      const b = docker(sides[name], ['exec', 'asker', 'sh', '-c', loop]);
      if (a.code !== 0 || b.code !== 0) throw new Error(`${name}: ${a.err}${b.err}`);
      process.stderr.write(`run ${i} ${name}: start ${a.ms.toFixed(0)} ms, ${LOOKUPS} lookups ${b.ms.toFixed(0)} ms\n`);
      if (i >= WARMUP) {
        times.start[name].push(a.ms);
        times.lookups[name].push(b.ms);
      }
    }
  }
  const f = (x: number) => `${x.toFixed(0).padStart(6)} ms`;
  const out = process.stdout;
  out.write(`embedded DNS on a user-defined network, ${RUNS} runs each (after ${WARMUP} warm-up), alternating\n`);
  for (const [what, t2] of Object.entries(times)) {
    const t = summary(t2.tvm);
    const d = summary(t2.docker);
    out.write(
      `  ${what === 'start' ? 'docker run --rm (user network) ' : `${LOOKUPS} x nslookup peer (exec)      `}     min      median         p95\n`,
    );
    out.write(`  tvm                            ${f(t.min)}   ${f(t.median)}   ${f(t.p95)}\n`);
    out.write(`  dockerd + runc                 ${f(d.min)}   ${f(d.median)}   ${f(d.p95)}\n`);
    out.write(
      `  ratio tvm/docker     min ${(t.min / d.min).toFixed(2)}x  median ${(t.median / d.median).toFixed(2)}x  p95 ${(t.p95 / d.p95).toFixed(2)}x  (goal <= 1.0x)\n`,
    );
  }
} finally {
  for (const host of [tvm.host, dockerd?.host]) if (host) docker(host, ['rm', '-f', 'peer', 'asker']);
  await dockerd?.stop();
  await tvm.destroy();
  unmountUnder(work);
  rmSync(work, { recursive: true, force: true });
}
