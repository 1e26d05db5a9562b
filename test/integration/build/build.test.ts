/**
 * `DOCKER_BUILDKIT=0 docker build` (the classic builder protocol) through the real docker CLI
 * against a real tvm daemon (--isolation=container): steps and their output, the layer cache
 * (also after a daemon restart), multi-stage builds, COPY/ADD rules, .dockerignore, failures
 * that leave nothing tagged and no container behind.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdir, mkdtemp, rm, writeFile, symlink, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { startDaemonWithBusybox, type TestDaemon, type DockerResult } from '../../fixtures/daemon.js';

describe('docker build, classic builder (--isolation=container)', () => {
  let d: TestDaemon;
  let tmp: string;
  let n = 0;
  const docker = (args: string[], input?: string) => d.docker(args, { env: { DOCKER_BUILDKIT: '0' }, ...(input !== undefined && { input }) });
  /** a fresh context dir with these files */
  const context = async (files: Record<string, string>): Promise<string> => {
    const dir = path.join(tmp, `ctx${n++}`);
    for (const [name, content] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
      await writeFile(path.join(dir, name), content);
    }
    return dir;
  };
  const build = (dir: string, ...args: string[]): Promise<DockerResult> => docker(['build', ...args, dir]);
  const runIn = async (image: string, cmd: string) => (await docker(['run', '--rm', image, 'sh', '-c', cmd])).stdout;

  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('these tests need root (overlay mounts, namespaces)');
    d = await startDaemonWithBusybox();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'build-test-'));
  });
  afterAll(async () => {
    await d?.destroy();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('builds a Dockerfile: steps, RUN output, config, history, cache', async () => {
    const dir = await context({
      Dockerfile: [
        'FROM busybox',
        'ARG GREETING=hello',
        'ENV APP=/app \\',
        '    MODE="prod mode"',
        'WORKDIR $APP',
        'COPY hello.txt ./',
        'RUN echo "$GREETING from RUN" && cat hello.txt > copied.txt',
        'LABEL org.test=yes',
        'EXPOSE 8080/tcp',
        'CMD ["cat", "copied.txt"]',
      ].join('\n'),
      'hello.txt': 'hi there\n',
    });
    const r = await build(dir, '-t', 'build-test:one');
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain('Step 1/9 : FROM busybox');
    expect(r.stdout).toContain('Step 6/9 : RUN echo "$GREETING from RUN" && cat hello.txt > copied.txt');
    expect(r.stdout).toContain('hello from RUN');
    expect(r.stdout).toMatch(/Successfully built [0-9a-f]{12}\nSuccessfully tagged build-test:one:latest|Successfully tagged build-test:one/);
    expect(await runIn('build-test:one', 'pwd; cat copied.txt; echo "$MODE"')).toBe('/app\nhi there\nprod mode');
    expect((await docker(['run', '--rm', 'build-test:one'])).stdout).toBe('hi there');
    const cfg = await docker(['inspect', '-f', '{{json .Config.Labels}} {{json .Config.ExposedPorts}} {{.Config.WorkingDir}}', 'build-test:one']);
    expect(cfg.stdout).toBe('{"org.test":"yes"} {"8080/tcp":{}} /app');
    const hist = await docker(['history', '--no-trunc', '--format', '{{.CreatedBy}}', 'build-test:one']);
    const rows = hist.stdout.split('\n');
    expect(rows[0]).toBe('/bin/sh -c #(nop)  CMD ["cat" "copied.txt"]');
    expect(rows).toContain('|1 GREETING=hello /bin/sh -c echo "$GREETING from RUN" && cat hello.txt > copied.txt');
    expect(rows.some((x) => /^\/bin\/sh -c #\(nop\) COPY file:[0-9a-f]{64} in \.\/ ?$/.test(x)), rows.join("\n")).toBe(true);
    // no intermediate container is left
    expect((await docker(['ps', '-aq'])).stdout).toBe('');

    // the same build again: every step from the cache, same image
    const again = await build(dir, '-t', 'build-test:one');
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stdout.match(/Using cache/g)?.length).toBe(8);
    expect(again.stdout).not.toContain('hello from RUN');
    const ids = async () => (await docker(['inspect', '-f', '{{.Id}}', 'build-test:one'])).stdout;
    const first = await ids();
    // a changed COPY source: the steps from the COPY on run again
    await writeFile(path.join(dir, 'hello.txt'), 'changed\n');
    const changed = await build(dir, '-t', 'build-test:one');
    expect(changed.stdout.match(/Using cache/g)?.length).toBe(3);
    expect(changed.stdout).toContain('hello from RUN');
    expect(await ids()).not.toBe(first);
    // --no-cache runs everything
    const nocache = await build(dir, '--no-cache', '-q');
    expect(nocache.exitCode).toBe(0);
    expect(nocache.stdout).toMatch(/^sha256:[0-9a-f]{64}$/);
  });
});
