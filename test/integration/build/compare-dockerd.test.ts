/**
 * The same Dockerfiles built by tvm's classic builder and by Debian's dockerd legacy builder
 * (DOCKER_BUILDKIT=0 against each), compared: every file of the resulting images (type, mode,
 * owner, size, content, link target; not times), the number of layers, the history's
 * created_by lines (COPY hashes aside; HEALTHCHECK's %q of a struct included), and the run config. One dockerd for the whole file.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { extract } from 'tar-stream';
import { DOCKER, startDaemonWithBusybox, type TestDaemon } from '../../fixtures/daemon.js';
import { busyboxDockerArchive } from '../../fixtures/fake-images.js';
import { DOCKERD, requireTools, startReferenceDockerd, type ReferenceDockerd } from '../../../bench/lib/reference-dockerd.js';

/**
 * what each runtime adds to a container's filesystem, not part of an image (tvm's base disk is
 * an ext4 filesystem: its lost+found is the disk's, not the image's)
 */
const RUNTIME_PATHS = /^(\.dockerenv|dev(\/.*)?|proc|sys|etc\/(hosts|hostname|resolv\.conf|mtab)|lost\+found)$/;

interface Entry {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  content?: string;
  link?: string;
}

describe('tvm vs dockerd legacy builder: the same images', () => {
  let tvm: TestDaemon;
  let ref: ReferenceDockerd;
  let work: string;

  const docker = async (host: string, args: string[], input?: string) => {
    const r = await execa(DOCKER, args, {
      reject: false,
      env: { DOCKER_HOST: host, DOCKER_BUILDKIT: '0', DOCKER_CONFIG: path.join(work, 'cfg') },
      ...(input !== undefined && { input }),
      timeout: 180_000,
    });
    return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  };

  /** every file of an image, through docker create + export */
  const files = async (host: string, image: string): Promise<Map<string, Entry>> => {
    const c = await docker(host, ['create', image, 'true']);
    if (c.exitCode !== 0) throw new Error(`create on ${host}: ${c.stderr}`);
    const id = c.stdout.trim();
    try {
      const tar = await execa(DOCKER, ['export', id], {
        env: { DOCKER_HOST: host, DOCKER_CONFIG: path.join(work, 'cfg') },
        encoding: 'buffer',
        reject: false,
      });
      if (tar.exitCode !== 0) throw new Error(`export on ${host}: ${String(tar.stderr)}`);
      const out = new Map<string, Entry>();
      const ex = extract();
      const done = new Promise<void>((resolve, reject) => {
        ex.on('finish', resolve);
        ex.on('error', reject);
      });
      ex.on('entry', (h, stream, next) => {
        const name = h.name.replace(/^\.?\/+/, '').replace(/\/+$/, '');
        const hash = createHash('sha256');
        stream.on('data', (b: unknown) => void hash.update(b as Buffer));
        stream.on('end', () => {
          if (name !== '' && name !== '.' && !RUNTIME_PATHS.test(name)) {
            out.set(name, {
              // a symlink's mode means nothing on Linux (dockerd's overlay2 shows 0777, an ext4 copy what the tar said)
              type: h.type ?? 'file',
              mode: h.type === 'symlink' ? 0o777 : (h.mode ?? 0) & 0o7777,
              uid: h.uid ?? 0,
              gid: h.gid ?? 0,
              size: h.type === 'file' ? (h.size ?? 0) : 0,
              ...(h.type === 'file' && { content: hash.digest('hex') }),
              ...(h.linkname && { link: h.linkname }),
            });
          }
          next();
        });
      });
      ex.end(tar.stdout);
      await done;
      return out;
    } finally {
      await docker(host, ['rm', '-f', id]);
    }
  };

  const historyOf = async (host: string, image: string) =>
    (await docker(host, ['history', '--no-trunc', '--format', '{{.CreatedBy}}', image])).stdout
      .split('\n')
      .map((l) => l.replace(/(file|dir|multi):[0-9a-f]{64}/, '$1:<hash>').trimEnd());

  beforeAll(async () => {
    requireTools([
      [DOCKERD, 'docker.io'],
      ['/usr/sbin/runc', 'runc'],
      ['/usr/bin/containerd', 'containerd'],
    ]);
    if (process.getuid?.() !== 0) throw new Error('these tests need root (dockerd, overlay mounts)');
    work = await mkdtemp(path.join(os.tmpdir(), 'build-cmp-'));
    tvm = await startDaemonWithBusybox();
    ref = await startReferenceDockerd(work, `build-cmp-${process.pid}`);
    await writeFile(path.join(work, 'busybox.tar'), await busyboxDockerArchive());
    const l = await docker(ref.host, ['load', '-i', path.join(work, 'busybox.tar')]);
    if (l.exitCode !== 0) throw new Error(`dockerd: load failed: ${l.stderr}`);
  });
  afterAll(async () => {
    await tvm?.destroy();
    await ref?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('a multi-stage Dockerfile with COPY/ADD/RUN/WORKDIR/USER builds the same files, layers, history and config', async () => {
    const ctx = path.join(work, 'ctx');
    await mkdir(path.join(ctx, 'dir', 'sub'), { recursive: true });
    await writeFile(path.join(ctx, 'dir', 'one'), 'one\n');
    await writeFile(path.join(ctx, 'dir', 'sub', 'two'), 'two\n');
    await writeFile(path.join(ctx, 'a.txt'), 'a\n');
    await writeFile(path.join(ctx, 'b.txt'), 'b\n');
    await writeFile(path.join(ctx, 'ignored.log'), 'no\n');
    await writeFile(path.join(ctx, '.dockerignore'), '*.log\n');
    await symlink('a.txt', path.join(ctx, 'link-to-a'));
    await execa('tar', ['-czf', path.join(ctx, 'archive.tar.gz'), '-C', path.join(ctx, 'dir'), '.']);
    await writeFile(
      path.join(ctx, 'Dockerfile'),
      [
        'FROM busybox AS base',
        'ARG V=1',
        'ENV P=/opt/app LANG=C',
        'WORKDIR $P',
        'COPY dir/ ./dir/',
        'COPY *.txt link-to-a ./',
        'ADD archive.tar.gz /unpacked/',
        'RUN mkdir -p /var/data && echo "v=$V" > /var/data/v && rm /etc/group && ln -s /opt/app/a.txt /link && chmod 0600 /opt/app/a.txt',
        'COPY --chown=1000:1000 b.txt /home/app/',
        'FROM base',
        'RUN touch /newfile && rm -rf /opt/app/dir/sub && mkfifo /fifo 2>/dev/null; true',
        'COPY --from=base /opt/app/*.txt /opt/app/dir/[o]ne /globbed/',
        'HEALTHCHECK --interval=5m --timeout=3s --retries=3 CMD wget -q "http://localhost/" || exit 1',
        'HEALTHCHECK --start-period=1.5s CMD ["true"]',
        'HEALTHCHECK NONE',
        'LABEL k=v',
        'USER app',
        'EXPOSE 80',
        'CMD ["sh"]',
      ].join('\n'),
    );
    for (const host of [tvm.host, ref.host]) {
      const r = await docker(host, ['build', '--network', 'none', '-t', 'build-cmp:one', ctx]);
      expect(r.exitCode, `${host}: ${r.stderr}`).toBe(0);
    }
    const [a, b] = [await files(tvm.host, 'build-cmp:one'), await files(ref.host, 'build-cmp:one')];
    const diff: string[] = [];
    for (const [name, e] of b) {
      const mine = a.get(name);
      if (!mine) diff.push(`missing in tvm: ${name}`);
      else if (JSON.stringify(mine) !== JSON.stringify(e)) diff.push(`${name}: tvm ${JSON.stringify(mine)} dockerd ${JSON.stringify(e)}`);
    }
    for (const name of a.keys()) if (!b.has(name)) diff.push(`only in tvm: ${name}`);
    expect(diff).toEqual([]);

    const fmt =
      '{{len .RootFS.Layers}} {{json .Config.Env}} {{json .Config.Cmd}} {{.Config.WorkingDir}} {{.Config.User}} {{json .Config.Labels}} {{json .Config.ExposedPorts}}';
    const [ia, ib] = [
      await docker(tvm.host, ['inspect', '-f', fmt, 'build-cmp:one']),
      await docker(ref.host, ['inspect', '-f', fmt, 'build-cmp:one']),
    ];
    expect(ia.stdout).toBe(ib.stdout);
    expect(await historyOf(tvm.host, 'build-cmp:one')).toEqual((await historyOf(ref.host, 'build-cmp:one')).map((l) => l));
  });

  it('COPY --from with a pattern nothing matches: the same error', async () => {
    const ctx = path.join(work, 'glob-ctx');
    await mkdir(ctx, { recursive: true });
    await writeFile(path.join(ctx, 'Dockerfile'), 'FROM busybox AS a\nFROM busybox\nCOPY --from=a /etc/nothing-*.conf /x/\n');
    const err = async (host: string) => {
      const r = await docker(host, ['build', '--network', 'none', ctx]);
      return [r.exitCode, r.stderr.trim().split('\n').at(-1)];
    };
    const mine = await err(tvm.host);
    expect(mine).toEqual([1, 'COPY failed: no source files were specified']);
    expect(mine).toEqual(await err(ref.host));
  });

  it('rmi of an image with a dependent child: the same refusal by ID, the same untag by name', async () => {
    const ctx = path.join(work, 'rmi-ctx');
    await mkdir(ctx, { recursive: true });
    const outcome = async (host: string) => {
      await writeFile(path.join(ctx, 'Dockerfile'), 'FROM busybox\nRUN echo p > /p\n');
      expect((await docker(host, ['build', '-q', '--network', 'none', '-t', 'rmi-cmp:parent', ctx])).exitCode).toBe(0);
      await writeFile(path.join(ctx, 'Dockerfile'), 'FROM rmi-cmp:parent\nRUN echo c > /c\n');
      expect((await docker(host, ['build', '-q', '--network', 'none', '-t', 'rmi-cmp:child', ctx])).exitCode).toBe(0);
      const id = (await docker(host, ['inspect', '-f', '{{.Id}}', 'rmi-cmp:parent'])).stdout.trim();
      const norm = (r: { exitCode: number; stdout: string; stderr: string }) =>
        `${r.exitCode} ${r.stdout.trim()} ${r.stderr.trim()}`.replaceAll(id.slice(7, 19), '<id>');
      return [
        norm(await docker(host, ['rmi', id])),
        norm(await docker(host, ['rmi', '-f', id])),
        norm(await docker(host, ['rmi', 'rmi-cmp:parent'])),
        (await docker(host, ['inspect', '-f', '{{.Id}}', id])).stdout.trim() === id,
      ];
    };
    const mine = await outcome(tvm.host);
    expect(mine[0]).toContain('image has dependent child images');
    expect(mine).toEqual(await outcome(ref.host));
  });
});
