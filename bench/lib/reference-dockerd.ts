/**
 * The reference for benchmarks through the docker CLI: Debian's docker.io dockerd (+ containerd
 * + runc) on its own socket, data root and exec root under `work`, with no bridge or iptables,
 * started and stopped by the benchmark. Plus the timed `docker` call both sides use.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { DOCKER } from '../../test/fixtures/daemon.js';

export const DOCKERD = '/usr/sbin/dockerd';

export interface TimedRun {
  ms: number;
  code: number;
  out: string;
  err: string;
}

/** Fails naming the package of the first tool that is missing. */
export function requireTools(tools: readonly (readonly [string, string])[]): void {
  for (const [tool, pkg] of tools) if (!existsSync(tool)) throw new Error(`missing ${tool}: install ${pkg}`);
}

/** One docker CLI call against `host`, timed end to end (the CLI's own start included). */
export function timedDocker(host: string, configDir: string, cmd: string[], input?: Buffer, timeoutMs?: number): TimedRun {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(DOCKER, cmd, {
    env: { ...process.env, DOCKER_HOST: host, DOCKER_CONFIG: configDir },
    ...(input && { input }),
    ...(timeoutMs !== undefined && { timeout: timeoutMs }),
    encoding: 'utf8',
  });
  // a call that hangs (past timeoutMs) fails the benchmark instead of stalling it
  if (r.error) throw new Error(`docker ${cmd.join(' ')} against ${host}: ${r.error.message}`);
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

function answers(sock: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(sock);
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

export interface ReferenceDockerd {
  host: string;
  stop(): Promise<void>;
}

/**
 * Starts dockerd under `work` with its own containerd namespace; resolves once it answers.
 * `network`: dockerd's own networking (default bridge at `bip`, iptables) inside the network
 * namespace bound at `netns`, so nothing touches the host's; `--userland-proxy=false` (published
 * ports by DNAT, loopback included, as tvm does them: in a namespace, docker-proxy's IPv6
 * listener hung dockerd's `run -p` here)
 */
export async function startReferenceDockerd(
  work: string,
  namespace: string,
  network?: { netns: string; bip: string },
): Promise<ReferenceDockerd> {
  const sock = path.join(work, 'docker.sock');
  const host = `unix://${sock}`;
  const netArgs = network
    ? ['--bip', network.bip, '--userland-proxy=false', '--ip6tables=false']
    : ['--bridge=none', '--iptables=false', '--ip6tables=false', '--ip-masq=false', '--userland-proxy=false'];
  const argv = [
    '-H',
    host,
    '--data-root',
    path.join(work, 'docker-data'),
    '--exec-root',
    path.join(work, 'docker-exec'),
    '--pidfile',
    path.join(work, 'docker.pid'),
    ...netArgs,
    '--containerd-namespace',
    namespace,
    '--containerd-plugins-namespace',
    `${namespace}-plugins`,
  ];
  const d: ChildProcess = network
    ? spawn('nsenter', [`--net=${network.netns}`, DOCKERD, ...argv], { stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn(DOCKERD, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  d.stderr!.on('data', (c: Buffer) => (log += c.toString()));
  const stop = async () => {
    if (d.exitCode !== null) return;
    const done = new Promise((r) => d.once('exit', r));
    d.kill('SIGTERM');
    await Promise.race([done, new Promise((r) => setTimeout(r, 15_000))]);
    if (d.exitCode === null) d.kill('SIGKILL');
  };
  for (let i = 0; i < 600; i++) {
    if (d.exitCode !== null) throw new Error(`dockerd exited:\n${log.slice(-3000)}`);
    if ((await answers(sock)) && timedDocker(host, path.join(work, 'cfg'), ['version']).code === 0) return { host, stop };
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`dockerd did not answer within 60 s:\n${log.slice(-3000)}`);
}

/** A network namespace bound at `file` with its lo up, for a reference dockerd of its own. */
export function makeNetns(file: string): void {
  writeFileSync(file, '');
  const mk = spawnSync('unshare', [`--net=${file}`, 'ip', 'link', 'set', 'lo', 'up'], { encoding: 'utf8' });
  if (mk.status !== 0) throw new Error(`making a network namespace at ${file}: ${mk.stderr}`);
}

/** Unmounts what a reference dockerd leaves under `work` (its data root's mounts, netns/default, the namespace file), deepest first. */
export function unmountUnder(work: string): void {
  const mounts = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter((m) => m.startsWith(`${work}/`));
  for (const m of mounts.sort((a, b) => b.length - a.length)) spawnSync('umount', [m], { stdio: 'ignore' });
}
