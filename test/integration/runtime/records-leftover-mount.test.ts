/**
 * A daemon killed during `docker create --storage-opt size=` can leave a container directory
 * without config.json whose writable layer is still mounted (layer/). At the next start the
 * record store removes such leftovers: it must unmount what is mounted below first, never
 * `rm -rf` through a live mount (which deleted inside the mount, then failed with EBUSY and
 * stopped the daemon's init).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RecordStore } from '../../../src/runtime/records.js';
import { mountScratch, mountedUnder } from '../../fixtures/mount-scratch.js';

const scratch = mountScratch('tvm-leftover-');

describe('record store leftovers with a mount inside', () => {
  it('unmounts, then removes the leftover; the init goes on', async () => {
    const leftover = path.join(scratch.root(), 'containers', 'a'.repeat(64));
    const layer = path.join(leftover, 'layer');
    mkdirSync(layer, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', layer]);
    mkdirSync(path.join(layer, 'upper'));
    writeFileSync(path.join(layer, 'upper', 'f'), 'x');
    const store = new RecordStore(scratch.root());
    const { removed } = await store.load();
    expect(removed).toEqual(['a'.repeat(64)]);
    expect(await mountedUnder(leftover)).toEqual([]);
    expect(existsSync(leftover)).toBe(false);
  });
});
