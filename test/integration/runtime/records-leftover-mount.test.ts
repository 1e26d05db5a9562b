/**
 * A daemon killed during `docker create --storage-opt size=` can leave a container directory
 * without config.json whose writable layer is still mounted (layer/). At the next start the
 * record store removes such leftovers: it must unmount what is mounted below first, never
 * `rm -rf` through a live mount (which deleted inside the mount, then failed with EBUSY and
 * stopped the daemon's init).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RecordStore } from '../../../src/runtime/records.js';

let root: string;

const mountedUnder = (dir: string) => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m.startsWith(`${dir}/`));

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error('this test needs root (mounts)');
  for (const t of ['mount', 'umount']) {
    try {
      execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'pipe' });
    } catch {
      throw new Error(`missing tool: ${t}`);
    }
  }
  root = mkdtempSync(path.join(os.tmpdir(), 'tvm-leftover-'));
});

afterAll(() => {
  if (!root) return;
  for (const m of mountedUnder(root).reverse()) execFileSync('umount', ['-l', m]);
  rmSync(root, { recursive: true, force: true });
});

describe('record store leftovers with a mount inside', () => {
  it('unmounts, then removes the leftover; the init goes on', async () => {
    const leftover = path.join(root, 'containers', 'a'.repeat(64));
    const layer = path.join(leftover, 'layer');
    mkdirSync(layer, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', layer]);
    mkdirSync(path.join(layer, 'upper'));
    writeFileSync(path.join(layer, 'upper', 'f'), 'x');
    const store = new RecordStore(root);
    const { removed } = await store.load();
    expect(removed).toEqual(['a'.repeat(64)]);
    expect(mountedUnder(leftover)).toEqual([]);
    expect(existsSync(leftover)).toBe(false);
  });
});
