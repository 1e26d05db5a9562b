import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync, lstatSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packTar } from '../../../fixtures/rootfs.js';
import { buildDisk, cleanup, debugfs, fsck, requireTool, tempDir, withMount } from './helpers.js';

const shift = {
  uidMap: [{ containerID: 0, hostID: 100000, size: 65536 }],
  gidMap: [{ containerID: 0, hostID: 100000, size: 65536 }],
};

let work: string;
beforeAll(() => {
  requireTool('e2fsck', 'e2fsprogs');
  requireTool('debugfs', 'e2fsprogs');
  work = tempDir('idshift');
});
afterAll(() => cleanup(work));

describe('ext4 writer: idShift (base disks for --userns-remap)', () => {
  it('writes every owner shifted by the map, implicit directories and lost+found included', async () => {
    const tar = await packTar([
      { name: 'etc/', type: 'directory', mode: 0o755 },
      { name: 'etc/passwd', content: 'root:x:0:0::/:/bin/sh\n', uid: 0, gid: 0 },
      { name: 'home/app/data', content: 'x', uid: 1000, gid: 1000 },
      { name: 'var/lib/max', content: 'x', uid: 65535, gid: 42 },
    ]);
    const img = path.join(work, 'shifted.ext4');
    await buildDisk([tar], img, { idShift: shift });
    fsck(img);
    expect(debugfs(img, 'stat /etc/passwd')).toMatch(/User:\s+100000\s+Group:\s+100000/);
    expect(debugfs(img, 'stat /home/app/data')).toMatch(/User:\s+101000\s+Group:\s+101000/);
    expect(debugfs(img, 'stat /var/lib/max')).toMatch(/User:\s+165535\s+Group:\s+100042/);
    // /home and /home/app are implied by the layer, / and lost+found are the writer's own
    for (const p of ['/', '/home', '/home/app', '/lost+found'])
      expect(debugfs(img, `stat ${p}`)).toMatch(/User:\s+100000\s+Group:\s+100000/);
    await withMount(img, (dir) => {
      expect(lstatSync(path.join(dir, 'home/app/data')).uid).toBe(101000);
    });
  });

  it('refuses an id the map does not cover, leaving no file behind', async () => {
    const tar = await packTar([{ name: 'big', content: 'x', uid: 70000, gid: 0 }]);
    const dir = path.join(work, 'refused');
    mkdirSync(dir);
    await expect(buildDisk([tar], path.join(dir, 'x.ext4'), { idShift: shift })).rejects.toThrow(
      /big: container uid 70000 cannot be mapped/,
    );
    expect(readdirSync(dir)).toEqual([]);
  });

  it('turns a file capability into a namespaced (v3) one owned by the mapped root', async () => {
    requireTool('setcap', 'libcap2-bin');
    requireTool('getcap', 'libcap2-bin');
    requireTool('tar', 'tar');
    const src = path.join(work, 'cap-src');
    mkdirSync(path.join(src, 'bin'), { recursive: true });
    writeFileSync(path.join(src, 'bin/ping'), 'ping');
    execFileSync('setcap', ['cap_net_raw+ep', path.join(src, 'bin/ping')]);
    const tarFile = path.join(work, 'cap.tar');
    execFileSync('tar', [
      '--xattrs',
      '--xattrs-include=*',
      '--format=pax',
      '--numeric-owner',
      '--owner=0',
      '--group=0',
      '-C',
      src,
      '-cf',
      tarFile,
      '.',
    ]);
    const img = path.join(work, 'cap.ext4');
    await buildDisk([readFileSync(tarFile)], img, { idShift: shift });
    fsck(img);
    await withMount(img, (dir) => {
      const out = execFileSync('getcap', ['-n', path.join(dir, 'bin/ping')], { encoding: 'utf8' });
      expect(out).toMatch(/cap_net_raw[=+]ep/);
      expect(out).toMatch(/\[rootid=100000\]/);
    });
  });
});
