/**
 * A full disk under the daemon's data root, through the real docker CLI: every operation that
 * runs out of space fails with a clear "no space left on device" error, leaves nothing half
 * made (no image, no blob, no temp file, no container in `docker ps -a`), and the daemon keeps
 * working once space is back.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { startDaemonWithBusybox, type TestDaemon } from '../../fixtures/daemon.js';
import { packTar } from '../../fixtures/rootfs.js';

const DATA_ROOT_BYTES = 48 * 1024 * 1024;
/** Docker's shape: the failing operation (and path, when there is one), then the errno text */
const NOSPACE = /Error response from daemon: [a-z]+( \/\S+)?: no space left on device$/m;

/** every file below dir (relative), for "nothing was left behind" */
function files(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name);
      const st = statSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

describe('a full data root', () => {
  let d: TestDaemon;
  let tmp: string;

  beforeAll(async () => {
    d = await startDaemonWithBusybox({ dataRootTmpfsBytes: DATA_ROOT_BYTES });
    tmp = await mkdtemp(path.join(os.tmpdir(), 'tvm-full-'));
  });
  afterAll(async () => {
    await d?.destroy();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('docker import of an image larger than the free space fails clearly and stores nothing', async () => {
    const before = files(d.dataRoot);
    const rootfs = path.join(tmp, 'big-rootfs.tar');
    // incompressible, so no layer encoding can make it fit
    writeFileSync(rootfs, await packTar([{ name: 'big', content: randomBytes(DATA_ROOT_BYTES + (8 << 20)) }]));
    const r = await d.docker(['import', rootfs, 'big:1']);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(NOSPACE);
    expect((await d.docker(['images', '-q', 'big'])).stdout).toBe('');
    expect(files(d.dataRoot)).toEqual(before);
  });

  it('a container that fills its writable layer gets ENOSPC itself; the daemon carries on', async () => {
    const r = await d.docker([
      'run',
      '--rm',
      'busybox',
      'sh',
      '-c',
      `dd if=/dev/zero of=/fill bs=1M count=${(DATA_ROOT_BYTES >> 20) * 2} 2>&1; echo rc=$?`,
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/No space left on device/);
    expect(r.stdout).toMatch(/rc=1/);
    const again = await d.docker(['run', '--rm', 'busybox', 'echo', 'still fine']);
    expect([again.exitCode, again.stdout]).toEqual([0, 'still fine']);
  });

  it("docker build whose RUN fills the disk fails with the RUN's code, tags nothing, leaves no container", async () => {
    const ctx = path.join(tmp, 'fill-build');
    await mkdir(ctx, { recursive: true });
    const run = `dd if=/dev/zero of=/fill bs=1M count=${(DATA_ROOT_BYTES >> 20) * 2}`;
    writeFileSync(path.join(ctx, 'Dockerfile'), `FROM busybox\nRUN ${run}\n`);
    const r = await d.docker(['build', '-t', 'fill:1', ctx]);
    expect(r.exitCode).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/No space left on device/);
    expect(r.stderr).toContain(`The command '/bin/sh -c ${run}' returned a non-zero code: 1`);
    expect((await d.docker(['images', '-q', 'fill'])).stdout).toBe('');
    expect((await d.docker(['ps', '-aq'])).stdout).toBe('');
    writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM busybox\nRUN echo fits > /small\n');
    const ok = await d.docker(['build', '-q', '-t', 'fill:2', ctx]);
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect((await d.docker(['run', '--rm', 'fill:2', 'cat', '/small'])).stdout).toBe('fits');
    expect((await d.docker(['rmi', 'fill:2'])).exitCode).toBe(0);
  });

  it('docker run on a full data root fails clearly and leaves no container behind', async () => {
    const filler = path.join(d.dataRoot, 'filler');
    // take every free byte (fallocate reserves real blocks on tmpfs)
    await execa('sh', [
      '-c',
      `fallocate -l $(( $(stat -f -c '%a*%S' ${d.dataRoot}) )) ${filler} || true; dd if=/dev/zero of=${filler} bs=64k oflag=append conv=notrunc 2>/dev/null || true`,
    ]);
    try {
      const r = await d.docker(['run', '--name', 'nospace', 'busybox', 'true']);
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toMatch(NOSPACE);
      expect((await d.docker(['ps', '-aq', '--filter', 'name=nospace'])).stdout).toBe('');
      const c = await d.docker(['create', '--name', 'nospace2', 'busybox', 'true']);
      expect(c.exitCode).not.toBe(0);
      expect(c.stderr).toMatch(NOSPACE);
      expect((await d.docker(['ps', '-aq'])).stdout).toBe('');
    } finally {
      await rm(filler, { force: true });
    }
    const ok = await d.docker(['run', '--rm', 'busybox', 'echo', 'space is back']);
    expect([ok.exitCode, ok.stdout]).toEqual([0, 'space is back']);
  });
});
