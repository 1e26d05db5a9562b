import { describe, it, expect, afterAll } from 'vitest';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { VolumeStore } from '../../../src/runtime/volumes.js';
import { mapError } from '../../../src/api/errors.js';

describe('VolumeStore names up to NAME_MAX (issue 16 item 8)', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  // Temp names were derived from the volume's name: 243+ characters made rm fail forever
  // (ENAMETOOLONG), 246+ made create a 500 naming a host path.
  it('creates and removes volumes with names of 243 to 255 characters', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'rel-vol-'));
    dirs.push(root);
    const s = new VolumeStore(root);
    await s.load();
    for (const n of [243, 246, 255]) {
      const name = 'v'.repeat(n);
      const { created } = await s.create({ name });
      expect(created).toBe(true);
      await s.remove(name, new Map());
      expect(s.has(name)).toBe(false);
    }
    expect(await readdir(s.dir)).toEqual([]);
  });

  it('refuses a longer name with a 400 that names no host path', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'rel-vol-'));
    dirs.push(root);
    const s = new VolumeStore(root);
    await s.load();
    const err = await s.create({ name: 'v'.repeat(256) }).then(
      () => undefined,
      (e: unknown) => e,
    );
    const m = mapError(err);
    expect(m.status).toBe(400);
    expect(m.message).toContain('volume name is too long');
    expect(m.message).not.toContain(root);
    expect(await readdir(s.dir)).toEqual([]);
  });
});
