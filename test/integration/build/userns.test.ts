/**
 * Building and committing under `tvm daemon --userns-remap=default`: the step containers run in
 * the user namespace, so what COPY writes and what RUN changes is owned by shifted host ids on
 * disk; the image layers must hold the container's ids (0, 1000), as with dockerd.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startDaemonWithBusybox, type TestDaemon } from '../../fixtures/daemon.js';

describe('docker build and commit with --userns-remap', () => {
  let d: TestDaemon;
  let tmp: string;
  const docker = (args: string[]) => d.docker(args, { env: { DOCKER_BUILDKIT: '0' } });

  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('these tests need root (user namespaces, overlay mounts)');
    d = await startDaemonWithBusybox({ daemonArgs: ['--userns-remap', 'default'] });
    tmp = await mkdtemp(path.join(os.tmpdir(), 'build-userns-'));
    await writeFile(path.join(tmp, 'f'), 'copied');
    await writeFile(
      path.join(tmp, 'Dockerfile'),
      'FROM busybox\nCOPY f /f\nCOPY --chown=1000:1000 f /app/f\nRUN touch /made && chown 1000:1000 /made\n',
    );
  });
  afterAll(async () => {
    await d?.destroy();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('layers hold container ids', async () => {
    const b = await docker(['build', '-t', 'build-userns:one', tmp]);
    expect(b.exitCode, b.stderr).toBe(0);
    const own = await docker(['run', '--rm', '--userns=host', 'build-userns:one', 'stat', '-c', '%n %u:%g', '/f', '/app/f', '/made']);
    expect(own.stdout).toBe('/f 0:0\n/app/f 1000:1000\n/made 1000:1000');
    expect(
      (await docker(['run', '--name', 'build-userns-c', 'build-userns:one', 'sh', '-c', 'echo x > /c && chown 1000 /c'])).exitCode,
    ).toBe(0);
    const c = await docker(['commit', 'build-userns-c', 'build-userns:committed']);
    expect(c.exitCode, c.stderr).toBe(0);
    const cown = await docker(['run', '--rm', '--userns=host', 'build-userns:committed', 'stat', '-c', '%u', '/c']);
    expect(cown.stdout).toBe('1000');
  });
});
