/**
 * `docker commit` of a VM container and `docker build --isolation vm` (every RUN in a microVM,
 * on this host's backend: tcg here, kvm where /dev/kvm exists): the VM's disk changes (read
 * offline, the list `docker diff` shows) become the layer, checked by running the result in
 * the other isolation.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startDaemonWithBusybox, type TestDaemon } from '../../fixtures/daemon.js';

describe('docker commit and docker build with --isolation=vm', () => {
  let d: TestDaemon;
  let tmp: string;
  const docker = (args: string[]) => d.docker(args, { env: { DOCKER_BUILDKIT: '0' } });
  const runIn = async (image: string, cmd: string) =>
    (await docker(['run', '--rm', '--pull', 'never', '--isolation=container', image, 'sh', '-c', cmd])).stdout;

  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('these tests need root');
    d = await startDaemonWithBusybox();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'build-vm-'));
  });
  afterAll(async () => {
    await d?.destroy();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('commits a VM container: added, deleted and hard-linked files', async () => {
    const r = await docker([
      'run',
      '--isolation=vm',
      '--name',
      'build-vm-c',
      'busybox',
      'sh',
      '-c',
      'echo hi > /x && rm /etc/group && mkdir -p /d/e && ln /x /d/hl',
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    const c = await docker(['commit', 'build-vm-c', 'build-vm:committed']);
    expect(c.exitCode, c.stderr).toBe(0);
    expect(await runIn('build-vm:committed', 'cat /x; test -e /etc/group || echo group-gone; stat -c %h /x; ls /d')).toBe(
      'hi\ngroup-gone\n2\ne\nhl',
    );
  });

  it('builds with every RUN in a VM', async () => {
    await writeFile(path.join(tmp, 'f'), 'copied');
    await writeFile(path.join(tmp, 'Dockerfile'), 'FROM busybox\nCOPY f /f\nRUN echo "in $(uname -n | head -c 0)vm" > /vm && cat /f\n');
    const b = await docker(['build', '--isolation', 'vm', '-t', 'build-vm:built', tmp]);
    expect(b.exitCode, b.stderr).toBe(0);
    expect(b.stdout).toContain('copied');
    expect(await runIn('build-vm:built', 'cat /vm /f')).toBe('in vm\ncopied');
    // the step containers are gone; only the first test's container is left
    expect((await docker(['ps', '-a', '--format', '{{.Names}}'])).stdout).toBe('build-vm-c');
  });
});
