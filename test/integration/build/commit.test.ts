/**
 * `docker commit` through the real docker CLI against a real tvm daemon (--isolation=container):
 * the writable layer (added, changed and deleted files) becomes a layer over the image, the
 * --change/-m/-a options land in the config and history, a running container is paused for
 * the copy and keeps running, and bad input leaves no image behind.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { startDaemonWithBusybox, type TestDaemon } from '../../fixtures/daemon.js';

describe('docker commit (--isolation=container)', () => {
  let d: TestDaemon;
  const docker = (args: string[]) => d.docker(args);
  const imageCount = async () => (await docker(['images', '-q', '--no-trunc'])).stdout.split('\n').filter(Boolean).length;

  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('these tests need root (overlay mounts, namespaces)');
    d = await startDaemonWithBusybox();
  });
  afterAll(async () => {
    await d?.destroy();
  });

  it('commits added, changed and deleted files with --change, -m and -a', async () => {
    const r = await docker([
      'run',
      '--name',
      'build-commit-a',
      'busybox',
      'sh',
      '-c',
      'echo hello > /greeting && mkdir -p /data/sub && echo x > /data/sub/f && ln /greeting /hardlink && echo changed >> /etc/passwd && rm /etc/group',
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    const c = await docker([
      'commit',
      '-c',
      'CMD ["cat", "/greeting"]',
      '-c',
      'ENV STAGE=committed',
      '-m',
      'my message',
      '-a',
      'Jane <j@x>',
      'build-commit-a',
      'build-commit:v1',
    ]);
    expect(c.exitCode, c.stderr).toBe(0);
    expect(c.stdout).toMatch(/^sha256:[0-9a-f]{64}$/);

    const run = await docker(['run', '--rm', 'build-commit:v1']);
    expect([run.exitCode, run.stdout]).toEqual([0, 'hello']);
    const files = await docker([
      'run',
      '--rm',
      'build-commit:v1',
      'sh',
      '-c',
      'cat /data/sub/f; tail -n 1 /etc/passwd; test -e /etc/group && echo group-there || echo group-gone; stat -c %h /greeting; echo $STAGE',
    ]);
    expect(files.stdout).toBe('x\nchanged\ngroup-gone\n2\ncommitted');

    const inspect = await docker(['inspect', '-f', '{{.Author}}|{{json .Config.Cmd}}|{{len .RootFS.Layers}}', 'build-commit:v1']);
    expect(inspect.stdout).toBe('Jane <j@x>|["cat","/greeting"]|2');
    const hist = await docker(['history', '--no-trunc', '--format', '{{.CreatedBy}}|{{.Comment}}', 'build-commit:v1']);
    expect(hist.stdout.split('\n')[0]).toMatch(/^sh -c echo hello > \/greeting.*\|my message$/);
  });

  it('a container without changes commits an empty layer entry; the image is the parent plus config', async () => {
    expect((await docker(['create', '--name', 'build-commit-b', 'busybox', 'true'])).exitCode).toBe(0);
    const c = await docker(['commit', 'build-commit-b']);
    expect(c.exitCode, c.stderr).toBe(0);
    const layers = await docker(['inspect', '-f', '{{len .RootFS.Layers}}', c.stdout]);
    expect(layers.stdout).toBe('1');
    const hist = await docker(['history', '--format', '{{.Size}}', c.stdout]);
    expect(hist.stdout.split('\n')[0]).toBe('0B');
  });

  it('pauses a running container for the copy and leaves it running', async () => {
    const r = await docker(['run', '-d', '--name', 'build-commit-c', 'busybox', 'sh', '-c', 'echo live > /live; sleep 300']);
    expect(r.exitCode, r.stderr).toBe(0);
    for (let i = 0; i < 50 && (await docker(['exec', 'build-commit-c', 'cat', '/live'])).stdout !== 'live'; i++)
      await new Promise((res) => setTimeout(res, 100));
    const c = await docker(['commit', 'build-commit-c', 'build-commit:live']);
    expect(c.exitCode, c.stderr).toBe(0);
    expect((await docker(['inspect', '-f', '{{.State.Status}}', 'build-commit-c'])).stdout).toBe('running');
    expect((await docker(['run', '--rm', 'build-commit:live', 'cat', '/live'])).stdout).toBe('live');
    const noPause = await docker(['commit', '--pause=false', 'build-commit-c']);
    expect(noPause.exitCode, noPause.stderr).toBe(0);
    await docker(['rm', '-f', 'build-commit-c']);
  });

  it('bad input: no such container, bad change, bad reference; no image is left', async () => {
    const before = await imageCount();
    const missing = await docker(['commit', 'build-commit-nope']);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toContain('No such container: build-commit-nope');
    const badChange = await docker(['commit', '-c', 'RUN echo hi', 'build-commit-a']);
    expect(badChange.exitCode).toBe(1);
    expect(badChange.stderr).toMatch(/RUN is not supported/);
    const badRef = await docker(['commit', 'build-commit-a', 'Build-Commit']);
    expect(badRef.exitCode).toBe(1);
    expect(badRef.stderr).toMatch(/must be lowercase/);
    expect(await imageCount()).toBe(before);
  });
});
