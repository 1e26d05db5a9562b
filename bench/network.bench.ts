/**
 * Bridge networking, tvm daemon versus Debian's docker.io dockerd, each in a network namespace
 * made here (so neither touches the host's bridges or iptables), both on their default bridge:
 *   1. start-path cost: `docker run --rm busybox true` on the default bridge (namespace, veth,
 *      address, rules; and their removal), and with `-p 18500:80` (a published port);
 *   2. TCP throughput: N MiB from the host side to a container through a published port on
 *      127.0.0.1 (both: kernel DNAT; dockerd with --userland-proxy=false, see
 *      reference-dockerd.ts), to the container's bridge address directly (both: the kernel's
 *      bridge and veth), container to container on the default bridge, and to a
 *      `--network host` container on 127.0.0.1 as the floor (no bridge, no veth, no NAT). A
 *      transfer is timed until the receiving container has counted every byte and exited.
 *   3. TCP connection rate: C connections (busybox nc, each a connect, a request line, a close)
 *      container to container, and host to the published port.
 * Runs alternate tvm / docker; reports min, median, p95 and ratios.
 *
 *   npx tsx bench/network.bench.ts [--runs N] [--warmup N] [--mib N] [--conns N]
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
  unmountUnder,
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
const CONNS = opt('conns', 100);

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

/**
 * The receiver counts what arrives until the sender's FIN, then exits. Not `nc -l > /dev/null`:
 * busybox nc stops reading the connection when its own stdin (a detached container's: empty)
 * ends, which made an earlier version of this bench time a transfer that had not happened.
 */
const RECEIVER = "busybox nc -l -p 5001 -e sh -c 'busybox dd of=/dev/null bs=65536 iflag=fullblock 2> /tmp/n'; cat /tmp/n";

/** Runs `cmd` in the namespace at `netns` (the side's "host"). */
function inNetns(netns: string, cmd: string): { code: number; err: string } {
  const r = spawnSync('nsenter', [`--net=${netns}`, 'sh', '-c', cmd], { encoding: 'utf8', timeout: 300_000 });
  return { code: r.status ?? -1, err: r.stderr };
}

/** MIB MiB of zeros to addr:port through `sender` (retried while the receiver comes up). */
function sendWith(sender: (cmd: string) => { code: number; err: string }, addr: string, port: number): void {
  for (let attempt = 0; ; attempt++) {
    const r = sender(`head -c ${MIB * 1024 * 1024} /dev/zero | busybox nc ${addr} ${port}`);
    if (r.code === 0) return;
    if (attempt > 50) throw new Error(`sending to ${addr}:${port} failed: ${r.err}`);
    spawnSync('sleep', ['0.1']);
  }
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
  // throughput: a receiver container per transfer, timed from the first byte sent until it has
  // counted them all and exited
  const hows = ['published', 'direct', 'container', 'host network'] as const;
  type How = (typeof hows)[number];
  const tput = Object.fromEntries(hows.map((h) => [h, { tvm: [] as number[], docker: [] as number[] }])) as Record<
    How,
    Record<'tvm' | 'docker', number[]>
  >;
  const transfer = (name: 'tvm' | 'docker', how: How): number => {
    const s = sides[name];
    const id = docker(s.host, [
      'run',
      '-d',
      ...(how === 'host network' ? ['--network', 'host'] : ['-p', '127.0.0.1:18600:5001']),
      'busybox',
      'sh',
      '-c',
      RECEIVER,
    ]).out.trim();
    const ip = docker(s.host, ['inspect', '-f', '{{.NetworkSettings.IPAddress}}', id]).out.trim();
    const t0 = process.hrtime.bigint();
    if (how === 'published' || how === 'host network')
      sendWith((c) => inNetns(s.netns, c), '127.0.0.1', how === 'published' ? 18600 : 5001);
    else if (how === 'direct') sendWith((c) => inNetns(s.netns, c), ip, 5001);
    else {
      sendWith(
        (c) => {
          const r = docker(s.host, ['run', '--rm', 'busybox', 'sh', '-c', c]);
          return { code: r.code, err: r.err };
        },
        ip,
        5001,
      );
    }
    const w = docker(s.host, ['wait', id]);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const m = /(\d+)\+(\d+) records in/.exec(docker(s.host, ['logs', id]).out);
    const got = m && m[2] === '0' ? Number(m[1]) * 65536 : NaN;
    docker(s.host, ['rm', '-f', id]);
    if (w.out.trim() !== '0' || got !== MIB * 1024 * 1024)
      throw new Error(`${name} ${how}: the receiver counted ${got} bytes of ${MIB} MiB`);
    return MIB / (ms / 1000);
  };
  const tputRuns = Math.max(3, Math.ceil(RUNS / 2));
  for (let i = 0; i < tputRuns + 1; i++) {
    for (const name of ['tvm', 'docker'] as const) {
      for (const how of hows) {
        const rate = transfer(name, how);
        process.stderr.write(`throughput ${i} ${name} ${how}: ${rate.toFixed(0)} MiB/s\n`);
        if (i > 0) tput[how][name].push(rate);
      }
    }
  }
  // the same dockerd limit as above: a fresh one for the connection runs
  await dockerd.stop();
  dockerd = await startReferenceDockerd(work, 'tvmbenchnet', { netns: dockerNetns, bip: '10.232.0.1/24' });
  sides.docker.host = dockerd.host;
  // connection rate: CONNS sequential connections to busybox httpd, each a request line and a close
  const conns = { container: { tvm: [] as number[], docker: [] as number[] }, published: { tvm: [] as number[], docker: [] as number[] } };
  const loop = (addr: string, port: number) =>
    `i=0; while [ $i -lt ${CONNS} ]; do echo 'GET / HTTP/1.0' | busybox nc ${addr} ${port} > /dev/null || exit 1; i=$((i+1)); done`;
  for (let i = 0; i < tputRuns + 1; i++) {
    for (const name of ['tvm', 'docker'] as const) {
      const s = sides[name];
      const srv = docker(s.host, [
        'run',
        '-d',
        '-p',
        '127.0.0.1:18700:80',
        'busybox',
        'sh',
        '-c',
        'mkdir -p /w && echo hi > /w/index.html && exec busybox httpd -f -p 80 -h /w',
      ]).out.trim();
      const ip = docker(s.host, ['inspect', '-f', '{{.NetworkSettings.IPAddress}}', srv]).out.trim();
      // warm: the server is up once one request is answered
      for (let a = 0; a < 50; a++) {
        if (inNetns(s.netns, `echo 'GET / HTTP/1.0' | busybox nc 127.0.0.1 18700 | grep -q hi`).code === 0) break;
        spawnSync('sleep', ['0.1']);
      }
      // container to container: the client's own start is outside the timed loop (busybox date has
      // no %N: /proc/uptime's hundredths, the host's clock, as no container has a time namespace)
      const c = docker(s.host, [
        'run',
        '--rm',
        'busybox',
        'sh',
        '-c',
        `a=$(cut -d' ' -f1 /proc/uptime); ${loop(ip, 80)}; b=$(cut -d' ' -f1 /proc/uptime); echo "$a $b"`,
      ]);
      if (c.code !== 0) throw new Error(`${name}: container-to-container connections failed: ${c.err}`);
      const t0 = process.hrtime.bigint();
      const h = inNetns(s.netns, loop('127.0.0.1', 18700));
      const hostMs = Number(process.hrtime.bigint() - t0) / 1e6;
      if (h.code !== 0) throw new Error(`${name}: connections to the published port failed: ${h.err}`);
      docker(s.host, ['rm', '-f', srv]);
      const [ua, ub] = c.out.trim().split(' ').map(Number);
      const ctrMs = ((ub ?? NaN) - (ua ?? NaN)) * 1000;
      process.stderr.write(
        `connections ${i} ${name}: container ${((CONNS * 1000) / ctrMs).toFixed(0)}/s, published ${((CONNS * 1000) / hostMs).toFixed(0)}/s\n`,
      );
      if (i > 0) {
        conns.container[name].push((CONNS * 1000) / ctrMs);
        conns.published[name].push((CONNS * 1000) / hostMs);
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
  const g = (x: number) => `${x.toFixed(0).padStart(7)}`;
  const rates = (title: string, unit: string, table: Record<string, Record<'tvm' | 'docker', number[]>>, label: (k: string) => string) => {
    out.write(`${title}, ${tputRuns} runs each, ${unit} (higher is better)\n`);
    for (const [what, r] of Object.entries(table)) {
      const t = summary(r.tvm);
      const d = summary(r.docker);
      out.write(`  ${label(what).padEnd(30)} min  median\n`);
      out.write(`  tvm                          ${g(t.min)} ${g(t.median)}\n`);
      out.write(`  dockerd                      ${g(d.min)} ${g(d.median)}\n`);
      out.write(`  ratio tvm/docker             median ${(t.median / d.median).toFixed(2)}x  (goal >= 0.9x)\n`);
    }
  };
  const howLabel: Record<string, string> = {
    published: 'host -> published 127.0.0.1',
    direct: 'host -> bridge address',
    container: 'container -> container',
    'host network': '--network host (the floor)',
  };
  rates(`TCP throughput, ${MIB} MiB (busybox nc, counted by the receiver)`, 'MiB/s', tput, (k) => howLabel[k] ?? k);
  rates(`TCP connections, ${CONNS} sequential (busybox nc to busybox httpd)`, 'connections/s', conns, (k) =>
    k === 'container' ? 'container -> container' : 'host -> published 127.0.0.1',
  );
} finally {
  await dockerd?.stop();
  await tvm.destroy();
  unmountUnder(work);
  try {
    rmSync(work, { recursive: true, force: true });
  } catch (e) {
    // the figures (or the error that ended the run) matter more than a leftover temp dir: say it, do not mask them
    process.stderr.write(`leaving ${work}: ${(e as Error).message}\n`);
  }
}
