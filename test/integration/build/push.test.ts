/**
 * `docker push` through tvm to Debian's docker-registry with htpasswd auth (on loopback): an
 * image built by the classic builder is pushed with the credentials of `docker login`
 * (compressed layers, Docker's messages), a second push finds its layers there, another
 * repository mounts them, --all-tags pushes each tag, and the image pulls back and runs.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startRegistry, type RunningRegistry } from '../../fixtures/registry.js';
import { startDaemonWithBusybox, type TestDaemon } from '../../fixtures/daemon.js';

const bob = { username: 'bob', password: 'builder pass' };

describe('docker push to a private registry through tvm', () => {
  let reg: RunningRegistry;
  let d: TestDaemon;
  let tmp: string;
  const docker = (args: string[], input?: string) =>
    d.docker(args, { env: { DOCKER_BUILDKIT: '0', DOCKER_CONFIG: path.join(tmp, 'docker-config') }, ...(input !== undefined && { input }) });

  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('these tests need root (overlay mounts, namespaces)');
    reg = await startRegistry({ auth: { kind: 'htpasswd', users: [bob] } });
    d = await startDaemonWithBusybox();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'build-push-'));
    await writeFile(path.join(tmp, 'Dockerfile'), 'FROM busybox\nCOPY msg /msg\nRUN echo built >> /msg\nCMD ["cat", "/msg"]\n');
    await writeFile(path.join(tmp, 'msg'), 'pushed image\n');
  });
  afterAll(async () => {
    await d?.destroy();
    await reg?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('refuses a push without credentials and an image that is not here', async () => {
    const img = `${reg.host}/team/app:v1`;
    expect((await docker(['build', '-q', '-t', img, tmp])).exitCode).toBe(0);
    const anon = await docker(['push', img]);
    expect(anon.exitCode).not.toBe(0);
    expect(anon.stderr).toMatch(/no basic auth credentials|unauthorized/);
    const missing = await docker(['push', `${reg.host}/team/nothing:v9`]);
    expect(missing.exitCode).not.toBe(0);
    expect(missing.stderr).toContain(`An image does not exist locally with the tag: ${reg.host}/team/nothing`);
  });

  it('pushes with the login, finds its layers the second time, mounts them into another repository, pulls back', async () => {
    const login = await docker(['login', '-u', bob.username, '--password-stdin', reg.host], `${bob.password}\n`);
    expect(login.exitCode, login.stderr).toBe(0);
    const img = `${reg.host}/team/app:v1`;
    const push = await docker(['push', img]);
    expect(push.exitCode, push.stderr).toBe(0);
    expect(push.stdout).toContain(`The push refers to repository [${reg.host}/team/app]`);
    expect(push.stdout).toContain('Pushed');
    const digest = /v1: digest: (sha256:[0-9a-f]{64}) size: \d+/.exec(push.stdout)?.[1];
    expect(digest).toBeDefined();

    const again = await docker(['push', img]);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stdout).toContain('Layer already exists');
    expect(again.stdout).not.toContain('Pushed');
    expect(again.stdout).toContain(`v1: digest: ${digest}`);

    const other = `${reg.host}/other/app:v1`;
    expect((await docker(['tag', img, other])).exitCode).toBe(0);
    const mounted = await docker(['push', other]);
    expect(mounted.exitCode, mounted.stderr).toBe(0);
    expect(mounted.stdout).toContain('Mounted from team/app');

    expect((await docker(['tag', img, `${reg.host}/team/app:v2`])).exitCode).toBe(0);
    const all = await docker(['push', '--all-tags', `${reg.host}/team/app`]);
    expect(all.exitCode, all.stderr).toBe(0);
    expect(all.stdout).toMatch(/v1: digest: sha256:[0-9a-f]{64}[\s\S]*v2: digest: sha256:[0-9a-f]{64}/);

    // gone here, back from the registry
    expect((await docker(['rmi', img, other, `${reg.host}/team/app:v2`])).exitCode).toBe(0);
    const pull = await docker(['pull', img]);
    expect(pull.exitCode, pull.stderr).toBe(0);
    expect(pull.stdout).toContain(`Digest: ${digest}`);
    const run = await docker(['run', '--rm', img]);
    expect([run.exitCode, run.stdout]).toEqual([0, 'pushed image\nbuilt']);
  });
});
