/**
 * The sized writable layer (src/runtime/host/writable-layer.ts) on the real kernel: the image
 * our ext4 writer makes is clean for e2fsck, mounts with the asked size as its capacity, fills
 * up with ENOSPC, and goes away with its loop device.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, statfsSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountPoints } from '../../../../src/runtime/host/base-mounts.js';
import {
  createSizedLayer,
  LAYER_IMAGE,
  LAYER_MOUNT,
  layerDirs,
  mountSizedLayer,
  removeSizedLayer,
  writeLayerImage,
} from '../../../../src/runtime/host/writable-layer.js';

const MiB = 1024 * 1024;
let root: string;

function losetup(): string {
  return execFileSync('losetup', ['-a'], { encoding: 'utf8' });
}

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error('these tests need root (loop mounts)');
  for (const t of ['e2fsck', 'losetup', 'mount', 'umount']) {
    try {
      execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'pipe' });
    } catch {
      throw new Error(`missing tool: ${t}`);
    }
  }
  root = mkdtempSync(path.join(os.tmpdir(), 'tvm-layer-'));
});

afterAll(async () => {
  if (!root) return;
  for (const m of [...(await mountPoints())].filter((p) => p.startsWith(root + '/'))) execFileSync('umount', [m]);
  rmSync(root, { recursive: true, force: true });
});

describe('writable layer', () => {
  it('writeLayerImage: a sparse, e2fsck-clean ext4 whose free space is at least the size asked', async () => {
    for (const size of [16 * MiB, 100 * MiB + 12345, 3 * 1024 * MiB]) {
      const img = path.join(root, `l-${size}.ext4`);
      const total = await writeLayerImage(img, size);
      expect(total).toBeGreaterThan(size);
      expect(statSync(img).size).toBe(total);
      expect(statSync(img).blocks * 512).toBeLessThan(2 * MiB); // sparse
      execFileSync('e2fsck', ['-fn', img], { stdio: 'pipe' });
      const sb = execFileSync('dumpe2fs', ['-h', img], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      const free = Number(/^Free blocks:\s+(\d+)/m.exec(sb)![1]) * 4096;
      expect(free).toBeGreaterThanOrEqual(size);
      expect(free).toBeLessThan(size + 4096 * 8);
      rmSync(img);
    }
    await expect(writeLayerImage(path.join(root, 'zero.ext4'), 0)).rejects.toThrow(/out of range/);
    expect(existsSync(path.join(root, 'zero.ext4'))).toBe(false);
  });

  it('create, fill to ENOSPC, survive an unmount (reboot), remove: no loop device, no file left', async () => {
    const stateDir = path.join(root, 'c1');
    mkdirSync(stateDir);
    const dirs = await createSizedLayer(stateDir, 32 * MiB);
    expect(dirs).toEqual(layerDirs(stateDir, true));
    const mp = path.join(stateDir, LAYER_MOUNT);
    const image = path.join(stateDir, LAYER_IMAGE);
    expect((await mountPoints()).has(mp)).toBe(true);
    expect(losetup()).toContain(image);
    const fs = statfsSync(dirs.upper);
    expect(fs.blocks * fs.bsize).toBeGreaterThanOrEqual(32 * MiB);
    expect(fs.blocks * fs.bsize).toBeLessThan(33 * MiB);

    const r = execFileSync('sh', ['-c', `dd if=/dev/zero of=${dirs.upper}/big bs=1M count=64 2>&1; echo rc=$?`], { encoding: 'utf8' });
    expect(r).toMatch(/No space left on device/);
    expect(r).toMatch(/rc=1/);

    // a host reboot loses the mount: mounting again finds the data
    execFileSync('umount', [mp]);
    expect(losetup()).not.toContain(image);
    await mountSizedLayer(stateDir);
    await mountSizedLayer(stateDir); // idempotent
    expect(statSync(path.join(dirs.upper, 'big')).size).toBeGreaterThan(28 * MiB);

    await removeSizedLayer(stateDir);
    expect(losetup()).not.toContain(image);
    expect(existsSync(mp)).toBe(false);
    expect(existsSync(image)).toBe(false);
    await removeSizedLayer(stateDir); // idempotent
    await expect(mountSizedLayer(stateDir)).rejects.toThrow(/writable layer .* is missing/);
  });

  it('a state dir reached through a symlink: seen as mounted, unmounted on remove', async () => {
    mkdirSync(path.join(root, 'real'));
    symlinkSync(path.join(root, 'real'), path.join(root, 'link'));
    const stateDir = path.join(root, 'link', 'c3');
    mkdirSync(stateDir);
    await createSizedLayer(stateDir, 16 * MiB);
    await mountSizedLayer(stateDir); // already mounted: no second mount on top
    const real = path.join(root, 'real', 'c3', LAYER_MOUNT);
    expect(
      readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .filter((l) => l.split(' ')[4] === real),
    ).toHaveLength(1);
    await removeSizedLayer(stateDir);
    expect((await mountPoints()).has(real)).toBe(false);
    expect(losetup()).not.toContain(path.join(root, 'real', 'c3'));
    expect(existsSync(path.join(stateDir, LAYER_IMAGE))).toBe(false);
  });

  it('a failed create leaves nothing behind (the image is deleted when the mount fails)', async () => {
    const stateDir = path.join(root, 'c2');
    mkdirSync(stateDir);
    writeFileSync(path.join(stateDir, LAYER_MOUNT), 'in the way'); // the mount point cannot be made
    await expect(createSizedLayer(stateDir, 32 * MiB)).rejects.toThrow();
    expect(existsSync(path.join(stateDir, LAYER_IMAGE))).toBe(false);
    expect(losetup()).not.toContain(stateDir);
    expect(statSync(path.join(stateDir, LAYER_MOUNT)).isFile()).toBe(true); // not ours: left alone
  });
});
