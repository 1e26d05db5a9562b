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
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { startTestDaemon, missingRealParts, DOCKER } from '../test/fixtures/daemon.js';
import { busyboxDockerArchive } from '../test/fixtures/fake-images.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? Number(args[i + 1]) : dflt;
};
const RUNS = opt('runs', 15);
const WARMUP = opt('warmup', 2);

for (const [tool, pkg] of [[DOCKER, 'docker-ce-cli (the docker CLI)'], ['/usr/sbin/dockerd', 'docker.io'], ['/usr/sbin/runc', 'runc']] as const) {
  if (!existsSync(tool)) throw new Error(`missing ${tool}: install ${pkg}`);
}
const missing = missingRealParts();
if (missing.length > 0) throw new Error(`tvm parts missing: ${missing.join(', ')}`);

const work = mkdtempSync(path.join(tmpdir(), 'tvm-bench-run-'));
const dockerSock = path.join(work, 'docker.sock');

function docker(host: string, cmd: string[], input?: Buffer): { ms: number; code: number; out: string; err: string } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(DOCKER, cmd, { env: { ...process.env, DOCKER_HOST: host, DOCKER_CONFIG: path.join(work, 'cfg') }, ...(input && { input }), encoding: 'utf8' });
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

function answers(sock: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(sock);
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

async function startDockerd(): Promise<ChildProcess> {
  const d = spawn('/usr/sbin/dockerd', [
    '-H', `unix://${dockerSock}`, '--data-root', path.join(work, 'docker-data'), '--exec-root', path.join(work, 'docker-exec'),
    '--pidfile', path.join(work, 'docker.pid'), '--bridge=none', '--iptables=false', '--ip6tables=false', '--ip-masq=false',
    '--userland-proxy=false', '--containerd-namespace', 'tvmbench', '--containerd-plugins-namespace', 'tvmbench-plugins',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  d.stderr!.on('data', (c: Buffer) => (log += c.toString()));
  for (let i = 0; i < 600; i++) {
    if (d.exitCode !== null) throw new Error(`dockerd exited:\n${log.slice(-3000)}`);
    if ((await answers(dockerSock)) && docker(`unix://${dockerSock}`, ['version']).code === 0) return d;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`dockerd did not answer within 60 s:\n${log.slice(-3000)}`);
}

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]!;
  return { min: s[0]!, median: q(0.5), p95: q(0.95) };
}

const tvm = await startTestDaemon();
let dockerd: ChildProcess | undefined;
try {
  dockerd = await startDockerd();
  const archive = await busyboxDockerArchive();
  writeFileSync(path.join(work, 'busybox.tar'), archive);
  const hosts = { tvm: tvm.host, docker: `unix://${dockerSock}` };
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
  const t = stats(times.tvm);
  const d = stats(times.docker);
  const f = (x: number) => `${x.toFixed(0).padStart(6)} ms`;
  process.stdout.write(`docker run --rm busybox true, ${RUNS} runs each (after ${WARMUP} warm-up), alternating\n`);
  process.stdout.write(`                    min      median         p95\n`);
  process.stdout.write(`tvm (container) ${f(t.min)}   ${f(t.median)}   ${f(t.p95)}\n`);
  process.stdout.write(`dockerd + runc  ${f(d.min)}   ${f(d.median)}   ${f(d.p95)}\n`);
  process.stdout.write(`ratio tvm/docker  min ${(t.min / d.min).toFixed(2)}x  median ${(t.median / d.median).toFixed(2)}x  p95 ${(t.p95 / d.p95).toFixed(2)}x  (goal <= 1.0x)\n`);
} finally {
  if (dockerd && dockerd.exitCode === null) {
    const done = new Promise((r) => dockerd!.once('exit', r));
    dockerd.kill('SIGTERM');
    await Promise.race([done, new Promise((r) => setTimeout(r, 15_000))]);
    if (dockerd.exitCode === null) dockerd.kill('SIGKILL');
  }
  await tvm.destroy();
  spawnSync('umount', ['-R', path.join(work, 'docker-data')], { stdio: 'ignore' });
  rmSync(work, { recursive: true, force: true });
}
