/**
 * The compose project against tvm and against Debian's dockerd 20.10 (each daemon in a
 * network namespace of its own, with its own bridges and netfilter rules), through the same
 * docker-compose 1.29: every observation a user makes along `up -d` ... `down -v` must be the
 * same on both. Traffic stays on each namespace's loopback and bridges.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { DOCKER, startTestDaemon, missingRealParts, requireDocker, type TestDaemon } from '../../fixtures/daemon.js';
import { busyboxDockerArchive } from '../../fixtures/fake-images.js';
import { COMPOSE, composeProject } from '../../fixtures/compose-project.js';
import {
  DOCKERD,
  makeNetns,
  requireTools,
  startReferenceDockerd,
  unmountUnder,
  type ReferenceDockerd,
} from '../../../bench/lib/reference-dockerd.js';

/** compose's "Creating x ... done" lines, without its progress noise, in a stable order */
const steps = (stderr: string, verbs: RegExp) =>
  stderr
    .split('\n')
    .filter((l) => verbs.test(l))
    .map((l) => l.replace(/\s+\.\.\..*$/, '').trim())
    .sort();

describe('docker-compose 1.29: the same project, the same observations on tvm and on dockerd', () => {
  let tvm: TestDaemon;
  let ref: ReferenceDockerd | undefined;
  let work: string;

  beforeAll(async () => {
    requireDocker();
    requireTools([
      [DOCKERD, 'docker.io (the reference dockerd)'],
      [COMPOSE, 'docker-compose'],
    ]);
    const missing = missingRealParts();
    if (missing.length > 0) throw new Error(`the real daemon needs parts that are missing: ${missing.join(', ')}`);
    work = await mkdtemp(path.join(os.tmpdir(), 'tvm-compose-dockerd-'));
    await writeFile(path.join(work, 'docker-compose.yml'), composeProject());
    await writeFile(path.join(work, 'busybox.tar'), await busyboxDockerArchive());
    const refNetns = path.join(work, 'dockerd-netns');
    makeNetns(refNetns);
    tvm = await startTestDaemon({ network: true, daemonArgs: ['--bip', '10.236.0.1/24'] });
    ref = await startReferenceDockerd(work, 'tvmcomposecmp', { netns: refNetns, bip: '10.237.0.1/24' });
  }, 180_000);
  afterAll(async () => {
    await ref?.stop();
    await tvm?.destroy();
    if (work) {
      unmountUnder(work);
      await rm(work, { recursive: true, force: true });
    }
  });

  /** what a user sees along the project's life on the daemon at `host`, its namespace at `netns` */
  const observe = async (host: string, netns: string): Promise<Record<string, string>> => {
    const env = { DOCKER_HOST: host, DOCKER_CONFIG: path.join(work, 'cfg'), COMPOSE_INTERACTIVE_NO_CLI: '1' };
    const docker = async (args: string[]) => (await execa(DOCKER, args, { env, reject: false, timeout: 120_000 })).stdout.trim();
    const compose = (args: string[]) => execa(COMPOSE, ['-p', 'mx', ...args], { cwd: work, env, reject: false, timeout: 120_000 });
    expect(await execa(DOCKER, ['load', '-i', path.join(work, 'busybox.tar')], { env, reject: false })).toMatchObject({ exitCode: 0 });
    const o: Record<string, string> = {};
    const up = await compose(['up', '-d']);
    o['up'] = `${up.exitCode} ${steps(up.stderr, /Creating/).join(' | ')}`;
    o['ps'] = (await compose(['ps'])).stdout
      .split('\n')
      .slice(2)
      .filter(Boolean)
      .map((l) => l.replace(/\s{2,}/g, '  '))
      .join(' | ');
    let body = '';
    for (let i = 0; i < 100 && body !== 'stored-in-volume'; i++) {
      body = (
        await execa('nsenter', [`--net=${netns}`, 'curl', '-sS', '-m', '2', 'http://127.0.0.1:18300/'], { reject: false })
      ).stdout.trim();
      if (body !== 'stored-in-volume') await new Promise((r) => setTimeout(r, 200));
    }
    o['the published port'] = body;
    o['logs web'] = (await compose(['logs', '--no-color', 'web'])).stdout.includes('web ready') ? 'web ready' : 'no';
    const ex = await compose(['exec', '-T', 'web', 'busybox', 'wget', '-qO-', 'http://db:7000/v']);
    o['exec'] = `${ex.exitCode} ${ex.stdout.trim()}`;
    const net = JSON.parse(await docker(['network', 'inspect', 'mx_back']))[0];
    o['network'] = JSON.stringify({
      labels: net.Labels,
      subnet: net.IPAM.Config[0].Subnet,
      driver: net.Driver,
      members: Object.keys(net.Containers).length,
    });
    o['container labels'] = await docker(['inspect', '-f', '{{json .Config.Labels}}', 'mx_db_1']);
    o['volume'] = await docker(['volume', 'ls', '--format', '{{.Name}} {{.Driver}}']);
    const down = await compose(['down', '-v', '-t', '1']);
    o['down'] = `${down.exitCode} ${steps(down.stderr, /Removing|Stopping/).join(' | ')}`;
    o['left: containers'] = await docker(['ps', '-aq']);
    o['left: networks'] = (await docker(['network', 'ls', '--format', '{{.Name}}'])).split('\n').sort().join(' ');
    o['left: volumes'] = await docker(['volume', 'ls', '-q']);
    return o;
  };

  it('up -d, ps, the published port, logs, exec, inspect, down -v and what is left', async () => {
    const onTvm = await observe(tvm.host, path.join(path.dirname(tvm.dataRoot), 'netns'));
    const onDockerd = await observe(ref!.host, path.join(work, 'dockerd-netns'));
    expect(onTvm['the published port']).toBe('stored-in-volume');
    expect(onTvm).toEqual(onDockerd);
  }, 300_000);
});
