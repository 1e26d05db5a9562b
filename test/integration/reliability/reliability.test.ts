/**
 * The reliability suite (issue 16): fault injection against one real `tvm daemon` driven by the
 * docker CLI and raw API calls. Each case names the item it guards.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { execa } from 'execa';
import { startDaemonWithBusybox, type TestDaemon } from '../../fixtures/daemon.js';
import { busyboxDockerArchive } from '../../fixtures/fake-images.js';
import { fdCount, loopsOver, mountsUnder, request, requestAndHangUp } from './helpers.js';
import { until } from '../../fixtures/wait.js';

describe('reliability (real daemon, --isolation=container)', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await startDaemonWithBusybox();
  });
  afterAll(async () => {
    if (!d) return;
    if (process.env.TVM_REL_DEBUG) process.stderr.write(d.logs());
    await d.destroy();
    // a failed run of the loop-device case must not leave its device attached
    for (const dev of loopsOver(d.dataRoot)) await execa('losetup', ['-d', dev], { reject: false });
  });
  const ok = async (args: string[]) => {
    const r = await d.docker(args);
    expect(r.exitCode, `docker ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout.trim();
  };

  // Item 1: docker logs of ~125k+ lines answered 200 with 0 bytes (also --tail 1).
  it('docker logs of 130k lines, whole and --tail 1', async () => {
    const id = await ok(['run', '-d', 'busybox', 'seq', '1', '130000']);
    await ok(['wait', id]);
    const all = await execa('sh', ['-c', `docker logs ${id} | wc -l`], { env: { DOCKER_HOST: d.host } });
    expect(all.stdout.trim()).toBe('130000');
    expect(await ok(['logs', '--tail', '1', id])).toBe('130000');
    await ok(['rm', id]);
  });

  // Item 2: a copy whose reader goes away early must thaw the container and leak no fd.
  it('cp/export cut short thaws a running container and leaks no fd', async () => {
    const id = await ok(['run', '-d', '--name', 'rel-cp', 'busybox', 'sleep', '1000']);
    const pid = d.pid()!;
    // warm up: the first call opens the supervisor connection the daemon keeps
    await ok(['exec', id, 'true']);
    const before = fdCount(pid);
    for (let i = 0; i < 6; i++) {
      const url = i % 2 === 0 ? `/containers/${id}/archive?path=/bin` : `/containers/${id}/export`;
      const r = await requestAndHangUp(d.socket, url, 1000);
      expect(r.status).toBe(200);
    }
    // /proc/self (a link the daemon cannot follow into the container): answered, still thawed
    const self = await request(d.socket, 'GET', `/containers/${id}/archive?path=/proc/self`);
    expect([200, 400, 404]).toContain(self.status);
    expect(self.body.toString()).not.toContain(d.execRoot);
    expect(self.body.toString()).not.toMatch(/\/proc\/\d+\/root/);
    await until('the container to be thawed', async () => (await d.docker(['exec', id, 'true'])).exitCode === 0);
    await ok(['pause', id]);
    await ok(['unpause', id]);
    await until('the daemon to close the copies fds', () => fdCount(pid) <= before + 1);
    expect(await ok(['inspect', '-f', '{{.State.Status}}', id])).toBe('running');
    await ok(['rm', '-f', id]);
  });

  // Item 2: the same on a stopped container leaked the overlay mount, which pinned the base disk.
  it('cp/export cut short on a stopped container unmounts its view', async () => {
    const id = await ok(['create', '--name', 'rel-cp-stopped', 'busybox', 'true']);
    for (let i = 0; i < 3; i++) {
      const r = await requestAndHangUp(d.socket, i === 0 ? `/containers/${id}/export` : `/containers/${id}/archive?path=/bin`, 1000);
      expect(r.status).toBe(200);
    }
    const missing = await request(d.socket, 'GET', `/containers/${id}/archive?path=/nope`);
    expect(missing.status).toBe(404);
    await until('the copy views to be unmounted', () => mountsUnder(`${d.execRoot}/tmp`).length === 0);
    await ok(['rm', '-f', id]);
    await until('the base disk to be unmounted', () => mountsUnder(`${d.execRoot}/base`).length === 0);
  });

  // Item 3: rmi deletes the image's base disk; a daemon start reclaims orphaned blobs and disks.
  it('rmi deletes the base disk; daemon start collects orphaned blobs and disks', async () => {
    const archive = path.join(path.dirname(d.dataRoot), 'rel-rmi.tar');
    await writeFile(archive, await busyboxDockerArchive('rel-rmi:1', { Labels: { rel: 'rmi' } }));
    await ok(['load', '-i', archive]);
    const id = (await ok(['image', 'inspect', '-f', '{{.Id}}', 'rel-rmi:1'])).replace('sha256:', '');
    await ok(['run', '--rm', 'rel-rmi:1', 'true']);
    const baseDir = path.join(d.dataRoot, 'disks', 'base');
    expect(existsSync(path.join(baseDir, `${id}.ext4`))).toBe(true);
    await until('the base disk to be unmounted', () => mountsUnder(`${d.execRoot}/base`).every((m) => !m.endsWith(id)));
    await ok(['rmi', 'rel-rmi:1']);
    expect(readdirSync(baseDir).filter((n) => n.includes(id))).toEqual([]);

    // What a load or pull interrupted by a crash leaves: a blob no image records, a base disk
    // of an image that is gone, a build's temp file.
    const body = Buffer.from('rel orphan blob');
    const hex = createHash('sha256').update(body).digest('hex');
    const blobDir = path.join(d.dataRoot, 'blobs', 'sha256');
    await mkdir(blobDir, { recursive: true });
    await writeFile(path.join(blobDir, hex), body);
    await writeFile(path.join(baseDir, `${'e'.repeat(64)}.ext4`), 'x');
    await writeFile(path.join(baseDir, `.${'e'.repeat(64)}.ext4.abc.tmp`), 'x');
    const before = readdirSync(blobDir).length;
    await d.stop();
    await d.start();
    expect(existsSync(path.join(blobDir, hex))).toBe(false);
    expect(readdirSync(blobDir).length).toBe(before - 1);
    expect(readdirSync(baseDir).filter((n) => n.includes('eeee'))).toEqual([]);
    // busybox (still an image) keeps its blobs and runs
    expect(await ok(['run', '--rm', 'busybox', 'echo', 'still'])).toBe('still');
  });

  // Item 4: a daemon SIGKILLed during `docker rm -f` of many containers left the base disk
  // mounted and its loop device attached; the next start releases what no container holds.
  it('daemon start releases base mounts, loop devices and copy views nothing holds', async () => {
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push(await ok(['create', 'busybox', 'true']));
    const rm = d.docker(['rm', '-f', ...ids]);
    await new Promise((r) => setTimeout(r, 150));
    d.kill('SIGKILL');
    await rm;
    await d.start();
    const left = (await ok(['ps', '-aq'])).split('\n').filter(Boolean);
    if (left.length > 0) await ok(['rm', '-f', ...left]);
    await until('the base mount to go', () => mountsUnder(`${d.execRoot}/base`).length === 0);

    // Deterministic leftovers of the same kind: the base disk mounted with no container, its
    // loop device attached with nothing mounted, a copy view still mounted.
    const id = (await ok(['image', 'inspect', '-f', '{{.Id}}', 'busybox'])).replace('sha256:', '');
    const disk = path.join(d.dataRoot, 'disks', 'base', `${id}.ext4`);
    expect(existsSync(disk)).toBe(true);
    await d.stop();
    const mp = path.join(d.execRoot, 'base', id);
    await mkdir(mp, { recursive: true });
    await execa('mount', ['-t', 'ext4', '-o', 'loop,ro,noload', disk, mp]);
    const loose = (await execa('losetup', ['-f', '--show', '-r', disk])).stdout.trim();
    const view = path.join(d.execRoot, 'tmp', 'cp-rel1');
    await mkdir(view, { recursive: true });
    await execa('mount', ['-t', 'tmpfs', 'rel-view', view]);
    expect(loopsOver(path.dirname(disk)).length).toBe(2);
    await d.start();
    expect(mountsUnder(d.execRoot)).toEqual([]);
    expect(loopsOver(path.dirname(disk))).toEqual([]);
    expect(existsSync(view)).toBe(false);
    expect(d.logs()).toContain(`released loop device ${loose}`);
    expect(await ok(['run', '--rm', 'busybox', 'echo', 'ok'])).toBe('ok');
  });

  // Item 6: a bad archive got no HTTP response (the request's socket was destroyed mid-upload);
  // dockerd answers a chunked JSON stream (quiet by default) with the error as a message.
  it('docker load: a chunked JSON stream, the archive error as a message', async () => {
    const good = await busyboxDockerArchive('rel-load:1', { Labels: { rel: 'load' } });
    const r = await request(d.socket, 'POST', '/images/load', good, { 'Content-Type': 'application/x-tar' });
    expect(r.status).toBe(200);
    expect(r.headers['transfer-encoding']).toBe('chunked');
    expect(r.headers['content-length']).toBeUndefined();
    const lines = r.body
      .toString()
      .split('\r\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { stream?: string });
    // quiet by default: no progress, only what was loaded
    expect(lines).toEqual([{ stream: 'Loaded image: rel-load:1\n' }]);
    const loud = await request(d.socket, 'POST', '/images/load?quiet=0', good, { 'Content-Type': 'application/x-tar' });
    expect(loud.body.toString().split('\r\n').filter(Boolean).length).toBeGreaterThan(1);

    // garbage after a valid start, large enough that the client is still uploading when the
    // archive is refused
    const bad = Buffer.concat([good.subarray(0, 1024), Buffer.alloc(8 << 20, 0x41)]);
    const e = await request(d.socket, 'POST', '/images/load', bad, { 'Content-Type': 'application/x-tar' });
    expect(e.status).toBe(200);
    const msg = JSON.parse(e.body.toString().trim()) as { error: string; errorDetail: { message: string } };
    expect(msg.error).toBe(msg.errorDetail.message);
    expect(msg.error).not.toContain(d.dataRoot);
    const file = path.join(path.dirname(d.dataRoot), 'rel-bad.tar');
    await writeFile(file, bad);
    const cli = await d.docker(['load', '-i', file]);
    expect(cli.exitCode).toBe(1);
    expect(cli.stderr).toContain(msg.error);
    await ok(['rmi', 'rel-load:1']);
  });

  // Item 13: attach (and exec start) as a plain POST without Upgrade answered 404; dockerd
  // streams after 200 OK on the same connection (dockerode's docker.run() attaches so).
  it('attach and exec start without Upgrade stream after 200 OK', async () => {
    const id = await ok(['create', 'busybox', 'sh', '-c', 'sleep 1; echo attached']);
    const attached = request(d.socket, 'POST', `/containers/${id}/attach?stream=1&stdout=1&stderr=1`);
    await new Promise((r) => setTimeout(r, 300));
    await ok(['start', id]);
    const a = await attached;
    expect(a.status).toBe(200);
    expect(a.headers['content-type']).toBe('application/vnd.docker.multiplexed-stream');
    // one stdout frame: [1,0,0,0, len32be] + payload
    expect(a.body[0]).toBe(1);
    expect(a.body.subarray(8).toString()).toBe('attached\n');
    await ok(['rm', '-f', id]);

    const c = await ok(['run', '-d', 'busybox', 'sleep', '100']);
    const ex = await request(d.socket, 'POST', `/containers/${c}/exec`, JSON.stringify({ Cmd: ['echo', 'exec'], AttachStdout: true }), {
      'Content-Type': 'application/json',
    });
    const execId = (JSON.parse(ex.body.toString()) as { Id: string }).Id;
    const st = await request(d.socket, 'POST', `/exec/${execId}/start`, '{}', { 'Content-Type': 'application/json' });
    expect(st.status).toBe(200);
    expect(st.body.subarray(8).toString()).toBe('exec\n');
    await ok(['rm', '-f', c]);
  });

  // Item 14: image rows as dockerd answers them.
  it('images REPO:TAG, load, import -m and tag events answer as dockerd', async () => {
    const archive = path.join(path.dirname(d.dataRoot), 'rel-img.tar');
    await writeFile(archive, await busyboxDockerArchive('rel-img:a', { Labels: { rel: 'img' } }));
    await ok(['load', '-i', archive]);
    const since = Math.floor(Date.now() / 1000) - 1;
    await ok(['tag', 'rel-img:a', 'rel-img:evtag']);
    // only the tag asked for, not every tag of that image ID
    expect(await ok(['images', 'rel-img:a', '--format', '{{.Repository}}:{{.Tag}}'])).toBe('rel-img:a');
    expect((await ok(['images', 'rel-img', '--format', '{{.Tag}}'])).split('\n').sort()).toEqual(['a', 'evtag']);
    // a load reports the archive's tags, not every tag the image already has
    expect(await ok(['load', '-i', archive])).toBe('Loaded image: rel-img:a');
    const ev = await ok([
      'events',
      '--since',
      String(since),
      '--until',
      String(Math.floor(Date.now() / 1000) + 1),
      '--filter',
      'event=tag',
      '--format',
      '{{.Actor.Attributes.name}}',
    ]);
    expect(ev.split('\n')).toContain('rel-img:evtag');
    expect(ev).not.toContain('docker.io/library');
    const { busyboxRootfsTar } = await import('../../fixtures/rootfs.js');
    const rootfs = path.join(path.dirname(d.dataRoot), 'rel-rootfs.tar');
    await writeFile(rootfs, await busyboxRootfsTar());
    await ok(['import', '-m', 'rel import message', rootfs, 'rel-imp:1']);
    expect(await ok(['image', 'inspect', '-f', '{{.Comment}}', 'rel-imp:1'])).toBe('rel import message');
    await ok(['rmi', 'rel-img:a', 'rel-img:evtag', 'rel-imp:1']);
  });

  // Item 15: top with ps options, sizes, tmpfs defaults, export and cp names, cp into a symlink.
  it('top -o, ps -s, --tmpfs, export and cp rows match dockerd', async () => {
    const id = await ok([
      'run',
      '-d',
      '--tmpfs',
      '/t',
      '--tmpfs',
      '/x:exec',
      'busybox',
      'sh',
      '-c',
      'head -c 100000 /dev/zero > /big; ln -s /etc/target /etc/link; echo old > /etc/target; sleep 1000',
    ]);
    await until('the file to be written', async () => (await d.docker(['exec', id, 'test', '-e', '/etc/link'])).exitCode === 0);
    const top = await ok(['top', id, '-o', 'pid,comm']);
    expect(top.split('\n')[0]).toMatch(/^PID\s+COMMAND$/);
    expect(top).toMatch(/\n\d+\s+sleep$/m);
    expect(await ok(['top', id])).toMatch(/^UID\s+PID\s+PPID\s+C\s+STIME\s+TTY\s+TIME\s+CMD/);
    const rw = Number(await ok(['inspect', '--size', '-f', '{{.SizeRw}}', id]));
    expect(rw).toBeGreaterThanOrEqual(100000);
    expect(await ok(['ps', '-s', '--filter', `id=${id}`, '--format', '{{.Size}}'])).toMatch(/^100kB \(virtual /);
    const mounts = await ok(['exec', id, 'cat', '/proc/mounts']);
    expect(mounts).toMatch(/^tmpfs \/t tmpfs rw,nosuid,nodev,noexec/m);
    expect(mounts).toMatch(/^tmpfs \/x tmpfs rw,nosuid,nodev[ ,](?!.*noexec)/m);
    // export: no ./ prefix, directories end with '/'
    const exp = await execa('sh', ['-c', `docker export ${id} | tar -t | head -n 400`], { env: { DOCKER_HOST: d.host } });
    const names = exp.stdout.split('\n');
    expect(names).toContain('bin/');
    expect(names).toContain('etc/passwd');
    expect(names.some((n) => n.startsWith('./') || n === '.')).toBe(false);
    const cp = await execa('sh', ['-c', `docker cp ${id}:/etc - | tar -t | head -n 1`], { env: { DOCKER_HOST: d.host } });
    expect(cp.stdout).toBe('etc/');
    // cp onto a symlink to a file writes the file it points at
    const src = path.join(path.dirname(d.dataRoot), 'rel-new.txt');
    await writeFile(src, 'new\n');
    await ok(['cp', src, `${id}:/etc/link`]);
    expect(await ok(['exec', id, 'cat', '/etc/target'])).toBe('new');
    expect(await ok(['exec', id, 'readlink', '/etc/link'])).toBe('/etc/target');
    await ok(['rm', '-f', id]);
  });

  // Item 17: Docker's statuses, and no host path in any answer.
  it('errors carry Docker statuses and no host paths', async () => {
    const id = await ok(['run', '-d', 'busybox', 'sleep', '1000']);
    const hostPaths = (m: string) => [d.dataRoot, d.execRoot].some((p) => m.includes(p)) || /\/proc\/\d+\/root/.test(m);
    const self = await request(d.socket, 'GET', `/containers/${id}/archive?path=/proc/self/nope`);
    expect([self.status, self.body.toString()]).toEqual([404, expect.any(String)]);
    expect(hostPaths(self.body.toString()), self.body.toString()).toBe(false);
    const { packTar } = await import('../../fixtures/rootfs.js');
    const tar = await packTar([{ name: 'hl', type: 'link', linkname: 'missing' } as never]);
    const put = await request(d.socket, 'PUT', `/containers/${id}/archive?path=/tmp`, tar, { 'Content-Type': 'application/x-tar' });
    expect(put.status).toBe(400);
    expect(put.body.toString()).toContain('no such file or directory');
    expect(hostPaths(put.body.toString())).toBe(false);
    const pull = await request(d.socket, 'POST', '/images/create?fromImage=localhost:99999/x&tag=latest');
    expect(pull.status).toBe(400);
    const upper = await request(d.socket, 'POST', '/containers/create', JSON.stringify({ Image: 'UPPER:1' }), {
      'Content-Type': 'application/json',
    });
    expect([upper.status, (JSON.parse(upper.body.toString()) as { message: string }).message]).toEqual([
      400,
      'invalid reference format: repository name (library/UPPER) must be lowercase',
    ]);
    // a long name is either refused or usable by name
    const long = 'n'.repeat(1000);
    await ok(['create', '--name', long, 'busybox', 'true']);
    expect(await ok(['inspect', '-f', '{{.Name}}', long])).toBe(`/${long}`);
    await ok(['rm', long]);
    const tooLong = await d.docker(['create', '--name', 'n'.repeat(1100), 'busybox', 'true']);
    expect(tooLong.exitCode).toBe(1);
    expect(tooLong.stderr).toContain('longer than 1024 characters');
    await ok(['rm', '-f', id]);
  });

  // Item 18: exit codes come typed from the agent, not from the message's words: a file
  // named "not found" that is not executable is 126 (EACCES), not 127.
  it('a failed start or exec takes its exit code from the agent, not the message text', async () => {
    const src = path.join(path.dirname(d.dataRoot), 'not found');
    await writeFile(src, 'data\n', { mode: 0o644 });
    const id = await ok(['create', 'busybox', '/not found']);
    await ok(['cp', src, `${id}:/`]);
    const start = await d.docker(['start', id]);
    expect(start.exitCode).not.toBe(0);
    expect(await ok(['inspect', '-f', '{{.State.ExitCode}}', id])).toBe('126');
    await ok(['rm', '-f', id]);
    const c = await ok(['run', '-d', 'busybox', 'sleep', '1000']);
    await ok(['cp', src, `${c}:/`]);
    expect((await d.docker(['exec', c, '/not found'])).exitCode).toBe(126);
    expect((await d.docker(['exec', c, '/nope'])).exitCode).toBe(127);
    await ok(['rm', '-f', c]);
  });

  // Item 11: the ext4 base disk's /lost+found showed in the container and its export.
  it('the container root has no /lost+found (run, diff, export, sized layer)', async () => {
    expect((await ok(['run', '--rm', 'busybox', 'ls', '-a', '/'])).split('\n')).not.toContain('lost+found');
    expect((await ok(['run', '--rm', '--storage-opt', 'size=64M', 'busybox', 'ls', '/'])).split('\n')).not.toContain('lost+found');
    const id = await ok(['create', 'busybox', 'true']);
    expect(await ok(['diff', id])).toBe('');
    const exp = await execa('sh', ['-c', `docker export ${id} | tar -t`], { env: { DOCKER_HOST: d.host } });
    expect(exp.stdout.split('\n').filter((n) => n.startsWith('lost+found'))).toEqual([]);
    await ok(['rm', id]);
  });

  // Item 10: /sys/fs/cgroup as dockerd gives it (the container's own group, read-only), so
  // runtimes see their limits; item 16: dockerd's defaults (nofile inherited, no /dev/core).
  it("/sys/fs/cgroup shows the container's limits; nofile and /dev as dockerd", async () => {
    const v1 = existsSync('/sys/fs/cgroup/memory');
    const limit = v1 ? '/sys/fs/cgroup/memory/memory.limit_in_bytes' : '/sys/fs/cgroup/memory.max';
    expect(await ok(['run', '--rm', '-m', '64m', 'busybox', 'cat', limit])).toBe('67108864');
    const w = await d.docker([
      'run',
      '--rm',
      'busybox',
      'sh',
      '-c',
      `echo 1 > ${v1 ? '/sys/fs/cgroup/pids/pids.max' : '/sys/fs/cgroup/pids.max'}`,
    ]);
    expect(w.exitCode).not.toBe(0);
    expect(w.stderr).toContain('Read-only file system');
    const own = await execa('sh', ['-c', 'ulimit -n; ulimit -Hn']);
    // the daemon (and so the container) inherits this test's limits, as dockerd's containers do
    expect(await ok(['run', '--rm', 'busybox', 'sh', '-c', 'ulimit -n; ulimit -Hn'])).toBe(own.stdout.trim());
    expect((await ok(['run', '--rm', 'busybox', 'ls', '/dev'])).split('\n')).not.toContain('core');
    // the socket's group: docker's where that group exists, as dockerd's default -G
    const docker = readFileSync('/etc/group', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('docker:'));
    expect(statSync(d.socket).gid).toBe(docker ? Number(docker.split(':')[2]) : 0);
  });

  // Item 12: a new named volume over an image directory gets its files once (Docker's copy-up,
  // not with nocopy); --volumes-from shares another container's volumes.
  it('named volumes copy up from the image once; --volumes-from shares them', async () => {
    expect(await ok(['run', '--rm', '-v', 'rel-cu:/etc', 'busybox', 'cat', '/etc/passwd'])).toContain('root:');
    // once: what the container changed stays, nothing is copied over it again
    await ok(['run', '--rm', '-v', 'rel-cu:/etc', 'busybox', 'sh', '-c', 'rm /etc/passwd; echo mine > /etc/own']);
    expect(await ok(['run', '--rm', '-v', 'rel-cu:/etc', 'busybox', 'ls', '/etc'])).not.toContain('passwd');
    expect(await ok(['run', '--rm', '-v', 'rel-nc:/etc:nocopy', 'busybox', 'ls', '-A', '/etc'])).not.toContain('passwd');
    const src = await ok(['create', '-v', 'rel-cu:/data', '-v', '/srv', 'busybox', 'true']);
    expect(await ok(['run', '--rm', '--volumes-from', src, 'busybox', 'cat', '/data/own'])).toBe('mine');
    const ro = await d.docker(['run', '--rm', '--volumes-from', `${src}:ro`, 'busybox', 'touch', '/data/x']);
    expect(ro.exitCode).not.toBe(0);
    await ok(['rm', '-v', src]);
    await ok(['volume', 'rm', 'rel-cu', 'rel-nc']);
  });
});
