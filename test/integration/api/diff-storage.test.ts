/**
 * The real docker CLI against a real tvm daemon (--isolation=container): `docker run
 * --storage-opt size=` (a size-limited writable layer: df shows it, writing past it is ENOSPC,
 * rm leaves no loop device nor file behind) and `docker diff`.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { startTestDaemon, missingRealParts, requireDocker, REPO, type TestDaemon } from '../../fixtures/daemon.js';
import { busyboxDockerArchive } from '../../fixtures/fake-images.js';

const MiB = 1024 * 1024;

async function loopDevices(): Promise<string> {
  const r = await execa('losetup', ['-a'], { reject: false });
  if (r.exitCode !== 0) throw new Error(`losetup -a failed (util-linux missing?): ${String(r.stderr)}`);
  return String(r.stdout);
}

function mountedUnder(dir: string): string[] {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter((m) => m.startsWith(dir + '/'));
}

describe('docker run --storage-opt size= and docker diff (--isolation=container)', () => {
  let d: TestDaemon;
  let tmp: string;
  const docker = (args: string[]) => d.docker(args);
  const changesJson = async (name: string): Promise<unknown> => {
    const raw = await execa('curl', ['-s', '--unix-socket', d.socket, `http://d/v1.50/containers/${name}/changes`], { reject: false });
    if (raw.exitCode !== 0) throw new Error(`curl failed (missing?): ${String(raw.stderr)}`);
    return JSON.parse(String(raw.stdout));
  };
  const tvm = async (args: string[]) => {
    const r = await execa(process.execPath, [path.join(REPO, 'bin', 'tvm.js'), ...args], {
      reject: false,
      env: { TVM_HOST: d.host },
      timeout: 120_000,
    });
    return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  };

  beforeAll(async () => {
    requireDocker();
    if (process.getuid?.() !== 0) throw new Error('these tests need root (loop mounts, namespaces)');
    const missing = missingRealParts();
    if (missing.length > 0) throw new Error(`the real daemon needs parts that are missing: ${missing.join(', ')}`);
    d = await startTestDaemon();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'tvm-diff-'));
    await writeFile(path.join(tmp, 'busybox.tar'), await busyboxDockerArchive());
    const load = await docker(['load', '-i', path.join(tmp, 'busybox.tar')]);
    expect(load.stdout).toContain('Loaded image: busybox:latest');
  });
  afterAll(async () => {
    if (d) {
      const ids = (await docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await docker(['rm', '-f', ...ids]);
      await d.destroy();
    }
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('size=64M: df shows it, writing past it is ENOSPC, inspect records it, rm leaves nothing', async () => {
    const c = await docker([
      'create',
      '--name',
      'sized',
      '--storage-opt',
      'size=64M',
      'busybox',
      'sh',
      '-c',
      'df -k / | tail -1; dd if=/dev/zero of=/big bs=1M count=100; echo dd=$?; ls -l /big',
    ]);
    expect(c.exitCode, c.stderr).toBe(0);
    const id = c.stdout.trim();
    const stateDir = path.join(d.dataRoot, 'containers', id);
    expect(existsSync(path.join(stateDir, 'layer.ext4'))).toBe(true);
    const image = path.join(stateDir, 'layer.ext4');
    expect(await loopDevices()).toContain(image);

    const r = await docker(['start', '-a', 'sized']);
    expect(r.exitCode, r.stderr).toBe(0);
    // df -k: Filesystem 1K-blocks Used Available Use% Mounted-on
    const df = r.stdout.split('\n')[0]!.trim().split(/\s+/);
    const sizeKiB = Number(df[1]);
    expect(sizeKiB).toBeGreaterThanOrEqual(64 * 1024);
    expect(sizeKiB).toBeLessThan(65 * 1024);
    expect(r.stderr).toMatch(/No space left on device/);
    expect(r.stdout).toMatch(/dd=1/);
    const written = Number(/\s(\d+) [A-Z][a-z]{2} /.exec(r.stdout.split('\n').find((l) => l.includes('/big'))!)![1]);
    expect(written).toBeGreaterThan(56 * MiB);
    expect(written).toBeLessThanOrEqual(64 * MiB);

    const opt = await docker(['inspect', '-f', '{{json .HostConfig.StorageOpt}}', 'sized']);
    expect(opt.stdout).toBe('{"size":"64M"}');

    // the layer outlives a daemon restart, with the data on it; the container starts again
    await d.stop();
    await d.start();
    expect((await docker(['diff', 'sized'])).stdout).toBe('A /big');
    expect((await docker(['start', 'sized'])).exitCode).toBe(0);
    expect((await docker(['wait', 'sized'])).stdout).toBe('0');
    const logs = await docker(['logs', 'sized']);
    expect(logs.stdout.match(/dd=1/g)).toHaveLength(2);

    expect((await docker(['rm', 'sized'])).exitCode).toBe(0);
    expect(existsSync(stateDir)).toBe(false);
    expect(await loopDevices()).not.toContain(image);
    expect(mountedUnder(stateDir)).toEqual([]);
  });

  it('a size in other spellings (bytes, 20m, 10g; also through tvm run) and the remount after the mount went away', async () => {
    const c = await docker([
      'create',
      '--name',
      'bytes',
      '--storage-opt',
      `SIZE=${32 * MiB}`,
      'busybox',
      'sh',
      '-c',
      'df -k / | tail -1; echo x > /kept',
    ]);
    expect(c.exitCode, c.stderr).toBe(0);
    const id = c.stdout.trim();
    const mp = path.join(d.dataRoot, 'containers', id, 'layer');
    expect(mountedUnder(path.dirname(mp))).toEqual([mp]);
    // as after a host reboot: the mount is gone, start mounts it again
    await execa('umount', [mp]);
    const r = await docker(['start', '-a', 'bytes']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(Number(r.stdout.trim().split(/\s+/)[1])).toBeGreaterThanOrEqual(32 * 1024);
    expect(Number(r.stdout.trim().split(/\s+/)[1])).toBeLessThan(33 * 1024);
    expect((await docker(['diff', 'bytes'])).stdout).toBe('A /kept');
    // docker cp on the stopped container reads and writes its sized layer
    const cpOut = await docker(['cp', 'bytes:/kept', path.join(tmp, 'kept')]);
    expect(cpOut.exitCode, cpOut.stderr).toBe(0);
    expect(readFileSync(path.join(tmp, 'kept'), 'utf8')).toBe('x\n');
    await writeFile(path.join(tmp, 'in.txt'), 'in\n');
    expect((await docker(['cp', path.join(tmp, 'in.txt'), 'bytes:/in.txt'])).exitCode).toBe(0);
    expect((await docker(['diff', 'bytes'])).stdout).toBe('A /in.txt\nA /kept');
    expect((await docker(['rm', 'bytes'])).exitCode).toBe(0);

    const t = await tvm(['run', '--rm', '--storage-opt', 'size=20m', 'busybox', 'sh', '-c', 'df -k / | tail -1']);
    expect(t.exitCode, t.stderr).toBe(0);
    expect(Number(t.stdout.trim().split(/\s+/)[1])).toBeGreaterThanOrEqual(20 * 1024);
    expect(Number(t.stdout.trim().split(/\s+/)[1])).toBeLessThan(21 * 1024);
    expect((await tvm(['run', '--rm', '--storage-opt', 'size', 'busybox', 'true'])).stderr).toMatch(/invalid storage option/);

    const g = await docker(['run', '--rm', '--storage-opt', 'size=10g', 'busybox', 'sh', '-c', 'df -k / | tail -1']);
    expect(g.exitCode, g.stderr).toBe(0);
    const kib = Number(g.stdout.trim().split(/\s+/)[1]);
    expect(kib).toBeGreaterThanOrEqual(10 * 1024 * 1024);
    expect(kib).toBeLessThan(10.01 * 1024 * 1024);
  });

  it("refuses bad --storage-opt values with Docker's words and leaves nothing behind", async () => {
    const before = (await docker(['ps', '-aq'])).stdout;
    const unknown = await docker(['run', '--rm', '--storage-opt', 'inodes=5', 'busybox', 'true']);
    expect(unknown.exitCode).toBe(125);
    expect(unknown.stderr).toMatch(/Unknown option inodes/);
    const bad = await docker(['run', '--rm', '--storage-opt', 'size=lots', 'busybox', 'true']);
    expect(bad.exitCode).toBe(125);
    expect(bad.stderr).toMatch(/invalid size: 'lots'/);
    const suffix = await docker(['run', '--rm', '--storage-opt', 'size=10x', 'busybox', 'true']);
    expect(suffix.stderr).toMatch(/invalid suffix: 'x'/);
    const small = await docker(['run', '--rm', '--storage-opt', 'size=1M', 'busybox', 'true']);
    expect(small.exitCode).toBe(125);
    expect(small.stderr).toMatch(/storage size cannot be less than 16MiB/);
    expect((await docker(['ps', '-aq'])).stdout).toBe(before);
  });

  it("docker diff: added, modified, deleted, in Docker's order; runtime mount points left out", async () => {
    const fresh = await docker(['run', '--name', 'clean', 'busybox', 'true']);
    expect(fresh.exitCode, fresh.stderr).toBe(0);
    const none = await docker(['diff', 'clean']);
    expect([none.exitCode, none.stdout, none.stderr]).toEqual([0, '', '']);
    expect(await changesJson('clean')).toBeNull(); // as dockerd answers
    await docker(['rm', 'clean']);

    const r = await docker([
      'run',
      '-d',
      '--name',
      'differ',
      'busybox',
      'sh',
      '-c',
      'echo new > /tmp/new.txt; echo more >> /etc/passwd; rm /etc/group; mkdir -p /home/app/a/b; echo x > /home/app/a/b/f; rm -r /var; mkdir /var; echo y > /var/v; sleep 60',
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    // exactly what dockerd 20.10 (overlay2) answers for this script on the busybox fixture, sorted
    const expected = [
      'C /etc',
      'D /etc/group',
      'C /etc/passwd',
      'C /home',
      'C /home/app',
      'A /home/app/a',
      'A /home/app/a/b',
      'A /home/app/a/b/f',
      'C /tmp',
      'A /tmp/new.txt',
      'C /var',
      'A /var/v',
    ].join('\n');
    let out = '';
    for (let i = 0; i < 100 && out !== expected; i++) {
      out = (await docker(['diff', 'differ'])).stdout;
      if (out !== expected) await new Promise((res) => setTimeout(res, 100));
    }
    expect(out.split('\n')).toEqual(expected.split('\n')); // running
    expect((await docker(['rm', '-f', 'differ'])).exitCode).toBe(0);

    // stopped, and the API's JSON form
    await docker(['run', '--name', 'stopped', 'busybox', 'sh', '-c', 'touch /made; rm /bin/cat']);
    expect((await docker(['diff', 'stopped'])).stdout).toBe('C /bin\nD /bin/cat\nA /made');
    expect(await changesJson('stopped')).toEqual([
      { Path: '/bin', Kind: 0 },
      { Path: '/bin/cat', Kind: 2 },
      { Path: '/made', Kind: 1 },
    ]);
    const t = await tvm(['diff', 'stopped']);
    expect([t.exitCode, t.stdout, t.stderr]).toEqual([0, 'C /bin\nD /bin/cat\nA /made', '']);
    await docker(['rm', 'stopped']);

    // what dockerd 20.10 (overlay2) answers for the same scripts on the busybox fixture
    const sorted = (s: string) => s.split('\n').sort().join('\n');
    await docker([
      'run',
      '--name',
      'owners',
      'busybox',
      'sh',
      '-c',
      'chmod 700 /home; rm -r /home/app; mkdir /home/app; touch /home/app/n; mkdir -p /srv',
    ]);
    expect(sorted((await docker(['diff', 'owners'])).stdout)).toBe(sorted('C /home\nC /home/app\nA /home/app/n\nA /srv'));
    await docker([
      'run',
      '--name',
      'kinds',
      'busybox',
      'sh',
      '-c',
      'rm -rf /home; touch /home; ln -s x /etc/passwd2; rm /bin/ls; ln -s busybox /bin/ls',
    ]);
    expect(sorted((await docker(['diff', 'kinds'])).stdout)).toBe(sorted('C /home\nC /etc\nA /etc/passwd2\nC /bin\nC /bin/ls'));
    await docker(['run', '--name', 'vol', '-v', '/data', 'busybox', 'true']);
    expect((await docker(['diff', 'vol'])).stdout).toBe('A /data');
    await docker(['rm', '-v', 'owners', 'kinds', 'vol']);

    const nf = await docker(['diff', 'nosuch']);
    expect(nf.exitCode).toBe(1);
    expect(nf.stderr).toMatch(/No such container: nosuch/);
    expect((await tvm(['diff', 'nosuch'])).stderr).toMatch(/No such container: nosuch/);
  });
});
