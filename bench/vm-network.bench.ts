/**
 * Networking of --isolation=vm containers (the tvm daemon in a network namespace made by the
 * test fixture, so nothing touches the host's bridges or iptables):
 *   1. start-path cost of the NIC: `docker run --rm --isolation=vm busybox true` on the default
 *      bridge (namespace, veth, tap + tc, the supervisor in the namespace, virtio-net over
 *      vhost-user, the guest's eth0 setup) versus `--network none`, alternating;
 *   2. TCP throughput host -> container to its bridge address: N MiB through busybox nc into
 *      a VM container (tap + tc + tvm's virtio-net) and into a host container (veth only),
 *      timed until the receiver has counted every byte;
 *   3. `docker network connect` + `disconnect` of a running container to a second network: a VM
 *      (a macvlan made by the guest agent, tc filters by MAC) versus a host container (the veth
 *      alone), alternating.
 * The backend is what the daemon picks here (tcg on a machine without /dev/kvm: QEMU's
 * software CPU, so the guest's own TCP stack is the bottleneck, not the device).
 *
 *   npx tsx bench/vm-network.bench.ts [--runs N] [--warmup N] [--mib N]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startTestDaemon, missingRealParts, DOCKER } from '../test/fixtures/daemon.js';
import { busyboxDockerArchive } from '../test/fixtures/fake-images.js';
import { summary } from './lib/stats.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? Number(args[i + 1]) : dflt;
};
const RUNS = opt('runs', 5);
const WARMUP = opt('warmup', 1);
const MIB = opt('mib', 32);

const missing = missingRealParts();
if (missing.length > 0) throw new Error(`tvm parts missing: ${missing.join(', ')}`);

const work = mkdtempSync(path.join(tmpdir(), 'tvm-bench-vmnet-'));
const tvm = await startTestDaemon({ network: true, daemonArgs: ['--bip', '10.233.0.1/24'] });
const netns = `/proc/${tvm.pid()}/ns/net`;
function docker(cmd: string[]): { ms: number; code: number; out: string; err: string } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(DOCKER, cmd, {
    env: { ...process.env, DOCKER_HOST: tvm.host, DOCKER_CONFIG: path.join(work, 'cfg') },
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (r.error) throw new Error(`docker ${cmd.join(' ')}: ${r.error.message}`);
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, code: r.status ?? -1, out: r.stdout, err: r.stderr };
}
/**
 * The receiver counts what arrives until the sender's FIN. Not `nc -l | wc -c`: busybox nc
 * stops reading the connection when its own stdin (a detached container's: empty) ends; and dd
 * with 64 KiB reads, not wc, which under TCG is slower than the network.
 */
const RECEIVER = "busybox nc -l -p 5001 -e sh -c 'busybox dd of=/dev/null bs=65536 iflag=fullblock 2> /tmp/n'; cat /tmp/n";

/**
 * MIB MiB from the daemon's namespace to addr:5001 (retried while the listener comes up), timed
 * until the receiving container has counted every byte and exited: the sender's nc ends when
 * its socket has taken the data, not when it has arrived.
 */
function transfer(id: string, addr: string): number {
  const bytes = MIB * 1024 * 1024;
  const t0 = process.hrtime.bigint();
  for (let attempt = 0; ; attempt++) {
    const r = spawnSync('nsenter', [`--net=${netns}`, 'sh', '-c', `head -c ${bytes} /dev/zero | busybox nc ${addr} 5001`], {
      encoding: 'utf8',
      timeout: 300_000,
    });
    if (r.status === 0) break;
    if (attempt > 50) throw new Error(`sending to ${addr}:5001 failed: ${r.stderr}`);
    spawnSync('sleep', ['0.2']);
  }
  const w = docker(['wait', id]);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  // full 64 KiB blocks (+ a partial one): MIB MiB is whole blocks, so "<16*MIB>+0 records in"
  const m = /(\d+)\+(\d+) records in/.exec(docker(['logs', id]).out);
  const got = m && m[2] === '0' ? Number(m[1]) * 65536 : NaN;
  if (w.code !== 0 || got !== bytes) throw new Error(`the receiver ${id.slice(0, 12)} counted ${got} bytes of ${bytes}`);
  return ms;
}

try {
  writeFileSync(path.join(work, 'busybox.tar'), await busyboxDockerArchive());
  const l = docker(['load', '-i', path.join(work, 'busybox.tar')]);
  if (l.code !== 0) throw new Error(`docker load failed: ${l.err}`);
  const backend = docker(['info', '--format', '{{json .}}']).out.match(/"VM backend","([a-z]+)"/)?.[1] ?? 'see docker info';
  const start = { bridge: [] as number[], none: [] as number[] };
  for (let i = 0; i < WARMUP + RUNS; i++) {
    const a = docker(['run', '--rm', '--isolation=vm', 'busybox', 'true']);
    const b = docker(['run', '--rm', '--isolation=vm', '--network', 'none', 'busybox', 'true']);
    if (a.code !== 0 || b.code !== 0) throw new Error(`docker run failed: ${a.err}${b.err}`);
    process.stderr.write(`start ${i}: bridge ${a.ms.toFixed(0)} ms, none ${b.ms.toFixed(0)} ms\n`);
    if (i >= WARMUP) {
      start.bridge.push(a.ms);
      start.none.push(b.ms);
    }
  }
  const tput = { vm: [] as number[], container: [] as number[] };
  const tputRuns = Math.max(2, Math.ceil(RUNS / 2));
  for (let i = 0; i < tputRuns; i++) {
    for (const iso of ['vm', 'container'] as const) {
      const id = docker(['run', '-d', `--isolation=${iso}`, 'busybox', 'sh', '-c', RECEIVER]).out.trim();
      const ip = docker(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', id]).out.trim();
      const ms = transfer(id, ip);
      docker(['rm', '-f', id]);
      tput[iso].push(MIB / (ms / 1000));
      process.stderr.write(`throughput ${i} ${iso}: ${(MIB / (ms / 1000)).toFixed(1)} MiB/s\n`);
    }
  }
  const conn = {
    vm: { connect: [] as number[], disconnect: [] as number[] },
    container: { connect: [] as number[], disconnect: [] as number[] },
  };
  if (docker(['network', 'create', '--subnet', '10.234.0.0/24', 'bench-second']).code !== 0) throw new Error('network create failed');
  const running = {
    vm: docker(['run', '-d', '--isolation=vm', 'busybox', 'sleep', '3600']).out.trim(),
    container: docker(['run', '-d', '--isolation=container', 'busybox', 'sleep', '3600']).out.trim(),
  };
  for (let i = 0; i < WARMUP + RUNS; i++) {
    for (const iso of ['vm', 'container'] as const) {
      const c = docker(['network', 'connect', 'bench-second', running[iso]]);
      const d = docker(['network', 'disconnect', 'bench-second', running[iso]]);
      if (c.code !== 0 || d.code !== 0) throw new Error(`connect/disconnect of ${iso} failed: ${c.err}${d.err}`);
      process.stderr.write(`connect ${i} ${iso}: ${c.ms.toFixed(0)} ms, disconnect ${d.ms.toFixed(0)} ms\n`);
      if (i >= WARMUP) {
        conn[iso].connect.push(c.ms);
        conn[iso].disconnect.push(d.ms);
      }
    }
  }
  docker(['rm', '-f', running.vm, running.container]);
  docker(['network', 'rm', 'bench-second']);

  const out = process.stdout;
  const f = (x: number) => `${x.toFixed(0).padStart(6)} ms`;
  out.write(`docker run --rm --isolation=vm busybox true (backend ${backend}), ${RUNS} runs each (after ${WARMUP} warm-up), alternating\n`);
  out.write('                          min      median         p95\n');
  const sb = summary(start.bridge);
  const sn = summary(start.none);
  out.write(`  default bridge     ${f(sb.min)}   ${f(sb.median)}   ${f(sb.p95)}\n`);
  out.write(`  --network none     ${f(sn.min)}   ${f(sn.median)}   ${f(sn.p95)}\n`);
  out.write(`  the NIC costs      median ${(sb.median - sn.median).toFixed(0)} ms (${((sb.median / sn.median - 1) * 100).toFixed(0)}%)\n`);
  out.write(`TCP throughput, ${MIB} MiB host -> container bridge address (busybox nc), ${tputRuns} runs each, MiB/s\n`);
  const g = (x: number) => x.toFixed(1).padStart(8);
  const tv = summary(tput.vm);
  const tc = summary(tput.container);
  out.write('                         min   median\n');
  out.write(`  --isolation=vm     ${g(tv.min)} ${g(tv.median)}\n`);
  out.write(`  --isolation=container ${g(tc.min)} ${g(tc.median)}\n`);
  out.write(`docker network connect / disconnect of a running container, ${RUNS} runs each, alternating (median)\n`);
  for (const verb of ['connect', 'disconnect'] as const) {
    const v = summary(conn.vm[verb]).median;
    const c = summary(conn.container[verb]).median;
    out.write(`  ${verb.padEnd(10)}  vm ${f(v)}   container ${f(c)}   vm/container ${(v / c).toFixed(2)}x\n`);
  }
} finally {
  await tvm.destroy();
  rmSync(work, { recursive: true, force: true });
}
