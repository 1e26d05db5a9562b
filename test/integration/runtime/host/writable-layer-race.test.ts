/**
 * After a host reboot a sized writable layer is mounted again on first use; `docker start`,
 * `docker diff` and `docker cp` of one container may all do that at once. Concurrent
 * mountSizedLayer calls must all succeed with one mount (mount(8) refuses the second with
 * "already mounted", which failed the second request with a 500).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountPoints } from '../../../../src/runtime/host/base-mounts.js';
import {
  createSizedLayer,
  LAYER_IMAGE,
  LAYER_MOUNT,
  mountSizedLayer,
  removeSizedLayer,
} from '../../../../src/runtime/host/writable-layer.js';

let root: string;

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error('these tests need root (loop mounts)');
  for (const t of ['losetup', 'mount', 'umount']) {
    try {
      execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'pipe' });
    } catch {
      throw new Error(`missing tool: ${t}`);
    }
  }
  root = mkdtempSync(path.join(os.tmpdir(), 'tvm-layer-race-'));
});

afterAll(async () => {
  if (!root) return;
  // innermost first: stacked mounts on one point come off one by one
  for (let i = 0; i < 4; i++) {
    for (const m of [...(await mountPoints())].filter((p) => p.startsWith(root + '/'))) {
      try {
        execFileSync('umount', [m], { stdio: 'pipe' });
      } catch {
        // already gone
      }
    }
  }
  rmSync(root, { recursive: true, force: true });
});

const mountsAt = (mp: string) =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.split(' ')[4] === mp).length;

describe('sized writable layer, concurrent remount', () => {
  it('concurrent mountSizedLayer calls mount once; remove then leaves no mount', async () => {
    const stateDir = path.join(root, 'c1');
    execFileSync('mkdir', ['-p', stateDir]);
    await createSizedLayer(stateDir, 16 * 1024 * 1024);
    const mp = path.join(stateDir, LAYER_MOUNT);
    execFileSync('umount', [mp]); // as after a reboot
    expect(mountsAt(mp)).toBe(0);
    await Promise.all([mountSizedLayer(stateDir), mountSizedLayer(stateDir), mountSizedLayer(stateDir)]);
    expect(mountsAt(mp)).toBe(1);
    await removeSizedLayer(stateDir);
    expect(mountsAt(mp)).toBe(0);
  });

  it('a remount racing the removal (docker diff during rm -f) never leaves a mount behind', async () => {
    for (let i = 0; i < 5; i++) {
      const stateDir = path.join(root, `r${i}`);
      execFileSync('mkdir', ['-p', stateDir]);
      await createSizedLayer(stateDir, 16 * 1024 * 1024);
      const mp = path.join(stateDir, LAYER_MOUNT);
      execFileSync('umount', [mp]); // as after a reboot
      const results = await Promise.allSettled([removeSizedLayer(stateDir), mountSizedLayer(stateDir)]);
      expect(results[0].status).toBe('fulfilled');
      expect(mountsAt(mp)).toBe(0);
      expect(existsSync(path.join(stateDir, LAYER_IMAGE))).toBe(false);
    }
  });
});
