/**
 * docker-compose 1.29 (Debian's) against a real tvm daemon in its own network namespace: a
 * two-service project with a network, a named volume, depends_on and a published port, through
 * up -d, ps, logs, exec, the published port, service-to-service by name, and down -v; once with
 * both services in containers and once with web in a microVM (`isolation: vm`).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { startTestDaemon, missingRealParts, requireDocker, type TestDaemon } from '../../fixtures/daemon.js';
import { busyboxDockerArchive } from '../../fixtures/fake-images.js';
import { COMPOSE, composeProject } from '../../fixtures/compose-project.js';

describe('docker-compose 1.29 (two services, a network, a volume, a published port)', () => {
  let d: TestDaemon;
  let dir: string;
  const compose = (args: string[]) =>
    execa(COMPOSE, ['-p', 'mx', ...args], {
      cwd: dir,
      reject: false,
      env: { DOCKER_HOST: d.host, COMPOSE_INTERACTIVE_NO_CLI: '1' },
      timeout: 120_000,
    });
  const host = (cmd: string[]) => execa('nsenter', [`--net=/proc/${d.pid()}/ns/net`, ...cmd], { reject: false });

  beforeAll(async () => {
    requireDocker();
    if (!existsSync(COMPOSE)) throw new Error(`missing ${COMPOSE}: apt-get install docker-compose`);
    const missing = missingRealParts();
    if (missing.length > 0) throw new Error(`the real daemon needs parts that are missing: ${missing.join(', ')}`);
    d = await startTestDaemon({ network: true, daemonArgs: ['--bip', '10.221.0.1/24'] });
    dir = await mkdtemp(path.join(os.tmpdir(), 'tvm-net-compose-'));
    await writeFile(path.join(dir, 'busybox.tar'), await busyboxDockerArchive());
    expect((await d.docker(['load', '-i', path.join(dir, 'busybox.tar')])).exitCode).toBe(0);
  }, 120_000);
  afterAll(async () => {
    if (d) {
      await compose(['down', '-v', '-t', '1']);
      const ids = (await d.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await d.docker(['rm', '-f', ...ids]);
      await d.destroy();
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  // the same project with every service in a container, then with web in a microVM beside db
  // (a VM takes no named volume yet: db keeps the volume in both)
  it.each([
    ['container', undefined],
    ['vm', 'vm'],
  ])('web with --isolation=%s: up -d, ps, logs, exec, the published port, service names; down -v removes it all', async (_, iso) => {
    await writeFile(path.join(dir, 'docker-compose.yml'), composeProject(iso));
    // what an earlier variant left if it failed half-way (compose 1.29 cannot recreate over it)
    await compose(['down', '-v', '-t', '1']);
    const up = await compose(['up', '-d']);
    expect(up.exitCode, up.stderr).toBe(0);
    expect(up.stderr).toContain('Creating network "mx_back" with the default driver');
    expect(up.stderr).toContain('Creating volume "mx_data" with default driver');
    const ps = await compose(['ps']);
    expect(ps.exitCode, ps.stderr).toBe(0);
    expect(ps.stdout).toMatch(/mx_web_1 .* Up .*0\.0\.0\.0:18300->80\/tcp/);
    expect(ps.stdout).toMatch(/mx_db_1 .* Up/);
    let body = '';
    for (let i = 0; i < 100 && body !== 'stored-in-volume'; i++) {
      body = (await host(['curl', '-sS', '-m', '2', 'http://127.0.0.1:18300/'])).stdout.trim();
      if (body !== 'stored-in-volume') await new Promise((r) => setTimeout(r, 200));
    }
    // web fetched it from db by service name, through the network's DNS
    expect(body).toBe('stored-in-volume');
    const logs = await compose(['logs', '--no-color', 'web']);
    expect(logs.stdout).toContain('web ready');
    const ex = await compose(['exec', '-T', 'web', 'busybox', 'wget', '-qO-', 'http://db:7000/v']);
    expect([ex.exitCode, ex.stdout.trim()]).toEqual([0, 'stored-in-volume']);
    expect((await d.docker(['inspect', '-f', '{{.HostConfig.Isolation}}', 'mx_web_1'])).stdout.trim()).toBe(iso ?? 'container');
    const net = JSON.parse((await d.docker(['network', 'inspect', 'mx_back'])).stdout)[0];
    expect(net.Labels['com.docker.compose.network']).toBe('back');
    expect(Object.keys(net.Containers)).toHaveLength(2);
    const down = await compose(['down', '-v', '-t', '1']);
    expect(down.exitCode, down.stderr).toBe(0);
    expect((await d.docker(['ps', '-aq'])).stdout).toBe('');
    expect((await d.docker(['network', 'ls', '--format', '{{.Name}}'])).stdout.split('\n').sort()).toEqual(['bridge', 'host', 'none']);
    expect((await d.docker(['volume', 'ls', '-q'])).stdout).toBe('');
  });
});
