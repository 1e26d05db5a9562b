/**
 * `docker push` through tvm to Debian's docker-registry with htpasswd auth (on loopback): an
 * image built by the classic builder is pushed with the credentials of `docker login`
 * (compressed layers, Docker's messages), a second push finds its layers there, another
 * repository mounts them, --all-tags pushes each tag, and the image pulls back and runs.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
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
    d.docker(args, {
      env: { DOCKER_BUILDKIT: '0', DOCKER_CONFIG: path.join(tmp, 'docker-config') },
      ...(input !== undefined && { input }),
    });

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

  it('reports each layer as dockerd does: Preparing, Waiting beyond five uploads, Pushing with progressDetail, Pushed', async () => {
    // seven layers: two of them wait for one of the five upload slots
    const ctx = path.join(tmp, 'many');
    await mkdir(ctx, { recursive: true });
    await writeFile(
      path.join(ctx, 'Dockerfile'),
      ['FROM busybox', ...[1, 2, 3, 4, 5, 6].map((i) => `RUN head -c ${i * 3000} /dev/urandom > /f${i}`)].join('\n'),
    );
    const img = `${reg.host}/team/many:v1`;
    const b = await docker(['build', '-q', '-t', img, ctx]);
    expect(b.exitCode, b.stderr).toBe(0);
    // the raw stream, as the docker CLI reads it (POST /images/{name}/push with X-Registry-Auth)
    const auth = Buffer.from(JSON.stringify({ ...bob, serveraddress: reg.host })).toString('base64url');
    const raw = await execa(
      'curl',
      [
        '-sS',
        '--unix-socket',
        d.socket,
        '-X',
        'POST',
        '-H',
        `X-Registry-Auth: ${auth}`,
        `http://localhost/v1.41/images/${encodeURIComponent(`${reg.host}/team/many`)}/push?tag=v1`,
      ],
      { reject: false },
    );
    expect(raw.exitCode, raw.stderr).toBe(0);
    const msgs = raw.stdout
      .split('\n')
      .filter((l) => l.trim())
      .map(
        (l) =>
          JSON.parse(l) as {
            status?: string;
            id?: string;
            progress?: string;
            progressDetail?: { current?: number; total?: number };
            error?: string;
          },
      );
    expect(msgs.find((m) => m.error)).toBeUndefined();
    expect(msgs[0]!.status).toBe(`The push refers to repository [${reg.host}/team/many]`);
    const diffIds = JSON.parse((await docker(['inspect', '-f', '{{json .RootFS.Layers}}', img])).stdout) as string[];
    const ids = diffIds.map((l) => l.slice(7, 19)).reverse();
    // every layer Preparing first, the top one first; the two beyond five Waiting
    expect(msgs.slice(1, 8).map((m) => `${m.id} ${m.status}`)).toEqual(ids.map((i) => `${i} Preparing`));
    expect(msgs.slice(8, 10).map((m) => `${m.id} ${m.status}`)).toEqual(ids.slice(5).map((i) => `${i} Waiting`));
    for (const id of ids.slice(0, 6)) {
      // the new layers: Pushing up to the whole blob, then Pushed
      const mine = msgs.filter((m) => m.id === id).map((m) => m.status);
      expect(mine[0]).toBe('Preparing');
      expect(mine.at(-1)).toBe('Pushed');
      const pushing = msgs.filter((m) => m.id === id && m.status === 'Pushing');
      expect(pushing.length).toBeGreaterThan(0);
      const last = pushing.at(-1)!;
      expect(last.progressDetail!.current).toBe(last.progressDetail!.total);
      expect(last.progressDetail!.total).toBeGreaterThan(0);
      expect(last.progress).toMatch(/^\[={50}>\]  +\S+\/\S+$/);
    }
    const bottom = msgs.filter((m) => m.id === ids[6]).map((m) => m.status);
    expect(bottom.slice(0, 2)).toEqual(['Preparing', 'Waiting']);
    expect(bottom.at(-1)).toBe('Pushed');
    expect(msgs.some((m) => /^v1: digest: sha256:[0-9a-f]{64} size: \d+$/.test(m.status ?? ''))).toBe(true);
    // the docker CLI draws them (without a terminal: one line per message)
    const again = await docker(['push', img]);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stdout).toContain(`${ids[0]}: Layer already exists`);
  });
});
